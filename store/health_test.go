package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeProbe is a write probe a test steers: each call blocks until the
// test sends its result on next (or the probe's context ends).
type fakeProbe struct {
	started chan struct{} // one value per probe started
	next    chan error
}

func newFakeProbe() *fakeProbe {
	return &fakeProbe{started: make(chan struct{}, 100), next: make(chan error, 100)}
}

func (p *fakeProbe) probe(ctx context.Context) error {
	p.started <- struct{}{}
	select {
	case err := <-p.next:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// testCode maps ErrDiskFull and ErrBusy; anything else is not the store's.
func testCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrDiskFull):
		return HealthDiskFull
	case errors.Is(err, ErrBusy):
		return HealthUnreachable
	}
	return ""
}

func newTestTracker(t *testing.T, maxAge time.Duration) (*HealthTracker, *fakeProbe) {
	t.Helper()
	p := newFakeProbe()
	h := NewHealthTracker(HealthConfig{Probe: p.probe, Code: testCode, MaxAge: maxAge})
	t.Cleanup(h.Close)
	return h, p
}

func TestHealthTrackerSharesAndCachesProbe(t *testing.T) {
	h, p := newTestTracker(t, time.Hour)
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			if code, err := h.Health(context.Background()); code != "" || err != nil {
				errs <- fmt.Errorf("health = %q, %v; want healthy", code, err)
			}
		})
	}
	<-p.started // the one probe every caller waits for
	p.next <- nil
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if code, err := h.Health(context.Background()); code != "" || err != nil {
		t.Fatalf("cached health = %q, %v", code, err)
	}
	if n := h.Probes(); n != 1 {
		t.Fatalf("%d probes for %d callers within the probe age, want 1", n, callers+1)
	}
}

func TestHealthTrackerProbesAgainWhenOld(t *testing.T) {
	h, p := newTestTracker(t, time.Nanosecond)
	for range 3 {
		p.next <- nil
		if code, err := h.Health(context.Background()); code != "" {
			t.Fatalf("health = %q, %v", code, err)
		}
	}
	if n := h.Probes(); n != 3 {
		t.Fatalf("%d probes, want 3 (each result was already old)", n)
	}
}

func TestHealthTrackerFailedProbe(t *testing.T) {
	h, p := newTestTracker(t, time.Hour)
	p.next <- errors.New("connection reset") // not mapped: still unreachable
	code, err := h.Health(context.Background())
	if code != HealthUnreachable || err == nil {
		t.Fatalf("health = %q, %v; want %q", code, err, HealthUnreachable)
	}
	if want := "store write probe: connection reset"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// A commit proves the store can write: the failed probe is dropped.
	h.NoteCommit()
	p.next <- nil
	if code, err := h.Health(context.Background()); code != "" {
		t.Fatalf("health after a commit = %q, %v; want a new, healthy probe", code, err)
	}
	if n := h.Probes(); n != 2 {
		t.Fatalf("%d probes, want 2", n)
	}
}

func TestHealthTrackerWriteFailureDecides(t *testing.T) {
	h, p := newTestTracker(t, time.Hour)
	p.next <- nil
	if code, _ := h.Health(context.Background()); code != "" {
		t.Fatalf("health = %q before any failure", code)
	}
	h.NoteFailure(errors.New("invalid lead: phone is required")) // not the store's fault
	h.NoteFailure(nil)
	if code, err := h.Health(context.Background()); code != "" {
		t.Fatalf("health = %q, %v after a refused lead; want healthy", code, err)
	}
	full := fmt.Errorf("enqueue: %w", ErrDiskFull)
	h.NoteFailure(full)
	code, err := h.Health(context.Background())
	if code != HealthDiskFull || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("health = %q, %v; want %q over the healthy cached probe", code, err, HealthDiskFull)
	}
	h.NoteCommit()
	if code, err := h.Health(context.Background()); code != "" {
		t.Fatalf("health after a commit = %q, %v", code, err)
	}
}

func TestHealthTrackerFailureHoldEnds(t *testing.T) {
	// With a nanosecond probe age the hold (five ages) is over at once:
	// the probe decides again.
	h, p := newTestTracker(t, time.Nanosecond)
	h.NoteFailure(ErrBusy)
	p.next <- nil
	if code, err := h.Health(context.Background()); code != "" {
		t.Fatalf("health = %q, %v; want the probe's healthy answer once the hold is over", code, err)
	}
}

func TestHealthTrackerCallerGivesUp(t *testing.T) {
	h, p := newTestTracker(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var code string
	var err error
	go func() {
		defer close(done)
		code, err = h.Health(ctx)
	}()
	<-p.started
	cancel()
	<-done
	if code != HealthUnreachable || !errors.Is(err, context.Canceled) {
		t.Fatalf("health = %q, %v; want %q and context.Canceled", code, err, HealthUnreachable)
	}
	// The probe was not cut short: its result answers the next caller.
	p.next <- nil
	if code, err := h.Health(context.Background()); code != "" {
		t.Fatalf("health = %q, %v; want the running probe's healthy result", code, err)
	}
	if n := h.Probes(); n != 1 {
		t.Fatalf("%d probes, want 1", n)
	}
}

func TestHealthTrackerClose(t *testing.T) {
	closed := errors.New("store is closed")
	p := newFakeProbe()
	h := NewHealthTracker(HealthConfig{Probe: p.probe, Code: testCode, MaxAge: time.Hour, Closed: closed})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Health(context.Background())
	}()
	<-p.started
	h.Close() // ends the running probe and waits for it
	<-done
	code, err := h.Health(context.Background())
	if code != HealthUnreachable || !errors.Is(err, closed) {
		t.Fatalf("health after Close = %q, %v; want %q wrapping %v", code, err, HealthUnreachable, closed)
	}
	if n := h.Probes(); n != 1 {
		t.Fatalf("%d probes, want 1 (none after Close)", n)
	}
}

func TestHealthTrackerParentEnds(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	p := newFakeProbe()
	h := NewHealthTracker(HealthConfig{Probe: p.probe, Code: testCode, MaxAge: time.Hour, Parent: parent})
	defer h.Close()
	cancel()
	code, err := h.Health(context.Background())
	if code != HealthUnreachable || err == nil || err.Error() != "store health: the store is closed" {
		t.Fatalf("health after the parent ended = %q, %v; want %q, the store is closed", code, err, HealthUnreachable)
	}
	if n := h.Probes(); n != 0 {
		t.Fatalf("%d probes, want 0", n)
	}
}
