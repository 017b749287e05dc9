package callbacks

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// bodyBudget bounds the bytes of request bodies held in memory at once.
// A body's buffer grows as its bytes arrive, and every growth past
// freeBody is reserved here before it is allocated: what a client holds is
// what it has really sent (at most twice that, as buffers double), never
// what it announced. A crowd that declares large bodies and stalls holds
// nothing, so it cannot starve the callbacks that follow.
//
// It is two pools, because a semaphore.Weighted is first come, first
// served: one waiter for a megabyte holds back every smaller waiter
// behind it. Bodies declared up to smallBody draw from their own pool,
// so a callback waits only behind other small bodies.
type bodyBudget struct {
	small, large *semaphore.Weighted
	wait         time.Duration
	reserved     atomic.Int64 // for Stats
}

// smallBody is the largest declared length that draws from the
// small-body pool: far above any real callback.
const smallBody = 64 << 10

// freeBody is the first buffer of every body, taken without the budget:
// a real callback, a few hundred bytes, never waits on it. It is the size
// of the connection's own read buffer in net/http, so a connection that
// stalls costs at most twice what it costs anyway; the connection cap
// bounds how many there are.
const freeBody = 4 << 10

// newBodyBudget splits total into a small-body pool of a quarter (at least
// smallBody) and a large-body pool of the rest (at least maxBody, so a
// body of the largest size always fits).
func newBodyBudget(total, maxBody int64, wait time.Duration) *bodyBudget {
	small := max(total/4, smallBody)
	large := max(total-small, maxBody)
	return &bodyBudget{small: semaphore.NewWeighted(small), large: semaphore.NewWeighted(large), wait: wait}
}

// reservation is one body's share of a bodyBudget.
type reservation struct {
	b   *bodyBudget
	sem *semaphore.Weighted
	n   int64
}

// reserve starts the (empty) reservation of a body of length declared, or
// of unknown length when declared is negative.
func (b *bodyBudget) reserve(declared int64) reservation {
	sem := b.large
	if declared >= 0 && declared <= smallBody {
		sem = b.small
	}
	return reservation{b: b, sem: sem}
}

// grow reserves n bytes more, waiting at most the budget's wait (less when
// ctx ends first). It reports false when no room was found in time.
func (r *reservation) grow(ctx context.Context, n int64) bool {
	if n <= 0 {
		return true
	}
	if !r.sem.TryAcquire(n) {
		ctx, cancel := context.WithTimeout(ctx, r.b.wait)
		defer cancel()
		if err := r.sem.Acquire(ctx, n); err != nil {
			return false
		}
	}
	r.n += n
	r.b.reserved.Add(n)
	return true
}

// release gives back the whole reservation.
func (r *reservation) release() {
	if r.n > 0 {
		r.sem.Release(r.n)
		r.b.reserved.Add(-r.n)
		r.n = 0
	}
}
