package storetest

// suite_errors.go: opening and migrations (a newer database refused), and
// the error mapping callers branch on: read-only, busy, disk full,
// canceled contexts.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

func testOpen(t *testing.T, h Harness) {
	ctx := context.Background()
	t.Run("reopen_keeps_data", func(t *testing.T) {
		s, clk, reopen := open(t, h, store.Options{})
		l := mustEnqueue(t, s, "L1")
		// A second Open runs the migrations again: they must find nothing
		// to do and keep the data.
		again := mustReopen(t, reopen, store.Options{Now: clk.Now})
		got := mustLead(t, again, "L1")
		if got.ID != l.ID || got.IdempotencyKey != l.IdempotencyKey || string(got.Payload) != string(l.Payload) {
			t.Fatalf("reopened lead = %+v, want %+v", got, l)
		}
		if err := again.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		if code, err := health(t, again); code != "" || err != nil {
			t.Fatalf("health = %q, %v; want ok", code, err)
		}
		if loc := again.Location(); loc == "" || loc != s.Location() {
			t.Fatalf("locations %q and %q, want one non-empty name for one database", loc, s.Location())
		}
	})
	t.Run("too_new_refused", func(t *testing.T) {
		if h.MakeNewer == nil {
			t.Skip("the backend gave no MakeNewer hook")
		}
		s, _, reopen := open(t, h, store.Options{})
		mustEnqueue(t, s, "L1")
		h.MakeNewer(t, s)
		for _, ro := range []bool{false, true} {
			s2, err := reopen(store.Options{ReadOnly: ro})
			if !errors.Is(err, store.ErrTooNew) {
				if err == nil {
					s2.Close()
				}
				t.Fatalf("open with read-only %v: err = %v, want store.ErrTooNew", ro, err)
			}
			t.Logf("read-only %v: %v", ro, err)
		}
	})
}

// health asks s.Health with a deadline.
func health(t *testing.T, s store.Store) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Health(ctx)
}

func testErrors(t *testing.T, h Harness) {
	t.Run("read_only_option", func(t *testing.T) { testReadOnlyOption(t, h) })
	t.Run("read_only_database", func(t *testing.T) { testReadOnlyDatabase(t, h) })
	t.Run("busy", func(t *testing.T) { testBusy(t, h) })
	t.Run("disk_full", func(t *testing.T) { testDiskFull(t, h) })
	t.Run("canceled_context", func(t *testing.T) {
		s, _, _ := open(t, h, store.Options{})
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Enqueue(cctx, payload("X"), store.EnqueueOptions{})
		wantErr(t, "enqueue", err, context.Canceled)
		_, err = s.SaveCallbacks(cctx, []crm.CallbackEvent{callback("c", "", "e", "", 1)})
		wantErr(t, "save callbacks", err, context.Canceled)
		_, err = s.Claim(cctx, "w", time.Now(), time.Minute, 1)
		wantErr(t, "claim", err, context.Canceled)
		if _, err := s.Lead(context.Background(), "X"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("canceled enqueue stored the lead: %v", err)
		}
	})
}

// writesRefused checks that every kind of write through s fails with want
// and stores nothing, and that reads still work.
func writesRefused(t *testing.T, s store.Store, want error) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Enqueue(ctx, payload("RO-2"), store.EnqueueOptions{})
	wantErr(t, "enqueue", err, want)
	_, errs, err := s.EnqueueBatch(ctx, [][]byte{payload("RO-3")}, store.EnqueueOptions{})
	if err == nil && len(errs) == 1 {
		err = errs[0]
	}
	wantErr(t, "enqueue batch", err, want)
	_, err = s.Claim(ctx, "w", time.Now(), time.Minute, 1)
	wantErr(t, "claim", err, want)
	_, err = s.SaveCallbacks(ctx, []crm.CallbackEvent{callback("ro", "", "e", "", 1)})
	wantErr(t, "save callbacks", err, want)
	wantErr(t, "save refusal", s.SaveRefusal(ctx, crm.Refusal{Code: crm.CodeBadSignature}), want)
	_, err = s.Resubmit(ctx, "RO-1", nil)
	wantErr(t, "resubmit", err, want)
	if l, err := s.Lead(ctx, "RO-1"); err != nil || l.ExternalID != "RO-1" || l.State != crm.StateQueued {
		t.Fatalf("read: %+v, %v", l, err)
	}
	if _, err := s.Lead(ctx, "RO-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused enqueue stored: %v", err)
	}
	c := assertCounts(t, s, "refused writes")
	if c.States[crm.StateQueued] != 1 || c.CallbacksVerified != 0 || c.Refusals != 0 {
		t.Fatalf("counts %s after refused writes", countsString(c))
	}
}

