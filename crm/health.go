package crm

import (
	"sync"
	"time"
)

// healthWindow is how far back Health's per-window counts reach.
const healthWindow = time.Minute

// Health is what a dispatcher's attempts met at the CRM, for the
// dashboard header. An attempt is answered when an HTTP answer came back,
// whatever its status; unreached when none did (refused, reset, timed
// out). A failure is an attempt that ended without the CRM's decision on
// the lead: unreached, or answered retry_wait (5xx, 429) or failed (401,
// a redirect).
type Health struct {
	Since       time.Time // when counting began (the dispatcher was made)
	LastAttempt time.Time // zero before the first
	LastAnswer  time.Time // the last answered attempt; zero before the first
	// LastAccepted is the last attempt that ended accepted: callbacks
	// should follow it.
	LastAccepted time.Time
	// Failures is the failures in a row, up to the latest attempt;
	// Unreached is those of them that got no answer at all, also in a
	// row; FailingSince is when the run of failures began.
	Failures, Unreached int
	FailingSince        time.Time
	LastStatus          int    // the last answered attempt's HTTP status
	LastError           string // the last unreached attempt's error
	// Over the last minute: answered attempts (AnsweredFailed of them
	// retryable answers) and unreached ones.
	Answered, AnsweredFailed, UnreachedInWindow int
}

// Attempts is every attempt of the last minute.
func (h Health) Attempts() int { return h.Answered + h.UnreachedInWindow }

// FailedShare is the share (0–1) of the last minute's attempts that
// failed, 0 when there were none.
func (h Health) FailedShare() float64 {
	n := h.Attempts()
	if n == 0 {
		return 0
	}
	return float64(h.AnsweredFailed+h.UnreachedInWindow) / float64(n)
}

// healthSlot is one second of the window.
type healthSlot struct {
	sec                                 int64
	answered, answeredFailed, unreached int
}

// healthTracker gathers Health; safe for concurrent use.
type healthTracker struct {
	mu    sync.Mutex
	h     Health
	slots [int(healthWindow / time.Second)]healthSlot
}

func newHealthTracker(now time.Time) *healthTracker {
	t := &healthTracker{}
	t.h.Since = now
	return t
}

// note counts one attempt that started at at with result res, decided
// into state.
func (t *healthTracker) note(at time.Time, res Result, state State) {
	answered := res.StatusCode != 0
	failed := !answered || state == StateRetryWait || state == StateFailed
	t.mu.Lock()
	defer t.mu.Unlock()
	h := &t.h
	h.LastAttempt = at
	if answered {
		h.LastAnswer, h.LastStatus = at, res.StatusCode
		h.Unreached = 0
	} else {
		h.Unreached++
		if res.Err != nil {
			h.LastError = res.Err.Error()
		}
	}
	if failed {
		if h.Failures == 0 {
			h.FailingSince = at
		}
		h.Failures++
	} else {
		h.Failures, h.FailingSince = 0, time.Time{}
	}
	if state == StateAccepted {
		h.LastAccepted = at
	}
	s := t.slot(at.Unix())
	switch {
	case !answered:
		s.unreached++
	case failed:
		s.answered++
		s.answeredFailed++
	default:
		s.answered++
	}
}

// slot is the window's slot for second sec, emptied when it last held an
// older second.
func (t *healthTracker) slot(sec int64) *healthSlot {
	s := &t.slots[uint64(sec)%uint64(len(t.slots))]
	if s.sec != sec {
		*s = healthSlot{sec: sec}
	}
	return s
}

// snapshot is Health as of now.
func (t *healthTracker) snapshot(now time.Time) Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.h
	from := now.Add(-healthWindow).Unix()
	for _, s := range t.slots {
		if s.sec > from && s.sec <= now.Unix() {
			h.Answered += s.answered
			h.AnsweredFailed += s.answeredFailed
			h.UnreachedInWindow += s.unreached
		}
	}
	return h
}
