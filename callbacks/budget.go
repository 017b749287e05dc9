package callbacks

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// bodyBudget bounds the bytes of request bodies being read at once. A
// request reserves its declared length before reading.
//
// It is two pools, because a semaphore.Weighted is first come, first
// served: one waiter for a megabyte holds back every smaller waiter
// behind it. Clients that announce large bodies and stall would so starve
// the few hundred bytes of a real callback; with its own pool for small
// bodies (up to smallBody) a callback waits only behind other small
// bodies.
type bodyBudget struct {
	small, large *semaphore.Weighted
	wait         time.Duration
	reserved     atomic.Int64 // for Stats
}

// smallBody is the largest reservation taken from the small-body pool:
// far above any real callback.
const smallBody = 64 << 10

// newBodyBudget splits total into a small-body pool of a quarter (at least
// smallBody) and a large-body pool of the rest (at least maxBody, so a
// body of the largest size always fits).
func newBodyBudget(total, maxBody int64, wait time.Duration) *bodyBudget {
	small := max(total/4, smallBody)
	large := max(total-small, maxBody)
	return &bodyBudget{small: semaphore.NewWeighted(small), large: semaphore.NewWeighted(large), wait: wait}
}

// reservation is one request's share of a bodyBudget.
type reservation struct {
	b   *bodyBudget
	sem *semaphore.Weighted
	n   int64
}

// acquire reserves n bytes, waiting at most the budget's wait (less when
// ctx ends first). It reports false when no room was found in time.
func (b *bodyBudget) acquire(ctx context.Context, n int64) (reservation, bool) {
	sem := b.small
	if n > smallBody {
		sem = b.large
	}
	if n == 0 || sem.TryAcquire(n) {
		b.reserved.Add(n)
		return reservation{b, sem, n}, true
	}
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := sem.Acquire(ctx, n); err != nil {
		return reservation{}, false
	}
	b.reserved.Add(n)
	return reservation{b, sem, n}, true
}

// shrink gives back what is reserved beyond n bytes.
func (r *reservation) shrink(n int64) {
	if n < r.n {
		r.sem.Release(r.n - n)
		r.b.reserved.Add(n - r.n)
		r.n = n
	}
}

// release gives back the whole reservation.
func (r *reservation) release() {
	if r.n > 0 {
		r.sem.Release(r.n)
		r.b.reserved.Add(-r.n)
		r.n = 0
	}
}
