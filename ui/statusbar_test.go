package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/key"
)

// lastLine is the frame's bottom line, the status bar.
func lastLine(view string) string {
	lines := strings.Split(view, "\n")
	return lines[len(lines)-1]
}

// TestStatusNoticeExpires checks that a notice leaves the status bar
// infoTTL after it was said, by the model's clock, while an error stays.
func TestStatusNoticeExpires(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	m = press(t, m, "p")
	requireContains(t, lastLine(m.View()), "sending paused")

	m = tickTo(m, t0.Add(infoTTL-time.Second), h.status)
	requireContains(t, lastLine(m.View()), "sending paused")
	m = tickTo(m, t0.Add(infoTTL), h.status)
	requireLacks(t, lastLine(m.View()), "sending paused")

	// An action's error is no notice: it stays until esc.
	m.bar.fail(errTest("resubmit lp-1: store locked"))
	m = tickTo(m, t0.Add(time.Hour), h.status)
	requireContains(t, lastLine(m.View()), "resubmit lp-1: store locked")
	m = press(t, m, "esc")
	requireLacks(t, lastLine(m.View()), "store locked")
}

type errTest string

func (e errTest) Error() string { return string(e) }

// TestStatusBarKeepsHelpAndQuit checks that at 80 columns, and with a
// long error taking half the line, the hints drop others before "? help"
// and "q quit".
func TestStatusBarKeepsHelpAndQuit(t *testing.T) {
	for _, w := range []int{80, 100, 60} {
		h := newHarness()
		m := h.sized(t, w, 24)
		m.bar.fail(errTest(strings.Repeat("a very long failure ", 10)))
		bar := lastLine(m.View())
		requireContains(t, bar, "? help", "q quit")
		requireLacks(t, bar, "quit…", "help…")
	}
	h := newHarness()
	m := h.sized(t, 80, 24)
	bar := lastLine(m.View())
	requireContains(t, bar, "tab next pane", "? help", "q quit")
}

// TestHelpComplete80x24 checks that the help dialog at 80×24 shows every
// key of the dashboard, no column dropped behind "…".
func TestHelpComplete80x24(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 80, 24)
	m = press(t, m, "?")
	view := m.View()
	requireFrame(t, view, 80, 24)
	for _, group := range m.keys.Dashboard.FullHelp() {
		for _, b := range group {
			requireContains(t, view, b.Help().Desc)
		}
	}
}

// TestStatusBarHintsMemoFollowsTheKeys checks that the memo of drawn
// hints answers for the keys as they are now: a key switched off, a
// different pane's keys or another width draw afresh, and each answer
// equals the hints drawn without the memo.
func TestStatusBarHintsMemoFollowsTheKeys(t *testing.T) {
	b := newStatusBar(testStyles())
	keys := newKeyMap().Dashboard
	check := func(step string, bindings []key.Binding, w int) string {
		t.Helper()
		got := b.hints(bindings, w)
		if want := b.fitHints(bindings, w); got != want {
			t.Fatalf("%s: hints %q, drawn afresh %q", step, got, want)
		}
		return got
	}
	bindings := keys.ShortHelp()
	wide := check("first", bindings, 200)
	if again := check("again", bindings, 200); again != wide {
		t.Fatalf("the memo changed its answer: %q then %q", wide, again)
	}
	if narrow := check("narrow", bindings, 40); narrow == wide {
		t.Fatalf("40 cells drew what 200 did: %q", narrow)
	}
	if retries := check("the retries pane's keys", keys.onRetries().ShortHelp(), 200); retries == wide {
		t.Fatalf("the retries pane drew the other panes' keys: %q", retries)
	}
	hint := bindings[2].Help().Key + " " + bindings[2].Help().Desc
	if !strings.Contains(wide, hint) {
		t.Fatalf("%q is not drawn before it is switched off: %q", hint, wide)
	}
	bindings[2].SetEnabled(false)
	if off := check("a key switched off", bindings, 200); strings.Contains(off, hint) {
		t.Fatalf("the switched-off key %q is still drawn: %q", hint, off)
	}
	for i := range 2 * hintMemoSize {
		check("many widths", bindings, 40+i)
	}
	if len(b.memo) > hintMemoSize {
		t.Fatalf("the memo holds %d entries, more than %d", len(b.memo), hintMemoSize)
	}
}
