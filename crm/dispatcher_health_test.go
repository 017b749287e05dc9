package crm

import (
	"errors"
	"testing"
	"time"
)

// TestHealthCountsUnreachedApart checks that attempts without an HTTP
// answer are counted apart from answered ones, that runs of failures
// reset on a decision, and that the window forgets attempts older than a
// minute.
func TestHealthCountsUnreachedApart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tr := newHealthTracker(t0)
	ok := Result{StatusCode: 201}
	down := Result{Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
	busy := Result{StatusCode: 503}

	tr.note(t0, ok, StateAccepted)
	for i := range 3 {
		tr.note(t0.Add(time.Duration(1+i)*time.Second), down, StateRetryWait)
	}
	tr.note(t0.Add(4*time.Second), busy, StateRetryWait)

	h := tr.snapshot(t0.Add(5 * time.Second))
	if h.Answered != 2 || h.AnsweredFailed != 1 || h.UnreachedInWindow != 3 {
		t.Fatalf("window: answered %d (failed %d), unreached %d; want 2 (1), 3", h.Answered, h.AnsweredFailed, h.UnreachedInWindow)
	}
	if h.Failures != 4 || h.Unreached != 0 {
		t.Fatalf("runs: failures %d unreached %d; want 4, 0 (the 503 was an answer)", h.Failures, h.Unreached)
	}
	if !h.LastAnswer.Equal(t0.Add(4*time.Second)) || h.LastStatus != 503 {
		t.Fatalf("last answer %v status %d", h.LastAnswer, h.LastStatus)
	}
	if !h.FailingSince.Equal(t0.Add(time.Second)) || !h.LastAccepted.Equal(t0) {
		t.Fatalf("failing since %v, last accepted %v", h.FailingSince, h.LastAccepted)
	}
	if got := h.FailedShare(); got != 0.8 {
		t.Fatalf("failed share %v, want 0.8", got)
	}

	tr.note(t0.Add(6*time.Second), down, StateRetryWait)
	tr.note(t0.Add(7*time.Second), down, StateRetryWait)
	h = tr.snapshot(t0.Add(8 * time.Second))
	if h.Unreached != 2 || h.Failures != 6 || h.LastError == "" {
		t.Fatalf("after the 503: unreached %d failures %d error %q", h.Unreached, h.Failures, h.LastError)
	}

	tr.note(t0.Add(70*time.Second), ok, StateAccepted)
	h = tr.snapshot(t0.Add(70 * time.Second))
	if h.Failures != 0 || !h.FailingSince.IsZero() || h.Attempts() != 1 {
		t.Fatalf("after recovery a minute on: failures %d since %v attempts %d; want 0, zero, 1", h.Failures, h.FailingSince, h.Attempts())
	}
}
