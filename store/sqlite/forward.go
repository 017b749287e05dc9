package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Forwarding's durable queue (docs/protocol.md §5, migration 009). The
// listener's transaction stays as it was: callbacks enter the queue when a
// forwarder claims, by a cursor over callback ids that ClaimDeliveries
// moves in its own write transaction. SQLite hands callback ids out inside
// the write lock, so a committed id is never below one already seen and
// the cursor cannot step past a row still to commit.

// moveChunk is how many new callbacks one claim moves into the queue: a
// backlog (the forwarder was down) drains over a few claims instead of
// one transaction that holds the write lock for long.
const moveChunk = 2000

// maxHead bounds the app's answer kept per attempt; the forwarder already
// sends only first bytes, this keeps a mistaken caller from filling the
// store.
const maxHead = 4096

// deliveryCols is what scanDelivery reads, over deliveries d joined to
// its callback c and the callback's lead l.
const deliveryCols = `d.id, d.callback_id, COALESCE(c.lead_id, 0), COALESCE(l.external_id, ''), c.raw_body,
	d.state, d.attempts, d.replay, d.created_at, d.next_at, d.last_error`

func scanDelivery(s scanner) (crm.Delivery, error) {
	var (
		d               crm.Delivery
		state           string
		replay          int
		created, nextAt int64
	)
	err := s.Scan(&d.ID, &d.CallbackID, &d.LeadID, &d.ExternalID, &d.Body, &state, &d.Attempts, &replay,
		&created, &nextAt, &d.LastError)
	d.State = crm.DeliveryState(state)
	d.Replay = replay != 0
	d.CreatedAt = fromMS(created)
	d.NextAt = fromMS(nextAt)
	d.WebhookID = crm.WebhookID(d.CallbackID)
	return d, err
}

// forwardAttemptCols is what scanForwardAttempt reads, over
// forward_attempts a, deliveries d, callbacks c and leads l.
const forwardAttemptCols = `a.id, a.delivery_id, d.callback_id, COALESCE(l.external_id, ''), a.at, a.status,
	a.head, a.latency_us, a.error, a.delivered, a.final, a.next_at`

func scanForwardAttempt(s scanner) (crm.ForwardAttempt, error) {
	var (
		a                crm.ForwardAttempt
		at, latency      int64
		delivered, final int
		next             sql.NullInt64
	)
	err := s.Scan(&a.ID, &a.DeliveryID, &a.CallbackID, &a.ExternalID, &at, &a.Status, &a.Head, &latency,
		&a.Error, &delivered, &final, &next)
	a.DeliveryResult.ID = a.DeliveryID
	a.At = fromMS(at)
	a.Latency = time.Duration(latency) * time.Microsecond
	a.Delivered = delivered != 0
	a.Final = final != 0
	a.NextAt = fromNullMS(next)
	a.WebhookID = crm.WebhookID(a.CallbackID)
	return a, err
}

// forwardAttemptsFrom joins an attempt to what names it.
const forwardAttemptsFrom = ` FROM forward_attempts a
	JOIN deliveries d ON d.id = a.delivery_id
	JOIN callbacks c ON c.id = d.callback_id
	LEFT JOIN leads l ON l.id = c.lead_id`

// StartForwarding implements store.Store: the first call puts the cursor
// at the newest stored callback; later ones (another instance, a restart)
// find the row and change nothing, so a restart resumes where the queue
// stood.
func (db *DB) StartForwarding(ctx context.Context) (err error) {
	defer func() { db.noteFailure(err) }()
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("start forwarding: %w", err)
	}
	defer tx.Rollback()
	n, err := execCount(ctx, tx, `INSERT INTO forward_cursor (id, last_callback_id, started_at)
		SELECT 1, COALESCE(MAX(id), 0), ? FROM callbacks WHERE true
		ON CONFLICT (id) DO NOTHING`, ms(db.now()))
	if err != nil {
		return fmt.Errorf("start forwarding: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return fmt.Errorf("start forwarding: %w", err)
	}
	return nil
}

