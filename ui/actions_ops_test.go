package ui

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// requireActs checks the exact Act calls the dashboard made.
func requireActs(t *testing.T, src *fakeSource, want ...actCall) {
	t.Helper()
	got := src.actCalls()
	if !slices.EqualFunc(got, want, func(a, b actCall) bool { return a.Action == b.Action && slices.Equal(a.IDs, b.IDs) }) {
		t.Fatalf("Act calls = %+v, want %+v", got, want)
	}
}

// TestSendNow checks that s on a waiting lead makes it due now through
// Source.Act with its id, and says so.
func TestSendNow(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "s") // the first retry row: ext-103
	requireActs(t, h.src, actCall{crm.ActRetryNow, []string{"ext-103"}})
	requireContains(t, m.View(), "ext-103 is due now, same key")
}

// TestActWrongState checks that an action the lead's state does not
// allow reaches the store, which refuses it, and the status bar says why
// in plain words.
func TestActWrongState(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "2", "s") // ext-201, a duplicate
	requireActs(t, h.src, actCall{crm.ActRetryNow, []string{"ext-201"}})
	requireContains(t, m.View(), "✗ ext-201 is duplicate: send now is for waiting leads")
	if h.src.leadState("ext-201") != crm.StateDuplicate {
		t.Fatal("the duplicate changed")
	}
}

// TestHoldThenReleaseFromDetail checks hold on the dashboard, the held
// count in the header (absent while zero), and release from the lead's
// detail view.
func TestHoldThenReleaseFromDetail(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	requireLacks(t, strings.Split(m.View(), "\n")[1], "held")

	m = press(t, m, "enter") // ext-103's detail
	m = press(t, m, "h")
	requireActs(t, h.src, actCall{crm.ActHold, []string{"ext-103"}})
	requireContains(t, m.View(), "held ext-103: not sent until released (u)", "Lead ext-103 · held")
	requireContains(t, strings.Split(m.View(), "\n")[1], "1 held")

	m = press(t, m, "u")
	requireActs(t, h.src, actCall{crm.ActHold, []string{"ext-103"}}, actCall{crm.ActRelease, []string{"ext-103"}})
	requireContains(t, m.View(), "released ext-103: queued, due now", "Lead ext-103 · queued")
	requireLacks(t, strings.Split(m.View(), "\n")[1], "held")
}

// TestCancelAsksFirst checks that x asks before canceling (it ends the
// lead as failed), that n cancels nothing, y cancels the lead shown, and
// that a lead already decided is refused without a question.
func TestCancelAsksFirst(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "x")
	requireContains(t, m.View(), "Cancel ext-103?", "It ends as failed", "[ No ]")
	requireActs(t, h.src)

	t.Run("NKeeps", func(t *testing.T) {
		m := press(t, m, "n")
		requireLacks(t, m.View(), "Cancel ext-103?")
		requireActs(t, h.src)
	})
	t.Run("EnterDefaultsToNo", func(t *testing.T) {
		m := press(t, m, "enter")
		requireLacks(t, m.View(), "Cancel ext-103?")
		requireActs(t, h.src)
	})
	m = press(t, m, "y")
	requireActs(t, h.src, actCall{crm.ActCancel, []string{"ext-103"}})
	requireContains(t, m.View(), "canceled ext-103: failed, not sent")
	if h.src.leadState("ext-103") != crm.StateFailed {
		t.Fatalf("ext-103 is %s", h.src.leadState("ext-103"))
	}

	t.Run("Decided", func(t *testing.T) {
		h := newHarness()
		m := press(t, h.sized(t, 160, 48), "3", "x") // ext-301, failed
		requireLacks(t, m.View(), "Cancel ext-301?")
		requireContains(t, m.View(), "ext-301 is failed: cancel is for leads not sent yet")
		requireActs(t, h.src)
	})
}

// TestSendAllDueNow checks that S asks with the header's count of
// waiting leads and calls RetryAllNow once on yes.
func TestSendAllDueNow(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "S")
	requireContains(t, m.View(), "Send all 3 leads waiting to retry now?", "keeps its idempotency key", "up to 3 requests")
	m = press(t, m, "n")
	if h.src.ops().retryAll != 0 {
		t.Fatal("RetryAllNow on n")
	}
	m = press(t, m, "S", "y")
	if h.src.ops().retryAll != 1 {
		t.Fatalf("RetryAllNow calls = %d, want 1", h.src.ops().retryAll)
	}
	requireContains(t, m.View(), "3 leads due now, same keys")
	requireActs(t, h.src)

	t.Run("NoneWaiting", func(t *testing.T) {
		h := newHarness()
		h.src.leads = slices.DeleteFunc(h.src.leads, func(l crm.Lead) bool { return l.State == crm.StateRetryWait })
		m := press(t, h.sized(t, 160, 48), "S")
		requireContains(t, m.View(), "no lead is waiting to retry")
		requireLacks(t, m.View(), "Confirm")
	})
}

