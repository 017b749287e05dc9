package forward

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

func TestRateAbove(t *testing.T) {
	var n uint64
	now := time.Unix(1_800_000_000, 0)
	busy := RateAbove(func() uint64 { return n }, 100, func() time.Time { return now })
	step := func(added uint64) bool {
		n += added
		now = now.Add(busyWindow)
		return busy()
	}
	if busy() {
		t.Fatal("busy before any sample")
	}
	for i, tt := range []struct {
		added uint64 // over one window of 200 ms
		want  bool
	}{
		{10, false}, // 50/s
		{30, true},  // 150/s: a burst
		{10, true},  // 50/s: above a quarter, still the burst
		{4, false},  // 20/s: over
		{19, false}, // 95/s
	} {
		if got := step(tt.added); got != tt.want {
			t.Fatalf("window %d (+%d): busy %v, want %v", i, tt.added, got, tt.want)
		}
	}
	// Within a window the answer is the last sample's, with no new read.
	n += 1000
	if busy() {
		t.Fatal("re-sampled within the window")
	}
}

// TestRateAboveSeesBurstEarly: twice the rate over burstWindow is a
// burst at once; less waits for the full window, over the same sample.
func TestRateAboveSeesBurstEarly(t *testing.T) {
	var n uint64
	now := time.Unix(1_800_000_000, 0)
	busy := RateAbove(func() uint64 { return n }, 100, func() time.Time { return now })
	busy() // the first sample
	// 220/s over burstWindow
	n, now = 11, now.Add(burstWindow)
	if !busy() {
		t.Fatal("twice the rate over burstWindow is not a burst")
	}

	n, now = 0, time.Unix(1_900_000_000, 0)
	busy = RateAbove(func() uint64 { return n }, 100, func() time.Time { return now })
	busy()
	// 180/s over burstWindow: above the rate, not twice
	n, now = 9, now.Add(burstWindow)
	if busy() {
		t.Fatal("busy over burstWindow below twice the rate")
	}
	// 120/s over the window
	n, now = 24, now.Add(busyWindow-burstWindow)
	if !busy() {
		t.Fatal("the full window, from the first sample, did not see 120/s")
	}
}

// TestBusyYields: while Busy, the Forwarder still makes its first claim
// and then waits for the gap; once Busy ends it forwards the rest.
func TestBusyYields(t *testing.T) {
	_, srv := newTestApp(t, nil)
	q := newFakeQueue()
	q.add(0, `{"n":1}`)
	var busy atomic.Bool
	busy.Store(true)
	startForwarder(t, q, Config{URL: srv.URL, Busy: busy.Load, BusyGap: time.Hour, IdleCheck: 5 * time.Millisecond})
	poll.Until(t, "the first delivery", func() bool { return q.count(crm.DeliveryDelivered) == 1 })
	q.add(0, `{"n":2}`)
	q.mu.Lock()
	claims := q.claims
	q.mu.Unlock()
	busy.Store(false)
	poll.Until(t, "the second delivery after the burst", func() bool { return q.count(crm.DeliveryDelivered) == 2 })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.claims <= claims {
		t.Fatal("delivered without a claim")
	}
}

// TestBusyYieldsOnlyForABurst: a listener that stays busy past BusyMax is
// steady traffic, not a burst; the Forwarder claims again, or the queue
// would only grow.
func TestBusyYieldsOnlyForABurst(t *testing.T) {
	_, srv := newTestApp(t, nil)
	q := newFakeQueue()
	q.add(0, `{"n":1}`)
	startForwarder(t, q, Config{URL: srv.URL, Busy: func() bool { return true }, BusyGap: time.Hour,
		BusyMax: 20 * time.Millisecond, IdleCheck: 5 * time.Millisecond})
	poll.Until(t, "the first delivery", func() bool { return q.count(crm.DeliveryDelivered) == 1 })
	for n := 2; n <= 4; n++ {
		q.add(0, fmt.Sprintf(`{"n":%d}`, n))
		// A BusyGap of an hour: only the end of yielding can send these.
		poll.Until(t, fmt.Sprintf("delivery %d while the listener stays busy", n), func() bool {
			return q.count(crm.DeliveryDelivered) == n
		})
	}
}