// ClaimDeliveries implements store.Store in one write transaction: the
// new callbacks move into the queue (moveNew), then the due deliveries
// are read, one query per leasable state merged by due time, and leased
// with one UPDATE whose WHERE repeats the due and order guards, so a
// candidate that changed in between is skipped (guard.go).
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) (_ []crm.Delivery, err error) {
	defer func() { db.noteFailure(err) }()
	if owner == "" {
		return nil, errors.New("claim deliveries: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: lease %v must be positive", lease)
	}
	// An idle forwarder polls; a read answers "nothing to do" without
	// taking the file's write lock, which every instance's listener needs.
	var work bool
	if err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM callbacks
			WHERE id > (SELECT last_callback_id FROM forward_cursor WHERE id = 1))
		OR EXISTS (SELECT 1 FROM deliveries WHERE state IN ('pending', 'in_flight') AND next_at <= ?)`,
		ms(now)).Scan(&work); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", mapErr(ctx, err))
	}
	if !work {
		return nil, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer tx.Rollback()
	moved, err := db.moveNew(ctx, tx, now)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var out []crm.Delivery
	if limit > 0 {
		if out, err = db.leaseDeliveries(ctx, tx, owner, now, lease, limit); err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
	}
	if moved == 0 && len(out) == 0 {
		return nil, nil // nothing written: no commit, no fsync
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}

// moveNew queues up to moveChunk callbacks stored after the cursor, one
// pending delivery each, and advances the cursor past them. The cursor's
// UPDATE is guarded by the value read: a cursor moved meanwhile moves
// nothing here. Before StartForwarding there is no cursor and nothing
// moves.
func (db *DB) moveNew(ctx context.Context, tx *sql.Tx, now time.Time) (int64, error) {
	var cur int64
	err := tx.QueryRowContext(ctx, `SELECT last_callback_id FROM forward_cursor WHERE id = 1`).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	var hi sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM (SELECT id FROM callbacks WHERE id > ? ORDER BY id LIMIT ?)`,
		cur, moveChunk).Scan(&hi); err != nil {
		return 0, mapErr(ctx, err)
	}
	if !hi.Valid {
		return 0, nil
	}
	n, err := execCount(ctx, tx, `UPDATE forward_cursor SET last_callback_id = ? WHERE id = 1 AND last_callback_id = ?`, hi.Int64, cur)
	if err != nil || n == 0 {
		return 0, err
	}
	t := ms(now)
	return execCount(ctx, tx, `INSERT INTO deliveries (callback_id, lead_id, state, next_at, created_at, updated_at)
		SELECT id, lead_id, 'pending', ?, ?, ? FROM callbacks WHERE id > ? AND id <= ? ORDER BY id`,
		t, t, t, cur, hi.Int64)
}

// sqlDeliveryOrder holds for a delivery d that no earlier delivery of its
// lead (lower callback id, or the same callback queued before) is still
// pending or in flight. An unmatched one (lead_id NULL) matches no other.
const sqlDeliveryOrder = `NOT EXISTS (SELECT 1 FROM deliveries e
	WHERE e.lead_id = d.lead_id AND e.state IN ('pending', 'in_flight')
	  AND (e.callback_id, e.id) < (d.callback_id, d.id))`

// leaseDeliveries leases up to limit due deliveries to owner and returns
// them, oldest due first.
func (db *DB) leaseDeliveries(ctx context.Context, tx *sql.Tx, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Delivery, error) {
	var cands []due
	for _, st := range []crm.DeliveryState{crm.DeliveryPending, crm.DeliveryInFlight} {
		ds, err := queryAll(ctx, tx, scanDue, `SELECT d.id, d.next_at FROM deliveries d
			WHERE d.state = ? AND d.next_at <= ? AND `+sqlDeliveryOrder+`
			ORDER BY d.next_at, d.id LIMIT ?`, string(st), ms(now), limit)
		if err != nil {
			return nil, err
		}
		cands = append(cands, ds...)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].at != cands[j].at {
			return cands[i].at < cands[j].at
		}
		return cands[i].id < cands[j].id
	})
	cands = cands[:min(len(cands), limit)]
	rank := make(map[int64]int, len(cands))
	args := []any{owner, ms(now.Add(lease)), ms(now.Add(lease)), ms(now)}
	for i, c := range cands {
		rank[c.id] = i
		args = append(args, c.id)
	}
	args = append(args, ms(now))
	in := `?` + strings.Repeat(`,?`, len(cands)-1)
	// The unary plus keeps the guard's columns off the due index: with
	// the ids as parameters the planner would otherwise walk the whole
	// queue by (state, next_at) instead of looking the ids up.
	ids, err := queryAll(ctx, tx, scanInt64, `UPDATE deliveries AS d SET state = 'in_flight', lease_owner = ?,
			lease_until = ?, next_at = ?, updated_at = ?
		WHERE d.id IN (`+in+`) AND +d.state IN ('pending', 'in_flight') AND +d.next_at <= ? AND `+sqlDeliveryOrder+`
		RETURNING id`, args...)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	args = args[:0]
	for _, id := range ids {
		args = append(args, id)
	}
	out, err := queryAll(ctx, tx, scanDelivery, `SELECT `+deliveryCols+` FROM deliveries d
		JOIN callbacks c ON c.id = d.callback_id LEFT JOIN leads l ON l.id = c.lead_id
		WHERE d.id IN (?`+strings.Repeat(`,?`, len(ids)-1)+`)`, args...)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return rank[out[i].ID] < rank[out[j].ID] })
	return out, nil
}

