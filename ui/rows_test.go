package ui

import (
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// addRejected puts n failed leads in the fake store, newer than every
// lead in it, so they land on top of the Rejections pane.
func addRejected(h *harness, first int64, n int) { addFailedNamed(h, "ext-9%03d", first, n, nil) }

// removeLead deletes a lead from the fake store, as when it is retried.
func removeLead(h *harness, ext string) {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	for i, l := range h.src.leads {
		if l.ExternalID == ext {
			h.src.leads = append(h.src.leads[:i], h.src.leads[i+1:]...)
			return
		}
	}
}

func TestLeadCursorFollowsItsRow(t *testing.T) {
	h := newHarness()
	addRejected(h, 100, 5)
	m := press(t, h.sized(t, 100, 30), "3", "j", "j")
	sel := func(m Model) string { l, _ := m.rejects.selected(); return l.ExternalID }
	want := sel(m)
	if want != "ext-9102" {
		t.Fatalf("after j j: %s, want ext-9102", want)
	}

	// More leads arrive on top than the pane has rows: the selected lead
	// is pushed past the window, which follows it.
	addRejected(h, 200, 3*m.rejects.limit())
	m = drive(t, m, refreshRequestMsg{})
	if got := sel(m); got != want {
		t.Fatalf("after a burst of new leads the cursor is on %s, want %s", got, want)
	}
	if m.rejects.cursor != 2 {
		t.Fatalf("cursor row = %d, want it to stay on screen row 2", m.rejects.cursor)
	}
	requireContains(t, m.View(), "▸ "+want, "· from #")

	// Leads above it leave: it stays selected.
	removeLead(h, "ext-9203")
	removeLead(h, "ext-9250")
	m = drive(t, m, refreshRequestMsg{})
	if got := sel(m); got != want {
		t.Fatalf("after leads left the cursor is on %s, want %s", got, want)
	}

	// enter and r act on the lead under ▸ even when rows arrived since.
	addRejected(h, 400, 4)
	m = drive(t, m, refreshRequestMsg{})
	d := press(t, m, "enter")
	if !d.detail.shown || d.detail.leadID() != want {
		t.Fatalf("enter opened %q (shown %v), want %s", d.detail.leadID(), d.detail.shown, want)
	}
	r := press(t, m, "r")
	c, ok := r.overlay.(confirmDialog)
	if !ok || c.lead.ExternalID != want {
		t.Fatalf("r opened %T for %q, want a confirm for %s", r.overlay, c.lead.ExternalID, want)
	}
}

func TestLeadCursorOnTopShowsNewest(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 100, 30), "3")
	addRejected(h, 100, 2)
	m = drive(t, m, refreshRequestMsg{})
	if l, _ := m.rejects.selected(); l.ExternalID != "ext-9101" {
		t.Fatalf("cursor on top is on %s, want the newest ext-9101", l.ExternalID)
	}
}

// addCallback stores a verified callback for ext, received at t0+sec.
func addCallback(h *harness, id int64, ext string, sec int) {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	h.src.callbacks = append(h.src.callbacks, crm.CallbackEvent{
		ID: id, InternalID: "crm-" + ext, ExternalID: ext, Event: "status_changed", Status: "ftd",
		ReceivedAt: t0.Add(time.Duration(sec) * time.Second), LeadID: 9,
	})
}

