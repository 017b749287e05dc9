// Package groupcommit shares one durable commit between concurrent
// requests. With synchronous=FULL every SQLite commit costs an fsync, and
// one fsync per request would cap a writer at a few hundred a second per
// disk; a Batcher instead lets one goroutine commit whatever has queued up
// while the previous commit ran, so the number of commits stays bounded as
// the load grows, and each request still learns its own batch's result.
//
// A Batcher never waits to fill a batch when idle: a request is committed
// alone, at once. Under load it may, with Options.Linger, hold a batch
// back for a fraction of a commit so that requests arriving together share
// one commit (see run). The store's Record and the callback listener both
// use it.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// DefaultMaxBatch is Options.MaxBatch when zero.
const DefaultMaxBatch = 256

// ErrClosed is returned for requests offered after Close began.
var ErrClosed = errors.New("group commit closed")

// Options tune a Batcher. The zero value is ready to use.
type Options struct {
	// MaxBatch caps the requests one commit carries; DefaultMaxBatch when
	// zero or less.
	MaxBatch int
	// Queue is how many requests may wait for the committer without
	// blocking their submitter. Zero makes a submitter wait in Submit
	// until the committer takes its request.
	Queue int
	// Linger caps how long a batch may wait for the requests the load
	// suggests are coming (see run); zero never waits. A batch waits at
	// most half the previous commit's duration, and only when it holds
	// fewer requests than the previous commit carried and left queued.
	Linger time.Duration
}

// CommitFunc commits one batch: it returns one result per request, in
// order, or an error that fails the whole batch (every request in it gets
// that error). The batch slice is reused: CommitFunc must not keep it.
type CommitFunc[Req, Res any] func(batch []Req) ([]Res, error)

// Batcher runs one committer goroutine for requests of type Req answered
// with a Res. Create it with New and stop it with Close.
type Batcher[Req, Res any] struct {
	commit   CommitFunc[Req, Res]
	maxBatch int
	linger   time.Duration
	// since and after are the clock of Linger: time.Since and a timer,
	// replaced by tests.
	since func(time.Time) time.Duration
	after func(time.Duration) (<-chan time.Time, func())

	queue chan *pending[Req, Res]
	// quit is closed when Close begins, so submitters blocked on a full
	// queue give up instead of holding Close back.
	quit chan struct{}
	// mu guards closed against sends on queue, which Close closes:
	// submitters hold it shared while they send.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	done      chan struct{} // closed when the committer has answered everything
}

// Call is a submitted request; Wait returns its result.
type Call[Res any] struct {
	done chan struct{} // closed once res and err are set
	res  Res
	err  error
}

// pending is a queued request and the context of its submitter.
type pending[Req, Res any] struct {
	ctx  context.Context
	req  Req
	call *Call[Res]
}

// New starts a Batcher that commits with commit.
func New[Req, Res any](commit CommitFunc[Req, Res], opt Options) *Batcher[Req, Res] {
	b := newBatcher(commit, opt)
	go b.run()
	return b
}

func newBatcher[Req, Res any](commit CommitFunc[Req, Res], opt Options) *Batcher[Req, Res] {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	b := &Batcher[Req, Res]{
		commit:   commit,
		maxBatch: opt.MaxBatch,
		linger:   max(opt.Linger, 0),
		since:    time.Since,
		queue:    make(chan *pending[Req, Res], max(opt.Queue, 0)),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	// One timer for every wait of the committer, which is its only user.
	var t *time.Timer
	b.after = func(d time.Duration) (<-chan time.Time, func()) {
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		return t.C, func() { t.Stop() }
	}
	return b
}

// Submit queues req for a commit. It blocks while the queue is full, and
// fails with ctx's error when ctx ends first, or ErrClosed once Close has
// begun. A request whose ctx ends while it waits in the queue is left out
// of its batch and answered with ctx's error; once its batch has begun,
// the commit decides.
func (b *Batcher[Req, Res]) Submit(ctx context.Context, req Req) (*Call[Res], error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &pending[Req, Res]{ctx: ctx, req: req, call: &Call[Res]{done: make(chan struct{})}}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	select {
	case b.queue <- p:
		return p.call, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		return nil, ErrClosed
	}
}

// Do submits req and waits for its result while ctx lasts. When ctx ends
// after the request was queued, Do returns ctx's error although the
// request may still be committed; a caller that must not mistake a
// committed request for a lost one waits with Submit and Call.Wait under
// a context that does not end.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	c, err := b.Submit(ctx, req)
	if err != nil {
		var zero Res
		return zero, err
	}
	return c.Wait(ctx)
}

