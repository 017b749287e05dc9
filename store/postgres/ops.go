package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Operator actions and pauses (migration 003).
//
// Pauses are race-free across instances by one advisory lock: Pause and
// Resume take it exclusively for their transaction, and every writer that
// may put a lead in the queue (Enqueue, Resubmit, a Record ending in
// retry_wait, Act's release) takes it shared before it reads the pauses.
// A writer that started first makes Pause wait for its commit, and Pause's
// update then sees (and holds) its leads; one that starts after Pause
// committed reads the new rule. Shared holders never wait for each other.

// pauseLock is the advisory lock key of the pause rules ("lw" "paus").
const pauseLock int64 = 0x6c77_7061_7573

// sqlPauseShared takes pauseLock shared until the transaction ends. It is a
// statement of its own: under READ COMMITTED the statements after it see
// every pause committed before it was granted.
var sqlPauseShared = fmt.Sprintf(`SELECT pg_advisory_xact_lock_shared(%d)`, pauseLock)

// sqlPauseExclusive takes pauseLock exclusively until the transaction ends.
var sqlPauseExclusive = fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, pauseLock)

// pauseReason is the reason a lead held by a pause on field = value keeps.
func pauseReason(field, value string) string { return "paused: " + field + " " + value }

// heldByOperator is the reason of a lead an operator held.
const heldByOperator = "held by operator"

