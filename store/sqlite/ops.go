package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Operator actions and pauses (migration 005). Each check-and-write is a
// guarded UPDATE whose WHERE repeats the state it was computed from, with
// the rows it changed checked, so none of them rests on SQLite serializing
// writers (guard.go).

// pauseSet is the pauses in force, as one write transaction read them.
type pauseSet map[[2]string]bool

// readPauses reads the pauses in force (a handful of rows).
func readPauses(ctx context.Context, q querier) (pauseSet, error) {
	ps, err := queryAll(ctx, q, scanPause, `SELECT field, value, at FROM pauses`)
	if err != nil {
		return nil, err
	}
	set := make(pauseSet, len(ps))
	for _, p := range ps {
		set[[2]string{p.Field, p.Value}] = true
	}
	return set, nil
}

// covering is the pause that holds a lead of that source and sub_id: its
// source's, else its sub_id's (the source wins when both are paused).
func (s pauseSet) covering(source, subID string) (crm.Pause, bool) {
	switch {
	case s[[2]string{crm.GroupSource, source}]:
		return crm.Pause{Field: crm.GroupSource, Value: source}, true
	case s[[2]string{crm.GroupSubID, subID}]:
		return crm.Pause{Field: crm.GroupSubID, Value: subID}, true
	}
	return crm.Pause{}, false
}

// pausedReason is the reason of a lead p holds; sqlHoldPaused writes the
// same.
func pausedReason(p crm.Pause) string { return "paused: " + p.Field + " " + p.Value }

// heldByOperator is the reason of a lead an operator held.
const heldByOperator = "held by operator"

func scanPause(s scanner) (crm.Pause, error) {
	var (
		p  crm.Pause
		at int64
	)
	err := s.Scan(&p.Field, &p.Value, &at)
	p.At = fromMS(at)
	return p, err
}

