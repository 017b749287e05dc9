package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/leadwatch/leadwatch/store"
)

// newHealth is Health's state for a newly opened DB: the shared rules
// (store.HealthTracker, as store/sqlite's) over this backend's write probe
// and SQLSTATE-derived codes. It ends with db.bg (Close).
func (db *DB) newHealth() *store.HealthTracker {
	return store.NewHealthTracker(store.HealthConfig{
		Probe:  db.probeWrite,
		Code:   healthCode,
		MaxAge: db.opt.ProbeMaxAge,
		Parent: db.bg,
	})
}

// Ping implements callbacks.EventSink's liveness check: one round trip to
// the server. A read-only handle fails it (ErrReadOnly): it cannot take
// callbacks.
func (db *DB) Ping(ctx context.Context) error {
	if db.readOnly {
		return fmt.Errorf("store ping %s: %w", db.location, errReadOnly())
	}
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store ping %s: %w", db.location, mapErr(ctx, err))
	}
	return nil
}

// Health reports whether the store can commit: "" when it can, else one of
// the store.Health* codes, with the error behind it for the log. It is
// based on the last real write's result and on a write probe (a one-row
// update, committed) no older than Options.ProbeMaxAge. A write that failed
// because of the store decides until a later commit succeeds, or, when no
// write comes, for five probe ages. Results are cached and concurrent
// callers share one probe. There is no file to check on PostgreSQL
// (store.HealthReplaced is never reported): a server that cannot be
// reached is HealthUnreachable, SQLSTATE 53100 HealthDiskFull, a read-only
// handle or server (a hot standby) HealthReadOnly.
func (db *DB) Health(ctx context.Context) (string, error) { return db.health.Health(ctx) }

// probeWrite commits a one-row update of health_probe (migration 002),
// through the pool like every real write; no trigger notifies watchers.
// A read-only handle is refused by the server (default_transaction_read_only).
func (db *DB) probeWrite(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, `UPDATE health_probe SET at = $1 WHERE id = 1`, time.Now().UnixMilli()); err != nil {
		return mapErr(ctx, err)
	}
	return db.commit(ctx, tx)
}

// noteCommit records a successful commit: it clears a failure, and
// drops a cached failed probe, so Health probes again at once instead of
// reporting the failure for the rest of its age once writes succeed.
func (db *DB) noteCommit() { db.health.NoteCommit() }

// noteFailure records a write method's error for Health, deferred: only
// errors the store is to blame for (full, read-only, unreachable, busy)
// count; a refused lead or a canceled caller says nothing of the store.
func (db *DB) noteFailure(err error) { db.health.NoteFailure(err) }

// healthCode is the Health code of a write's error: "" for success and for
// errors that are not the store's fault.
func healthCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrDiskFull):
		return store.HealthDiskFull
	case errors.Is(err, store.ErrReadOnly):
		return store.HealthReadOnly
	case isUnreachable(err), errors.Is(err, store.ErrBusy):
		return store.HealthUnreachable
	}
	return ""
}
