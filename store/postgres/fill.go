package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
)

// fillBatch is how many leads (or callbacks) Fill writes per transaction.
const fillBatch = 100000

// Fill appends a synthetic campaign — leads leads and callbacks callbacks
// over the 24 hours before now — for benchmarks, budget checks and demos,
// with store/sqlite's mix: mostly accepted, some duplicates, validation
// errors, rejections and failures, a backlog of queued and retry_wait
// leads and a few in flight; one send attempt per lead that was sent;
// callbacks mostly naming accepted-range leads by CRM id (half also by
// external id), about 3% unmatched. Rows go in by COPY (leads and
// attempts directly, with ids after the highest; callbacks through a
// temporary table and one INSERT … ON CONFLICT DO NOTHING, so a drawn
// duplicate is redrawn and exactly callbacks are stored). The counting
// triggers are statement-level and fire for COPY too, so counts stay
// right. It is meant for a database nobody else writes meanwhile: the
// lead ids are chosen here.
func (db *DB) Fill(ctx context.Context, leads, callbacks int) error {
	if db.readOnly {
		return fmt.Errorf("fill: %w", errReadOnly())
	}
	var base, cbBase int64
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT COALESCE(max(id), 0) FROM leads), (SELECT COALESCE(max(id), 0) FROM callbacks)`).
		Scan(&base, &cbBase); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	rng := rand.New(rand.NewPCG(uint64(base)+1, uint64(cbBase)+7))
	now := db.now()
	start := now.Add(-24 * time.Hour)
	span := int64(24 * time.Hour / time.Millisecond)
	for done := 0; done < leads; done += fillBatch {
		n := min(fillBatch, leads-done)
		if err := db.fillLeads(ctx, rng, base+int64(done), n, start, span, now); err != nil {
			return fmt.Errorf("fill leads: %w", err)
		}
	}
	total := base + int64(leads)
	for done := 0; done < callbacks; {
		n := min(fillBatch, callbacks-done)
		stored, err := db.fillCallbacks(ctx, rng, cbBase+int64(done), n, total, start, span)
		if err != nil {
			return fmt.Errorf("fill callbacks: %w", err)
		}
		done += stored
	}
	db.watch.changed()
	return nil
}

// fillState picks a state with a launch-like distribution (store/sqlite's).
func fillState(r *rand.Rand) crm.State {
	switch p := r.IntN(1000); {
	case p < 700:
		return crm.StateAccepted
	case p < 750:
		return crm.StateDuplicate
	case p < 800:
		return crm.StateValidationError
	case p < 850:
		return crm.StateRejected
	case p < 880:
		return crm.StateFailed
	case p < 950:
		return crm.StateQueued
	case p < 990:
		return crm.StateRetryWait
	default:
		return crm.StateInFlight
	}
}

// fillExternalID names the synthetic lead with row id i.
func fillExternalID(i int64) string { return "fill-" + strconv.FormatInt(i, 10) }

// fillLeads copies n leads with ids from+1 … and their attempts in one
// transaction, then moves the id sequence past them.
func (db *DB) fillLeads(ctx context.Context, r *rand.Rand, from int64, n int, start time.Time, span int64, now time.Time) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer rollback(tx)
	leadRows := make([][]any, 0, n)
	var attRows [][]any
	for k := range n {
		i := from + int64(k) + 1
		ext := fillExternalID(i)
		created := ms(start) + r.Int64N(span)
		updated := min(created+r.Int64N(60000), ms(now))
		st := fillState(r)
		var (
			crmID, reason, owner string
			attempts, status     int32
			next, lease          *int64
		)
		switch st {
		case crm.StateQueued:
			next = &created
			updated = created
		case crm.StateRetryWait:
			attempts, status = 1+r.Int32N(4), 503
			v := ms(now) + r.Int64N(600000)
			next = &v
		case crm.StateInFlight:
			attempts, owner = 1, "fill-worker"
			v := ms(now) + 30000
			lease, next = &v, &v
		case crm.StateAccepted, crm.StateDuplicate:
			attempts, status, crmID = 1, 200, "crm-"+strconv.FormatInt(i, 10)
		case crm.StateValidationError:
			attempts, status, reason = 1, 422, "phone: invalid format"
		case crm.StateRejected:
			attempts, status, reason = 1, 200, "blocked country"
		case crm.StateFailed:
			attempts, status, reason = 5, 503, "gave up after 5 attempts"
		}
		payload := `{"external_id":"` + ext + `","phone":"+4915112345678","country":"DE","source":"fill"}`
		key := ext + "-" + strconv.FormatInt(created, 10) + "-00000000"
		leadRows = append(leadRows, []any{i, ext, []byte(payload), key, string(st), crmID, reason, attempts, next,
			status, owner, lease, created, updated})
		if st != crm.StateQueued && st != crm.StateInFlight {
			attRows = append(attRows, []any{i, "send", int32(1), key, updated - r.Int64N(1000), 20000 + r.Int64N(100000), status, string(st)})
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"leads"}, []string{"id", "external_id", "payload", "idempotency_key",
		"state", "crm_id", "reason", "attempts", "next_attempt_at", "last_http_status", "lease_owner",
		"lease_expires_at", "created_at", "updated_at"}, pgx.CopyFromRows(leadRows)); err != nil {
		return mapErr(ctx, err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"attempts"}, []string{"lead_id", "kind", "number", "idempotency_key",
		"started_at", "duration_us", "http_status", "outcome"}, pgx.CopyFromRows(attRows)); err != nil {
		return mapErr(ctx, err)
	}
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('leads', 'id'), $1)`, from+int64(n)); err != nil {
		return mapErr(ctx, err)
	}
	return db.commit(ctx, tx)
}