func testReadOnlyOption(t *testing.T, h Harness) {
	ctx := context.Background()
	rw, _, reopen := open(t, h, store.Options{})
	mustEnqueue(t, rw, "RO-1")
	ro := mustReopen(t, reopen, store.Options{ReadOnly: true})
	writesRefused(t, ro, store.ErrReadOnly)
	wantErr(t, "ping", ro.Ping(ctx), store.ErrReadOnly)
	code, err := health(t, ro)
	if code != store.HealthReadOnly || !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("health = %q, %v; want %q and store.ErrReadOnly", code, err, store.HealthReadOnly)
	}
	// The read-write Store is not affected by another's read-only open.
	mustEnqueue(t, rw, "RW-2")
	if l, err := ro.Lead(ctx, "RW-2"); err != nil || l.ExternalID != "RW-2" {
		t.Fatalf("read-only store reads another's commit: %+v, %v", l, err)
	}
}

func testReadOnlyDatabase(t *testing.T, h Harness) {
	if h.MakeReadOnly == nil {
		t.Skip("the backend gave no MakeReadOnly hook")
	}
	rw, _, reopen := open(t, h, store.Options{})
	mustEnqueue(t, rw, "RO-1")
	h.MakeReadOnly(t, rw)
	s, err := reopen(store.Options{})
	if err != nil {
		// Refusing the open is fine, as long as it says why.
		wantErr(t, "open a read-write store on a read-only database", err, store.ErrReadOnly)
		t.Logf("open refused: %v", err)
		return
	}
	writesRefused(t, s, store.ErrReadOnly)
	code, err := health(t, s)
	if code != store.HealthReadOnly || !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("health = %q, %v; want %q and store.ErrReadOnly", code, err, store.HealthReadOnly)
	}
}

func testBusy(t *testing.T, h Harness) {
	if h.HoldLock == nil {
		t.Skip("the backend gave no HoldLock hook")
	}
	// A backend that waits for the lock without bound fails here on the
	// deadline instead of hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const timeout = 100 * time.Millisecond
	s, _, _ := open(t, h, store.Options{BusyTimeout: timeout})
	mustEnqueue(t, s, "BUSY-0")
	release := h.HoldLock(t, s)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	start := time.Now()
	_, err := s.Enqueue(ctx, payload("BUSY-1"), store.EnqueueOptions{})
	wantErr(t, "enqueue while locked", err, store.ErrBusy)
	if waited := time.Since(start); waited < timeout*8/10 {
		t.Errorf("gave up after %v, before the busy timeout %v", waited, timeout)
	}
	t.Logf("busy: %v", err)
	_, err = s.SaveCallbacks(ctx, []crm.CallbackEvent{callback("c", "", "e", "", 1)})
	wantErr(t, "save callbacks while locked", err, store.ErrBusy)
	release()
	released = true
	if _, err := s.Lead(ctx, "BUSY-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("half stored: %v", err)
	}
	if c := assertCounts(t, s, "busy"); c.CallbacksVerified != 0 || c.States[crm.StateQueued] != 1 {
		t.Fatalf("a busy write stored something: %s", countsString(c))
	}
	mustEnqueue(t, s, "BUSY-1") // and the store works again
}

func testDiskFull(t *testing.T, h Harness) {
	if h.DiskFull == nil {
		t.Skip("the backend gave no DiskFull hook")
	}
	ctx := context.Background()
	s, _, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "F-0")
	undo := h.DiskFull(t, s)
	undone := false
	defer func() {
		if !undone {
			undo()
		}
	}()
	before := assertCounts(t, s, "before the disk filled")
	var full error
	var last string
	for i := range 50 {
		last = fmt.Sprintf("F-%d", i+1)
		if _, err := s.Enqueue(ctx, bigPayload(last, 3000), store.EnqueueOptions{}); err != nil {
			full = err
			break
		}
		before = assertCounts(t, s, "a write that still fit")
	}
	wantErr(t, "enqueue on a full disk", full, store.ErrDiskFull)
	t.Logf("full: %v", full)
	if _, err := s.Lead(ctx, last); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lead %s half stored: %v", last, err)
	}
	if after := assertCounts(t, s, "the disk filled"); countsString(after) != countsString(before) {
		t.Fatalf("counts moved: %s -> %s", countsString(before), countsString(after))
	}
	if code, err := health(t, s); code != store.HealthDiskFull || !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("health = %q, %v; want %q and store.ErrDiskFull", code, err, store.HealthDiskFull)
	}
	// The listener's batch meets it too, and stores nothing of it.
	// Their statuses are long, so they cannot fit in a page left free.
	long := string(bigPayload("", 3000))
	_, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{callback("full", "", "e", long, 1), callback("full", "", "f", long, 1)})
	wantErr(t, "save callbacks on a full disk", err, store.ErrDiskFull)
	if c := assertCounts(t, s, "callbacks on a full disk"); c.CallbacksVerified != 0 {
		t.Fatalf("callbacks stored on a full disk: %s", countsString(c))
	}
	undo()
	undone = true
	mustEnqueue(t, s, "F-after")
	// Healthy again once a commit succeeds (SQLite: at once; a backend
	// may hold a failure until its next probe, which is soon).
	var code string
	var herr error
	start := time.Now()
	poll.Until(t, "health to be ok again after space came back", func() bool {
		code, herr = health(t, s)
		return code == ""
	})
	t.Logf("healthy %v after a commit succeeded again (last error %v)", time.Since(start).Round(time.Millisecond), herr)
}