// TestActKeysInHelp checks that every new key is in the help at 80×24
// and that the detail's help names them too.
func TestActKeysInHelp(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 80, 24), "?")
	v := m.View()
	requireFrame(t, v, 80, 24)
	requireContains(t, v, "s send now", "S send all due now", "h hold", "u release held", "x cancel", "R     resubmit all shown")
	m = press(t, m, "esc", "enter", "?")
	requireContains(t, m.View(), "Keys · detail", "send now", "hold", "release held", "cancel")
}

// TestRefusalDetailOffersNoLeadKeys checks that a refused callback's
// detail shows only the keys that work on it, and the lead keys do
// nothing there.
func TestRefusalDetailOffersNoLeadKeys(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "4", "j", "enter")
	v := m.View()
	requireContains(t, v, "Refused callback #1", "esc back", "q quit")
	bar := strings.Split(v, "\n")[47]
	requireLacks(t, bar, "resubmit", "edit", "copy as curl", "send now")
	m = press(t, m, "?")
	requireLacks(t, m.View(), "resubmit", "copy as curl", "send now")
	m = press(t, m, "esc", "r", "s", "c")
	if m.overlay != nil || len(h.src.resubmits) != 0 || len(h.src.actCalls()) != 0 || len(h.clip) != 0 {
		t.Fatalf("a lead key acted on a refusal: overlay %T, resubmits %v, acts %v", m.overlay, h.src.resubmits, h.src.actCalls())
	}
}

// TestAttachedHealthFromPulse checks that attached (no sender, no
// listener here) the header's CRM and listener health come from the
// store's Pulse, in the words the in-process parts get, that it says
// "attached", and that p is gone from help and points to source pauses.
func TestAttachedHealthFromPulse(t *testing.T) {
	h := newHarness()
	h.status = Status{NoSender: true, NoListener: true, BaseURL: "https://crm.example.test", MaxAttempts: 8}
	h.src.setPulse(crm.Pulse{
		LastAttempt: t0, LastAnswered: t0.Add(-42 * time.Second), Unanswered: 17,
		AttemptsMin: 20, UnansweredMin: 20, LastCallback: t0.Add(-5 * time.Second), RefusedMin: 3,
	})
	m := h.sized(t, 160, 48)
	v := m.View()
	requireContains(t, v, "◎ attached: not sending", "✗ CRM unreachable 42 s · 17 failures",
		"○ attached: no listener here · ✓ 5 s ago · 3 refused/min", "✗ CRM unreachable for 42 s")
	requireLacks(t, v, "pause/resume")
	// A notice shows over the CRM's standing error, which the header
	// still draws in red.
	requireContains(t, press(t, m, "p").View(), "pausing is not available here: pause a source in the Sources view (P)")

	m = press(t, m, "?")
	requireLacks(t, m.View(), "pause/resume")
	m = press(t, m, "esc")

	t.Run("Answering", func(t *testing.T) {
		h.src.setPulse(crm.Pulse{LastAttempt: t0, LastAnswered: t0.Add(-2 * time.Second), AttemptsMin: 10, UnansweredMin: 1, LastCallback: t0})
		m := drive(t, m, refreshRequestMsg{})
		requireContains(t, m.View(), "✓ CRM answered 2 s ago · 10% failed/min")
		requireLacks(t, m.View(), "unreachable")
		m = press(t, m, "p")
		requireContains(t, m.View(), "pausing is not available here: pause a source in the Sources view (P)")
	})
	t.Run("SilentListener", func(t *testing.T) {
		// Leads accepted within the minute, no callback since the
		// dashboard attached three minutes ago.
		h.src.setPulse(crm.Pulse{LastAttempt: t0, LastAnswered: t0, AttemptsMin: 5, AcceptedMin: 5})
		m := tickTo(m, t0.Add(3*time.Minute), h.status)
		// tickTo drops the refresh the tick started; run it here.
		m.cycle.running = false
		m = drive(t, m, refreshRequestMsg{})
		requireContains(t, m.View(), "⚠ no callback stored for 3 min while leads are accepted")
	})
}

// TestPulseUnsupportedKeepsStatus checks that a store without a Pulse is
// no refresh error, and the header keeps what main reported.
func TestPulseUnsupportedKeepsStatus(t *testing.T) {
	h := newHarness()
	h.status = Status{NoSender: true, NoListener: true, Listener: &ListenerHealth{Since: t0.Add(-time.Hour), LastVerified: t0.Add(-7 * time.Second)}}
	m := h.sized(t, 160, 48)
	requireContains(t, m.View(), "✓ 7 s ago")
	requireLacks(t, m.View(), "refresh", "pulse")
}

// TestRunesTypedTogether checks that keys arriving as one message of
// several runes (typed faster than the terminal is read) act one by one
// on the dashboard, and stay text in the filter.
func TestRunesTypedTogether(t *testing.T) {
	h := newHarness()
	m := drive(t, h.sized(t, 160, 48), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("3r")})
	requireContains(t, m.View(), "Resubmit ext-301?")
	m = press(t, m, "n", "/")
	m = drive(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("unauth")})
	if m.rejects.filter != "unauth" {
		t.Fatalf("filter = %q", m.rejects.filter)
	}
}
