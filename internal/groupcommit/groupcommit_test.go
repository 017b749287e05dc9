package groupcommit_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// gatedCommit is a CommitFunc that records each batch and, while gated,
// blocks until the test lets the batch through: the way to hold the
// committer busy while requests pile up.
type gatedCommit struct {
	mu      sync.Mutex
	batches [][]int
	gate    chan struct{} // nil: no gate
	started chan struct{} // receives once per batch, before the gate
	fail    func(batch []int) error
}

func (g *gatedCommit) commit(batch []int) ([]int, error) {
	g.mu.Lock()
	g.batches = append(g.batches, slices.Clone(batch))
	g.mu.Unlock()
	if g.started != nil {
		g.started <- struct{}{}
	}
	if g.gate != nil {
		<-g.gate
	}
	if g.fail != nil {
		if err := g.fail(batch); err != nil {
			return nil, err
		}
	}
	out := make([]int, len(batch))
	for i, v := range batch {
		out[i] = v * 10
	}
	return out, nil
}

func (g *gatedCommit) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n []int
	for _, b := range g.batches {
		n = append(n, len(b))
	}
	return n
}

// submitAll submits vs in order, each from its own goroutine, and returns
// a channel of their results.
func submitAll(t *testing.T, b *groupcommit.Batcher[int, int], vs ...int) <-chan result {
	t.Helper()
	out := make(chan result, len(vs))
	for _, v := range vs {
		go func() {
			res, err := b.Do(context.Background(), v)
			out <- result{v, res, err}
		}()
	}
	return out
}

type result struct {
	req, res int
	err      error
}

func TestIdleRequestCommitsAlone(t *testing.T) {
	g := &gatedCommit{}
	b := groupcommit.New(g.commit, groupcommit.Options{})
	defer b.Close()
	for i := range 3 {
		res, err := b.Do(context.Background(), i)
		if err != nil || res != i*10 {
			t.Fatalf("Do(%d) = %d, %v", i, res, err)
		}
	}
	if got := g.sizes(); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("batch sizes %v, want one commit per request when idle", got)
	}
}

