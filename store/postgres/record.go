package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// sqlLinkLock serializes, per CRM id, the two writers that can link a
// callback to a lead by that id: Record, which learns the id, and
// SaveCallbacks, which stores a callback naming it. Under READ COMMITTED
// each would otherwise miss the other's uncommitted row (the callback
// finds no lead with that id yet; the Record finds no callback yet) and
// the callback would stay unmatched for good. With the lock, whichever
// comes second runs its statement after the first committed, and sees its
// row. Both sides take it before touching the lead's row, so the two
// locks are always taken in the same order.
const sqlLinkLock = `SELECT pg_advisory_xact_lock(hashtextextended('link:' || $1, 0))`

// recordTimeout (plus the busy timeout, for the lock waits) bounds a
// Record once started.
const recordTimeout = 30 * time.Second

// Record implements crm.Outbox: the lead's new state and the attempt row in
// one transaction, the lease freed, and Record returns after that commit.
// If owner no longer holds the lease (it expired and another worker took
// it), nothing is written and the error wraps crm.ErrLeaseLost. A CRM id
// learned here also links the callbacks that named it before this commit
// (they can overtake it); see sqlLinkLock.
//
// Unlike store/sqlite there is no group commit: PostgreSQL commits many
// connections' transactions concurrently (and groups their WAL flushes
// itself), so each Record is its own transaction on a pooled connection.
func (db *DB) Record(ctx context.Context, owner string, r crm.AttemptResult) error {
	a := r.Attempt
	switch {
	case a.Outcome == crm.StateRetryWait, a.Outcome.Final():
	default:
		return fmt.Errorf("record lead %d: outcome %q is not retry_wait or a final state", a.LeadID, a.Outcome)
	}
	if db.readOnly {
		return fmt.Errorf("record lead %d: %w", a.LeadID, errReadOnly())
	}
	// Once started, the transaction is finished even if ctx ends (it is
	// short): a caller must never mistake a committed attempt for a lost
	// one. recordTimeout still bounds it should the server stop answering.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout+db.opt.BusyTimeout)
	defer cancel()
	tx, err := db.beginWrite(wctx)
	if err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	defer rollback(tx)
	lost, err := db.recordOne(wctx, tx, owner, r, db.now())
	if err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	if lost {
		return fmt.Errorf("record lead %d for %s: %w", a.LeadID, owner, crm.ErrLeaseLost)
	}
	if err := db.commit(wctx, tx); err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	db.committed()
	return nil
}

