package crm

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// Sender sends one attempt. *Client satisfies it.
type Sender interface {
	Submit(ctx context.Context, body []byte, idempotencyKey string) Result
}

// AttemptObserver learns of every attempt as its answer arrives, for
// metrics (main wires package metrics in). It is called from the
// attempt's goroutine, before the attempt is recorded, and must be quick
// and never block.
type AttemptObserver interface {
	// Attempted reports one attempt: the HTTP status answered (0 when no
	// answer came: refused, reset, timed out) and how long it took.
	Attempted(statusCode int, took time.Duration)
}

// attemptObserverRef boxes an AttemptObserver for an atomic.Pointer.
type attemptObserverRef struct{ AttemptObserver }

// DispatcherConfig tunes a Dispatcher. Zero values take the defaults named.
type DispatcherConfig struct {
	Owner       string         // lease owner; default host:pid:random
	Concurrency int            // attempts in flight at once; default 8
	RateLimit   float64        // attempts per second; 0 means no limit
	Lease       time.Duration  // how long a claim holds a lead; must outlast one attempt; default 1 min
	IdleCheck   time.Duration  // how often to look for work other processes queued; default 1 s
	Policy      RetryPolicy    // default DefaultRetryPolicy()
	Clock       Clock          // default the system clock
	Jitter      func() float64 // a draw in [0,1); default math/rand/v2
	Logger      *slog.Logger
	// LogEvery is how often a repeated problem (a failing claim or
	// record) is logged, with a count of the ones in between; default
	// 30 s. A lead that ends failed is logged every time.
	LogEvery time.Duration
}

// Dispatcher drains the outbox: it claims due leads under a lease, sends
// them with bounded concurrency and an optional rate limit, and records
// each attempt and the lead's new state in one transaction. Several
// dispatchers, in one process or several, may share an outbox.
type Dispatcher struct {
	outbox  Outbox
	sender  Sender
	cfg     DispatcherConfig
	limiter *rate.Limiter
	log     *slog.Logger
	// rlog logs the problems that repeat per attempt or per claim once
	// per LogEvery: a store that is full or gone fails every one, and a
	// line each would bury the first.
	rlog *ratelog.Logger

	wake     chan struct{}
	minClaim int // smallest claim worth a transaction while attempts are in flight
	paused   atomic.Bool
	sent     atomic.Int64
	health   *healthTracker
	observer atomic.Pointer[attemptObserverRef]
}

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(outbox Outbox, sender Sender, cfg DispatcherConfig) *Dispatcher {
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = time.Second
	}
	if cfg.Policy == (RetryPolicy{}) {
		cfg.Policy = DefaultRetryPolicy()
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 30 * time.Second
	}
	log := cfg.Logger.With("component", "dispatcher", "owner", cfg.Owner)
	d := &Dispatcher{
		outbox: outbox,
		sender: sender,
		cfg:    cfg,
		log:    log,
		rlog:   ratelog.New(log, cfg.LogEvery, ratelog.WithClock(cfg.Clock.Now)),
		wake:   make(chan struct{}, 1),
		// A quarter of the slots: large enough to share a commit, small
		// enough that the pipeline never runs dry.
		minClaim: max(1, cfg.Concurrency/4),
		health:   newHealthTracker(cfg.Clock.Now()),
	}
	if cfg.RateLimit > 0 {
		burst := max(1, int(cfg.RateLimit))
		d.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	return d
}

// Owner returns the lease owner name this dispatcher claims under.
func (d *Dispatcher) Owner() string { return d.cfg.Owner }

// Notify wakes the dispatcher to look for due work now. It never blocks:
// a wake-up already pending covers this one.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// SetPaused stops (true) or resumes (false) claiming new work. Attempts
// already in flight finish.
func (d *Dispatcher) SetPaused(p bool) {
	d.paused.Store(p)
	d.Notify()
}

// Paused reports whether sending is paused.
func (d *Dispatcher) Paused() bool { return d.paused.Load() }

