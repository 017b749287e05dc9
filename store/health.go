package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Health's timings, the same for every backend.
const (
	// probeTimeout bounds one write probe. A store that cannot commit a
	// one-row transaction in this time is not taking callbacks either.
	probeTimeout = 3 * time.Second

	// failHoldProbes is how long, in probe ages (10 s by default), a
	// failed write decides Health without a later successful commit.
	// After it the probe decides again: when the instance is out of a load
	// balancer no writes come to clear the failure, and a store that
	// recovered (space freed) must be able to say so. If it did not, the
	// next real write sets the failure again.
	failHoldProbes = 5
)

// HealthConfig is what a backend gives a HealthTracker: the parts of
// Health that are its own.
type HealthConfig struct {
	// Probe commits a one-row write transaction, through the same path as
	// every real write, and returns its error, mapped to the store's
	// sentinels. It must not clear a real write's failure (a small update
	// can succeed where an insert that needs a new page fails).
	Probe func(ctx context.Context) error
	// Code is the Health code of a write's error: "" for success and for
	// errors that are not the store's fault (a refused lead, a lost lease,
	// the caller's canceled context).
	Code func(err error) string
	// MaxAge is how long a probe's result answers Health
	// (Options.ProbeMaxAge).
	MaxAge time.Duration
	// Parent, when set, ends the tracker when it ends (the backend's
	// background context, ended by Close): a probe running then is cut
	// short and Health reports the store closed.
	Parent context.Context
	// Closed is the error Health wraps once the store is closed
	// (HealthUnreachable); "the store is closed" when nil.
	Closed error
}

// HealthTracker is the backend-neutral half of Store.Health: the last real
// write's failure, the cached write probe and the rules that choose
// between them. Its times are this process's wall clock with its monotonic
// reading, not Options.Now: they measure how old a result is, which a test
// clock that stands still must not freeze. It is safe for concurrent use.
type HealthTracker struct {
	cfg    HealthConfig
	ctx    context.Context // the probes' parent, ended by Close (or cfg.Parent)
	cancel context.CancelFunc

	mu      sync.Mutex
	fail    writeResult   // the last write that failed for the store's sake, until a commit succeeds
	probe   writeResult   // the last write probe's result
	probing chan struct{} // non-nil while a probe runs; closed when its result is in
	probes  int           // probes run, for tests of the cache
	closed  bool          // set by Close before it waits for probes, so none starts after
	wg      sync.WaitGroup
}

// writeResult is the outcome of one write: when, its health code ("" for
// success), and the error behind the code, for the log.
type writeResult struct {
	at   time.Time
	code string
	err  error
}

// NewHealthTracker is the Health state of a newly opened store.
func NewHealthTracker(cfg HealthConfig) *HealthTracker {
	parent := cfg.Parent
	if parent == nil {
		parent = context.Background()
	}
	if cfg.Closed == nil {
		cfg.Closed = errors.New("the store is closed")
	}
	h := &HealthTracker{cfg: cfg}
	h.ctx, h.cancel = context.WithCancel(parent)
	return h
}

// Health reports whether the store can commit: "" when it can, else one of
// the Health codes, with the error behind it for the log. It is based on
// the last real write's result and on a write probe no older than MaxAge.
// A write that failed because of the store decides until a later commit
// succeeds, or, when no write comes, for five probe ages; then the probe
// decides again. Results are cached, so a flood of /healthz requests costs
// one probe every MaxAge, and concurrent callers share one probe, which
// runs on its own goroutine with its own deadline: a caller that gives up
// does not cut short the probe the others wait for.
func (h *HealthTracker) Health(ctx context.Context) (code string, err error) {
	h.mu.Lock()
	if h.closed || h.ctx.Err() != nil {
		h.mu.Unlock()
		return HealthUnreachable, fmt.Errorf("store health: %w", h.cfg.Closed)
	}
	if f, ok := h.failing(); ok {
		h.mu.Unlock()
		return f.code, f.err
	}
	if !h.probe.at.IsZero() && time.Since(h.probe.at) < h.cfg.MaxAge {
		p := h.probe
		h.mu.Unlock()
		return p.code, p.err
	}
	if h.probing == nil {
		h.probing = make(chan struct{})
		h.wg.Add(1)
		go h.runProbe(h.probing)
	}
	wait := h.probing
	h.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return HealthUnreachable, fmt.Errorf("store health: waiting for the write probe: %w", ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.failing(); ok {
		return f.code, f.err
	}
	return h.probe.code, h.probe.err
}

// failing is the failed write that decides Health now, if any (one held
// for failHoldProbes probe ages); h.mu is held.
func (h *HealthTracker) failing() (writeResult, bool) {
	f := h.fail
	return f, f.code != "" && time.Since(f.at) < failHoldProbes*h.cfg.MaxAge
}

// runProbe runs one write probe and publishes its result; Close ends it.
func (h *HealthTracker) runProbe(done chan struct{}) {
	defer h.wg.Done()
	ctx, cancel := context.WithTimeout(h.ctx, probeTimeout)
	err := h.cfg.Probe(ctx)
	cancel()
	code := h.cfg.Code(err)
	if err != nil {
		err = fmt.Errorf("store write probe: %w", err)
		if code == "" {
			// Whatever stops a one-row commit stops callbacks too.
			code = HealthUnreachable
		}
	}
	h.mu.Lock()
	h.probe = writeResult{at: time.Now(), code: code, err: err}
	h.probes++
	h.probing = nil
	close(done)
	h.mu.Unlock()
}

// NoteCommit records a successful commit: it clears a failure, and drops a
// cached failed probe, so Health probes again at once instead of reporting
// the failure for the rest of its age once writes succeed.
func (h *HealthTracker) NoteCommit() {
	h.mu.Lock()
	h.fail = writeResult{}
	if h.probe.code != "" {
		h.probe = writeResult{}
	}
	h.mu.Unlock()
}

// NoteFailure records a write's error for Health: only an error the store
// is to blame for (its Code is not "": full, read-only, replaced,
// unreachable, busy, I/O) sets a failure; any other error, and nil, say
// nothing about the store. A write method defers it on its result: only a
// failure is news there (the commit records the successes), and a method
// that returns nil without committing proves nothing.
func (h *HealthTracker) NoteFailure(err error) {
	if err == nil {
		return
	}
	code := h.cfg.Code(err)
	if code == "" {
		return
	}
	h.mu.Lock()
	h.fail = writeResult{at: time.Now(), code: code, err: err}
	h.mu.Unlock()
}

// Probes is how many write probes have run, for tests of the cache.
func (h *HealthTracker) Probes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probes
}

// Close stops new probes, ends a running one and waits for it. Health then
// reports the store closed.
func (h *HealthTracker) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}
