package forward

import "time"

// Defaults of Policy.
const (
	DefaultMaxAttempts = 12
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = 10 * time.Minute
)

// Policy decides, after an attempt that was not delivered, whether to try
// again and when. It is a pure function of its inputs so that the
// schedule is tested without a clock.
type Policy struct {
	MaxAttempts int           // attempts in all, the first included
	BaseDelay   time.Duration // the wait after the first failure
	MaxDelay    time.Duration // the cap of the doubling
}

// withDefaults fills the zero fields.
func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = max(DefaultMaxDelay, p.BaseDelay)
	}
	return p
}

// Next is the decision after the made-th failed attempt (1 for the
// first): final when made reached MaxAttempts, else the delay, doubling
// from BaseDelay up to MaxDelay, then drawn in its upper half by jitter
// (a draw in [0,1)). Half, not all of it: an app that is down for everyone
// should not be hit again at once by the deliveries whose draw was near
// 0, and the spread still keeps a queue of failures from retrying in one
// wave.
func (p Policy) Next(made int, jitter float64) (final bool, delay time.Duration) {
	p = p.withDefaults()
	if made >= p.MaxAttempts {
		return true, 0
	}
	d := p.BaseDelay
	for i := 1; i < made && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	jitter = min(max(jitter, 0), 1)
	return false, d/2 + time.Duration(jitter*float64(d/2))
}