func TestEventsFreezeAndFollow(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "4")
	requireContains(t, m.View(), "Status events (3) · following")

	m = press(t, m, "G")
	r, _ := m.events.selected()
	want := r.key()
	requireContains(t, m.View(), "Status events (3) · frozen")

	for i := range 30 {
		addCallback(h, int64(100+i), fmt.Sprintf("ext-8%02d", i), i+1)
	}
	m = drive(t, m, refreshRequestMsg{})
	if r, _ := m.events.selected(); r.key() != want {
		t.Fatalf("frozen tail: cursor on %s, want %s", r.key(), want)
	}
	v := m.View()
	requireContains(t, v, "frozen · 30 new (f follows)")
	requireLacks(t, v, "ext-829")

	// enter opens the row under the cursor, not what arrived.
	d := press(t, m, "enter")
	if !d.detail.shown || d.detail.leadID() != "ext-401" {
		t.Fatalf("enter opened %q, want the frozen row's lead ext-401", d.detail.leadID())
	}

	m = press(t, m, "f")
	v = m.View()
	requireContains(t, v, "· following", "▸ ", "ext-829")
	requireLacks(t, v, "frozen")
	if r, _ := m.events.selected(); r.cb == nil || r.cb.ExternalID != "ext-829" {
		t.Fatalf("following: cursor not on the newest row")
	}

	// f freezes where the cursor is; g follows again.
	m = press(t, m, "f")
	requireContains(t, m.View(), "· frozen")
	m = press(t, m, "g")
	requireContains(t, m.View(), "· following")
}

func TestFilterMatchesDrawnWords(t *testing.T) {
	cases := []struct {
		pane, filter string
		title        string
		shows, lacks []string
	}{
		// A state name drawn in the STATE column.
		{"3", "FAILED", "Rejections (1/3)", []string{"ext-301"}, []string{"ext-302", "ext-303"}},
		{"3", "valid", "Rejections (1/3)", []string{"ext-302"}, []string{"ext-301", "ext-303"}},
		// Words drawn from columns the store's filter does not read.
		{"3", "http 401", "Rejections (1/3)", []string{"ext-301"}, []string{"ext-302", "ext-303"}},
		{"3", "7m ago", "Rejections (1/3)", []string{"ext-302"}, []string{"ext-301", "ext-303"}},
		{"1", "dial tcp", "Pending retries (1/3)", []string{"ext-103"}, []string{"ext-101", "ext-102"}},
		{"1", "in 29s", "Pending retries (1/3)", []string{"ext-102"}, []string{"ext-101", "ext-103"}},
		// Words only the events pane draws.
		{"4", "refused", "Status events (1/3)", []string{"REFUSED", "bad_signature"}, []string{"ext-401", "ext-999"}},
		{"4", "UNMATCHED", "Status events (1/3)", []string{"ext-999"}, []string{"ext-401", "REFUSED"}},
		{"4", "10.0.0.7", "Status events (1/3)", []string{"REFUSED"}, []string{"ext-401"}},
	}
	for _, c := range cases {
		t.Run(c.pane+"/"+c.filter, func(t *testing.T) {
			m := press(t, newHarness().sized(t, 160, 48), c.pane, "/")
			m = press(t, m, splitKeys(c.filter)...)
			v := m.View()
			requireContains(t, v, c.title)
			requireContains(t, v, c.shows...)
			requireLacks(t, v, c.lacks...)
		})
	}
}

func TestCountLabel(t *testing.T) {
	for _, c := range []struct {
		shown, total int
		filtered     bool
		want         string
	}{
		{5, 5, false, " (5)"},
		{2, 9, true, " (2/9)"},
		{-40, 900, true, " (40+/900)"},
		{3, -1, true, " (3)"},
		{0, -1, false, ""},
	} {
		if got := countLabel(c.shown, c.total, c.filtered); got != c.want {
			t.Errorf("countLabel(%d, %d, %v) = %q, want %q", c.shown, c.total, c.filtered, got, c.want)
		}
	}
}

// splitKeys types s one rune at a time.
func splitKeys(s string) []string {
	out := make([]string, 0, len(s))
	for _, r := range s {
		out = append(out, string(r))
	}
	return out
}