// Act implements store.Store: a applied to each lead named, in one write
// transaction, a result per id in order. Each id is read, checked against
// a.Applies, then written by an UPDATE whose WHERE repeats the state read:
// a lead that changed in between (claimed, say) matches no row and is read
// again, so an action never lands on a state it does not apply to.
func (db *DB) Act(ctx context.Context, a crm.Action, externalIDs []string) (_ []crm.ActionResult, err error) {
	defer func() { db.noteFailure(err) }()
	switch a {
	case crm.ActRetryNow, crm.ActHold, crm.ActRelease, crm.ActCancel:
	default:
		return nil, fmt.Errorf("act: unknown action %q", a)
	}
	out := make([]crm.ActionResult, len(externalIDs))
	if len(externalIDs) == 0 {
		return out, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	defer tx.Rollback()
	now := ms(db.now())
	for i, ext := range externalIDs {
		out[i], err = db.actOne(ctx, tx, a, ext, now)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", a, ext, err)
		}
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	return out, nil
}

// actOne applies a to one lead inside tx.
func (db *DB) actOne(ctx context.Context, tx *sql.Tx, a crm.Action, ext string, now int64) (crm.ActionResult, error) {
	r := crm.ActionResult{ExternalID: ext}
	for try := 0; ; try++ {
		if try == maxGuardRetries {
			return r, fmt.Errorf("%w: the lead kept changing; try again", store.ErrBusy)
		}
		var (
			id    int64
			state string
		)
		err := tx.QueryRowContext(ctx, `SELECT id, state FROM leads WHERE external_id = ?`, ext).Scan(&id, &state)
		if errors.Is(err, sql.ErrNoRows) {
			r.Err = fmt.Errorf("lead %s: %w", ext, store.ErrNotFound)
			return r, nil
		}
		if err != nil {
			return r, mapErr(ctx, err)
		}
		r.Before, r.After = crm.State(state), crm.State(state)
		if !a.Applies(r.Before) {
			r.Err = crm.WrongState(a, r.Before)
			return r, nil
		}
		db.hookAfterRead(ctx, "act", tx)
		var q string
		var args []any
		switch a {
		case crm.ActRetryNow:
			q = `UPDATE leads SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = ?`
			args = []any{now, now}
			r.After = crm.StateRetryWait
		case crm.ActHold:
			q = `UPDATE leads SET state = 'held', hold = ?, reason = ?, next_attempt_at = NULL,
				lease_owner = '', lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = ?`
			args = []any{crm.HoldOperator, heldByOperator, now}
			r.After = crm.StateHeld
		case crm.ActRelease:
			q = `UPDATE leads SET state = 'queued', hold = '', reason = '', next_attempt_at = ?, updated_at = ?
				WHERE id = ? AND state = ?`
			args = []any{now, now}
			r.After = crm.StateQueued
		case crm.ActCancel:
			q = `UPDATE leads SET state = 'failed', hold = '', reason = ?, next_attempt_at = NULL,
				lease_owner = '', lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = ?`
			args = []any{crm.CanceledReason, now}
			r.After = crm.StateFailed
		}
		n, err := execCount(ctx, tx, q, append(args, id, state)...)
		if err != nil {
			return r, err
		}
		if n == 0 {
			continue // changed since the read: read it again
		}
		if a == crm.ActRelease {
			// A pause still covering the lead holds it again, by its field.
			n, err := execCount(ctx, tx, sqlHoldPaused, now, id, id)
			if err != nil {
				return r, err
			}
			if n > 0 {
				r.After = crm.StateHeld
			}
		}
		return r, nil
	}
}

// RetryAllNow implements store.Store: every retry_wait lead not yet due
// becomes due now (same key, same attempt count), in one statement; n is
// how many it moved.
func (db *DB) RetryAllNow(ctx context.Context) (n int, err error) {
	defer func() { db.noteFailure(err) }()
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("retry all now: %w", err)
	}
	defer tx.Rollback()
	now := ms(db.now())
	c, err := execCount(ctx, tx, `UPDATE leads SET next_attempt_at = ?, updated_at = ?
		WHERE state = 'retry_wait' AND next_attempt_at > ?`, now, now, now)
	if err != nil {
		return 0, fmt.Errorf("retry all now: %w", err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, fmt.Errorf("retry all now: %w", err)
	}
	return int(c), nil
}

// pauseColumn is the leads column of a validated pause field.
func pauseColumn(field string) string {
	if field == crm.GroupSubID {
		return "sub_id"
	}
	return "source"
}

// Pause implements store.Store: the rule is stored and every queued or
// retry_wait lead it covers is held, in one write transaction (BEGIN
// IMMEDIATE: an Enqueue or a Record commits wholly before it, and is held
// here, or after it, and reads the rule). Pausing twice holds nothing
// more (0).
func (db *DB) Pause(ctx context.Context, p crm.Pause) (held int, err error) {
	defer func() { db.noteFailure(err) }()
	if err := p.Validate(); err != nil {
		return 0, err
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("pause: %w", err)
	}
	defer tx.Rollback()
	now := ms(db.now())
	n, err := execCount(ctx, tx, `INSERT INTO pauses (field, value, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		p.Field, p.Value, now)
	if err != nil {
		return 0, fmt.Errorf("pause: %w", err)
	}
	if n == 0 {
		return 0, nil // paused already: nothing to commit
	}
	c, err := execCount(ctx, tx, `UPDATE leads SET state = 'held', hold = ?, reason = ?, next_attempt_at = NULL,
			lease_owner = '', lease_expires_at = NULL, updated_at = ?
		WHERE state IN ('queued', 'retry_wait') AND `+pauseColumn(p.Field)+` = ?`,
		p.Field, pausedReason(p), now, p.Value)
	if err != nil {
		return 0, fmt.Errorf("pause: %w", err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, fmt.Errorf("pause: %w", err)
	}
	return int(c), nil
}

// Resume implements store.Store: the rule goes, and the leads it held go
// back to the queue, due now, except those the other field's pause
// covers, which it holds from now on. released counts the queued ones. A
// rule that is not there is 0, nil.
func (db *DB) Resume(ctx context.Context, p crm.Pause) (released int, err error) {
	defer func() { db.noteFailure(err) }()
	if err := p.Validate(); err != nil {
		return 0, err
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	defer tx.Rollback()
	n, err := execCount(ctx, tx, `DELETE FROM pauses WHERE field = ? AND value = ?`, p.Field, p.Value)
	if err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	now := ms(db.now())
	col, other := pauseColumn(p.Field), crm.GroupSubID
	if p.Field == crm.GroupSubID {
		other = crm.GroupSource
	}
	otherCol := pauseColumn(other)
	if _, err := execCount(ctx, tx, `UPDATE leads SET hold = ?, reason = 'paused: ' || ? || ' ' || `+otherCol+`, updated_at = ?
		WHERE state = 'held' AND hold = ? AND `+col+` = ?
			AND EXISTS (SELECT 1 FROM pauses WHERE field = ? AND value = leads.`+otherCol+`)`,
		other, other, now, p.Field, p.Value, other); err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	c, err := execCount(ctx, tx, `UPDATE leads SET state = 'queued', hold = '', reason = '', next_attempt_at = ?, updated_at = ?
		WHERE state = 'held' AND hold = ? AND `+col+` = ?`, now, now, p.Field, p.Value)
	if err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	return int(c), nil
}

// Pauses implements store.Store: the rules in force, oldest first.
func (db *DB) Pauses(ctx context.Context) ([]crm.Pause, error) {
	ps, err := queryAll(ctx, db.reader, scanPause, `SELECT field, value, at FROM pauses ORDER BY at, field, value`)
	if err != nil {
		return nil, fmt.Errorf("pauses: %w", err)
	}
	return ps, nil
}

// FindLead implements store.Store: by external_id, else by CRM id (the
// newest lead with it), each one index lookup.
func (db *DB) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	if id == "" {
		return crm.Lead{}, fmt.Errorf("find lead %q: %w", id, store.ErrNotFound)
	}
	tx, err := db.beginRead(ctx)
	if err != nil {
		return crm.Lead{}, fmt.Errorf("find lead %s: %w", id, err)
	}
	defer tx.Rollback()
	l, err := scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		l, err = scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE crm_id = ? ORDER BY id DESC LIMIT 1`, id))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Lead{}, fmt.Errorf("find lead %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return crm.Lead{}, fmt.Errorf("find lead %s: %w", id, mapErr(ctx, err))
	}
	return l, nil
}

