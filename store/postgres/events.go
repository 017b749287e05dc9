package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// callbackHeadCols is the column list scanCallbackHead reads: every column
// but the raw body. Lists (panes, tail, export) read only these; Callback
// reads the one body the detail view shows.
const callbackHeadCols = `id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
	event_time, received_at, skew_ms, secret_idx, lead_id, ts_number, kind`

// callbackCols is callbackHeadCols and the raw body, as scanCallback reads
// them.
const callbackCols = callbackHeadCols + `, raw_body`

// scanCallbackHead reads a row of callbackHeadCols; RawBody stays nil.
func scanCallbackHead(s pgx.Row) (crm.CallbackEvent, error) { return scanCallbackRow(s, false) }

// scanCallback reads a row of callbackCols.
func scanCallback(s pgx.Row) (crm.CallbackEvent, error) { return scanCallbackRow(s, true) }

func scanCallbackRow(s pgx.Row, body bool) (crm.CallbackEvent, error) {
	var (
		ev                crm.CallbackEvent
		eventTime, leadID *int64
		received, skew    int64
	)
	dest := []any{&ev.ID, &ev.DedupKey, &ev.InternalID, &ev.ExternalID, &ev.Event, &ev.Status, &ev.Reason,
		&ev.Timestamp, &eventTime, &received, &skew, &ev.SecretIdx, &leadID, &ev.TimestampNumber, &ev.Kind}
	if body {
		dest = append(dest, &ev.RawBody)
	}
	err := s.Scan(dest...)
	ev.EventTime = fromNullMS(eventTime)
	ev.ReceivedAt = fromMS(received)
	ev.Skew = time.Duration(skew) * time.Millisecond
	if leadID != nil {
		ev.LeadID = *leadID
	}
	if ev.Kind == crm.KindPolled && ev.Event == "" {
		// The row's event is '' (its identity, migration 008); the
		// event it stands for is status_polled.
		ev.Event = crm.EventStatusPolled
	}
	return ev, err
}

