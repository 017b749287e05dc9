package forward

import (
	"sync"
	"time"
)

// busyWindow is how far back RateAbove looks: long enough to smooth the
// listener's group commits, short enough that the Forwarder is back at
// full speed a moment after a burst ends.
const busyWindow = 200 * time.Millisecond

// burstWindow is how soon RateAbove sees a burst begin: a quarter of
// busyWindow, over which the count must grow at twice the rate. Until a
// burst is seen the Forwarder claims at full speed, every claim a write
// transaction the listener waits behind; at busyWindow alone the first
// 200–400 ms of every burst went so (the listener's rate with forwarding
// on was 0.75–0.94 of its rate without, over one-second bursts). Twice
// the rate keeps steady traffic near the limit, whose count over so
// short a window varies by half, from reading as a burst.
const burstWindow = busyWindow / 4

// DefaultBusyRate is the listener's rate, in callbacks per second, above
// which main tells the Forwarder to yield (Config.Busy): well above a
// campaign's steady traffic, well below what the listener takes in a
// burst (a CRM replaying a backlog).
const DefaultBusyRate = 200

// RateAbove returns a Config.Busy that reports whether count (a counter
// that only grows, such as the listener's verified callbacks) grew faster
// than perSecond over the last window, or at twice that over the last
// burstWindow, and once it did, until it grows slower than a quarter of
// perSecond over a window. It is safe for concurrent use; a call reads
// count at most once, and not within burstWindow of the last sample.
func RateAbove(count func() uint64, perSecond float64, now func() time.Time) func() bool {
	if now == nil {
		now = time.Now
	}
	var (
		mu   sync.Mutex
		at   time.Time
		last uint64
		busy bool
	)
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		t := now()
		d := t.Sub(at)
		switch {
		case at.IsZero():
			at, last = t, count()
		case d >= busyWindow:
			n := count()
			// Hysteresis: a listener slowed by the Forwarder's own
			// work must not read as the burst having ended.
			limit := perSecond
			if busy {
				limit /= 4
			}
			busy = float64(n-last) > limit*d.Seconds()
			at, last = t, n
		case !busy && d >= burstWindow:
			// The sample stays: short of a burst, the full window
			// decides.
			if n := count(); float64(n-last) > 2*perSecond*d.Seconds() {
				busy = true
				at, last = t, n
			}
		}
		return busy
	}
}
