package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// querier is what a read runs on: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryAll runs query on q and collects its rows with scan, in order; its
// error is mapped to the store's sentinels.
func queryAll[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(ctx, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(ctx, err)
	}
	return out, nil
}

// leadCols is the column list scanLead reads, in order.
const leadCols = `id, external_id, payload, idempotency_key, state, crm_id, crm_status, reason,
	phone_invalid, attempts, next_attempt_at, last_http_status, last_error, last_delay_ms,
	last_delay_why, lease_owner, lease_expires_at, created_at, updated_at,
	source, funnel, sub_id, country, hold, accepted_at, first_status_at`

// scanLead reads one row of leadCols.
func scanLead(s pgx.Row) (crm.Lead, error) {
	var (
		l                        crm.Lead
		state                    string
		next, leaseExp           *int64
		acceptedAt, firstStatus  *int64
		delayMS, created, update int64
	)
	err := s.Scan(&l.ID, &l.ExternalID, &l.Payload, &l.IdempotencyKey, &state, &l.CRMID, &l.CRMStatus,
		&l.Reason, &l.PhoneInvalid, &l.Attempts, &next, &l.LastHTTPStatus, &l.LastError, &delayMS,
		&l.LastDelayWhy, &l.LeaseOwner, &leaseExp, &created, &update,
		&l.Source, &l.Funnel, &l.SubID, &l.Country, &l.Hold, &acceptedAt, &firstStatus)
	if err != nil {
		return l, err
	}
	l.State = crm.State(state)
	l.NextAttemptAt = fromNullMS(next)
	l.LeaseExpiresAt = fromNullMS(leaseExp)
	l.LastDelay = time.Duration(delayMS) * time.Millisecond
	l.CreatedAt = fromMS(created)
	l.UpdatedAt = fromMS(update)
	l.AcceptedAt = fromNullMS(acceptedAt)
	l.FirstStatusAt = fromNullMS(firstStatus)
	return l, nil
}

// attemptCols is the column list scanAttempt reads, in order.
const attemptCols = `id, lead_id, kind, number, idempotency_key, started_at, duration_us, http_status,
	response_body, error, outcome, delay_ms, delay_why, note, prev_payload`

// scanAttempt reads one row of attemptCols.
func scanAttempt(s pgx.Row) (crm.Attempt, error) {
	var (
		a                       crm.Attempt
		kind, outcome           string
		started, durUS, delayMS int64
	)
	err := s.Scan(&a.ID, &a.LeadID, &kind, &a.Number, &a.IdempotencyKey, &started, &durUS, &a.HTTPStatus,
		&a.ResponseBody, &a.Error, &outcome, &delayMS, &a.DelayWhy, &a.Note, &a.PrevPayload)
	a.Kind = crm.AttemptKind(kind)
	a.Outcome = crm.State(outcome)
	a.StartedAt = fromMS(started)
	a.Duration = time.Duration(durUS) * time.Microsecond
	a.Delay = time.Duration(delayMS) * time.Millisecond
	return a, err
}

// ms is the stored form of a time: unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMS stores the zero time as NULL.
func nullMS(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMS(*v)
}

// capBody keeps at most MaxResponseBody bytes of a response.
func capBody(b []byte) []byte {
	if len(b) > store.MaxResponseBody {
		return b[:store.MaxResponseBody]
	}
	return b
}
