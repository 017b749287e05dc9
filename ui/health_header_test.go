package ui

import (
	"regexp"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// tickTo moves m's clock to now with status, as the heartbeat would,
// without running the Cmds (the next tick is a real timer).
func tickTo(m Model, now time.Time, s Status) Model {
	next, _ := m.Update(tickMsg{now: now, status: s})
	return next.(Model)
}

// TestHeaderCRMHealth checks that the header turns red, with the age of
// the last answer and the run of failures, once requests stop reaching
// the CRM; that the status bar then holds the whole error until the CRM
// answers again; and that "sent N/min" counts answered attempts only.
func TestHeaderCRMHealth(t *testing.T) {
	h := newHarness()
	h.status.CRM = &crm.Health{
		LastAttempt: t0.Add(-time.Second), LastAnswer: t0.Add(-42 * time.Second),
		Failures: 17, Unreached: 17, FailingSince: t0.Add(-41 * time.Second),
		LastError: "Post http://crm.test/leads: dial tcp 10.0.0.9:443: connect: connection refused",
		Answered:  5, UnreachedInWindow: 40,
	}
	m := h.sized(t, 160, 48)
	view := m.View()
	requireContains(t, view, "▶ sending ✗ CRM unreachable 42 s · 17 failures",
		"✗ CRM unreachable for 42 s: Post http://crm.test/leads: dial tcp 10.0.0.9:443")
	requireLacks(t, view, "✓ CRM")
	if !regexp.MustCompile(`sent \S+ 5/min`).MatchString(view) {
		t.Fatalf("sent N/min is not the 5 answered attempts:\n%s", view)
	}

	// Two answers that took no lead are not enough to say failing…
	h.status.CRM = &crm.Health{
		LastAttempt: t0, LastAnswer: t0.Add(-3 * time.Second), LastStatus: 503,
		Failures: 2, FailingSince: t0.Add(-5 * time.Second), Answered: 10, AnsweredFailed: 2,
	}
	m = tickTo(m, t0.Add(time.Second), h.status)
	view = m.View()
	requireContains(t, view, "▶ sending ✓ CRM answered 4 s ago · 2 failing · 20% failed/min")
	requireLacks(t, view, "unreachable", "CRM failing")

	// …the third is, and says the status the CRM answered with.
	h.status.CRM.Failures = 3
	m = tickTo(m, t0.Add(2*time.Second), h.status)
	requireContains(t, m.View(), "✗ CRM failing 7 s · 3 failures · HTTP 503", "✗ CRM failing for 7 s")

	// A decision clears it all, the status bar's error included.
	h.status.CRM = &crm.Health{LastAttempt: t0, LastAnswer: t0, LastAccepted: t0, Answered: 12}
	m = tickTo(m, t0.Add(3*time.Second), h.status)
	view = m.View()
	requireContains(t, view, "✓ CRM answered 3 s ago · 0% failed/min")
	requireLacks(t, view, "✗ CRM", "failing")

	// Not sending here: no CRM segment, and the store's attempts per minute.
	h.status.CRM, h.status.NoSender = nil, true
	m = tickTo(m, t0.Add(4*time.Second), h.status)
	requireLacks(t, m.View(), "CRM answered", "CRM: no attempt")
}

// TestHeaderListenerHealth checks the listener's traffic (age of the last
// verified callback, refusals per minute) and the silent-listener rule:
// leads accepted in the last 2 minutes and no verified callback for 2.
func TestHeaderListenerHealth(t *testing.T) {
	h := newHarness()
	h.status.CRM = &crm.Health{LastAttempt: t0, LastAnswer: t0, LastAccepted: t0.Add(-10 * time.Second), Answered: 3}
	h.status.Listener = &ListenerHealth{Since: t0.Add(-time.Hour), LastVerified: t0.Add(-30 * time.Second), RefusedMin: 3}
	m := h.sized(t, 160, 48)
	requireContains(t, m.View(), "● listening 127.0.0.1:8081 · ✓ 30 s ago · 3 refused/min")

	h.status.Listener.LastVerified = t0.Add(-150 * time.Second)
	m = tickTo(m, t0, h.status)
	requireContains(t, m.View(), "⚠ no callback for 2 min while leads are accepted 127.0.0.1:8081")
	requireLacks(t, m.View(), "● listening")

	// Nothing accepted for over 2 minutes: a quiet listener is expected.
	h.status.CRM.LastAccepted = t0.Add(-3 * time.Minute)
	m = tickTo(m, t0, h.status)
	requireContains(t, m.View(), "● listening 127.0.0.1:8081 · ✓ 2 min ago")
	requireLacks(t, m.View(), "no callback for")

	// A listener started a minute ago that verified nothing yet is not
	// silent either, however many leads went out.
	h.status.CRM.LastAccepted = t0
	h.status.Listener = &ListenerHealth{Since: t0.Add(-time.Minute)}
	m = tickTo(m, t0, h.status)
	requireContains(t, m.View(), "● listening 127.0.0.1:8081 · ✓ none yet · 0 refused/min")
}

// TestHeaderHealthAt80 checks that at 80 columns the red CRM state is
// drawn whole and the listener keeps its traffic, the address dropped.
func TestHeaderHealthAt80(t *testing.T) {
	h := newHarness()
	h.status.CRM = &crm.Health{LastAttempt: t0, LastAnswer: t0.Add(-42 * time.Second), Failures: 417, Unreached: 417, FailingSince: t0.Add(-41 * time.Second)}
	h.status.Listener = &ListenerHealth{Since: t0.Add(-time.Hour), LastVerified: t0.Add(-3 * time.Second), RefusedMin: 62}
	m := h.sized(t, 80, 24)
	view := m.View()
	requireFrame(t, view, 80, 24)
	requireContains(t, view, "leadwatch │ ✗ CRM unreachable 42 s · 417 failures │ ● listening ✓ 3 s ✗ 62/min", "? help", "q quit")

	h.status.CRM = &crm.Health{LastAttempt: t0, LastAnswer: t0, Answered: 9, AnsweredFailed: 1, Failures: 1, FailingSince: t0}
	m = tickTo(m, t0, h.status)
	requireContains(t, m.View(), "leadwatch │ ▶ ✓ CRM 0 s ago · 11% failed │ ● listening ✓ 3 s ✗ 62/min │")
}

// TestHeaderAttachedListenerFromStore checks that attached (no listener
// here), the stored callback traffic is drawn after the attached notice,
// and the silent rule applies to it too.
func TestHeaderAttachedListenerFromStore(t *testing.T) {
	h := newHarness()
	h.status.NoListener, h.status.Healthy, h.status.ListenerAddr = true, false, ""
	h.status.Listener = &ListenerHealth{Since: t0.Add(-time.Hour), LastVerified: t0.Add(-5 * time.Second), RefusedMin: 4}
	m := h.sized(t, 160, 48)
	requireContains(t, m.View(), "○ attached: no listener here · ✓ 5 s ago · 4 refused/min")
	requireLacks(t, m.View(), "listening")

	h.status.CRM = &crm.Health{LastAttempt: t0, LastAnswer: t0, LastAccepted: t0, Answered: 1}
	h.status.Listener.LastVerified = t0.Add(-3 * time.Minute)
	m = tickTo(m, t0, h.status)
	requireContains(t, m.View(), "⚠ no callback stored for 3 min while leads are accepted")
}
