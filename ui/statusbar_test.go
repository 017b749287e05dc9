package ui

import (
	"strings"
	"testing"
	"time"
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