// Callback returns the stored callback with that id, raw body included, or
// ErrNotFound.
func (db *DB) Callback(ctx context.Context, id int64) (crm.CallbackEvent, error) {
	ev, err := scanCallback(db.pool.QueryRow(ctx, `SELECT `+callbackCols+` FROM callbacks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, mapErr(ctx, err))
	}
	return ev, nil
}

// idOrderLock is the session-level advisory lock SaveCallbacks holds only
// while its INSERT runs (not until commit), so that transactions take
// their transaction id and their callback ids in the same order: the
// INSERT is the transaction's first write, so its xid is assigned inside
// the lock, by the same statement that draws the ids. CallbacksAfter
// relies on it: a row whose transaction is older than every running one
// can have no uncommitted row with a smaller id behind it. ("lw" "cbid".)
const idOrderLock int64 = 0x6c77_6362_6964

// sqlLinkLocks takes the late-linking lock (sqlLinkLock) of every distinct
// internal_id in $1, in the order of the lock keys, so two batches never
// wait on each other in a cycle. The ORDER BY in the subquery keeps it
// from being flattened; the outer projection then runs in that order.
const sqlLinkLocks = `SELECT count(pg_advisory_xact_lock(h)) FROM (
	SELECT DISTINCT hashtextextended('link:' || k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) s`

// sqlInsertCallbacks inserts the batch given as arrays, in batch order,
// each row unless its (internal_id, event, timestamp) is stored already or
// earlier in the statement, and links each to its lead (by external_id,
// else the newest lead with that CRM id) in the same statement. The
// uncorrelated subquery in the WHERE is evaluated once, before the first
// row is produced: it takes idOrderLock before any id is drawn. The upd
// part makes the newest status among each linked lead's fresh events its
// CRM status unless a newer event's already is (crm_status_at): what
// applying the events one by one in order would leave (ids follow batch
// order, so among equal times the later event wins); a lead's first status
// and first ftd take the arrival time of the earliest such fresh event if
// it had none. It returns the fresh rows' identities.
const sqlInsertCallbacks = `WITH ins AS (
	INSERT INTO callbacks (dedup_key, internal_id, external_id, event, status, reason, timestamp,
		event_time, received_at, skew_ms, raw_body, secret_idx, ts_number, lead_id)
	SELECT u.iid || ':' || u.ev || ':' || u.ts, u.iid, u.ext, u.ev, u.st, u.rs, u.ts, u.et, u.ra, u.sk, u.raw, u.si, u.tn,
		COALESCE((SELECT l.id FROM leads l WHERE l.external_id = NULLIF(u.ext, '')),
			(SELECT l.id FROM leads l WHERE l.crm_id = u.iid AND l.crm_id <> '' ORDER BY l.id DESC LIMIT 1))
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
		$8::bigint[], $9::bigint[], $10::bytea[], $11::int[], $14::boolean[]) WITH ORDINALITY
		AS u(iid, ext, ev, st, rs, ts, et, ra, sk, raw, si, tn, ord)
	WHERE (SELECT count(*) FROM (SELECT pg_advisory_lock($12::bigint)) AS l) = 1
	ORDER BY u.ord
	ON CONFLICT (internal_id, event, timestamp) DO NOTHING
	RETURNING id, lead_id, internal_id, event, timestamp, status, COALESCE(event_time, received_at) AS at, received_at
), upd AS (
	UPDATE leads l SET
		crm_status = CASE WHEN l.crm_status_at IS NULL OR l.crm_status_at <= s.at THEN s.status ELSE l.crm_status END,
		crm_status_at = CASE WHEN l.crm_status_at IS NULL OR l.crm_status_at <= s.at THEN s.at ELSE l.crm_status_at END,
		updated_at = CASE WHEN l.crm_status_at IS NULL OR l.crm_status_at <= s.at THEN $13 ELSE l.updated_at END,
		first_status_at = COALESCE(l.first_status_at, s.first_status),
		ftd_at = COALESCE(l.ftd_at, s.first_ftd)
	FROM (SELECT DISTINCT ON (lead_id) lead_id, status, at,
			min(received_at) OVER w AS first_status,
			min(received_at) FILTER (WHERE lower(status) = 'ftd') OVER w AS first_ftd
		FROM ins WHERE lead_id IS NOT NULL AND status <> ''
		WINDOW w AS (PARTITION BY lead_id)
		ORDER BY lead_id, at DESC, id DESC) s
	WHERE l.id = s.lead_id AND (l.crm_status_at IS NULL OR l.crm_status_at <= s.at
		OR l.first_status_at IS NULL OR (l.ftd_at IS NULL AND s.first_ftd IS NOT NULL))
)
SELECT internal_id, event, timestamp FROM ins`

// triple is a callback's identity.
type triple struct{ iid, ev, ts string }

// SaveCallbacks implements callbacks.EventSink: the batch in one
// transaction (the listener's group commit), each event inserted unless an
// event with the same internal_id, event and timestamp is already stored
// (fresh[i] false: a replay; within a batch the first of equal events is
// the fresh one). The three are compared part by part, byte for byte. A
// fresh event is linked to its lead — by external_id, else by the lead's
// CRM id — and its status becomes the lead's CRM status unless a newer
// event's already is. Events matching no lead are kept unlinked; the
// Record that learns the CRM id links them (sqlLinkLock is taken for every
// internal_id of the batch first, so neither side misses the other).
// Counters follow by the triggers of migration 001. On error nothing of
// the batch is stored.
//
// The work is one round trip: a pipelined batch (link locks, insert with
// status updates, release of idOrderLock) run as one implicit transaction.
func (db *DB) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) (_ []bool, err error) {
	defer func() { db.noteFailure(err) }()
	fresh := make([]bool, len(evs))
	if len(evs) == 0 {
		return fresh, nil
	}
	n := len(evs)
	var (
		iids, exts, kinds, sts, rss, tss = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ets                              = make([]*int64, n)
		ras, sks                         = make([]int64, n), make([]int64, n)
		raws                             = make([][]byte, n)
		sis                              = make([]int32, n)
		tns                              = make([]bool, n)
		first                            = make(map[triple]int, n)
	)
	now := db.now()
	for i := range evs {
		ev := &evs[i]
		if ev.InternalID == "" || ev.Event == "" || ev.Timestamp == "" {
			return nil, fmt.Errorf("save callbacks: event %d has no dedup key (internal_id, event and timestamp are required)", i)
		}
		received := ev.ReceivedAt
		if received.IsZero() {
			received = now
		}
		raw := ev.RawBody
		if raw == nil {
			raw = []byte{}
		}
		iids[i], exts[i], kinds[i], sts[i], rss[i], tss[i] = ev.InternalID, ev.ExternalID, ev.Event, ev.Status, ev.Reason, ev.Timestamp
		ets[i], ras[i], sks[i], raws[i], sis[i] = nullMS(ev.EventTime), ms(received), ev.Skew.Milliseconds(), raw, int32(ev.SecretIdx)
		tns[i] = ev.TimestampNumber
		k := triple{ev.InternalID, ev.Event, ev.Timestamp}
		if _, ok := first[k]; !ok {
			first[k] = i
		}
	}
	if db.readOnly {
		return nil, fmt.Errorf("save callbacks: %w", errReadOnly())
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
	}
	locked := false
	defer func() {
		if locked {
			// The insert failed after taking idOrderLock (the release in
			// the batch did not run): release it on the session, or close
			// the connection, which releases it too.
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock_all()`); uerr != nil {
				_ = conn.Hijack().Close(uctx)
				cancel()
				return
			}
			cancel()
		}
		conn.Release()
	}()
	// One pipelined batch, sent with one Sync and no BEGIN: the server
	// runs it as one implicit transaction that commits at the Sync (or
	// rolls back entirely on any error), in one round trip. The link
	// locks are their own statement, so the insert's snapshot sees a
	// Record that committed while this waited for them.
	b := &pgx.Batch{}
	b.Queue(sqlLinkLocks, iids)
	b.Queue(sqlInsertCallbacks, iids, exts, kinds, sts, rss, tss, ets, ras, sks, raws, sis, idOrderLock, ms(now), tns)
	b.Queue(`SELECT pg_advisory_unlock($1)`, idOrderLock)
	locked = true
	br := conn.SendBatch(ctx, b)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			locked = false // the insert never ran
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var k triple
			if err := rows.Scan(&k.iid, &k.ev, &k.ts); err != nil {
				rows.Close()
				return err
			}
			i, ok := first[k]
			if !ok {
				rows.Close()
				return fmt.Errorf("insert returned a callback (%q, %q, %q) not in the batch", k.iid, k.ev, k.ts)
			}
			fresh[i] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		locked = false
		return nil
	}()
	// Close reads up to the Sync: the implicit commit's own result.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
	}
	db.noteCommit()
	if slices.Contains(fresh, true) {
		db.watch.changed()
	}
	return fresh, nil
}

