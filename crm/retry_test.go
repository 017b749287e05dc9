package crm

import (
	"strings"
	"testing"
	"time"
)

func TestRetryPolicyDecide(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 10 * time.Second, RateLimitedDelay: 30 * time.Second}
	retry := Outcome{State: StateRetryWait, HTTPStatus: 503, Reason: "HTTP 503 unavailable"}
	tests := []struct {
		name    string
		attempt int
		o       Outcome
		jitter  float64
		state   State
		delay   time.Duration
		why     string
	}{
		{"AcceptedIsFinal", 1, Outcome{State: StateAccepted, HTTPStatus: 200}, 0.5, StateAccepted, 0, "HTTP 200: accepted"},
		{"DuplicateIsFinal", 1, Outcome{State: StateDuplicate, HTTPStatus: 409}, 0.5, StateDuplicate, 0, "duplicate"},
		{"FailedIsFinal", 1, Outcome{State: StateFailed, HTTPStatus: 401}, 0.5, StateFailed, 0, "401"},
		{"FirstBackoffMax", 1, retry, 0.999999, StateRetryWait, 2 * time.Second, "full jitter under 2s"},
		{"FirstBackoffHalf", 1, retry, 0.5, StateRetryWait, time.Second, "attempt 1"},
		{"SecondBackoffHalf", 2, retry, 0.5, StateRetryWait, 2 * time.Second, "under 4s"},
		{"ThirdBackoff", 3, retry, 0.25, StateRetryWait, 2 * time.Second, "under 8s"},
		{"CappedAtMaxDelay", 4, retry, 0.5, StateRetryWait, 5 * time.Second, "under 10s"},
		{"JitterZero", 2, retry, 0, StateRetryWait, 0, "backoff"},
		{"JitterClamped", 2, retry, 7, StateRetryWait, 4 * time.Second, "backoff"},
		{"GiveUp", 5, retry, 0.5, StateFailed, 0, "gave up after 5 attempts; last: HTTP 503 unavailable"},
		{"RetryAfter", 1, Outcome{State: StateRetryWait, RateLimited: true, HasRetryAfter: true, RetryAfter: 3 * time.Second}, 0.9, StateRetryWait, 3 * time.Second, "Retry-After 3s"},
		{"RetryAfterZero", 1, Outcome{State: StateRetryWait, RateLimited: true, HasRetryAfter: true}, 0.9, StateRetryWait, 0, "Retry-After 0s"},
		{"RetryAfterOverMaxDelay", 1, Outcome{State: StateRetryWait, RateLimited: true, HasRetryAfter: true, RetryAfter: time.Minute}, 0.9, StateRetryWait, time.Minute, "Retry-After 1m0s"},
		{"RetryAfterCapped", 1, Outcome{State: StateRetryWait, RateLimited: true, HasRetryAfter: true, RetryAfter: 48 * time.Hour}, 0.9, StateRetryWait, MaxRetryAfter, "capped at 1h0m0s"},
		{"RateLimitedDefault", 2, Outcome{State: StateRetryWait, RateLimited: true}, 0.9, StateRetryWait, 30 * time.Second, "rate_limited_delay 30s"},
		{"RateLimitedGiveUp", 5, Outcome{State: StateRetryWait, RateLimited: true}, 0.9, StateFailed, 0, "gave up"},
		{"503WithLongRetryAfterCapped", 2, Outcome{State: StateRetryWait, HTTPStatus: 503, HasRetryAfter: true, RetryAfter: time.Hour}, 0.1, StateRetryWait, 10 * time.Second, "capped at 10s"},
		{"503WithRetryAfter", 2, Outcome{State: StateRetryWait, HTTPStatus: 503, HasRetryAfter: true, RetryAfter: 4 * time.Second}, 0.1, StateRetryWait, 4 * time.Second, "Retry-After 4s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.attempt, tt.o, tt.jitter)
			if d.State != tt.state || d.Delay != tt.delay || !strings.Contains(d.Why, tt.why) {
				t.Fatalf("Decide = %+v; want %s %v %q", d, tt.state, tt.delay, tt.why)
			}
		})
	}
}

func TestBackoffCeilingNoOverflow(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 1000, BaseDelay: time.Second, MaxDelay: time.Hour, RateLimitedDelay: time.Second}
	for _, n := range []int{0, 1, 11, 12, 63, 64, 500} {
		c := p.backoffCeiling(n)
		if c <= 0 || c > time.Hour {
			t.Fatalf("ceiling(%d) = %v", n, c)
		}
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	if err := DefaultRetryPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []RetryPolicy{
		{MaxAttempts: 0, BaseDelay: 1, MaxDelay: 1, RateLimitedDelay: 1},
		{MaxAttempts: 1, BaseDelay: 0, MaxDelay: 1, RateLimitedDelay: 1},
		{MaxAttempts: 1, BaseDelay: 2, MaxDelay: 1, RateLimitedDelay: 1},
		{MaxAttempts: 1, BaseDelay: 1, MaxDelay: 1, RateLimitedDelay: 0},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