// Act implements store.Store: a applied to each lead named, in order, in
// one transaction. Each lead's row is locked (SELECT … FOR UPDATE) before
// its state is checked, so a concurrent Claim either took it first (it is
// in_flight then, a wrong state) or skips it (SKIP LOCKED) until this
// commits. A duplicated id sees the first one's result as its state.
func (db *DB) Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error) {
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
	defer rollback(tx)
	if a == crm.ActRelease {
		if _, err := tx.Exec(ctx, sqlPauseShared); err != nil {
			return nil, fmt.Errorf("%s: %w", a, mapErr(ctx, err))
		}
	}
	now := ms(db.now())
	changed := false
	for i, ext := range externalIDs {
		res := crm.ActionResult{ExternalID: ext}
		var (
			id          int64
			state, hold string
		)
		err := tx.QueryRow(ctx, `SELECT id, state, lw_pause_hold(source, sub_id) FROM leads WHERE external_id = $1 FOR UPDATE`, ext).
			Scan(&id, &state, &hold)
		if errors.Is(err, pgx.ErrNoRows) {
			res.Err = fmt.Errorf("%s %s: %w", a, ext, store.ErrNotFound)
			out[i] = res
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", a, ext, mapErr(ctx, err))
		}
		res.Before, res.After = crm.State(state), crm.State(state)
		if !a.Applies(res.Before) {
			res.Err = crm.WrongState(a, res.Before)
			out[i] = res
			continue
		}
		var q string
		args := []any{id, now}
		switch a {
		case crm.ActRetryNow:
			res.After = crm.StateRetryWait
			q = `UPDATE leads SET next_attempt_at = $2, updated_at = $2 WHERE id = $1`
		case crm.ActHold:
			res.After = crm.StateHeld
			q = `UPDATE leads SET state = 'held', hold = $3, reason = $4, next_attempt_at = NULL,
				lease_owner = '', lease_expires_at = NULL, updated_at = $2 WHERE id = $1`
			args = append(args, crm.HoldOperator, heldByOperator)
		case crm.ActRelease:
			if hold != "" {
				// Still covered by a pause: held by it now, not by
				// whatever held it before.
				res.After = crm.StateHeld
				q = `UPDATE leads SET hold = $3, reason = 'paused: ' || $3 || ' ' ||
						CASE $3 WHEN 'source' THEN source ELSE sub_id END, updated_at = $2 WHERE id = $1`
				args = append(args, hold)
			} else {
				res.After = crm.StateQueued
				q = `UPDATE leads SET state = 'queued', hold = '', reason = '', next_attempt_at = $2,
					updated_at = $2 WHERE id = $1`
			}
		case crm.ActCancel:
			res.After = crm.StateFailed
			q = `UPDATE leads SET state = 'failed', hold = '', reason = $3, next_attempt_at = NULL,
				lease_owner = '', lease_expires_at = NULL, updated_at = $2 WHERE id = $1`
			args = append(args, crm.CanceledReason)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return nil, fmt.Errorf("%s %s: %w", a, ext, mapErr(ctx, err))
		}
		changed = true
		out[i] = res
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	if changed {
		db.committed()
	}
	return out, nil
}

// RetryAllNow implements store.Store: every retry_wait lead due now, in
// one statement; it returns how many there were.
func (db *DB) RetryAllNow(ctx context.Context) (int, error) {
	if db.readOnly {
		return 0, fmt.Errorf("retry all now: %w", errReadOnly())
	}
	now := ms(db.now())
	tag, err := db.pool.Exec(ctx, `UPDATE leads SET next_attempt_at = $1, updated_at = $1 WHERE state = 'retry_wait'`, now)
	if err != nil {
		err = mapErr(ctx, err)
		db.noteFailure(err)
		return 0, fmt.Errorf("retry all now: %w", err)
	}
	if tag.RowsAffected() > 0 {
		db.committed()
	}
	return int(tag.RowsAffected()), nil
}

// pauseColumn is the leads column a pause field names (Validate has
// checked it is one of the two).
func pauseColumn(field string) string {
	if field == crm.GroupSubID {
		return "sub_id"
	}
	return "source"
}

// Pause implements store.Store: the rule stored and every queued or
// retry_wait lead it covers held, under pauseLock taken exclusively. A
// rule already there is left as it is (0 held).
func (db *DB) Pause(ctx context.Context, p crm.Pause) (int, error) {
	return db.changePause(ctx, "pause", p, func(tx pgx.Tx, now int64) (int, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO pauses (field, value, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			p.Field, p.Value, now)
		if err != nil || tag.RowsAffected() == 0 {
			return 0, err
		}
		col := pauseColumn(p.Field)
		tag, err = tx.Exec(ctx, `UPDATE leads SET state = 'held', hold = $1, reason = $2, next_attempt_at = NULL,
				lease_owner = '', lease_expires_at = NULL, updated_at = $3
			WHERE `+col+` = $4 AND state IN ('queued', 'retry_wait')`,
			p.Field, pauseReason(p.Field, p.Value), now, p.Value)
		return int(tag.RowsAffected()), err
	})
}

// Resume implements store.Store: the rule deleted and the leads it held
// queued, due now, under pauseLock taken exclusively; a lead whose other
// field is paused stays held by that pause instead. It returns how many
// went to queued; a rule that does not exist is 0, nil.
func (db *DB) Resume(ctx context.Context, p crm.Pause) (int, error) {
	return db.changePause(ctx, "resume", p, func(tx pgx.Tx, now int64) (int, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM pauses WHERE field = $1 AND value = $2`, p.Field, p.Value)
		if err != nil || tag.RowsAffected() == 0 {
			return 0, err
		}
		// With the rule gone, lw_pause_hold names the other pause, if any.
		col := pauseColumn(p.Field)
		var queued int
		err = tx.QueryRow(ctx, `WITH moved AS (
				UPDATE leads l SET state = CASE WHEN h.h = '' THEN 'queued' ELSE 'held' END, hold = h.h,
					reason = CASE WHEN h.h = '' THEN ''
						ELSE 'paused: ' || h.h || ' ' || CASE h.h WHEN 'source' THEN l.source ELSE l.sub_id END END,
					next_attempt_at = CASE WHEN h.h = '' THEN $3::bigint END, updated_at = $3
				FROM (SELECT id, lw_pause_hold(source, sub_id) AS h FROM leads
					WHERE `+col+` = $2 AND state = 'held' AND hold = $1) h
				WHERE l.id = h.id AND l.state = 'held' AND l.hold = $1
				RETURNING l.state
			)
			SELECT count(*) FILTER (WHERE state = 'queued') FROM moved`,
			p.Field, p.Value, now).Scan(&queued)
		return queued, err
	})
}

// changePause runs change (Pause's or Resume's writes) in one write
// transaction under pauseLock taken exclusively, so every enqueue and
// retry, which take it shared, sees the rules before or after the change,
// never half of it.
func (db *DB) changePause(ctx context.Context, verb string, p crm.Pause, change func(tx pgx.Tx, now int64) (int, error)) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	what := fmt.Sprintf("%s %s %q", verb, p.Field, p.Value)
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, sqlPauseExclusive); err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(ctx, err))
	}
	n, err := change(tx, ms(db.now()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(ctx, err))
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	db.committed()
	return n, nil
}

// Pauses implements store.Store: the rules in force, oldest first.
func (db *DB) Pauses(ctx context.Context) ([]crm.Pause, error) {
	out, err := queryAll(ctx, db.pool, func(r pgx.Row) (crm.Pause, error) {
		var (
			p  crm.Pause
			at int64
		)
		err := r.Scan(&p.Field, &p.Value, &at)
		p.At = fromMS(at)
		return p, err
	}, `SELECT field, value, at FROM pauses ORDER BY at, field, value`)
	if err != nil {
		return nil, fmt.Errorf("pauses: %w", err)
	}
	return out, nil
}

// FindLead implements store.Store: the lead with that external_id, else
// the newest with that CRM id, in one query of two index lookups.
func (db *DB) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	l, err := scanLead(db.pool.QueryRow(ctx, `SELECT `+leadCols+` FROM (
			(SELECT 0 AS pri, * FROM leads WHERE external_id = $1)
			UNION ALL
			(SELECT 1 AS pri, * FROM leads WHERE crm_id = $1 AND crm_id <> '' ORDER BY id DESC LIMIT 1)
		) f ORDER BY pri LIMIT 1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("find lead %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("find lead %s: %w", id, mapErr(ctx, err))
	}
	return l, nil
}

// CountLeads implements store.Store. Without a Filter or Reason the
// answer is the sum of the state counters (no scan); otherwise the
// matches are counted up to limit.
func (db *DB) CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (int, bool, error) {
	states, _, err := store.PaneStates(q.States)
	if err != nil {
		return 0, false, err
	}
	if limit <= 0 {
		return 0, true, nil
	}
	names := make([]string, len(states))
	plain := make([]string, len(states))
	for i, s := range states {
		names[i] = "state:" + string(s)
		plain[i] = string(s)
	}
	var n int
	if q.Filter == "" && q.Reason == "" {
		err = db.pool.QueryRow(ctx, `SELECT COALESCE(sum(n), 0)::bigint FROM count_deltas WHERE name = ANY($1)`, names).Scan(&n)
		n = min(n, limit)
	} else {
		where, args := leadMatch(q, 2)
		err = db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM leads WHERE state = ANY($1)`+where+
			fmt.Sprintf(` LIMIT $%d) s`, len(args)+2), append(append([]any{plain}, args...), limit)...).Scan(&n)
	}
	if err != nil {
		return 0, false, fmt.Errorf("count leads: %w", mapErr(ctx, err))
	}
	return n, n >= limit, nil
}

// leadMatch is the SQL condition (" AND …", or "") of q's Filter and
// Reason, with its arguments numbered from first.
func leadMatch(q crm.LeadQuery, first int) (string, []any) {
	var (
		where string
		args  []any
	)
	if q.Filter != "" {
		// lower() and LIKE, not ILIKE: the filter is ASCII-case-insensitive
		// as store/sqlite's is.
		p := fmt.Sprintf("$%d", first+len(args))
		where += ` AND (lower(external_id) LIKE ` + p + ` OR lower(crm_id) LIKE ` + p + ` OR lower(reason) LIKE ` + p + `)`
		args = append(args, store.LikePattern(q.Filter))
	}
	if q.Reason != "" {
		where += fmt.Sprintf(` AND lower(reason) LIKE $%d`, first+len(args))
		args = append(args, store.LikePattern(q.Reason))
	}
	return where, args
}

// Report implements store.Store: one row per value of q.By, summed from
// source_stats (all time, or a window's minutes up to the next 10
// minutes), source_stats_coarse (the rest of a window, store.ReportRanges) and
// the deltas not yet folded (migrations 003 and 008), in one snapshot.
// It never reads the leads: the cost is the number of groups times at
// most 9 + 5 + 23 rows and the days of the window.
func (db *DB) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	if !crm.ValidGroup(q.By) {
		return nil, fmt.Errorf("report: unknown group %q (want one of %v)", q.By, crm.GroupFields)
	}
	cols, sums := "", ""
	for _, c := range sourceCounters {
		cols += ", " + c
		// As int: the server adds ints in bigint, BIGINTs in numeric (much
		// slower). One stored row never nears 2^31 leads.
		sums += ", sum(" + c + "::int)"
	}
	parts := []string{`SELECT value` + cols + ` FROM source_stats WHERE field = $1 AND bucket = -1`,
		`SELECT value` + cols + ` FROM source_deltas WHERE field = $1 AND bucket = -1`}
	args := []any{q.By}
	if !q.Since.IsZero() {
		// The deltas not yet folded are minutes, from the window's first.
		from := max(ms(q.Since.Truncate(time.Minute)), 0)
		args = append(args, from)
		parts = []string{`SELECT value` + cols + ` FROM source_deltas WHERE field = $1 AND bucket >= $2`}
		for _, r := range store.ReportRanges(from, ms(db.now())) {
			var part string
			if r.Span == 0 {
				part = `SELECT value` + cols + ` FROM source_stats WHERE field = $1 AND bucket >= $` + strconv.Itoa(len(args)+1)
				args = append(args, r.Lo)
			} else {
				part = `SELECT value` + cols + ` FROM source_stats_coarse WHERE field = $1 AND span = $` +
					strconv.Itoa(len(args)+1) + ` AND bucket >= $` + strconv.Itoa(len(args)+2)
				args = append(args, r.Span, r.Lo)
			}
			if r.Hi >= 0 {
				part += ` AND bucket < $` + strconv.Itoa(len(args)+1)
				args = append(args, r.Hi)
			}
			parts = append(parts, part)
		}
	}
	rows, err := queryAll(ctx, db.pool, func(r pgx.Row) (crm.ReportRow, error) {
		var row crm.ReportRow
		dest := []any{&row.Value, &row.Accepted, &row.Duplicate, &row.Rejected, &row.ValidationError,
			&row.Failed, &row.WithStatus, &row.FTD}
		for i := range row.FirstStatus {
			dest = append(dest, &row.FirstStatus[i])
		}
		err := r.Scan(dest...)
		return row, err
	}, `SELECT value`+sums+` FROM (`+strings.Join(parts, " UNION ALL ")+`) s GROUP BY value`, args...)
	if err != nil {
		return nil, fmt.Errorf("report by %s: %w", q.By, err)
	}
	out := rows[:0]
	for _, r := range rows {
		r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
		if r != (crm.ReportRow{Value: r.Value}) {
			out = append(out, r)
		}
	}
	sortReport(out)
	return out, nil
}

// sortReport orders rows by Sent descending, then Value.
func sortReport(rows []crm.ReportRow) {
	slices.SortFunc(rows, func(a, b crm.ReportRow) int {
		if a.Sent != b.Sent {
			return cmp.Compare(b.Sent, a.Sent)
		}
		return strings.Compare(a.Value, b.Value)
	})
}

// Pulse implements store.Store from the per-second counters of the hour
// up to now (throughput_seconds by its key, and the deltas not yet folded),
// in one query that reads 3,600 seconds at most and usually about 60.
func (db *DB) Pulse(ctx context.Context, now time.Time) (crm.Pulse, error) {
	var p crm.Pulse
	end := now.Unix()
	// One row back. The latest second of each kind is a backward walk of
	// the primary key that stops at the first match (counts are never
	// negative, so a second with any in one table has some in the sum);
	// then only the seconds after the last answer, or in the last minute,
	// are read (the whole hour when nothing was answered), and summed.
	var lastAttempt, lastAnswered, lastCallback *int64
	err := db.pool.QueryRow(ctx, `WITH l AS (SELECT
			GREATEST((SELECT max(sec) FROM throughput_seconds WHERE sec > $1 AND sec <= $2 AND sent > 0),
				(SELECT max(sec) FROM throughput_deltas WHERE sec > $1 AND sec <= $2 AND sent > 0)) AS attempt,
			GREATEST((SELECT max(sec) FROM throughput_seconds WHERE sec > $1 AND sec <= $2 AND answered > 0),
				(SELECT max(sec) FROM throughput_deltas WHERE sec > $1 AND sec <= $2 AND answered > 0)) AS answered,
			GREATEST((SELECT max(sec) FROM throughput_seconds WHERE sec > $1 AND sec <= $2 AND callbacks > 0),
				(SELECT max(sec) FROM throughput_deltas WHERE sec > $1 AND sec <= $2 AND callbacks > 0)) AS callback
		)
		SELECT l.attempt, l.answered, l.callback,
			COALESCE(sum(u.sent - u.answered) FILTER (WHERE u.sec > COALESCE(l.answered, $1)), 0),
			COALESCE(sum(u.sent) FILTER (WHERE u.sec > $2 - 60), 0),
			COALESCE(sum(u.sent - u.answered) FILTER (WHERE u.sec > $2 - 60), 0),
			COALESCE(sum(u.accepted) FILTER (WHERE u.sec > $2 - 60), 0),
			COALESCE(sum(u.callbacks) FILTER (WHERE u.sec > $2 - 60), 0),
			COALESCE(sum(u.refused) FILTER (WHERE u.sec > $2 - 60), 0)
		FROM l LEFT JOIN LATERAL (
			SELECT sec, sent::int, answered::int, accepted::int, callbacks::int, refused::int FROM throughput_seconds
				WHERE sec > LEAST(COALESCE(l.answered, $1), $2 - 60) AND sec > $1 AND sec <= $2
			UNION ALL
			SELECT sec, sent::int, answered::int, accepted::int, callbacks::int, refused::int FROM throughput_deltas
				WHERE sec > LEAST(COALESCE(l.answered, $1), $2 - 60) AND sec > $1 AND sec <= $2
		) u ON true
		GROUP BY l.attempt, l.answered, l.callback`, end-3600, end).Scan(
		&lastAttempt, &lastAnswered, &lastCallback, &p.Unanswered,
		&p.AttemptsMin, &p.UnansweredMin, &p.AcceptedMin, &p.CallbacksMin, &p.RefusedMin)
	if err != nil {
		return p, fmt.Errorf("pulse: %w", mapErr(ctx, err))
	}
	for _, t := range []struct {
		sec *int64
		at  *time.Time
	}{{lastAttempt, &p.LastAttempt}, {lastAnswered, &p.LastAnswered}, {lastCallback, &p.LastCallback}} {
		if t.sec != nil {
			*t.at = time.Unix(*t.sec, 0)
		}
	}
	return p, nil
}