// refusalSweepEvery is how many refusals an instance stores between two
// sweeps of every refusal below the bound. The other inserts delete only
// the ids in a short window below theirs: an index range of a row or so,
// not a walk over the dead entries at the low end of the key.
const refusalSweepEvery = 64

// sqlSaveRefusal inserts a refusal under refusalOrderLock, taken by the
// uncorrelated subquery before the id is drawn and released by the outer
// SELECT once the row is in: the statement is the transaction's only
// write, so its xid is assigned inside the lock too, in the order of the
// ids (RefusalsAfter). The lock covers the one-row insert, not the trim,
// the triggers or the commit. The trim (del, run after the outer SELECT)
// drops the ids at or below the new one minus $7 (Options.MaxRefusals):
// those within $8 of that bound, or all of them when $8 is negative.
const sqlSaveRefusal = `WITH ins AS (
	INSERT INTO refusals (at, remote_addr, http_status, code, detail, head)
	SELECT $1, $2, $3, $4, $5, $6
	WHERE (SELECT count(*) FROM (SELECT pg_advisory_lock($9::bigint)) AS l) = 1
	RETURNING id
), del AS (
	DELETE FROM refusals WHERE id <= (SELECT id FROM ins) - $7::bigint
		AND ($8::bigint < 0 OR id > (SELECT id FROM ins) - $7::bigint - $8::bigint)
)
SELECT pg_advisory_unlock($9::bigint) FROM ins`

// SaveRefusal implements callbacks.EventSink: it stores a refused callback
// and, in the same statement, drops those beyond Options.MaxRefusals (the
// ids at or below its own id minus the bound). There is no counter row:
// concurrent inserts delete different rows, and the count follows by the
// triggers of migration 001.
func (db *DB) SaveRefusal(ctx context.Context, r crm.Refusal) (err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return fmt.Errorf("save refusal: %w", errReadOnly())
	}
	at := r.At
	if at.IsZero() {
		at = db.now()
	}
	head := r.Head
	if head == nil {
		head = []byte{}
	}
	window := int64(2 * refusalSweepEvery)
	if db.watch.refusals.Add(1)%refusalSweepEvery == 0 {
		window = -1 // everything below the bound
	}
	if err := db.withOrderLock(ctx, func(conn *pgxpool.Conn) error {
		_, err := conn.Exec(ctx, sqlSaveRefusal, ms(at), r.RemoteAddr, r.HTTPStatus, r.Code, r.Detail, head,
			int64(db.opt.MaxRefusals), window, refusalOrderLock)
		return err
	}); err != nil {
		return fmt.Errorf("save refusal: %w", mapErr(ctx, err))
	}
	db.noteCommit()
	db.watch.changed()
	return nil
}

