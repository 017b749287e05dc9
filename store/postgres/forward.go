package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Forwarding's durable queue (docs/protocol.md §5, migration 005), as
// store/sqlite's. The listener's transaction stays as it was: callbacks
// enter the queue when a forwarder claims, by a cursor over callback ids
// that ClaimDeliveries moves. Ids are handed out before commit here, so
// the cursor moves only past rows whose transaction is older than every
// one still running (sqlCursorBound, as CallbacksAfter): a callback still
// committing below it is never stepped over.

// moveChunk is how many new callbacks one claim moves into the queue: a
// backlog (the forwarder was down) drains over a few claims.
const moveChunk = 2000

// maxHead bounds the app's answer kept per attempt.
const maxHead = 4096

// lagExact is how far ForwardStats counts the callbacks not yet queued;
// beyond it Lag is estimated from the ids (identity gaps make it high by
// the rows of failed inserts).
const lagExact = 1000

// deliveryCols is what scanDelivery reads, over the delivery d, its
// callback c and the callback's lead l.
const deliveryCols = `d.id, d.callback_id, COALESCE(c.lead_id, 0), COALESCE(l.external_id, ''), c.raw_body,
	d.state, d.attempts, d.replay, d.created_at, d.next_at, d.last_error`

func scanDelivery(s pgx.Row) (crm.Delivery, error) {
	var (
		d               crm.Delivery
		state           string
		created, nextAt int64
	)
	err := s.Scan(&d.ID, &d.CallbackID, &d.LeadID, &d.ExternalID, &d.Body, &state, &d.Attempts, &d.Replay,
		&created, &nextAt, &d.LastError)
	d.State = crm.DeliveryState(state)
	d.CreatedAt = fromMS(created)
	d.NextAt = fromMS(nextAt)
	d.WebhookID = crm.WebhookID(d.CallbackID)
	return d, err
}

// forwardAttemptCols is what scanForwardAttempt reads, over
// forwardAttemptsFrom.
const forwardAttemptCols = `a.id, a.delivery_id, d.callback_id, COALESCE(l.external_id, ''), a.at, a.status,
	a.head, a.latency_us, a.error, a.delivered, a.final, a.next_at`

// forwardAttemptsFrom joins an attempt to what names it.
const forwardAttemptsFrom = ` FROM forward_attempts a
	JOIN deliveries d ON d.id = a.delivery_id
	JOIN callbacks c ON c.id = d.callback_id
	LEFT JOIN leads l ON l.id = c.lead_id`

func scanForwardAttempt(s pgx.Row) (crm.ForwardAttempt, error) {
	var (
		a           crm.ForwardAttempt
		at, latency int64
		next        *int64
	)
	err := s.Scan(&a.ID, &a.DeliveryID, &a.CallbackID, &a.ExternalID, &at, &a.Status, &a.Head, &latency,
		&a.Error, &a.Delivered, &a.Final, &next)
	a.DeliveryResult.ID = a.DeliveryID
	a.At = fromMS(at)
	a.Latency = time.Duration(latency) * time.Microsecond
	a.NextAt = fromNullMS(next)
	a.WebhookID = crm.WebhookID(a.CallbackID)
	return a, err
}