// Wait returns the result of c's batch, or ctx's error if ctx ends first.
// Every submitted request is answered, Close included, so a Wait under a
// context that does not end returns once the commit does.
func (c *Call[Res]) Wait(ctx context.Context) (Res, error) {
	select {
	case <-c.done:
		return c.res, c.err
	default:
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// Pending is how many requests wait in the queue right now.
func (b *Batcher[Req, Res]) Pending() int { return len(b.queue) }

// Close stops taking requests (Submit fails with ErrClosed, also for
// submitters blocked on a full queue), commits those already queued, and
// returns when every one of them is answered. It is safe to call more
// than once.
func (b *Batcher[Req, Res]) Close() {
	b.closeOnce.Do(func() {
		close(b.quit)
		b.mu.Lock()
		b.closed = true
		close(b.queue)
		b.mu.Unlock()
	})
	<-b.done
}

// run is the committer. It blocks for the first request, then takes
// whatever else is already queued, up to maxBatch, without waiting for
// more (but see Linger below): at low load a batch is one request and
// costs no added latency; under load the requests that queued up during
// one commit form the next batch.
//
// Before it takes the rest it yields the processor once
// (runtime.Gosched). This is not a wait for more: with nothing else
// runnable Gosched returns at once. Under load the submitters are often
// runnable a few instructions from Submit (their request read and
// checked), and every batch costs a commit (an fsync) on top of its
// requests: letting them queue first took the listener's batches at 32
// connections from about 7–10 events to about 12, and its CPU per request
// down by about a tenth.
//
// With Linger, a batch that is smaller than the load predicts waits for
// the rest. The prediction is what the previous commit carried plus what
// queued while it ran: the requests in flight at its end. Without it, a
// steady load of c keep-alive clients splits into two cohorts that take
// turns: the requests that queued during a commit form the next batch at
// once, and the clients just answered come back a round trip later, to
// queue behind a whole commit (the listener at c=32: about 14 events per
// commit, half the clients). When a commit costs an fsync, waiting that
// round trip instead merges the cohorts, and one commit answers them all.
// The wait is bounded by half the previous commit (so by Linger at most
// half a commit more per request), ends as soon as the predicted number
// is there, and never happens when idle: a lone request predicts one.
func (b *Batcher[Req, Res]) run() {
	defer close(b.done)
	batch := make([]*pending[Req, Res], 0, b.maxBatch)
	reqs := make([]Req, 0, b.maxBatch)
	var (
		expect int           // requests in flight at the end of the last commit
		took   time.Duration // how long the last commit ran
	)
	for p := range b.queue {
		batch = append(batch[:0], p)
		runtime.Gosched()
		batch = b.drain(batch)
		if want := min(expect, b.maxBatch); len(batch) < want {
			batch = b.fill(batch, want, min(b.linger, took/2))
		}
		start := time.Now()
		reqs = b.commitBatch(batch, reqs[:0])
		took = b.since(start)
		expect = len(batch) + len(b.queue)
		// Let finished requests (and what they hold) be collected.
		clear(batch)
		clear(reqs)
	}
}

// drain appends to batch what is queued now, up to maxBatch.
func (b *Batcher[Req, Res]) drain(batch []*pending[Req, Res]) []*pending[Req, Res] {
	for len(batch) < b.maxBatch {
		select {
		case q, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// fill appends queued requests to batch until it holds want of them, the
// queue is closed, or wait has passed.
func (b *Batcher[Req, Res]) fill(batch []*pending[Req, Res], want int, wait time.Duration) []*pending[Req, Res] {
	if wait <= 0 {
		return batch
	}
	expired, stop := b.after(wait)
	defer stop()
	for len(batch) < want {
		select {
		case q, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, q)
		case <-expired:
			return batch
		}
	}
	return batch
}

// commitBatch commits the live requests of batch and answers every one.
// reqs is scratch space, returned for reuse.
func (b *Batcher[Req, Res]) commitBatch(batch []*pending[Req, Res], reqs []Req) []Req {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			// Its submitter gave up while it queued: committing it now
			// would do work nobody waits for.
			var zero Res
			p.call.finish(zero, err)
			continue
		}
		live = append(live, p)
		reqs = append(reqs, p.req)
	}
	if len(live) == 0 {
		return reqs
	}
	res, err := b.commit(reqs)
	if err == nil && len(res) != len(reqs) {
		err = fmt.Errorf("group commit: %d results for %d requests", len(res), len(reqs))
	}
	for i, p := range live {
		if err != nil {
			var zero Res
			p.call.finish(zero, err)
			continue
		}
		p.call.finish(res[i], nil)
	}
	return reqs
}

func (c *Call[Res]) finish(res Res, err error) {
	c.res, c.err = res, err
	close(c.done)
}