func scanInt64(s scanner) (int64, error) {
	var v int64
	err := s.Scan(&v)
	return v, err
}

// RecordDeliveries implements store.Store. Each outcome's UPDATE is
// guarded by the lease (owner, in_flight); the attempt row is inserted
// only after it matched, so a lost lease writes nothing for that id.
func (db *DB) RecordDeliveries(ctx context.Context, owner string, rs []crm.DeliveryResult) (lost []int64, err error) {
	defer func() { db.noteFailure(err) }()
	if len(rs) == 0 {
		return nil, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", err)
	}
	defer tx.Rollback()
	upd, err := tx.PrepareContext(ctx, `UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?,
			lease_owner = '', lease_until = NULL, last_error = ?, updated_at = ?
		WHERE id = ? AND lease_owner = ? AND state = 'in_flight'`)
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", mapErr(ctx, err))
	}
	defer upd.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO forward_attempts
		(delivery_id, at, status, head, latency_us, error, delivered, final, next_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", mapErr(ctx, err))
	}
	defer ins.Close()
	nowMS := ms(db.now())
	wrote := false
	for _, r := range rs {
		state, next, next2 := outcome(r, nowMS)
		res, err := upd.ExecContext(ctx, string(state), next, r.Error, nowMS, r.ID, owner)
		if err != nil {
			return nil, fmt.Errorf("record delivery %d: %w", r.ID, mapErr(ctx, err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("record delivery %d: %w", r.ID, mapErr(ctx, err))
		} else if n == 0 {
			lost = append(lost, r.ID)
			continue
		}
		if _, err := ins.ExecContext(ctx, r.ID, ms(r.At), r.Status, headOf(r.Head), r.Latency.Microseconds(), r.Error,
			boolInt(r.Delivered), boolInt(r.Final && !r.Delivered), next2); err != nil {
			return nil, fmt.Errorf("record delivery %d: %w", r.ID, mapErr(ctx, err))
		}
		wrote = true
	}
	if !wrote {
		return lost, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("record deliveries: %w", err)
	}
	return lost, nil
}

// outcome is the state a result leaves its delivery in, the delivery's
// next_at and the attempt row's (NULL unless a retry is due).
func outcome(r crm.DeliveryResult, nowMS int64) (crm.DeliveryState, int64, sql.NullInt64) {
	switch {
	case r.Delivered:
		return crm.DeliveryDelivered, nowMS, sql.NullInt64{}
	case r.Final:
		return crm.DeliveryFailed, nowMS, sql.NullInt64{}
	}
	next := ms(r.NextAt)
	if r.NextAt.IsZero() {
		next = nowMS
	}
	return crm.DeliveryPending, next, sql.NullInt64{Int64: next, Valid: true}
}

// headOf is what an attempt row keeps of the app's answer.
func headOf(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b[:min(len(b), maxHead)]
}

// ReleaseDeliveries implements store.Store: owner's claimed deliveries go
// back to pending, due now; ids no longer owner's are left alone.
func (db *DB) ReleaseDeliveries(ctx context.Context, owner string, ids []int64) (err error) {
	defer func() { db.noteFailure(err) }()
	if len(ids) == 0 {
		return nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	defer tx.Rollback()
	nowMS := ms(db.now())
	args := []any{nowMS, nowMS, owner}
	for _, id := range ids {
		args = append(args, id)
	}
	n, err := execCount(ctx, tx, `UPDATE deliveries SET state = 'pending', next_at = ?, lease_owner = '',
			lease_until = NULL, updated_at = ?
		WHERE lease_owner = ? AND state = 'in_flight' AND id IN (?`+strings.Repeat(`,?`, len(ids)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	return nil
}

// replayChunk is how many ids one Replay statement names.
const replayChunk = 500

// Replay implements store.Store: one new pending delivery, due now and
// marked replay, per callback named (ids that name none are skipped) or,
// with no ids, per callback received since since; all in one transaction.
// A callback whose raw body Prune or Forget dropped is skipped: the app
// is owed the body byte for byte, and an empty one is not it.
func (db *DB) Replay(ctx context.Context, ids []int64, since time.Time) (n int, err error) {
	defer func() { db.noteFailure(err) }()
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	defer tx.Rollback()
	t := ms(db.now())
	const ins = `INSERT INTO deliveries (callback_id, lead_id, state, next_at, replay, created_at, updated_at)
		SELECT id, lead_id, 'pending', ?, 1, ?, ? FROM callbacks WHERE length(raw_body) > 0 AND `
	var total int64
	if len(ids) == 0 {
		if total, err = execCount(ctx, tx, ins+`received_at >= ? ORDER BY id`, t, t, t, ms(since)); err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
	}
	for start := 0; start < len(ids); start += replayChunk {
		chunk := ids[start:min(start+replayChunk, len(ids))]
		args := []any{t, t, t}
		for _, id := range chunk {
			args = append(args, id)
		}
		c, err := execCount(ctx, tx, ins+`id IN (?`+strings.Repeat(`,?`, len(chunk)-1)+`) ORDER BY id`, args...)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		total += c
	}
	if total == 0 {
		return 0, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	return int(total), nil
}

// ForwardStats implements store.Store from the per-state counters
// (migration 009's triggers) and a few single index steps, in one read
// snapshot: its cost does not grow with the callbacks stored.
func (db *DB) ForwardStats(ctx context.Context) (crm.ForwardStats, error) {
	var st crm.ForwardStats
	tx, err := db.beginRead(ctx)
	if err != nil {
		return st, fmt.Errorf("forward stats: %w", err)
	}
	defer tx.Rollback()
	var cur int64
	err = tx.QueryRowContext(ctx, `SELECT last_callback_id FROM forward_cursor WHERE id = 1`).Scan(&cur)
	switch {
	case err == nil:
		st.Enabled = true
	case !errors.Is(err, sql.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	counts, err := queryAll(ctx, tx, scanNamedCount, `SELECT name, n FROM counters WHERE name LIKE 'fwd\_%' ESCAPE '\'`)
	if err != nil {
		return st, fmt.Errorf("forward stats: %w", err)
	}
	for _, c := range counts {
		switch crm.DeliveryState(strings.TrimPrefix(c.name, "fwd_")) {
		case crm.DeliveryPending:
			st.Pending = c.n
		case crm.DeliveryInFlight:
			st.InFlight = c.n
		case crm.DeliveryDelivered:
			st.Delivered = c.n
		case crm.DeliveryFailed:
			st.Failed = c.n
		}
	}
	if st.Enabled {
		// Callback ids have no gaps here (SaveCallbacks numbers its rows
		// inside the write lock, and no callback row is ever deleted), so
		// the difference is the count, at the cost of one index step.
		var lag int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) - ? FROM callbacks`, cur).Scan(&lag); err != nil {
			return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
		}
		st.Lag = lag
	}
	var oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'`).Scan(&oldest); err != nil {
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	st.OldestPending = fromNullMS(oldest)
	var at int64
	err = tx.QueryRowContext(ctx, `SELECT error, at FROM forward_attempts WHERE delivered = 0 ORDER BY id DESC LIMIT 1`).Scan(&st.LastError, &at)
	switch {
	case err == nil:
		st.LastErrorAt = fromMS(at)
	case !errors.Is(err, sql.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	err = tx.QueryRowContext(ctx, `SELECT at FROM forward_attempts WHERE delivered = 1 ORDER BY id DESC LIMIT 1`).Scan(&at)
	switch {
	case err == nil:
		st.LastDelivered = fromMS(at)
	case !errors.Is(err, sql.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	return st, nil
}

// sqlLeadForwards lists the attempts to deliver a lead's callbacks, oldest
// first; LeadDetail uses it too.
const sqlLeadForwards = `SELECT ` + forwardAttemptCols + forwardAttemptsFrom + `
	WHERE c.lead_id = ? ORDER BY a.id`

// ForwardAttempts implements store.Store: the lead's timeline of
// deliveries, oldest first; an unknown lead has none.
func (db *DB) ForwardAttempts(ctx context.Context, externalID string) ([]crm.ForwardAttempt, error) {
	out, err := queryAll(ctx, db.reader, scanForwardAttempt, `SELECT `+forwardAttemptCols+forwardAttemptsFrom+`
		WHERE c.lead_id = (SELECT id FROM leads WHERE external_id = ?) ORDER BY a.id`, externalID)
	if err != nil {
		return nil, fmt.Errorf("forward attempts %s: %w", externalID, err)
	}
	return out, nil
}

// ForwardAttemptsAfter implements store.Store: up to limit attempts with
// an id above afterID, oldest first. Attempt ids commit in id order (one
// writer at a time), so a cursor cannot pass one still committing.
func (db *DB) ForwardAttemptsAfter(ctx context.Context, afterID int64, limit int) ([]crm.ForwardAttempt, error) {
	out, err := queryAll(ctx, db.reader, scanForwardAttempt, `SELECT `+forwardAttemptCols+forwardAttemptsFrom+`
		WHERE a.id > ? ORDER BY a.id LIMIT ?`, afterID, store.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("forward attempts after %d: %w", afterID, err)
	}
	return out, nil
}