// StartForwarding implements store.Store: the first call puts the cursor
// at the newest stored callback; later ones change nothing.
func (db *DB) StartForwarding(ctx context.Context) (err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return fmt.Errorf("start forwarding: %w", errReadOnly())
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO forward_cursor (id, last_callback_id, started_at)
		SELECT 1, COALESCE(max(id), 0), $1 FROM callbacks
		ON CONFLICT (id) DO NOTHING`, ms(db.now()))
	if err != nil {
		return fmt.Errorf("start forwarding: %w", mapErr(ctx, err))
	}
	if tag.RowsAffected() > 0 {
		db.committed()
	}
	return nil
}

// sqlMoveNew queues the callbacks after the cursor ($1) that no running
// transaction can still commit below, up to $2 of them, one pending
// delivery each due at $3, and advances the cursor past them. It runs
// after the cursor row was locked.
const sqlMoveNew = `WITH moved AS (
		INSERT INTO deliveries (callback_id, lead_id, state, next_at, created_at, updated_at)
		SELECT id, lead_id, 'pending', $3, $3, $3 FROM callbacks
		WHERE id > $1 AND txid < ` + sqlCursorBound + `
		ORDER BY id LIMIT $2
		RETURNING callback_id)
	UPDATE forward_cursor SET last_callback_id = m.hi
	FROM (SELECT max(callback_id) AS hi FROM moved) m
	WHERE id = 1 AND m.hi IS NOT NULL`

// sqlClaimDeliveries leases up to $4 due deliveries ($1 now) to $2 until
// $3, oldest due first: pending and due, or in flight with the lease
// over, and no earlier delivery of the same lead (lower callback id, or
// the same callback queued before) still pending or in flight. SKIP
// LOCKED, as Claim: another instance's candidates are passed over, not
// waited for. An earlier delivery another instance holds locked is still
// seen by the order check (it reads the last committed state), so two
// instances never hold one lead's deliveries at once.
var sqlClaimDeliveries = `WITH picked AS (
		SELECT d.id, d.next_at AS due FROM deliveries d
		WHERE d.state IN ('pending', 'in_flight') AND d.next_at <= $1
			AND NOT EXISTS (SELECT 1 FROM deliveries e
				WHERE e.lead_id = d.lead_id AND e.state IN ('pending', 'in_flight')
				AND (e.callback_id, e.id) < (d.callback_id, d.id))
		ORDER BY d.next_at, d.id
		LIMIT $4
		FOR UPDATE OF d SKIP LOCKED
	), leased AS (
		UPDATE deliveries d SET state = 'in_flight', lease_owner = $2, lease_until = $3, next_at = $3, updated_at = $5
		FROM picked WHERE d.id = picked.id
		RETURNING picked.due, d.*
	)
	SELECT ` + deliveryCols + ` FROM leased d
		JOIN callbacks c ON c.id = d.callback_id LEFT JOIN leads l ON l.id = c.lead_id
	ORDER BY d.due, d.id`

// ClaimDeliveries implements store.Store in one transaction: the new
// callbacks move into the queue, unless another instance is moving them
// right now (its cursor lock is skipped, not waited for: it moves them),
// then the due deliveries are leased (sqlClaimDeliveries).
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) (_ []crm.Delivery, err error) {
	defer func() { db.noteFailure(err) }()
	if owner == "" {
		return nil, errors.New("claim deliveries: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: lease %v must be positive", lease)
	}
	if db.readOnly {
		return nil, fmt.Errorf("claim deliveries: %w", errReadOnly())
	}
	// An idle forwarder polls; a read answers "nothing to do" without the
	// cursor's row lock (a write, and a transaction id, every poll).
	var work bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM callbacks
			WHERE id > (SELECT last_callback_id FROM forward_cursor WHERE id = 1))
		OR EXISTS (SELECT 1 FROM deliveries WHERE state IN ('pending', 'in_flight') AND next_at <= $1)`,
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
	defer rollback(tx)
	var cur int64
	moved := false
	err = tx.QueryRow(ctx, `SELECT last_callback_id FROM forward_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED`).Scan(&cur)
	switch {
	case err == nil:
		tag, err := tx.Exec(ctx, sqlMoveNew, cur, moveChunk, ms(now))
		if err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", mapErr(ctx, err))
		}
		moved = tag.RowsAffected() > 0
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("claim deliveries: %w", mapErr(ctx, err))
	}
	var out []crm.Delivery
	if limit > 0 {
		out, err = queryAll(ctx, tx, scanDelivery, sqlClaimDeliveries, ms(now), owner, ms(now.Add(lease)), limit, ms(db.now()))
		if err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
	}
	if !moved && len(out) == 0 {
		return nil, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	db.committed()
	return out, nil
}

// sqlRecordDeliveries applies the outcomes given as arrays in one
// statement: each delivery's UPDATE is guarded by the lease ($10 owner,
// in_flight), and an attempt row is inserted only for those it matched;
// their ids come back, the rest lost their lease.
const sqlRecordDeliveries = `WITH r AS (
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::int[],
			$7::bytea[], $8::bigint[], $9::boolean[], $11::boolean[], $12::bigint[])
			AS r(id, state, next_at, error, at, status, head, latency_us, delivered, final, retry_at)
	), upd AS (
		UPDATE deliveries d SET state = r.state, attempts = d.attempts + 1, next_at = r.next_at,
			lease_owner = '', lease_until = NULL, last_error = r.error, updated_at = $13
		FROM r WHERE d.id = r.id AND d.lease_owner = $10 AND d.state = 'in_flight'
		RETURNING d.id
	)
	INSERT INTO forward_attempts (delivery_id, at, status, head, latency_us, error, delivered, final, next_at)
	SELECT r.id, r.at, r.status, r.head, r.latency_us, r.error, r.delivered, r.final, r.retry_at
	FROM r JOIN upd ON upd.id = r.id
	RETURNING delivery_id`

