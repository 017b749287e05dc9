package ratelog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T, interval time.Duration, level slog.Level) (*ratelog.Logger, *clock, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	c := &clock{t: time.Unix(1_790_000_000, 0)}
	return ratelog.New(slog.New(h), interval, ratelog.WithClock(c.now)), c, &buf
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestOncePerIntervalWithCount(t *testing.T) {
	l, c, buf := newTest(t, 10*time.Second, slog.LevelDebug)
	for range 1000 {
		l.Warn("queue", "refusal queue full", "queue", 256)
		c.advance(5 * time.Millisecond)
	}
	// 1000 occurrences over 5 s: the first is logged, the rest counted.
	if got := lines(buf); len(got) != 1 || got[0] != `level=WARN msg="refusal queue full" queue=256` {
		t.Fatalf("lines = %q", got)
	}
	c.advance(5 * time.Second)
	l.Warn("queue", "refusal queue full", "queue", 256)
	got := lines(buf)
	want := `level=WARN msg="refusal queue full" queue=256 suppressed=999 since_last=10s`
	if len(got) != 2 || got[1] != want {
		t.Fatalf("lines = %q, want the second to be %q", got, want)
	}
	// The count starts again after a logged line.
	c.advance(11 * time.Second)
	l.Warn("queue", "refusal queue full", "queue", 256)
	if got := lines(buf); len(got) != 3 || strings.Contains(got[2], "suppressed") {
		t.Fatalf("lines = %q: nothing was suppressed since the second", got)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l, _, buf := newTest(t, time.Minute, slog.LevelDebug)
	l.Error("disk", "commit failed", "err", "disk full")
	l.Warn("queue", "refusal queue full")
	l.Error("disk", "commit failed", "err", "disk full")
	got := lines(buf)
	if len(got) != 2 || !strings.HasPrefix(got[0], "level=ERROR") || !strings.HasPrefix(got[1], "level=WARN") {
		t.Fatalf("lines = %q", got)
	}
}

// TestDisabledLevelIsNotCounted: a line the handler would drop does not
// use up the key's interval, so the first enabled one is not held back.
func TestDisabledLevelIsNotCounted(t *testing.T) {
	l, _, buf := newTest(t, time.Minute, slog.LevelError)
	l.Warn("k", "chatty")
	l.Error("k", "real")
	if got := lines(buf); len(got) != 1 || got[0] != `level=ERROR msg=real` {
		t.Fatalf("lines = %q", got)
	}
}

func TestCallerArgsUntouched(t *testing.T) {
	l, c, _ := newTest(t, time.Second, slog.LevelDebug)
	args := make([]any, 2, 8)
	args[0], args[1] = "a", 1
	l.Warn("k", "m", args...)
	l.Warn("k", "m", args...)
	c.advance(time.Second)
	l.Warn("k", "m", args...)
	if full := args[:cap(args)]; full[2] != nil {
		t.Fatalf("the caller's backing array was written: %v", full)
	}
}

func TestConcurrent(t *testing.T) {
	l, _, buf := newTest(t, time.Hour, slog.LevelDebug)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				l.Warn("k", "m")
			}
		})
	}
	wg.Wait()
	if got := lines(buf); len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
}

func TestNilLoggerAndZeroInterval(t *testing.T) {
	ratelog.New(nil, time.Second).Warn("k", "discarded")
	l, _, buf := newTest(t, 0, slog.LevelDebug)
	l.Warn("k", "m")
	l.Warn("k", "m")
	if got := lines(buf); len(got) != 2 {
		t.Fatalf("interval 0: %d lines, want 2", len(got))
	}
}