// Callbacks implements ui.Source: stored callbacks newest first (by id),
// only those after q.AfterID, filtered by a case-insensitive substring of
// external_id, internal_id, event or status, without their raw bodies
// (Callback has them).
func (db *DB) Callbacks(ctx context.Context, q crm.EventQuery) ([]crm.CallbackEvent, error) {
	query := `SELECT ` + callbackHeadCols + ` FROM callbacks WHERE id > $1`
	args := []any{q.AfterID}
	if q.Filter != "" {
		query += ` AND id > (SELECT COALESCE(max(id), 0) FROM callbacks) - $4
			AND (lower(external_id) LIKE $3 OR lower(internal_id) LIKE $3
			OR lower(event) LIKE $3 OR lower(status) LIKE $3)`
	}
	query += ` ORDER BY id DESC LIMIT $2`
	args = append(args, store.ClampLimit(q.Limit))
	if q.Filter != "" {
		args = append(args, store.LikePattern(q.Filter), store.EventScanWindow)
	}
	out, err := queryAll(ctx, db.pool, scanCallbackHead, query, args...)
	if err != nil {
		return nil, fmt.Errorf("callbacks: %w", err)
	}
	return out, nil
}

// sqlCursorBound is the txid below which every callback row is final:
// the oldest transaction in this statement's snapshot still running that
// could be this database's (an in-progress xid that pg_stat_activity does
// not show running in another database; one that ended since the snapshot
// counts, its rows being invisible to it), else the snapshot's xmax.
// Transactions of other databases on the server do not hold the tail
// back; this database's do, for as long as they run.
const sqlCursorBound = `(SELECT COALESCE(min(x), pg_snapshot_xmax(pg_current_snapshot()))
	FROM pg_snapshot_xip(pg_current_snapshot()) AS x
	WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
		WHERE a.backend_xid = xid(x) AND a.datname IS DISTINCT FROM current_database()))`

// CallbacksAfter returns up to limit callbacks with an id above afterID,
// oldest first, without their raw bodies: what `leadwatch tail` prints
// next. PostgreSQL hands ids out before commit, so a row with a smaller id
// can commit after a larger one; a cursor moved past the larger would skip
// it for good. So only rows whose transaction is older than every
// transaction that may still insert here are returned (sqlCursorBound): a
// row is withheld until every transaction that might hold a smaller id
// has ended. That holds because SaveCallbacks draws xids and ids in the
// same order (idOrderLock): a transaction holding a smaller id has a
// smaller xid.
func (db *DB) CallbacksAfter(ctx context.Context, afterID int64, limit int) ([]crm.CallbackEvent, error) {
	out, err := queryAll(ctx, db.pool, scanCallbackHead, `SELECT `+callbackHeadCols+` FROM callbacks
		WHERE id > $1 AND txid < `+sqlCursorBound+` ORDER BY id LIMIT $2`,
		afterID, store.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("callbacks after %d: %w", afterID, err)
	}
	return out, nil
}

// ExportCallbacks calls fn for every callback in id order, without raw
// bodies (as the lists; Callback has them), streaming a batch at a time
// (no transaction held open).
func (db *DB) ExportCallbacks(ctx context.Context, fn func(crm.CallbackEvent) error) error {
	var after int64
	for {
		batch, err := queryAll(ctx, db.pool, scanCallbackHead, `SELECT `+callbackHeadCols+` FROM callbacks
			WHERE id > $1 ORDER BY id LIMIT $2`, after, exportBatch)
		if err != nil {
			return fmt.Errorf("export callbacks: %w", err)
		}
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			return nil
		}
		after = batch[len(batch)-1].ID
	}
}

// Refusals implements ui.Source: refused callbacks newest first, filtered
// by a case-insensitive substring of detail, code or remote address. The
// table is bounded (Options.MaxRefusals), so a filter scan is cheap.
func (db *DB) Refusals(ctx context.Context, q crm.EventQuery) ([]crm.Refusal, error) {
	query := `SELECT id, at, remote_addr, http_status, code, detail, head FROM refusals WHERE id > $1`
	args := []any{q.AfterID, store.ClampLimit(q.Limit)}
	if q.Filter != "" {
		query += ` AND (lower(detail) LIKE $3 OR lower(code) LIKE $3 OR lower(remote_addr) LIKE $3)`
		args = append(args, store.LikePattern(q.Filter))
	}
	query += ` ORDER BY id DESC LIMIT $2`
	out, err := queryAll(ctx, db.pool, scanRefusal, query, args...)
	if err != nil {
		return nil, fmt.Errorf("refusals: %w", err)
	}
	return out, nil
}

func scanRefusal(s pgx.Row) (crm.Refusal, error) {
	var (
		r  crm.Refusal
		at int64
	)
	err := s.Scan(&r.ID, &at, &r.RemoteAddr, &r.HTTPStatus, &r.Code, &r.Detail, &r.Head)
	r.At = fromMS(at)
	return r, err
}