func TestFilteredCursorFollowsItsRow(t *testing.T) {
	h := newHarness()
	addRejected(h, 100, 5)
	m := press(t, h.sized(t, 100, 30), "3", "/", "5", "0", "0", "enter", "j", "j")
	sel := func(m Model) string { l, _ := m.rejects.selected(); return l.ExternalID }
	want := sel(m)
	if want != "ext-9102" {
		t.Fatalf("after j j: %s, want ext-9102", want)
	}
	addRejected(h, 200, 2*m.rejects.limit())
	m = drive(t, m, refreshRequestMsg{})
	if got := sel(m); got != want {
		t.Fatalf("filtered: the cursor is on %s after new matches, want %s", got, want)
	}
	// Only the added leads draw HTTP 500; the fake's three others stay out.
	added := 5 + 2*m.rejects.limit()
	requireContains(t, m.View(), fmt.Sprintf("Rejections (%d/%d)", added, added+3), "▸ "+want)
}

// filteredBenchModel is the dashboard of BenchmarkDashboardRefreshFiltered:
// the Rejections pane filtering on "HTTP 401" (a word only the pane
// draws, so the store's filter matches none and scans every rejection),
// Status events on "REFUSED" (likewise), and Duplicates following a lead
// off the top (the rows read around its window). The filters' first
// search has run and landed, as after the user typed them.
func filteredBenchModel(b *testing.B, src Source) Model {
	b.Helper()
	m := New(Config{Source: src, Now: time.Now})
	tm, cmd := m.Update(tea.WindowSizeMsg{Width: benchWidth, Height: benchHeight})
	tm, _ = tm.Update(cmd())
	m = tm.(Model)
	m.rejects.setFilter("HTTP 401")
	m.events.setFilter("REFUSED")
	m.dups.cursor = min(2, max(len(m.dups.rows)-1, 0))
	m.cycle.running = false
	msg := m.refresh()().(snapshotMsg)
	if msg.err != nil {
		b.Fatal(msg.err)
	}
	tm, _ = m.Update(msg)
	m = tm.(Model)
	m.cycle.running = false
	b.Cleanup(func() { m.rejects.bg.wait(); m.events.bg.wait() })
	return m
}

// BenchmarkDashboardRefreshFiltered measures one refresh with what rows
// that stay put and the drawn-word filters add to it (filteredBenchModel):
// each refresh reads what changed since the filters' search, which runs
// again in the background every researchEvery. Run it like
// BenchmarkDashboardRefresh.
func BenchmarkDashboardRefreshFiltered(b *testing.B) {
	benchBackends(b, func(b *testing.B, be benchBackend) {
		m := filteredBenchModel(b, be.db)
		for b.Loop() {
			cmd := m.refresh()
			m.cycle.running = false
			if msg := cmd().(snapshotMsg); msg.err != nil {
				b.Fatal(msg.err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
	})
}

// BenchmarkDashboardRefreshFilteredFirst measures the refresh that runs
// the filters' first search (the filter just typed, or its window moved):
// the store's filter over every row of the states, once, not per refresh.
func BenchmarkDashboardRefreshFilteredFirst(b *testing.B) {
	benchBackends(b, func(b *testing.B, be benchBackend) {
		m := filteredBenchModel(b, be.db)
		for b.Loop() {
			m.rejects.srch, m.events.srch = leadSearch{}, eventSearch{}
			cmd := m.refresh()
			m.cycle.running = false
			if msg := cmd().(snapshotMsg); msg.err != nil {
				b.Fatal(msg.err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
	})
}

// BenchmarkDashboardRefreshFilteredResearching is the filtered refresh
// with a background search of each filter running at the same time, as
// every researchEvery or so: the refresh's own reads, on cores that the
// search shares.
func BenchmarkDashboardRefreshFilteredResearching(b *testing.B) {
	benchBackends(b, func(b *testing.B, be benchBackend) {
		m := filteredBenchModel(b, be.db)
		for b.Loop() {
			// Due at once; a search starts whenever none runs.
			m.rejects.srch.at, m.events.srch.at = time.Time{}, time.Time{}
			m.rejects.bg.took, m.events.bg.took = 0, 0
			cmd := m.refresh()
			m.cycle.running = false
			if msg := cmd().(snapshotMsg); msg.err != nil {
				b.Fatal(msg.err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
	})
}
