package poll_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/internal/poll"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine (Fatalf ends it) and
// returns what was recorded.
func run(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestUntil(t *testing.T) {
	t.Run("AlreadyTrue", func(t *testing.T) {
		calls := 0
		poll.Until(t, "nothing", func() bool { calls++; return true })
		if calls != 1 {
			t.Fatalf("cond called %d times, want 1", calls)
		}
	})
	t.Run("BecomesTrue", func(t *testing.T) {
		var ready atomic.Bool
		go func() { ready.Store(true) }()
		poll.Until(t, "the flag", ready.Load)
	})
	t.Run("TimesOut", func(t *testing.T) {
		msg := run(t, func(tb testing.TB) {
			poll.UntilWithin(tb, 10*time.Millisecond, "the impossible", func() bool { return false })
		})
		if want := "timed out after 10ms waiting for the impossible"; msg != want {
			t.Fatalf("Fatalf(%q), want %q", msg, want)
		}
	})
}
