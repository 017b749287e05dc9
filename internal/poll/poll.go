// Package poll is the tests' one way to wait for something that happens on
// another goroutine or in another process: a deadline poll. It exists so
// that no test sleeps a guessed duration and hopes; a wait that succeeds
// returns as soon as its condition holds.
package poll

import (
	"testing"
	"time"
)

// Defaults of Until.
const (
	// DefaultTimeout bounds a wait: generous, because a machine running
	// the whole suite (or the race detector) can be slow, and a wait that
	// succeeds returns at once anyway.
	DefaultTimeout = 10 * time.Second

	// Interval is the pause between two checks: short enough to add no
	// noticeable latency, long enough not to spin a core.
	Interval = 2 * time.Millisecond
)

// Until checks cond every Interval until it holds, and fails tb with
// "timed out ... waiting for <what>" after DefaultTimeout. Like every
// FailNow, it must be called from the test's own goroutine.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	UntilWithin(tb, DefaultTimeout, what, cond)
}

// UntilWithin is Until with its own deadline, for the few waits that are
// legitimately long (a chaos run) or that must prove something happens
// quickly.
func UntilWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if cond() {
		return
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			// One last look: the condition may have come true while the
			// deadline fired.
			if cond() {
				return
			}
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
			return
		case <-tick.C:
			if cond() {
				return
			}
		}
	}
}