// TestBatchesWhileBusy: the requests that queue during one commit form the
// next batches, at most MaxBatch each, and each caller gets its own result.
func TestBatchesWhileBusy(t *testing.T) {
	g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	b := groupcommit.New(g.commit, groupcommit.Options{MaxBatch: 4, Queue: 16})
	defer b.Close()

	first := submitAll(t, b, 0)
	<-g.started // the committer is busy with request 0
	rest := submitAll(t, b, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	poll.Until(t, "nine requests queued", func() bool { return b.Pending() == 9 })
	close(g.gate)

	got := map[int]int{}
	for _, ch := range []<-chan result{first, rest} {
		for range cap(ch) {
			r := <-ch
			if r.err != nil {
				t.Fatalf("request %d: %v", r.req, r.err)
			}
			got[r.req] = r.res
		}
	}
	for v := range 10 {
		if got[v] != v*10 {
			t.Errorf("request %d got %d, want its own result %d", v, got[v], v*10)
		}
	}
	if sizes := g.sizes(); !slices.Equal(sizes, []int{1, 4, 4, 1}) {
		t.Fatalf("batch sizes %v, want [1 4 4 1]", sizes)
	}
}

// TestUnbufferedBatches: with no queue, submitters wait in Submit while the
// committer is busy, and are still taken together when it is free.
func TestUnbufferedBatches(t *testing.T) {
	g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	b := groupcommit.New(g.commit, groupcommit.Options{})
	defer b.Close()
	first := submitAll(t, b, 0)
	<-g.started
	rest := submitAll(t, b, 1, 2, 3, 4, 5, 6, 7, 8)
	// Nothing shows that a sender is blocked on an unbuffered channel, so
	// let every batch through and check the total instead of the shape.
	close(g.gate)
	for _, ch := range []<-chan result{first, rest} {
		for range cap(ch) {
			if r := <-ch; r.err != nil || r.res != r.req*10 {
				t.Fatalf("request %d: %d, %v", r.req, r.res, r.err)
			}
		}
	}
	total := 0
	for _, n := range g.sizes() {
		total += n
	}
	if total != 9 {
		t.Fatalf("batch sizes %v, want 9 requests in all", g.sizes())
	}
}

func TestErrorFailsItsBatchOnly(t *testing.T) {
	boom := errors.New("disk on fire")
	g := &gatedCommit{
		gate: make(chan struct{}), started: make(chan struct{}, 16),
		fail: func(batch []int) error {
			if slices.Contains(batch, 2) {
				return boom
			}
			return nil
		},
	}
	b := groupcommit.New(g.commit, groupcommit.Options{Queue: 8})
	defer b.Close()
	first := submitAll(t, b, 1)
	<-g.started
	failing := submitAll(t, b, 2, 3)
	poll.Until(t, "two requests queued", func() bool { return b.Pending() == 2 })
	close(g.gate)
	if r := <-first; r.err != nil || r.res != 10 {
		t.Fatalf("first batch: %+v", r)
	}
	for range 2 {
		if r := <-failing; !errors.Is(r.err, boom) {
			t.Fatalf("request %d of the failed batch: %+v, want %v", r.req, r, boom)
		}
	}
	if res, err := b.Do(context.Background(), 4); err != nil || res != 40 {
		t.Fatalf("after a failed batch: %d, %v", res, err)
	}
}

func TestWrongResultCountIsAnError(t *testing.T) {
	b := groupcommit.New(func(batch []int) ([]int, error) { return nil, nil }, groupcommit.Options{})
	defer b.Close()
	if _, err := b.Do(context.Background(), 1); err == nil {
		t.Fatal("a commit answering no results for one request was taken as success")
	}
}

func TestContext(t *testing.T) {
	t.Run("EndedBeforeSubmit", func(t *testing.T) {
		g := &gatedCommit{}
		b := groupcommit.New(g.commit, groupcommit.Options{Queue: 1})
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.Submit(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Submit = %v, want context.Canceled", err)
		}
		if n := len(g.sizes()); n != 0 {
			t.Fatalf("%d commits for a request never queued", n)
		}
	})
	t.Run("EndedWhileQueued", func(t *testing.T) {
		g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 4)}
		b := groupcommit.New(g.commit, groupcommit.Options{Queue: 4})
		defer b.Close()
		first := submitAll(t, b, 1)
		<-g.started
		ctx, cancel := context.WithCancel(context.Background())
		call, err := b.Submit(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		close(g.gate)
		<-first
		if _, err := call.Wait(context.Background()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if got := g.sizes(); !slices.Equal(got, []int{1}) {
			t.Fatalf("batch sizes %v: the abandoned request was committed", got)
		}
	})
	t.Run("WaitGivesUpButCallCompletes", func(t *testing.T) {
		g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 1)}
		b := groupcommit.New(g.commit, groupcommit.Options{})
		defer b.Close()
		call, err := b.Submit(context.Background(), 7)
		if err != nil {
			t.Fatal(err)
		}
		<-g.started
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := call.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		close(g.gate)
		if res, err := call.Wait(context.Background()); err != nil || res != 70 {
			t.Fatalf("Wait after the commit = %d, %v", res, err)
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("FinishesQueuedFailsLater", func(t *testing.T) {
		g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 8)}
		b := groupcommit.New(g.commit, groupcommit.Options{Queue: 2})
		first := submitAll(t, b, 1)
		<-g.started
		queued := submitAll(t, b, 2, 3)
		poll.Until(t, "two requests queued", func() bool { return b.Pending() == 2 })
		// The queue is full: this submitter blocks until Close turns it away.
		blocked := submitAll(t, b, 4)

		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		if r := <-blocked; !errors.Is(r.err, groupcommit.ErrClosed) {
			t.Fatalf("submitter blocked on a full queue: %+v, want ErrClosed", r)
		}
		select {
		case <-closed:
			t.Fatal("Close returned before the queued requests were committed")
		default:
		}
		close(g.gate)
		<-closed
		for _, ch := range []<-chan result{first, queued} {
			for range cap(ch) {
				if r := <-ch; r.err != nil || r.res != r.req*10 {
					t.Fatalf("request %d queued before Close: %d, %v", r.req, r.res, r.err)
				}
			}
		}
		if _, err := b.Submit(context.Background(), 5); !errors.Is(err, groupcommit.ErrClosed) {
			t.Fatalf("Submit after Close = %v, want ErrClosed", err)
		}
		b.Close() // idempotent
	})
	t.Run("ConcurrentSubmitters", func(t *testing.T) {
		// Close racing many submitters: every request is either committed
		// with its own result or refused with ErrClosed; none is lost.
		g := &gatedCommit{}
		b := groupcommit.New(g.commit, groupcommit.Options{MaxBatch: 8, Queue: 4})
		const n = 200
		results := submitAll(t, b, func() []int {
			vs := make([]int, n)
			for i := range vs {
				vs[i] = i
			}
			return vs
		}()...)
		b.Close()
		committed := 0
		for range n {
			r := <-results
			switch {
			case r.err == nil && r.res == r.req*10:
				committed++
			case errors.Is(r.err, groupcommit.ErrClosed):
			default:
				t.Fatalf("request %d: %d, %v", r.req, r.res, r.err)
			}
		}
		total := 0
		for _, s := range g.sizes() {
			total += s
		}
		if total != committed {
			t.Fatalf("%d requests committed, %d answered as committed", total, committed)
		}
		t.Logf("%d of %d committed before Close", committed, n)
	})
}

// lingerClock is the clock of a Batcher with Linger under test: every
// commit takes took, and a wait lasts until the test sends on expire. The
// waits asked for arrive on asked.
type lingerClock struct {
	took   time.Duration
	asked  chan time.Duration
	expire chan time.Time
}

func newLingerClock(took time.Duration) *lingerClock {
	return &lingerClock{took: took, asked: make(chan time.Duration, 16), expire: make(chan time.Time, 1)}
}

