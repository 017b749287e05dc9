package ui

import (
	"context"
	"errors"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Attached (--no-send, --no-listen), this process has no sender or
// listener of its own to ask: the header's CRM and listener health come
// from the store's Pulse, what every instance sharing it wrote, mapped
// onto the same crm.Health and ListenerHealth the in-process parts
// report, so the header draws the same words either way.

// pulseState is the latest Pulse and when the dashboard first read one.
type pulseState struct {
	p     crm.Pulse
	ok    bool
	since time.Time // the first reading: the silent-listener rule counts from here
}

// take keeps a refresh's reading taken at now.
func (ps *pulseState) take(p crm.Pulse, now time.Time) {
	if !ps.ok {
		ps.since = now
	}
	ps.p, ps.ok = p, true
}

// readPulse reads the store's Pulse; a store without one (a backend that
// does not keep it) is not a refresh error: the header then keeps what
// main reported.
func readPulse(ctx context.Context, src Source, now time.Time, fail func(string, error)) (crm.Pulse, bool) {
	p, err := src.Pulse(ctx, now)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return crm.Pulse{}, false
	case err != nil:
		fail("pulse", err)
		return crm.Pulse{}, false
	}
	return p, true
}

// status puts the pulse's health into s for the parts s says another
// process runs; s as it is before the first reading.
func (ps pulseState) status(s Status, now time.Time) Status {
	if !ps.ok {
		return s
	}
	if s.NoSender {
		s.CRM = pulseHealth(ps.p, now)
	}
	if s.NoListener {
		s.Listener = pulseListener(ps.p, ps.since)
	}
	return s
}

// pulseLookBack is how far back a Pulse reads (crm.Pulse: one hour).
const pulseLookBack = time.Hour

// pulseHealth is the CRM's health as the store saw it. The pulse counts
// attempts that got no answer since the last answered second: they are
// the failures in a row, all unreached. It does not tell an answered
// failure (a 503) from a success, so the failed share counts unanswered
// attempts only.
func pulseHealth(p crm.Pulse, now time.Time) *crm.Health {
	h := &crm.Health{
		Since:             now.Add(-pulseLookBack),
		LastAttempt:       p.LastAttempt,
		LastAnswer:        p.LastAnswered,
		Failures:          p.Unanswered,
		Unreached:         p.Unanswered,
		Answered:          max(p.AttemptsMin-p.UnansweredMin, 0),
		UnreachedInWindow: p.UnansweredMin,
	}
	if p.Unanswered > 0 {
		// Failing since the last answer; since the look-back began when
		// no attempt in it was answered.
		h.FailingSince = p.LastAnswered
		if h.FailingSince.IsZero() {
			h.FailingSince = h.Since
		}
	}
	if p.AcceptedMin > 0 {
		// A lead was accepted within the minute: callbacks should follow.
		h.LastAccepted = now
	}
	return h
}

// pulseListener is the callback traffic as the store saw it; since is
// when the dashboard began watching, so a fresh attach does not call the
// listener silent before it had the time to hear anything.
func pulseListener(p crm.Pulse, since time.Time) *ListenerHealth {
	return &ListenerHealth{Since: since, LastVerified: p.LastCallback, RefusedMin: p.RefusedMin}
}
