package crm

import (
	"fmt"
	"time"
)

// MaxRetryAfter caps a Retry-After the CRM asks for, so that a broken
// header ("retry in a week") cannot park a lead for good. The delay chosen
// and the header's value are both recorded on the attempt.
const MaxRetryAfter = time.Hour

// RetryPolicy decides, after each attempt, whether to try again and when.
type RetryPolicy struct {
	MaxAttempts      int           // attempts in all, the first included
	BaseDelay        time.Duration // backoff unit: attempt n waits up to BaseDelay·2ⁿ
	MaxDelay         time.Duration // cap on backoff
	RateLimitedDelay time.Duration // a 429 without a usable Retry-After
}

// DefaultRetryPolicy is the seed's schedule (2ⁿ s backoff, 30 s after a
// 429) with more patience than its three attempts, since the outbox
// survives restarts.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:      8,
		BaseDelay:        time.Second,
		MaxDelay:         5 * time.Minute,
		RateLimitedDelay: 30 * time.Second,
	}
}

// Validate reports a policy that cannot work.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("retry.max_attempts must be at least 1, not %d", p.MaxAttempts)
	case p.BaseDelay <= 0:
		return fmt.Errorf("retry.base_delay must be positive, not %s", p.BaseDelay)
	case p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("retry.max_delay (%s) must be at least retry.base_delay (%s)", p.MaxDelay, p.BaseDelay)
	case p.RateLimitedDelay <= 0:
		return fmt.Errorf("retry.rate_limited_delay must be positive, not %s", p.RateLimitedDelay)
	}
	return nil
}

// Decision is what happens to a lead after an attempt.
type Decision struct {
	State State         // a final state, or StateRetryWait
	Delay time.Duration // when State is StateRetryWait
	Why   string        // why this state and delay, for the operator
}

// Decide is the retry policy as a pure function: given the number of the
// attempt just made (1 for the first), its outcome, and a jitter draw in
// [0, 1), it returns the lead's next state and, for a retry, the delay.
// Backoff is "full jitter": a uniform draw below min(MaxDelay,
// BaseDelay·2^attempt), which spreads a burst of failures out instead of
// retrying them in lockstep.
func (p RetryPolicy) Decide(attempt int, o Outcome, jitter float64) Decision {
	if !o.Retryable() {
		return Decision{State: o.State, Why: finalWhy(o)}
	}
	if attempt >= p.MaxAttempts {
		return Decision{
			State: StateFailed,
			Why:   fmt.Sprintf("gave up after %d attempts; last: %s", attempt, o.Reason),
		}
	}
	if o.HasRetryAfter {
		// A 429's Retry-After is the CRM's rate limit and is honoured (up
		// to MaxRetryAfter); on a 5xx it is a hint, kept within the
		// backoff's own cap, max_delay (docs/protocol.md §1).
		limit := MaxRetryAfter
		if !o.RateLimited {
			limit = p.MaxDelay
		}
		d := min(o.RetryAfter, limit)
		why := fmt.Sprintf("Retry-After %s", o.RetryAfter)
		if d != o.RetryAfter {
			why += fmt.Sprintf(", capped at %s", d)
		}
		return Decision{State: StateRetryWait, Delay: d, Why: why}
	}
	if o.RateLimited {
		return Decision{
			State: StateRetryWait,
			Delay: p.RateLimitedDelay,
			Why:   fmt.Sprintf("429 without Retry-After: rate_limited_delay %s", p.RateLimitedDelay),
		}
	}
	ceiling := p.backoffCeiling(attempt)
	jitter = min(max(jitter, 0), 1)
	d := time.Duration(jitter * float64(ceiling)).Round(time.Millisecond)
	return Decision{
		State: StateRetryWait,
		Delay: d,
		Why:   fmt.Sprintf("backoff: attempt %d, full jitter under %s", attempt, ceiling),
	}
}

// backoffCeiling is min(MaxDelay, BaseDelay·2^attempt), without overflow.
func (p RetryPolicy) backoffCeiling(attempt int) time.Duration {
	c := p.BaseDelay
	for i := 0; i < attempt && c < p.MaxDelay; i++ {
		c *= 2
	}
	return min(c, p.MaxDelay)
}

func finalWhy(o Outcome) string {
	s := string(o.State)
	if o.HTTPStatus != 0 {
		s = fmt.Sprintf("HTTP %d: %s", o.HTTPStatus, s)
	}
	if o.Replay {
		s += " (replayed by the CRM)"
	}
	return s
}
