package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/store"
)

// Health's timings (as store/sqlite's).
const (
	// probeTimeout bounds one write probe: a server that cannot commit a
	// one-row transaction in this time is not taking callbacks either.
	probeTimeout = 3 * time.Second
	// failHoldProbes is how long, in probe ages, a failed real write
	// decides Health without a later successful commit; then the probe
	// decides again.
	failHoldProbes = 5
)

// healthState is what Health reports from. Its times are this process's
// clock (with its monotonic reading), not Options.Now: they measure how
// old a result is.
type healthState struct {
	mu      sync.Mutex
	fail    writeResult   // the last write that failed for the store's sake, until a commit succeeds
	probe   writeResult   // the last write probe's result
	probing chan struct{} // non-nil while a probe runs; closed when its result is in
	probes  int           // probes run, for tests of the cache
}

// writeResult is the outcome of one write: when, its health code ("" for
// success) and the error behind it, for the log.
type writeResult struct {
	at   time.Time
	code string
	err  error
}

// newHealthState is Health's state for a newly opened DB.
func newHealthState() *healthState { return &healthState{} }

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
func (db *DB) Health(ctx context.Context) (string, error) {
	h := db.health
	h.mu.Lock()
	if db.bg.Err() != nil {
		h.mu.Unlock()
		return store.HealthUnreachable, errors.New("store health: the store is closed")
	}
	if f, ok := h.failing(db.failHold()); ok {
		h.mu.Unlock()
		return f.code, f.err
	}
	if !h.probe.at.IsZero() && time.Since(h.probe.at) < db.opt.ProbeMaxAge {
		p := h.probe
		h.mu.Unlock()
		return p.code, p.err
	}
	if h.probing == nil {
		h.probing = make(chan struct{})
		go db.runProbe(h.probing)
	}
	wait := h.probing
	h.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return store.HealthUnreachable, fmt.Errorf("store health: waiting for the write probe: %w", ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.failing(db.failHold()); ok {
		return f.code, f.err
	}
	return h.probe.code, h.probe.err
}

// failHold is how long a failed write decides Health.
func (db *DB) failHold() time.Duration { return failHoldProbes * db.opt.ProbeMaxAge }

// failing is the failed write that decides Health now, if any; h.mu is
// held.
func (h *healthState) failing(hold time.Duration) (writeResult, bool) {
	f := h.fail
	return f, f.code != "" && time.Since(f.at) < hold
}

// runProbe runs one write probe with its own deadline (a caller that gives
// up does not cut short the probe others wait for) and publishes it.
func (db *DB) runProbe(done chan struct{}) {
	h := db.health
	ctx, cancel := context.WithTimeout(db.bg, probeTimeout)
	err := db.probeWrite(ctx)
	cancel()
	code := healthCode(err)
	if err != nil {
		err = fmt.Errorf("store write probe: %w", err)
		if code == "" {
			// Whatever stops a one-row commit stops callbacks too.
			code = store.HealthUnreachable
		}
	}
	h.mu.Lock()
	h.probe = writeResult{at: time.Now(), code: code, err: err}
	h.probes++
	h.probing = nil
	close(done)
	h.mu.Unlock()
}

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
func (db *DB) noteCommit() {
	h := db.health
	h.mu.Lock()
	h.fail = writeResult{}
	if h.probe.code != "" {
		h.probe = writeResult{}
	}
	h.mu.Unlock()
}

// noteFailure records a write method's error for Health, deferred: only
// errors the store is to blame for (full, read-only, unreachable, busy)
// count; a refused lead or a canceled caller says nothing of the store.
func (db *DB) noteFailure(err error) {
	code := healthCode(err)
	if code == "" {
		return
	}
	h := db.health
	h.mu.Lock()
	h.fail = writeResult{at: time.Now(), code: code, err: err}
	h.mu.Unlock()
}

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
