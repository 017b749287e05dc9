package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// tailWhere is q's filters as SQL (each " AND col = $n", numbered
// from first) and their arguments.
func tailWhere(q store.TailQuery, first int) (string, []any) {
	var where string
	var args []any
	for _, f := range []struct{ col, v string }{{"event", q.Event}, {"status", q.Status}, {"external_id", q.ExternalID}, {"kind", q.Kind}} {
		switch {
		case f.col == "event" && f.v == crm.EventStatusPolled:
			// A polled row's event column is '' (migration 004).
			where += ` AND (event = $` + strconv.Itoa(first+len(args)) + ` OR kind = 'polled')`
			args = append(args, f.v)
		case f.v != "":
			where += ` AND ` + f.col + ` = $` + strconv.Itoa(first+len(args))
			args = append(args, f.v)
		}
	}
	return where, args
}

// tailBound is the highest id in (afterID, afterID+span] a cursor may move
// to: the newest row there whose transaction is older than every one
// that may still insert (sqlCursorBound). SaveCallbacks draws ids in xid
// order, so every row below it is final too; afterID when there is none.
func (db *DB) tailBound(ctx context.Context, afterID, span int64) (int64, error) {
	var hi int64
	// Walking down from the top stops at the first final row, usually
	// the newest: not a read of every row in the span.
	err := db.pool.QueryRow(ctx, `SELECT COALESCE((SELECT id FROM callbacks
		WHERE id > $1 AND id <= $1 + $2 AND txid < `+sqlCursorBound+` ORDER BY id DESC LIMIT 1), $1)`,
		afterID, span).Scan(&hi)
	return hi, mapErr(ctx, err)
}

// TailCallbacks implements store.Store. The rows are those in (afterID,
// hi], hi from tailBound, read by a second statement: everything at or
// below hi has committed (or never will), so that statement sees it all.
func (db *DB) TailCallbacks(ctx context.Context, q store.TailQuery, afterID int64, limit int) ([]crm.CallbackEvent, int64, error) {
	hi, err := db.tailBound(ctx, afterID, store.TailSpan)
	if err != nil {
		return nil, afterID, fmt.Errorf("tail callbacks: %w", err)
	}
	if hi <= afterID {
		return nil, afterID, nil
	}
	where, fargs := tailWhere(q, 4)
	limit = store.ClampLimit(limit)
	args := append([]any{afterID, hi, limit}, fargs...)
	rows, err := queryAll(ctx, db.pool, scanCallbackHead, `SELECT `+callbackHeadCols+` FROM callbacks
		WHERE id > $1 AND id <= $2`+where+` ORDER BY id LIMIT $3`, args...)
	if err != nil {
		return nil, afterID, fmt.Errorf("tail callbacks: %w", err)
	}
	next := hi
	if len(rows) == limit {
		next = rows[len(rows)-1].ID
	}
	return rows, next, nil
}

// TailStart implements store.Store: the n-th match down the primary key
// from the newest final row.
func (db *DB) TailStart(ctx context.Context, q store.TailQuery, n int) (int64, error) {
	var hi int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE((SELECT id FROM callbacks WHERE txid < `+sqlCursorBound+`
		ORDER BY id DESC LIMIT 1), 0)`).Scan(&hi); err != nil {
		return 0, fmt.Errorf("tail start: %w", mapErr(ctx, err))
	}
	if n <= 0 {
		return hi, nil
	}
	low := max(0, hi-store.EventScanWindow)
	where, fargs := tailWhere(q, 4)
	args := append([]any{low, hi, n - 1}, fargs...)
	var id int64
	err := db.pool.QueryRow(ctx, `SELECT id FROM callbacks WHERE id > $1 AND id <= $2`+where+`
		ORDER BY id DESC LIMIT 1 OFFSET $3`, args...).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return low, nil // fewer than n: all of them
	case err != nil:
		return 0, fmt.Errorf("tail start: %w", mapErr(ctx, err))
	}
	return id - 1, nil
}

// The order locks of the other tables tail --all follows, as idOrderLock
// is the callbacks': each insert of a refusal (SaveRefusal) or of forward
// attempts (RecordDeliveries) holds its table's lock while its transaction
// takes its xid and the rows their ids, so both go in the same order and
// a cursor bounded by sqlCursorBound passes no row still committing below
// it (RefusalsAfter, ForwardAttemptsAfter). One key per table: a refusal
// flood (hostile traffic) waits on no callback or forward, nor they on
// it. ("lw" "rfid", "lw" "faid".)
const (
	refusalOrderLock int64 = 0x6c77_7266_6964
	attemptOrderLock int64 = 0x6c77_6661_6964
)

// withOrderLock runs fn on a connection of its own, whose statements take
// an order lock and release it before they end. If fn fails the lock may
// still be held (a session lock outlives the failed transaction): it is
// released on the session, or the connection is closed, which releases
// it too. The error is fn's, unmapped.
func (db *DB) withOrderLock(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	if err = fn(conn); err != nil {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock_all()`); uerr != nil {
			_ = conn.Hijack().Close(uctx)
			return err
		}
	}
	conn.Release()
	return err
}

// RefusalsAfter implements store.Store, as CallbacksAfter: ids are drawn
// before commit, so only refusals whose transaction is older than every
// one that may still insert here are returned (sqlCursorBound). SaveRefusal
// draws xids and ids in the same order (refusalOrderLock), so a refusal
// still committing has a larger id than every one returned: the cursor
// never passes it. A refusal is withheld while any older transaction of
// this database runs, however short.
func (db *DB) RefusalsAfter(ctx context.Context, afterID int64, limit int) ([]crm.Refusal, error) {
	out, err := queryAll(ctx, db.pool, scanRefusal, `SELECT id, at, remote_addr, http_status, code, detail, head
		FROM refusals WHERE id > $1 AND txid < `+sqlCursorBound+` ORDER BY id LIMIT $2`,
		afterID, store.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("refusals after %d: %w", afterID, err)
	}
	return out, nil
}