// recordOne applies one attempt inside tx; lost when owner does not hold
// the lead's lease (then nothing was written and tx must be rolled back).
func (db *DB) recordOne(ctx context.Context, tx pgx.Tx, owner string, r crm.AttemptResult, now time.Time) (lost bool, err error) {
	a := r.Attempt
	if r.CRMID != "" {
		if _, err := tx.Exec(ctx, sqlLinkLock, r.CRMID); err != nil {
			return false, mapErr(ctx, err)
		}
	}
	if a.Outcome == crm.StateRetryWait {
		// A lead that will be retried is held instead when its source or
		// sub_id is paused; the pauses are read under the shared pause
		// lock, as Enqueue does.
		if _, err := tx.Exec(ctx, sqlPauseShared); err != nil {
			return false, mapErr(ctx, err)
		}
	}
	var next *int64
	if a.Outcome == crm.StateRetryWait {
		at := r.NextAttemptAt
		if at.IsZero() {
			at = now
		}
		next = nullMS(at)
	}
	started := a.StartedAt
	if started.IsZero() {
		started = now
	}
	// The guarded update and the attempt row in one statement (one round
	// trip): the insert reads the update's RETURNING, so no row at all
	// comes back when the lease is gone, and nothing was written. The
	// attempt keeps its real outcome when the lead is held by a pause.
	var attemptID int64
	err = tx.QueryRow(ctx, `WITH lead AS (
			UPDATE leads SET state = CASE WHEN p.h = '' THEN $1::text ELSE 'held' END, hold = p.h,
				crm_id = CASE WHEN $2 <> '' THEN $2 ELSE leads.crm_id END,
				reason = CASE WHEN p.h = '' THEN $3::text
					ELSE 'paused: ' || p.h || ' ' || CASE p.h WHEN 'source' THEN leads.source ELSE leads.sub_id END END,
				last_http_status = $4, last_error = $5, last_delay_ms = $6, last_delay_why = $7,
				next_attempt_at = CASE WHEN p.h = '' THEN $8::bigint END,
				accepted_at = CASE WHEN $1::text = 'accepted' THEN $9::bigint ELSE leads.accepted_at END,
				lease_owner = '', lease_expires_at = NULL, updated_at = $9
			FROM (SELECT CASE WHEN $1::text = 'retry_wait' THEN lw_pause_hold(l.source, l.sub_id) ELSE '' END AS h
				FROM leads l WHERE l.id = $10) p
			WHERE leads.id = $10 AND leads.lease_owner = $11 AND leads.state = 'in_flight'
			RETURNING leads.id, leads.attempts, leads.idempotency_key
		)
		INSERT INTO attempts
			(lead_id, kind, number, idempotency_key, started_at, duration_us, http_status, response_body,
			 error, outcome, delay_ms, delay_why, note)
		SELECT id, 'send', COALESCE(NULLIF($12::int, 0), attempts), COALESCE(NULLIF($13::text, ''), idempotency_key),
			$14, $15, $4, $16, $5, $1, $6, $7, $17
		FROM lead
		RETURNING id`,
		string(a.Outcome), r.CRMID, r.Reason, a.HTTPStatus, a.Error, a.Delay.Milliseconds(), a.DelayWhy,
		next, ms(now), a.LeadID, owner,
		a.Number, a.IdempotencyKey, ms(started), a.Duration.Microseconds(), capBody(a.ResponseBody), a.Note).Scan(&attemptID)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, mapErr(ctx, err)
	}
	if r.CRMID != "" {
		if err := db.linkLate(ctx, tx, a.LeadID, r.CRMID, now); err != nil {
			return false, err
		}
	}
	return false, nil
}

// linkLate attaches unmatched callbacks that name crmID and arrived since
// the lead was created (less store.LateLinkSlack, as on SQLite) to the
// lead, and takes the newest status among them. The caller holds
// sqlLinkLock for crmID.
func (db *DB) linkLate(ctx context.Context, tx pgx.Tx, leadID int64, crmID string, now time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE callbacks SET lead_id = $1 WHERE internal_id = $2 AND lead_id IS NULL
		AND received_at >= (SELECT created_at FROM leads WHERE id = $1) - $3`,
		leadID, crmID, store.LateLinkSlack.Milliseconds())
	if err != nil {
		return mapErr(ctx, err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	// The lead's first status and first ftd are when those callbacks
	// arrived, if the lead has none yet.
	if _, err := tx.Exec(ctx, `UPDATE leads l SET
			first_status_at = COALESCE(l.first_status_at, s.first_status),
			ftd_at = COALESCE(l.ftd_at, s.first_ftd)
		FROM (SELECT min(received_at) FILTER (WHERE status <> '') AS first_status,
				min(received_at) FILTER (WHERE lower(status) = 'ftd') AS first_ftd
			FROM callbacks WHERE lead_id = $1) s
		WHERE l.id = $1 AND ((l.first_status_at IS NULL AND s.first_status IS NOT NULL)
			OR (l.ftd_at IS NULL AND s.first_ftd IS NOT NULL))`, leadID); err != nil {
		return mapErr(ctx, err)
	}
	var (
		status string
		at     int64
	)
	err = tx.QueryRow(ctx, `SELECT status, COALESCE(event_time, received_at) AS t FROM callbacks
		WHERE lead_id = $1 AND status <> '' ORDER BY t DESC, id DESC LIMIT 1`, leadID).Scan(&status, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return mapErr(ctx, err)
	}
	return setCRMStatus(ctx, tx, leadID, status, at, now)
}

// setCRMStatus keeps status as the lead's CRM status unless a newer event
// already set one (callbacks may arrive out of order).
func setCRMStatus(ctx context.Context, tx pgx.Tx, leadID int64, status string, at int64, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE leads SET crm_status = $1, crm_status_at = $2, updated_at = $3
		WHERE id = $4 AND (crm_status_at IS NULL OR crm_status_at <= $2)`, status, at, ms(now), leadID)
	return mapErr(ctx, err)
}
