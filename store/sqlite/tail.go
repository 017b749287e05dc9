package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// tailWhere is q's filters as SQL (each " AND col = ?") and their
// arguments.
func tailWhere(q store.TailQuery) (string, []any) {
	var where string
	var args []any
	for _, f := range []struct{ col, v string }{{"event", q.Event}, {"status", q.Status}, {"external_id", q.ExternalID}, {"kind", q.Kind}} {
		switch {
		case f.col == "event" && f.v == crm.EventStatusPolled:
			// A polled row's event column is '' (migration 008).
			where += ` AND (event = ? OR kind = 'polled')`
			args = append(args, f.v)
		case f.v != "":
			where += ` AND ` + f.col + ` = ?`
			args = append(args, f.v)
		}
	}
	return where, args
}

// maxCallbackID is the newest stored id, 0 when there is none. SQLite has
// one writer and the ids are chosen under its lock, so every row at or
// below it is committed: a cursor may move up to it.
func (db *DB) maxCallbackID(ctx context.Context) (int64, error) {
	var hi int64
	if err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(max(id), 0) FROM callbacks`).Scan(&hi); err != nil {
		return 0, mapErr(ctx, err)
	}
	return hi, nil
}

// TailCallbacks implements store.Store. The rows are those in (afterID,
// hi], hi being the newest id when the call began (read first, so
// nothing committed after it is skipped) capped at TailSpan ids on.
func (db *DB) TailCallbacks(ctx context.Context, q store.TailQuery, afterID int64, limit int) ([]crm.CallbackEvent, int64, error) {
	hi, err := db.maxCallbackID(ctx)
	if err != nil {
		return nil, afterID, fmt.Errorf("tail callbacks: %w", err)
	}
	hi = min(hi, afterID+store.TailSpan)
	if hi <= afterID {
		return nil, afterID, nil
	}
	where, fargs := tailWhere(q)
	limit = store.ClampLimit(limit)
	args := append([]any{afterID, hi}, fargs...)
	args = append(args, limit)
	rows, err := queryAll(ctx, db.reader, scanCallbackHead, `SELECT `+callbackHeadCols+` FROM callbacks
		WHERE id > ? AND id <= ?`+where+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, afterID, fmt.Errorf("tail callbacks: %w", err)
	}
	next := hi
	if len(rows) == limit {
		// The page filled before hi: the rows after it are for the next
		// call.
		next = rows[len(rows)-1].ID
	}
	return rows, next, nil
}

// TailStart implements store.Store: the n-th match down the primary key
// from the newest row.
func (db *DB) TailStart(ctx context.Context, q store.TailQuery, n int) (int64, error) {
	hi, err := db.maxCallbackID(ctx)
	if err != nil {
		return 0, fmt.Errorf("tail start: %w", err)
	}
	if n <= 0 {
		return hi, nil
	}
	low := max(0, hi-store.EventScanWindow)
	where, fargs := tailWhere(q)
	args := append(append([]any{low, hi}, fargs...), n-1)
	var id int64
	err = db.reader.QueryRowContext(ctx, `SELECT id FROM callbacks WHERE id > ? AND id <= ?`+where+`
		ORDER BY id DESC LIMIT 1 OFFSET ?`, args...).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return low, nil // fewer than n: all of them
	case err != nil:
		return 0, fmt.Errorf("tail start: %w", mapErr(ctx, err))
	}
	return id - 1, nil
}

// RefusalsAfter implements store.Store. Writes are serialized by the
// database's write lock, so refusal ids commit in id order: a cursor
// cannot pass one still committing (PostgreSQL's needs a lock and a
// horizon for that).
func (db *DB) RefusalsAfter(ctx context.Context, afterID int64, limit int) ([]crm.Refusal, error) {
	out, err := queryAll(ctx, db.reader, scanRefusal, `SELECT id, at, remote_addr, http_status, code, detail, head
		FROM refusals WHERE id > ? ORDER BY id LIMIT ?`, afterID, store.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("refusals after %d: %w", afterID, err)
	}
	return out, nil
}