// SetObserver makes o hear every attempt from now on; nil removes it. A
// setter, not a DispatcherConfig field, because main builds the dispatcher
// before it knows whether metrics are on; safe while Run runs.
func (d *Dispatcher) SetObserver(o AttemptObserver) {
	if o == nil {
		d.observer.Store(nil)
		return
	}
	d.observer.Store(&attemptObserverRef{o})
}

// Sent returns how many attempts this dispatcher has recorded.
func (d *Dispatcher) Sent() int64 { return d.sent.Load() }

// Health returns what the attempts met at the CRM, as of now; safe to
// call from any goroutine.
func (d *Dispatcher) Health() Health { return d.health.snapshot(d.cfg.Clock.Now()) }

// Run sends until ctx is done, then waits for the attempts in flight to
// finish (each bounded by the client's timeout) and records them; leads
// claimed but not yet sent are released. It returns nil on a clean stop.
func (d *Dispatcher) Run(ctx context.Context) error {
	var (
		wg       sync.WaitGroup
		inFlight int
		done     = make(chan struct{}, d.cfg.Concurrency)
		clock    = d.cfg.Clock
		// After a failed claim (a locked or full database), wait before
		// the next, doubling up to 5 s, so the store is not hammered.
		backoff time.Duration
		retryAt time.Time
	)
	defer wg.Wait()

	for {
		wait := d.cfg.IdleCheck
		switch now := clock.Now(); {
		case now.Before(retryAt):
			wait = retryAt.Sub(now)
		case d.paused.Load() || inFlight >= d.cfg.Concurrency:
		case inFlight > 0 && d.cfg.Concurrency-inFlight < d.minClaim:
			// Under load, wait for a few slots and claim them in one
			// transaction: a claim is a durable commit, and one per lead
			// would cost more than the attempt itself.
		default:
			n, token, delay := d.budget(d.cfg.Concurrency-inFlight, now)
			if delay > 0 {
				wait = delay
				break
			}
			claimed, err := d.claim(ctx, n)
			if token != nil && len(claimed) == 0 {
				token.CancelAt(clock.Now())
			}
			switch {
			case ctx.Err() != nil:
				// Claimed just as we were told to stop: give them back now
				// rather than leave them leased until the lease expires.
				for _, l := range claimed {
					d.release(l)
				}
				return nil
			case err != nil:
				backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
				retryAt = clock.Now().Add(backoff)
				d.rlog.Error("claim", "claim failed", "err", err, "retry_in", backoff)
				wait = backoff
			default:
				backoff = 0
			}
			for _, l := range claimed {
				inFlight++
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.send(ctx, l)
					done <- struct{}{}
				}()
			}
			if err == nil && inFlight < d.cfg.Concurrency {
				wait = d.untilDue(ctx)
			}
		}
		// A timer per wait (After): one the loop stops waiting for is
		// garbage as soon as it is dropped, so nothing needs stopping.
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			inFlight--
		case <-d.wake:
		case <-clock.After(wait):
		}
		// Collect every finished attempt at once so a burst of completions
		// leads to one claim, not one each.
		for drained := false; !drained; {
			select {
			case <-done:
				inFlight--
			default:
				drained = true
			}
		}
	}
}

// budget is how many leads may be claimed now: the free slots, or under a
// rate limit one, and only when its token is already there. So a lead
// never sits leased while it waits its turn, and the lease only has to
// cover the attempt itself. A positive delay means no token yet: come back
// then. The token is returned so an empty claim can give it back.
func (d *Dispatcher) budget(free int, now time.Time) (int, *rate.Reservation, time.Duration) {
	if d.limiter == nil {
		return free, nil, 0
	}
	token := d.limiter.ReserveN(now, 1)
	if delay := token.DelayFrom(now); delay > 0 {
		token.CancelAt(now)
		return 0, nil, delay
	}
	return 1, token, 0
}

// claim asks the outbox for up to n due leads. Its errors are the
// outbox's own, which name the step ("next due: …", "claim: …"): wrapped
// again they would read "claim: claim: …" in the log.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]Lead, error) {
	due, ok, err := d.outbox.NextDue(ctx)
	if err != nil {
		return nil, err
	}
	now := d.cfg.Clock.Now()
	if !ok || due.After(now) {
		return nil, nil
	}
	return d.outbox.Claim(ctx, d.cfg.Owner, now, d.cfg.Lease, n)
}

