package forward

import (
	"sync"
	"time"
)

// busyWindow is how far back RateAbove looks: long enough to smooth the
// listener's group commits, short enough that the Forwarder is back at
// full speed a moment after a burst ends.
const busyWindow = 200 * time.Millisecond

// DefaultBusyRate is the listener's rate, in callbacks per second, above
// which main tells the Forwarder to yield (Config.Busy): well above a
// campaign's steady traffic, well below what the listener takes in a
// burst (a CRM replaying a backlog).
const DefaultBusyRate = 200

// RateAbove returns a Config.Busy that reports whether count (a counter
// that only grows, such as the listener's verified callbacks) grew faster
// than perSecond over the last window, and once it did, until it grows
// slower than a quarter of that. It is safe for concurrent use and
// costs a call of count per window.
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
		if d := t.Sub(at); d >= busyWindow {
			n := count()
			if !at.IsZero() {
				// Hysteresis: a listener slowed by the Forwarder's own
				// work must not read as the burst having ended.
				limit := perSecond
				if busy {
					limit /= 4
				}
				busy = float64(n-last) > limit*d.Seconds()
			}
			at, last = t, n
		}
		return busy
	}
}
