package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The due conditions of a lookup (migration 004). The GREATEST expressions
// are those of the partial indexes leads_lookup_new and
// leads_lookup_stale, written the same way so that the planner serves the
// claims from them.
const (
	lookupNewAt   = `GREATEST(COALESCE(accepted_at, 0), COALESCE(last_lookup_at, 0))`
	lookupStaleAt = `GREATEST(COALESCE(crm_status_at, 0), COALESCE(last_lookup_at, 0))`

	// sqlLookupNew hands out accepted leads with no status whose last
	// news is before the cut (now, cut, accepted since, limit). SKIP
	// LOCKED passes over leads another instance is claiming; the outer
	// WHERE repeats the condition, which READ COMMITTED re-checks on the
	// row's latest version, so a lead claimed meanwhile is not taken.
	sqlLookupNew = `UPDATE leads SET last_lookup_at = $1, lookups = lookups + 1
		WHERE id IN (SELECT id FROM leads
				WHERE state = 'accepted' AND crm_status = '' AND ` + lookupNewAt + ` < $2
					AND COALESCE(accepted_at, 0) >= $3
				ORDER BY ` + lookupNewAt + `, id LIMIT $4 FOR UPDATE SKIP LOCKED)
			AND state = 'accepted' AND crm_status = '' AND ` + lookupNewAt + ` < $2
		RETURNING ` + leadCols
	// sqlLookupStatuses lists the distinct statuses of accepted leads by
	// skipping from one to the next along leads_lookup_stale (a seek per
	// status), bounded.
	sqlLookupStatuses = `WITH RECURSIVE s(st) AS (
			SELECT min(crm_status) FROM leads WHERE state = 'accepted' AND crm_status <> ''
			UNION ALL
			SELECT (SELECT min(crm_status) FROM leads WHERE state = 'accepted' AND crm_status <> ''
				AND crm_status > s.st) FROM s WHERE s.st IS NOT NULL)
		SELECT st FROM s WHERE st IS NOT NULL LIMIT 1000`
	// sqlLookupStale is sqlLookupNew for the leads with one status (now,
	// status, cut, accepted since, limit).
	sqlLookupStale = `UPDATE leads SET last_lookup_at = $1, lookups = lookups + 1
		WHERE id IN (SELECT id FROM leads
				WHERE state = 'accepted' AND crm_status <> '' AND crm_status = $2 AND ` + lookupStaleAt + ` < $3
					AND COALESCE(accepted_at, 0) >= $4
				ORDER BY ` + lookupStaleAt + `, id LIMIT $5 FOR UPDATE SKIP LOCKED)
			AND state = 'accepted' AND crm_status = $2 AND ` + lookupStaleAt + ` < $3
		RETURNING ` + leadCols
	// sqlLookupNamed hands the named accepted leads out, due or not.
	sqlLookupNamed = `UPDATE leads SET last_lookup_at = $1, lookups = lookups + 1
		WHERE external_id = ANY($2) AND state = 'accepted'
		RETURNING ` + leadCols
)

