package ui

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

func testStyles() *Styles { return NewStyles(lipgloss.NewRenderer(io.Discard), DefaultPalette()) }

// TestComponentsFitTheirWidth: header, tab bar, status bar and table
// each draw exactly the width they are given, whatever their content.
func TestComponentsFitTheirWidth(t *testing.T) {
	st, keys := testStyles(), newKeyMap()
	s := newFakeSource()
	counts, _ := s.Counts(t.Context())
	tp, _ := s.Throughput(t.Context(), t0, sparkBucket)
	hd := header{st: st, status: newHarness().status}.Update(snapshotMsg{counts: counts, countsOK: true, tp: tp, tpOK: true})
	bar := newStatusBar(st)
	bar.fail(errors.New(strings.Repeat("a long failure ", 20)))
	tabs := tabBar{st: st, active: paneEvents, totals: [paneCount]int{3, -1, 12345, 7}}
	tbl := table{st: st, title: "T", cols: eventColumns(), loaded: true, height: 6,
		rows: [][]cell{{plain("✓"), plain("12:00:00"), plain(strings.Repeat("x", 300))}}}
	for _, w := range []int{60, 80, 100, 160, 233} {
		views := map[string]string{
			"header": hd.View(w), "tabs": tabs.View(w), "table": tbl.View(w),
			"status": bar.View(w, keys.Dashboard, ""), "status+filter": bar.View(w, keys.Filter, "/abc"),
		}
		for name, v := range views {
			for i, l := range strings.Split(v, "\n") {
				if lw := lipgloss.Width(l); lw != w {
					t.Errorf("%s at %d: line %d is %d cells: %q", name, w, i, lw, l)
				}
			}
		}
	}
	t.Run("HeaderShortensLabels", func(t *testing.T) {
		requireContains(t, hd.View(160), "3 retry wait", "1 validation error")
		requireContains(t, hd.View(80), "3 retry", "1 invalid")
	})
	t.Run("TabsBracketTheActive", func(t *testing.T) {
		requireContains(t, tabs.View(160), "[4 Status events 7]", " 2 Duplicates │", "3 Rejections 12345")
	})
	t.Run("ActiveTabWholeWhenNarrow", func(t *testing.T) {
		// The inactive tabs give way first: at 60 columns the active one
		// is still whole, not cut behind "…".
		for _, w := range []int{40, 60} {
			v := tabs.View(w)
			requireContains(t, v, "[4 Status events 7]")
			if strings.Contains(v, "…") {
				t.Errorf("tabs at %d are cut: %q", w, v)
			}
		}
		requireContains(t, tabs.View(60), " 3 12345 ")
	})
}

// TestStatusBarPrecedence: an action's error outranks a refresh's, which
// outranks the listener's, which outranks a notice.
func TestStatusBarPrecedence(t *testing.T) {
	b := newStatusBar(testStyles())
	b.say("sending paused")
	b.listenerErr = errors.New("bind: address already in use")
	b = b.Update(snapshotMsg{err: errors.New("refresh: counts: locked")})
	b.fail(errors.New("resubmit ext-1: not found"))
	keys := newKeyMap().Dashboard
	view := func() string { return b.View(160, keys, "") }
	requireContains(t, view(), "✗ resubmit ext-1")
	b.err = nil
	requireContains(t, view(), "✗ refresh: counts")
	b = b.Update(snapshotMsg{}) // a good refresh clears its error
	requireContains(t, view(), "✗ listener: bind")
	b.listenerErr = nil
	requireLacks(t, view(), "✗", "sending paused") // fail dropped the notice
	b = b.Update(resubmittedMsg{res: crm.Resubmission{Lead: crm.Lead{ExternalID: "ext-1", IdempotencyKey: "k-2"}}})
	requireContains(t, view(), "resubmitted ext-1 · new key k-2")
	b.clear()
	requireLacks(t, view(), "resubmitted")
}

// TestPanesReachedThroughOneAccessor: Model.pane hands out the model's
// own panes, so a change made through it is in the model.
func TestPanesReachedThroughOneAccessor(t *testing.T) {
	m := newHarness().sized(t, 160, 48)
	for id := range paneCount {
		p := m.pane(id)
		p.setFilter("x")
		if p.filterText() != "x" {
			t.Fatalf("%s: filter not kept", id.name())
		}
	}
	if m.retries.filter != "x" || m.dups.filter != "x" || m.rejects.filter != "x" || m.events.filter != "x" {
		t.Fatal("a change through Model.pane missed the model's pane")
	}
	c := m
	c.focused().setFilter("y")
	if m.retries.filter != "x" {
		t.Fatal("a copy of the model shares its panes")
	}
}