// untilDue is how long to sleep before the next lead is due, at most
// IdleCheck (work queued by another process wakes nobody here).
func (d *Dispatcher) untilDue(ctx context.Context) time.Duration {
	due, ok, err := d.outbox.NextDue(ctx)
	if err != nil || !ok {
		return d.cfg.IdleCheck
	}
	w := due.Sub(d.cfg.Clock.Now())
	return min(max(w, time.Millisecond), d.cfg.IdleCheck)
}

// send makes one attempt and records it. Shutdown does not cut an attempt
// short once it is on the wire: its answer decides the lead's state, and
// the client's timeout bounds the wait.
func (d *Dispatcher) send(ctx context.Context, l Lead) {
	if ctx.Err() != nil {
		d.release(l)
		return
	}
	started := d.cfg.Clock.Now()
	res := d.sender.Submit(context.WithoutCancel(ctx), l.Payload, l.IdempotencyKey)
	dec := d.cfg.Policy.Decide(l.Attempts, res.Outcome, d.cfg.Jitter())
	// Counted before the record: the CRM's health does not depend on
	// whether the store took the answer.
	d.health.note(started, res, dec.State)
	if o := d.observer.Load(); o != nil {
		o.Attempted(res.StatusCode, res.Duration)
	}

	a := Attempt{
		LeadID:         l.ID,
		Kind:           KindSend,
		Number:         l.Attempts,
		IdempotencyKey: l.IdempotencyKey,
		StartedAt:      started,
		Duration:       res.Duration,
		HTTPStatus:     res.StatusCode,
		ResponseBody:   res.Body,
		Outcome:        dec.State,
		Delay:          dec.Delay,
		DelayWhy:       dec.Why,
	}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	r := AttemptResult{Attempt: a, CRMID: res.Outcome.CRMID, Reason: res.Outcome.Reason}
	if dec.State == StateRetryWait {
		r.NextAttemptAt = d.cfg.Clock.Now().Add(dec.Delay)
	} else if dec.State == StateFailed && res.Outcome.Retryable() {
		r.Reason = dec.Why
	}
	// The store may be briefly locked by another process; the answer is
	// worth a few tries. If it still fails the lease expires and the lead
	// is sent again under the same key, so the CRM replays its answer.
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			<-d.cfg.Clock.After(time.Duration(try) * 100 * time.Millisecond)
		}
		if err = d.outbox.Record(context.WithoutCancel(ctx), d.cfg.Owner, r); err == nil || errors.Is(err, ErrLeaseLost) {
			break
		}
	}
	switch {
	case errors.Is(err, ErrLeaseLost):
		d.rlog.Warn("lease_lost", "lease lost before the attempt was recorded; another worker owns the lead", "external_id", l.ExternalID)
		return
	case err != nil:
		d.rlog.Error("record", "record attempt", "external_id", l.ExternalID, "err", err)
		return
	}
	d.sent.Add(1)
	d.log.Debug("attempt", "external_id", l.ExternalID, "n", l.Attempts, "http", res.StatusCode, "state", dec.State, "delay", dec.Delay)
	if dec.State == StateFailed {
		// Failed waits for an operator (a wrong key, a redirect, a CRM
		// that never answered): a headless serve must say so, once per
		// lead, with what to fix. Logged after the commit, so a line
		// never names a lead whose state was not stored.
		d.log.Warn("lead failed", "external_id", l.ExternalID, "reason", r.Reason, "http", res.StatusCode, "attempts", l.Attempts)
	}
}

func (d *Dispatcher) release(l Lead) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.outbox.Release(ctx, d.cfg.Owner, []int64{l.ID}); err != nil && !errors.Is(err, ErrLeaseLost) {
		d.rlog.Error("release", "release", "external_id", l.ExternalID, "err", err)
	}
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