// CountLeads implements store.Store. Without a filter or reason the
// answer is the state counters' sum (a few primary-key reads), capped at
// limit; with one it counts matching rows and stops at limit. A limit of
// 0 or less counts everything.
func (db *DB) CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (n int, capped bool, err error) {
	states, _, err := store.PaneStates(q.States)
	if err != nil {
		return 0, false, err
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	if q.Filter == "" && q.Reason == "" {
		c, err := db.Counts(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("count leads: %w", err)
		}
		for _, s := range states {
			n += c.States[s]
		}
		return min(n, limit), n >= limit, nil
	}
	where, args := leadsWhere(states, q)
	var c int
	if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM leads WHERE `+where+` LIMIT ?)`,
		append(args, int64(min(limit, math.MaxInt64)))...).Scan(&c); err != nil {
		return 0, false, fmt.Errorf("count leads: %w", mapErr(ctx, err))
	}
	return c, c >= limit, nil
}

// Pulse implements store.Store from the per-second throughput rows of
// the hour before now, in one statement that sums in SQL rather than
// returning the hour's 3,600 rows: the latest second of each kind is a
// backward walk of the primary key that stops at the first match, then
// only the seconds after the last answer (the whole hour when nothing was
// answered) and those of the last minute are summed.
func (db *DB) Pulse(ctx context.Context, now time.Time) (crm.Pulse, error) {
	var p crm.Pulse
	end := now.Unix()
	var lastAttempt, lastAnswered, lastCallback sql.NullInt64
	err := db.reader.QueryRowContext(ctx, `WITH l AS (SELECT
			(SELECT sec FROM throughput WHERE sec > ?1 AND sec <= ?2 AND sent > 0 ORDER BY sec DESC LIMIT 1) AS attempt,
			(SELECT sec FROM throughput WHERE sec > ?1 AND sec <= ?2 AND answered > 0 ORDER BY sec DESC LIMIT 1) AS answered,
			(SELECT sec FROM throughput WHERE sec > ?1 AND sec <= ?2 AND callbacks > 0 ORDER BY sec DESC LIMIT 1) AS callback)
		SELECT l.attempt, l.answered, l.callback,
			(SELECT COALESCE(SUM(sent - answered), 0) FROM throughput WHERE sec > COALESCE(l.answered, ?1) AND sec <= ?2),
			COALESCE(SUM(t.sent), 0), COALESCE(SUM(t.sent - t.answered), 0), COALESCE(SUM(t.accepted), 0),
			COALESCE(SUM(t.callbacks), 0), COALESCE(SUM(t.refused), 0)
		FROM l LEFT JOIN throughput t ON t.sec > ?2 - 60 AND t.sec <= ?2`, end-3600, end).
		Scan(&lastAttempt, &lastAnswered, &lastCallback, &p.Unanswered,
			&p.AttemptsMin, &p.UnansweredMin, &p.AcceptedMin, &p.CallbacksMin, &p.RefusedMin)
	if err != nil {
		return p, fmt.Errorf("pulse: %w", mapErr(ctx, err))
	}
	for _, t := range []struct {
		sec sql.NullInt64
		at  *time.Time
	}{{lastAttempt, &p.LastAttempt}, {lastAnswered, &p.LastAnswered}, {lastCallback, &p.LastCallback}} {
		if t.sec.Valid {
			*t.at = time.Unix(t.sec.Int64, 0)
		}
	}
	return p, nil
}
