package crm

import "time"

// Clock is the time a Dispatcher reads and waits on: when leads are due,
// the pause between idle checks, the backoff after a failed claim or
// record, the rate limit's tokens. Tests give a fake one so that they can
// step the dispatcher through its waits instead of sleeping through them.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