// fillCallbacks stores up to n synthetic callbacks in one transaction and
// returns how many it stored (a triple drawn twice is stored once; Fill
// draws the shortfall again). Lead ids are drawn from 1 … leads; one that
// does not exist leaves the callback unmatched.
func (db *DB) fillCallbacks(ctx context.Context, r *rand.Rand, from int64, n int, leads int64, start time.Time, span int64) (int, error) {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, err
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE fill_callbacks (LIKE callbacks INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
		return 0, mapErr(ctx, err)
	}
	events := [...]string{"lead.created", "lead.qualified", "lead.contacted", "lead.converted", "lead.lost"}
	rows := make([][]any, 0, n)
	for k := range n {
		seq := from + int64(k) + 1
		received := ms(start) + r.Int64N(span)
		ev := events[r.IntN(len(events))]
		var (
			internal, ext string
			lead          *int64
		)
		if leads > 0 && r.IntN(100) >= 3 {
			i := 1 + r.Int64N(leads)
			internal, lead = "crm-"+strconv.FormatInt(i, 10), &i
			if r.IntN(2) == 0 {
				ext = fillExternalID(i)
			}
		} else {
			internal = "crm-unknown-" + strconv.FormatInt(seq, 10) + "-" + strconv.FormatInt(r.Int64(), 36)
		}
		ts := strconv.FormatInt(received/1000, 10)
		body := `{"internal_id":"` + internal + `","event":"` + ev + `","timestamp":` + ts + `}`
		rows = append(rows, []any{seq, internal + ":" + ev + ":" + ts, internal, ext, ev, ev[5:], ts,
			received - r.Int64N(2000), received, r.Int64N(400) - 200, []byte(body), int32(0), lead})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fill_callbacks"}, []string{"id", "dedup_key", "internal_id", "external_id",
		"event", "status", "timestamp", "event_time", "received_at", "skew_ms", "raw_body", "secret_idx", "lead_id"},
		pgx.CopyFromRows(rows)); err != nil {
		return 0, mapErr(ctx, err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO callbacks (dedup_key, internal_id, external_id, event, status, timestamp,
			event_time, received_at, skew_ms, raw_body, secret_idx, lead_id)
		SELECT f.dedup_key, f.internal_id, f.external_id, f.event, f.status, f.timestamp, f.event_time, f.received_at,
			f.skew_ms, f.raw_body, f.secret_idx, l.id
		FROM fill_callbacks f LEFT JOIN leads l ON l.id = f.lead_id
		ORDER BY f.id
		ON CONFLICT (internal_id, event, timestamp) DO NOTHING`)
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