// ClaimLookups implements crm.ReconcileStore: it marks up to q.Limit due
// leads as looked up at q.Now and returns them; the leads with no status
// come first, then those of each status not final. Each range is one
// guarded UPDATE … RETURNING, so two instances never hand out one lead.
func (db *DB) ClaimLookups(ctx context.Context, q crm.ReconcileQuery) (_ []crm.Lead, err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return nil, fmt.Errorf("claim lookups: %w", errReadOnly())
	}
	now := q.Now
	if now.IsZero() {
		now = db.now()
	}
	limit := store.ClampLimit(q.Limit)
	var out []crm.Lead
	defer func() {
		if len(out) > 0 {
			db.committed()
		}
	}()
	if len(q.ExternalIDs) > 0 {
		out, err = queryAll(ctx, db.pool, scanLead, sqlLookupNamed, ms(now), q.ExternalIDs)
		if err != nil {
			return nil, fmt.Errorf("claim lookups: %w", err)
		}
		return out, nil
	}
	since := int64(0)
	if !q.AcceptedSince.IsZero() {
		since = ms(q.AcceptedSince)
	}
	out, err = queryAll(ctx, db.pool, scanLead, sqlLookupNew, ms(now), ms(now.Add(-q.After)), since, limit)
	if err != nil {
		return nil, fmt.Errorf("claim lookups: %w", err)
	}
	if len(out) >= limit {
		return out, nil
	}
	statuses, err := queryAll(ctx, db.pool, func(r pgx.Row) (string, error) {
		var st string
		return st, r.Scan(&st)
	}, sqlLookupStatuses)
	if err != nil {
		return out, fmt.Errorf("claim lookups: %w", err)
	}
	for _, st := range statuses {
		if q.IsFinal(st) {
			continue
		}
		more, err := queryAll(ctx, db.pool, scanLead, sqlLookupStale, ms(now), st, ms(now.Add(-q.Stale)), since, limit-len(out))
		if err != nil {
			// The leads claimed so far are marked already: hand them out.
			return out, fmt.Errorf("claim lookups: %w", err)
		}
		out = append(out, more...)
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// sqlInsertPolled inserts a polled row (its identity has event ”,
// migration 004) taking idOrderLock inside the statement, as
// SaveCallbacks does, so that this transaction's xid and the row's id are
// drawn in the same order as every other callback's (CallbacksAfter).
const sqlInsertPolled = `INSERT INTO callbacks (dedup_key, internal_id, external_id, event, status, reason,
		timestamp, event_time, received_at, skew_ms, raw_body, secret_idx, lead_id, kind)
	SELECT $1, $2, $3, '', $4, $5, $6, $7, $8, 0, $9, 0, $10, 'polled'
	WHERE (SELECT count(*) FROM (SELECT pg_advisory_lock($11::bigint)) AS l) = 1
	ON CONFLICT DO NOTHING
	RETURNING id`

// SavePolled implements crm.ReconcileStore: in one transaction, when p's
// status is not the lead's CRM status and no newer status is known
// (crm_status_at after p.UpdatedAt), it stores p as a callbacks row of kind
// polled and makes p's status the lead's CRM status (its first status
// and first ftd times too, if it had none). The row is inserted first —
// it must be the transaction's first write, for idOrderLock — and the
// lead locked and checked after; when nothing changed the transaction
// rolls back, row included.
func (db *DB) SavePolled(ctx context.Context, p crm.PolledStatus) (changed bool, err error) {
	defer func() { db.noteFailure(err) }()
	if p.Status == "" {
		return false, fmt.Errorf("save polled status of %q: no status", p.ExternalID)
	}
	if db.readOnly {
		return false, fmt.Errorf("save polled status: %w", errReadOnly())
	}
	polled := p.PolledAt
	if polled.IsZero() {
		polled = db.now()
	}
	at := polled
	if !p.UpdatedAt.IsZero() {
		at = p.UpdatedAt
	}
	raw := p.RawBody
	if raw == nil {
		raw = []byte{}
	}
	ts := strconv.FormatInt(ms(polled), 10)

	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	locked := false
	defer func() {
		if locked {
			// The insert failed holding idOrderLock: release it on the
			// session, or drop the connection, which releases it too.
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock_all()`); uerr != nil {
				_ = conn.Hijack().Close(uctx)
				return
			}
		}
		conn.Release()
	}()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	defer rollback(tx)
	var id int64
	locked = true
	err = tx.QueryRow(ctx, sqlInsertPolled, p.InternalID+":"+crm.EventStatusPolled+":"+ts, p.InternalID, p.ExternalID, p.Status, p.Reason,
		ts, ms(at), ms(polled), raw, p.LeadID, idOrderLock).Scan(&id)
	inserted := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		rollback(tx)
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_unlock($1)`, idOrderLock); err != nil {
		rollback(tx)
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	locked = false
	if !inserted {
		// A polled row of this CRM id in the same millisecond: the next
		// lookup tells again.
		return false, nil
	}
	var (
		cur   string
		curAt *int64
	)
	err = tx.QueryRow(ctx, `SELECT crm_status, crm_status_at FROM leads WHERE id = $1 FOR UPDATE`, p.LeadID).Scan(&cur, &curAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("save polled status of %q: %w", p.ExternalID, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if cur == p.Status || (!p.UpdatedAt.IsZero() && curAt != nil && *curAt > ms(at)) {
		return false, nil
	}
	// The status's time orders it against callbacks. Without the CRM's
	// updated_at the lead keeps the time it had: a time from this host's
	// clock could hold back a newer callback whose CRM clock is behind.
	atMS := ms(at)
	statusAt := &atMS
	if p.UpdatedAt.IsZero() {
		statusAt = curAt
	}
	if _, err := tx.Exec(ctx, `UPDATE leads SET crm_status = $1, crm_status_at = $2, updated_at = $3,
			first_status_at = COALESCE(first_status_at, $4),
			ftd_at = CASE WHEN ftd_at IS NULL AND lower($1) = 'ftd' THEN $4 ELSE ftd_at END
		WHERE id = $5`, p.Status, statusAt, ms(db.now()), ms(polled), p.LeadID); err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if err := db.commit(ctx, tx); err != nil {
		return false, fmt.Errorf("save polled status: %w", err)
	}
	db.committed()
	return true, nil
}