func (c *lingerClock) batcher(g *gatedCommit, opt groupcommit.Options) *groupcommit.Batcher[int, int] {
	return groupcommit.NewWithClock(g.commit, opt,
		func(time.Time) time.Duration { return c.took },
		func(d time.Duration) (<-chan time.Time, func()) {
			c.asked <- d
			return c.expire, func() {}
		})
}

// lingerSetup holds request 0's commit while 1, 2 and 3 queue, then lets
// it finish: four requests were in flight at its end, so the next batch,
// three queued ones, waits for a fourth.
func lingerSetup(t *testing.T, c *lingerClock) (*gatedCommit, *groupcommit.Batcher[int, int], []<-chan result) {
	t.Helper()
	g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	b := c.batcher(g, groupcommit.Options{MaxBatch: 8, Queue: 8, Linger: time.Hour})
	first := submitAll(t, b, 0)
	<-g.started
	queued := submitAll(t, b, 1, 2, 3)
	poll.Until(t, "three requests queued", func() bool { return b.Pending() == 3 })
	g.gate <- struct{}{}
	select {
	case d := <-c.asked:
		if d != c.took/2 {
			t.Fatalf("the batch waits up to %v, want half the last commit (%v)", d, c.took/2)
		}
	case <-g.started:
		t.Fatalf("batch sizes %v: the short batch committed without waiting", g.sizes())
	}
	return g, b, []<-chan result{first, queued}
}

func checkResults(t *testing.T, chans ...<-chan result) {
	t.Helper()
	for _, ch := range chans {
		for range cap(ch) {
			if r := <-ch; r.err != nil || r.res != r.req*10 {
				t.Fatalf("request %d: %d, %v", r.req, r.res, r.err)
			}
		}
	}
}

// TestLingerMergesCohorts: with Linger, a batch smaller than the requests
// in flight at the end of the last commit waits for the rest, and commits
// as soon as they are there (the wait never expires here).
func TestLingerMergesCohorts(t *testing.T) {
	c := newLingerClock(10 * time.Millisecond)
	g, b, chans := lingerSetup(t, c)
	defer b.Close()
	late := submitAll(t, b, 4)
	<-g.started
	close(g.gate)
	checkResults(t, append(chans, late)...)
	if got := g.sizes(); !slices.Equal(got, []int{1, 4}) {
		t.Fatalf("batch sizes %v, want [1 4]: the late request joins the waiting batch", got)
	}
}

// TestLingerEndsAtDeadline: when the wait expires, the batch commits what
// it has.
func TestLingerEndsAtDeadline(t *testing.T) {
	c := newLingerClock(10 * time.Millisecond)
	g, b, chans := lingerSetup(t, c)
	defer b.Close()
	c.expire <- time.Time{}
	<-g.started
	close(g.gate)
	checkResults(t, chans...)
	if got := g.sizes(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("batch sizes %v, want [1 3]", got)
	}
}

// TestLingerCapped: the wait is at most Options.Linger, however long the
// last commit took.
func TestLingerCapped(t *testing.T) {
	c := newLingerClock(time.Hour)
	g := &gatedCommit{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	b := c.batcher(g, groupcommit.Options{MaxBatch: 8, Queue: 8, Linger: 3 * time.Millisecond})
	defer b.Close()
	first := submitAll(t, b, 0)
	<-g.started
	queued := submitAll(t, b, 1, 2)
	poll.Until(t, "two requests queued", func() bool { return b.Pending() == 2 })
	g.gate <- struct{}{}
	if d := <-c.asked; d != 3*time.Millisecond {
		t.Fatalf("the batch waits up to %v, want Linger (3ms)", d)
	}
	c.expire <- time.Time{}
	close(g.gate)
	checkResults(t, first, queued)
}

// TestLingerNeverWhenIdle: requests arriving one at a time are committed
// alone, at once: a lone request predicts no other.
func TestLingerNeverWhenIdle(t *testing.T) {
	c := newLingerClock(time.Hour)
	g := &gatedCommit{}
	b := c.batcher(g, groupcommit.Options{Linger: time.Hour})
	defer b.Close()
	for i := range 3 {
		if res, err := b.Do(context.Background(), i); err != nil || res != i*10 {
			t.Fatalf("Do(%d) = %d, %v", i, res, err)
		}
	}
	select {
	case d := <-c.asked:
		t.Fatalf("an idle batcher waited (up to %v) for more", d)
	default:
	}
	if got := g.sizes(); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("batch sizes %v, want [1 1 1]", got)
	}
}

// TestLingerCloseEndsWait: Close during a wait commits the waiting batch
// at once.
func TestLingerCloseEndsWait(t *testing.T) {
	c := newLingerClock(10 * time.Millisecond)
	g, b, chans := lingerSetup(t, c)
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	<-g.started
	close(g.gate)
	<-closed
	checkResults(t, chans...)
	if got := g.sizes(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("batch sizes %v, want [1 3]", got)
	}
}