// RecordDeliveries implements store.Store in one statement
// (sqlRecordDeliveries), sent in one round trip between the take and the
// release of attemptOrderLock, as one implicit transaction: its first
// write (the deliveries' UPDATE) assigns its xid inside the lock and the
// INSERT draws the attempts' ids there too, so xids and attempt ids go in
// the same order (ForwardAttemptsAfter). The lock is held while the
// UPDATE waits for a row lock of another transaction (a claim of an
// expired lease, a release): that one holds no order lock, so the wait
// ends, and records of other instances queue behind it meanwhile.
func (db *DB) RecordDeliveries(ctx context.Context, owner string, rs []crm.DeliveryResult) (lost []int64, err error) {
	defer func() { db.noteFailure(err) }()
	if len(rs) == 0 {
		return nil, nil
	}
	if db.readOnly {
		return nil, fmt.Errorf("record deliveries: %w", errReadOnly())
	}
	nowMS := ms(db.now())
	var (
		ids, nexts, ats, lats []int64
		states, errs          []string
		statuses              []int32
		heads                 [][]byte
		dels, finals          []bool
		retries               []*int64
	)
	for _, r := range rs {
		state, next, retry := outcome(r, nowMS)
		ids = append(ids, r.ID)
		states = append(states, string(state))
		nexts = append(nexts, next)
		errs = append(errs, r.Error)
		ats = append(ats, ms(r.At))
		statuses = append(statuses, int32(r.Status))
		heads = append(heads, headOf(r.Head))
		lats = append(lats, r.Latency.Microseconds())
		dels = append(dels, r.Delivered)
		finals = append(finals, r.Final && !r.Delivered)
		retries = append(retries, retry)
	}
	var done []int64
	err = db.withOrderLock(ctx, func(conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_lock($1)`, attemptOrderLock)
		b.Queue(sqlRecordDeliveries, ids, states, nexts, errs, ats, statuses, heads, lats, dels, owner, finals, retries, nowMS)
		b.Queue(`SELECT pg_advisory_unlock($1)`, attemptOrderLock)
		br := conn.SendBatch(ctx, b)
		err := func() error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			if done, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
				return err
			}
			_, err = br.Exec()
			return err
		}()
		// Close reads up to the Sync: the implicit commit's own result.
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", mapErr(ctx, err))
	}
	if len(done) > 0 {
		db.committed()
	}
	ok := make(map[int64]bool, len(done))
	for _, id := range done {
		ok[id] = true
	}
	for _, r := range rs {
		if !ok[r.ID] {
			lost = append(lost, r.ID)
		}
	}
	return lost, nil
}

// outcome is the state a result leaves its delivery in, the delivery's
// next_at and the attempt row's (nil unless a retry is due).
func outcome(r crm.DeliveryResult, nowMS int64) (crm.DeliveryState, int64, *int64) {
	switch {
	case r.Delivered:
		return crm.DeliveryDelivered, nowMS, nil
	case r.Final:
		return crm.DeliveryFailed, nowMS, nil
	}
	next := ms(r.NextAt)
	if r.NextAt.IsZero() {
		next = nowMS
	}
	return crm.DeliveryPending, next, &next
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
	if db.readOnly {
		return fmt.Errorf("release deliveries: %w", errReadOnly())
	}
	tag, err := db.pool.Exec(ctx, `UPDATE deliveries SET state = 'pending', next_at = $1, lease_owner = '',
			lease_until = NULL, updated_at = $1
		WHERE id = ANY($2) AND lease_owner = $3 AND state = 'in_flight'`, ms(db.now()), ids, owner)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", mapErr(ctx, err))
	}
	if tag.RowsAffected() > 0 {
		db.committed()
	}
	return nil
}

// Replay implements store.Store: one new pending delivery, due now and
// marked replay, per callback named (ids that name none are skipped) or,
// with no ids, per callback received since since; one statement. A
// callback whose raw body Prune or Forget dropped is skipped: the app is
// owed the body byte for byte, and an empty one is not it.
func (db *DB) Replay(ctx context.Context, ids []int64, since time.Time) (n int, err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return 0, fmt.Errorf("replay: %w", errReadOnly())
	}
	t := ms(db.now())
	const ins = `INSERT INTO deliveries (callback_id, lead_id, state, next_at, replay, created_at, updated_at)
		SELECT id, lead_id, 'pending', $1, true, $1, $1 FROM callbacks WHERE length(raw_body) > 0 AND `
	var tag interface{ RowsAffected() int64 }
	if len(ids) == 0 {
		tag, err = db.pool.Exec(ctx, ins+`received_at >= $2 ORDER BY id`, t, ms(since))
	} else {
		tag, err = db.pool.Exec(ctx, ins+`id = ANY($2) ORDER BY id`, t, ids)
	}
	if err != nil {
		return 0, fmt.Errorf("replay: %w", mapErr(ctx, err))
	}
	if tag.RowsAffected() > 0 {
		db.committed()
	}
	return int(tag.RowsAffected()), nil
}

// ForwardStats implements store.Store from the per-state count deltas
// (migration 005's triggers) and a few single index steps, in one read
// snapshot: its cost does not grow with the callbacks stored.
func (db *DB) ForwardStats(ctx context.Context) (crm.ForwardStats, error) {
	var st crm.ForwardStats
	if err := db.foldIfLarge(ctx); err != nil && !errors.Is(err, store.ErrReadOnly) {
		db.log.Warn("store: fold counter deltas", "db", db.location, "err", err)
	}
	tx, err := db.beginRead(ctx)
	if err != nil {
		return st, fmt.Errorf("forward stats: %w", err)
	}
	defer rollback(tx)
	var cur int64
	err = tx.QueryRow(ctx, `SELECT last_callback_id FROM forward_cursor WHERE id = 1`).Scan(&cur)
	switch {
	case err == nil:
		st.Enabled = true
	case !errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	type named struct {
		name string
		n    int
	}
	counts, err := queryAll(ctx, tx, func(r pgx.Row) (named, error) {
		var nc named
		return nc, r.Scan(&nc.name, &nc.n)
	}, `SELECT name, sum(n)::bigint FROM count_deltas WHERE name LIKE 'fwd:%' GROUP BY name`)
	if err != nil {
		return st, fmt.Errorf("forward stats: %w", err)
	}
	for _, c := range counts {
		switch crm.DeliveryState(strings.TrimPrefix(c.name, "fwd:")) {
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
		var lag int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM callbacks WHERE id > $1 LIMIT $2) s`,
			cur, lagExact).Scan(&lag); err != nil {
			return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
		}
		if lag == lagExact {
			if err := tx.QueryRow(ctx, `SELECT COALESCE(max(id), 0) - $1 FROM callbacks`, cur).Scan(&lag); err != nil {
				return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
			}
		}
		st.Lag = lag
	}
	var oldest *int64
	if err := tx.QueryRow(ctx, `SELECT min(created_at) FROM deliveries WHERE state = 'pending'`).Scan(&oldest); err != nil {
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	st.OldestPending = fromNullMS(oldest)
	var at int64
	err = tx.QueryRow(ctx, `SELECT error, at FROM forward_attempts WHERE NOT delivered ORDER BY id DESC LIMIT 1`).Scan(&st.LastError, &at)
	switch {
	case err == nil:
		st.LastErrorAt = fromMS(at)
	case !errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	err = tx.QueryRow(ctx, `SELECT at FROM forward_attempts WHERE delivered ORDER BY id DESC LIMIT 1`).Scan(&at)
	switch {
	case err == nil:
		st.LastDelivered = fromMS(at)
	case !errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("forward stats: %w", mapErr(ctx, err))
	}
	return st, nil
}

// sqlLeadForwards lists the attempts to deliver a lead's callbacks, oldest
// first; LeadDetail uses it too.
const sqlLeadForwards = `SELECT ` + forwardAttemptCols + forwardAttemptsFrom + `
	WHERE c.lead_id = $1 ORDER BY a.id`

// ForwardAttempts implements store.Store: the lead's timeline of
// deliveries, oldest first; an unknown lead has none.
func (db *DB) ForwardAttempts(ctx context.Context, externalID string) ([]crm.ForwardAttempt, error) {
	out, err := queryAll(ctx, db.pool, scanForwardAttempt, `SELECT `+forwardAttemptCols+forwardAttemptsFrom+`
		WHERE c.lead_id = (SELECT id FROM leads WHERE external_id = $1) ORDER BY a.id`, externalID)
	if err != nil {
		return nil, fmt.Errorf("forward attempts %s: %w", externalID, err)
	}
	return out, nil
}

// ForwardAttemptsAfter implements store.Store: up to limit attempts with
// an id above afterID, oldest first, as CallbacksAfter: only those whose
// transaction is older than every one that may still insert here
// (sqlCursorBound). RecordDeliveries draws xids and attempt ids in the
// same order (attemptOrderLock), so an attempt still committing has a
// larger id than every one returned: the cursor never passes it.
func (db *DB) ForwardAttemptsAfter(ctx context.Context, afterID int64, limit int) ([]crm.ForwardAttempt, error) {
	out, err := queryAll(ctx, db.pool, scanForwardAttempt, `SELECT `+forwardAttemptCols+forwardAttemptsFrom+`
		WHERE a.id > $1 AND a.txid < `+sqlCursorBound+` ORDER BY a.id LIMIT $2`, afterID, store.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("forward attempts after %d: %w", afterID, err)
	}
	return out, nil
}
