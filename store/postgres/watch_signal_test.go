package postgres

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// drain empties a coalesced signal channel.
func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// waitSignal waits for one signal on ch, failing after timeout.
func waitSignal(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the watch channel closed", what)
		}
	case <-time.After(timeout):
		t.Fatalf("%s: no signal within %v", what, timeout)
	}
}

// TestWatchOtherProcess: a commit by a second DB (its own pool, as another
// process would have) wakes the first's Watch; ending ctx closes it.
func TestWatchOtherProcess(t *testing.T) {
	db, u := openTest(t, store.Options{})
	other, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := db.Watch(ctx)
	poll.Until(t, "the listener to be up", db.watch.listening.Load)
	drain(ch)
	if _, err := other.SaveCallbacks(context.Background(), []crm.CallbackEvent{event("w-1", "", "won", "1")}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, 5*time.Second, "commit by another DB")
	cancel()
	poll.Until(t, "the channel to close when ctx ends", func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	})
}

// TestWatchSurvivesTerminatedListener kills the listening connection
// (pg_terminate_backend): commits by another DB still signal, by the
// fallback poll and then the reconnected listener.
func TestWatchSurvivesTerminatedListener(t *testing.T) {
	db, u := openTest(t, store.Options{})
	other, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ch := db.Watch(context.Background())
	poll.Until(t, "the listener to be up", db.watch.listening.Load)
	pid := db.watch.pid.Load()
	execURL(t, u, `SELECT pg_terminate_backend($1)`, int32(pid))
	poll.Until(t, "the watcher to notice the lost connection", func() bool {
		return !db.watch.listening.Load() || db.watch.pid.Load() != pid
	})
	for i := range 3 {
		drain(ch)
		if _, err := other.SaveCallbacks(context.Background(), []crm.CallbackEvent{event("t-"+string(rune('a'+i)), "", "won", "1")}); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, ch, 5*time.Second, "commit after the listener was killed")
	}
	poll.Until(t, "the listener to reconnect", func() bool {
		return db.watch.listening.Load() && db.watch.pid.Load() != pid
	})
	drain(ch)
	if err := other.SaveRefusal(context.Background(), crm.Refusal{Code: "x"}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, 5*time.Second, "commit after the reconnect")
}

// TestWatchDebouncedAndClosedByClose: a burst of own commits gives few
// signals (coalesced), and Close closes the channel.
func TestWatchDebouncedAndClosedByClose(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ch := db.Watch(context.Background())
	var got atomic.Int64
	go func() {
		for range ch {
			got.Add(1)
		}
	}()
	start := time.Now()
	for i := range 50 {
		if err := db.SaveRefusal(context.Background(), crm.Refusal{Code: "burst", Detail: string(rune('a' + i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	poll.Until(t, "a signal for the burst", func() bool { return got.Load() >= 1 })
	// At most one per debounce interval, plus the first and a trailing one.
	if n, limit := got.Load(), int64(elapsed/watchDebounce)+2; n > limit {
		t.Fatalf("%d signals for 50 commits in %v; want at most %d", n, elapsed, limit)
	}
	ch2 := db.Watch(context.Background())
	db.Close()
	if _, ok := <-ch2; ok {
		// A pending signal may come first; the channel must close next.
		if _, ok := <-ch2; ok {
			t.Fatal("Watch channel still open after Close")
		}
	}
}
