package ui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// viewHarness is a harness whose source is the views' fake.
func viewHarness(t *testing.T, w, ht int, setup func(*viewSource)) (*harness, *viewSource, Model) {
	t.Helper()
	h := newHarness()
	vs := newViewSource()
	h.src = vs.fakeSource
	if setup != nil {
		setup(vs)
	}
	cfg := h.config()
	cfg.Source = vs
	m := drive(t, New(cfg), tea.WindowSizeMsg{Width: w, Height: ht})
	return h, vs, m
}

// refreshNow runs one refresh as a change signal would.
func refreshNow(t *testing.T, m Model) Model {
	t.Helper()
	return drive(t, m, refreshRequestMsg{})
}

// selectedLead is the All leads pane's selected external_id.
func selectedLead(t *testing.T, m Model) string {
	t.Helper()
	s, ok := m.all.selection()
	if !ok {
		t.Fatal("All leads has no selection")
	}
	return s.leadID
}

func TestViewKeysInGrid(t *testing.T) {
	_, _, m := viewHarness(t, 160, 48, nil)
	for _, tc := range []struct {
		key, want string
	}{
		{"5", "┏━ All leads (9)"},
		{"6", "┏━ Sources by source · last 5 min (3)"},
		{"7", "┏━ Throughput · last 5 min"},
	} {
		m = press(t, m, tc.key)
		v := m.View()
		requireFrame(t, v, 160, 48)
		// A full-body view: the grid's panes are gone.
		requireContains(t, v, tc.want)
		requireLacks(t, v, "Pending retries", "Duplicates (2)")
	}
	m = press(t, m, "2")
	requireContains(t, m.View(), "┏━ Duplicates (2)", "╭─ Pending retries (3)")
	requireLacks(t, m.View(), "All leads")

	// Tab order: from the last grid pane on to the views, and around.
	m = press(t, m, "4", "tab")
	requireContains(t, m.View(), "┏━ All leads")
	m = press(t, m, "tab", "tab", "tab")
	requireContains(t, m.View(), "┏━ Pending retries (3)", "Status events")
	m = press(t, m, "shift+tab")
	requireContains(t, m.View(), "┏━ Throughput")
}

func TestViewKeysInTabs(t *testing.T) {
	for _, w := range []int{100, 80, 60} {
		_, _, m := viewHarness(t, w, 24, nil)
		for _, tc := range []struct{ key, tab string }{
			{"5", "[5 All leads 9]"}, {"6", "[6 Sources 3]"}, {"7", "[7 Throughput]"},
		} {
			m = press(t, m, tc.key)
			v := m.View()
			requireFrame(t, v, w, 24)
			// The active tab is whole at every width.
			requireContains(t, v, tc.tab)
		}
	}
}

func TestAllLeadsPagesByKeyset(t *testing.T) {
	_, vs, m := viewHarness(t, 100, 30, func(v *viewSource) { v.manyLeads(10_000) })
	m = press(t, m, "5")
	// 30 rows: 3 header, 1 status, 1 tab bar, 2 frame, 1 column header.
	lim := 22
	if got := m.all.limit(); got != lim {
		t.Fatalf("limit = %d, want %d", got, lim)
	}
	requireContains(t, m.View(), "All leads (10,000)", "▸ lead-10000", "lead-09979")
	q := vs.keysetQueries()
	if last := q[len(q)-1]; last.Order != crm.OrderNewest || last.BeforeID != 0 || last.Limit != lim+1 || len(last.States) != 0 {
		t.Fatalf("first page query = %+v", last)
	}

	t.Run("CursorFollowsItsLeadUnderArrivals", func(t *testing.T) {
		m := press(t, m, "j", "j", "j")
		if got := selectedLead(t, m); got != "lead-09997" {
			t.Fatalf("selected %s, want lead-09997", got)
		}
		vs.addLeads(5)
		m = refreshNow(t, m)
		if got := selectedLead(t, m); got != "lead-09997" {
			t.Fatalf("after 5 arrivals the cursor is on %s, want lead-09997", got)
		}
		requireContains(t, m.View(), "▸ lead-09997", "5 newer above")
		// g goes back to the live top, the newest first.
		m = press(t, m, "g")
		requireContains(t, m.View(), "▸ lead-10005", "All leads (10,005)")
		vs.manyLeads(10_000)
	})

	t.Run("PageDownAndUp", func(t *testing.T) {
		m := press(t, m, "pgdown")
		requireContains(t, m.View(), "▸ lead-09978", "from #9978")
		last := vs.keysetQueries()
		if q := last[len(last)-2]; q.BeforeID != 9979 || q.Offset != 0 {
			t.Fatalf("page 2 query = %+v, want BeforeID 9979", q)
		}
		m = press(t, m, "pgdown", "j")
		if got := selectedLead(t, m); got != "lead-09955" {
			t.Fatalf("selected %s, want lead-09955", got)
		}
		m = press(t, m, "pgup")
		if got := selectedLead(t, m); got != "lead-09977" {
			t.Fatalf("after pgup selected %s, want lead-09977", got)
		}
		// Up past the window's first row scrolls by one.
		m = press(t, m, "k", "k")
		requireContains(t, m.View(), "▸ lead-09979")
	})

	t.Run("BottomReadsTheOldestPage", func(t *testing.T) {
		m := press(t, m, "G")
		v := m.View()
		requireContains(t, v, "▸ lead-00001", "lead-00022")
		requireLacks(t, v, "lead-00023")
		var oldest bool
		for _, q := range vs.keysetQueries() {
			if q.Order == crm.OrderOldest && q.AfterID == 0 && q.Limit == lim {
				oldest = true
			}
		}
		if !oldest {
			t.Fatal("G did not read the oldest page by keyset")
		}
		m = press(t, m, "j")
		if got := selectedLead(t, m); got != "lead-00001" {
			t.Fatalf("j at the end moved to %s", got)
		}
		m = press(t, m, "k")
		if got := selectedLead(t, m); got != "lead-00002" {
			t.Fatalf("k moved to %s, want lead-00002", got)
		}
	})

	// No query of the pane ever paged by offset.
	for _, q := range vs.keysetQueries() {
		if q.Offset != 0 {
			t.Fatalf("a keyset query used Offset: %+v", q)
		}
	}
}

// counted waits for the All leads pane's background count of its filter,
// then refreshes so the title shows it.
func counted(t *testing.T, m Model) Model {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, ok := m.all.counter.get(m.all.filter); ok {
			return refreshNow(t, m)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the count of /%s never landed", m.all.filter)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAllLeadsFilter(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, func(v *viewSource) { v.manyLeads(10_000) })
	m = press(t, m, "5", "/")
	m = drive(t, m, keyMsg("lead-0999"), keyMsg("enter"))
	// Counted off the refresh, shown by a later one.
	m = counted(t, m)
	// The store's filter, counted up to the cap: ten match.
	requireContains(t, m.View(), "All leads (10/10,000) · /lead-0999", "▸ lead-09999", "lead-09990")
	q := vs.keysetQueries()
	// The search, by the store's filter from the newest; the refresh
	// after it reads only the matches stored after the newest lead.
	if first := q[len(q)-3]; first.Filter != "lead-0999" || first.Order != crm.OrderNewest {
		t.Fatalf("filtered query = %+v", first)
	}
	if last := q[len(q)-1]; last.Filter != "lead-0999" || last.Order != crm.OrderOldest || last.AfterID != 10_000 {
		t.Fatalf("the refresh after the search read %+v, want the matches after #10000", last)
	}

	m = press(t, m, "esc", "/")
	m = drive(t, m, keyMsg("lead-"), keyMsg("enter"))
	m = counted(t, m)
	requireContains(t, m.View(), "All leads (1,000+/10,000)")

	// A drawn state name filters by state, counted exactly.
	m = press(t, m, "esc", "/")
	m = drive(t, m, keyMsg("held"), keyMsg("enter"))
	requireContains(t, m.View(), "All leads (1,111/10,000) · /held", "held")
	q = vs.keysetQueries()
	if last := q[len(q)-1]; len(last.States) != 1 || last.States[0] != crm.StateHeld || last.Filter != "" {
		t.Fatalf("state filter query = %+v", last)
	}
}

func TestAllLeadsSaysWhereTheSearchStopped(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, func(v *viewSource) { v.extra = 1_000_000 })
	m = press(t, m, "5", "/")
	m = drive(t, m, keyMsg("nowhere"), keyMsg("enter"))
	requireContains(t, m.View(), "searched newest 100,000", "no match for /nowhere")
	// pgdn searches the next window, by keyset below the first.
	m = press(t, m, "pgdown")
	requireContains(t, m.View(), "searched 100,000 below #900010")
	q := vs.keysetQueries()
	if last := q[len(q)-2]; last.BeforeID != 900_010 || last.Filter != "nowhere" {
		t.Fatalf("the search went on with %+v", last)
	}
}

func TestAllLeadsEnterOpensTheSelectedLead(t *testing.T) {
	_, _, m := viewHarness(t, 160, 48, nil)
	m = press(t, m, "5", "j", "j", "enter")
	if !m.detail.shown || m.detail.leadID() != "ext-302" {
		t.Fatalf("detail shown %v for %q, want ext-302", m.detail.shown, m.detail.leadID())
	}
	requireContains(t, m.View(), "Lead ext-302")
}

func TestJump(t *testing.T) {
	t.Run("ByCRMID", func(t *testing.T) {
		_, vs, m := viewHarness(t, 160, 48, nil)
		m = press(t, m, ":")
		requireContains(t, m.View(), "go to lead: external_id or CRM id", "enter open lead", "esc cancel")
		m = drive(t, m, keyMsg("crm-9002"), keyMsg("enter"))
		if !m.detail.shown || m.detail.leadID() != "ext-202" {
			t.Fatalf("detail shown %v for %q, want ext-202", m.detail.shown, m.detail.leadID())
		}
		if len(vs.finds) != 1 || vs.finds[0] != "crm-9002" {
			t.Fatalf("FindLead calls %q", vs.finds)
		}
		// From the detail view too.
		m = drive(t, m, keyMsg(":"), keyMsg("ext-101"), keyMsg("enter"))
		if m.detail.leadID() != "ext-101" {
			t.Fatalf("jump from the detail opened %q", m.detail.leadID())
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		_, _, m := viewHarness(t, 160, 48, nil)
		m = drive(t, m, keyMsg(":"), keyMsg("nope-1"), keyMsg("enter"))
		if m.detail.shown {
			t.Fatal("a lead that does not exist opened a detail")
		}
		requireContains(t, m.View(), `✗ no lead has external_id or CRM id "nope-1"`)
	})
	t.Run("EscCancels", func(t *testing.T) {
		_, vs, m := viewHarness(t, 160, 48, nil)
		m = drive(t, m, keyMsg(":"), keyMsg("ext-101"), keyMsg("esc"))
		if m.overlay != nil || m.detail.shown || len(vs.finds) != 0 {
			t.Fatalf("esc left overlay %T, detail %v, finds %q", m.overlay, m.detail.shown, vs.finds)
		}
	})
}

func TestSourcesSwitchFieldAndWindow(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, nil)
	m = press(t, m, "6")
	want := func(by string, since time.Time) {
		t.Helper()
		q, _ := vs.lastReport()
		if q.By != by || !q.Since.Equal(since) {
			t.Fatalf("report query %+v, want by %s since %v", q, by, since)
		}
	}
	want(crm.GroupSource, t0.Add(-5*time.Minute))
	requireContains(t, m.View(), "Sources by source · last 5 min (3)", "SOURCE", "MEDIAN 1ST STATUS",
		"google", "120", "80%", "⚠ junk-net", "50%", "(none)")

	m = press(t, m, "b")
	want(crm.GroupFunnel, t0.Add(-5*time.Minute))
	requireContains(t, m.View(), "Sources by funnel · last 5 min", "FUNNEL")
	m = press(t, m, "w")
	want(crm.GroupFunnel, t0.Add(-time.Hour))
	requireContains(t, m.View(), "Sources by funnel · last hour")
	m = press(t, m, "w")
	want(crm.GroupFunnel, time.Time{})
	requireContains(t, m.View(), "Sources by funnel · all time")
	m = press(t, m, "b", "b")
	want(crm.GroupCountry, time.Time{})
	m = press(t, m, "b", "w")
	want(crm.GroupSource, t0.Add(-5*time.Minute))

	// Paced: a refresh within the second does not read the report again.
	_, n := vs.lastReport()
	m = refreshNow(t, m)
	if _, again := vs.lastReport(); again != n {
		t.Fatalf("a refresh within a second read the report again (%d → %d)", n, again)
	}
	// Not on screen, not read.
	m = press(t, m, "5")
	m = refreshNow(t, m)
	m.now = t0.Add(time.Hour)
	m = refreshNow(t, m)
	if _, again := vs.lastReport(); again != n {
		t.Fatalf("the report was read with the Sources view off screen")
	}
}

func TestSourcesSelectionFollowsItsValue(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, nil)
	m = press(t, m, "6", "j")
	requireContains(t, m.View(), "▸ ⚠ junk-net")
	// junk-net overtakes google: the cursor moves with it.
	vs.vmu.Lock()
	vs.report[0], vs.report[1] = vs.report[1], vs.report[0]
	vs.vmu.Unlock()
	m.now = m.now.Add(2 * time.Second)
	m = refreshNow(t, m)
	if m.sources.cursor != 0 || m.sources.value != "junk-net" {
		t.Fatalf("cursor %d on %q, want 0 on junk-net", m.sources.cursor, m.sources.value)
	}
}

func TestSourcesPauseAndResume(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, nil)
	m = press(t, m, "6", "j", "P")
	if len(vs.pauseCalls) != 1 || vs.pauseCalls[0] != (pauseCall{p: crm.Pause{Field: crm.GroupSource, Value: "junk-net"}}) {
		t.Fatalf("pause calls %+v", vs.pauseCalls)
	}
	v := m.View()
	requireContains(t, v, "⏸ source junk-net: 42 held · P resumes", "⚠ junk-net ⏸ paused", "1 paused")

	m = press(t, m, "P")
	if len(vs.pauseCalls) != 2 || !vs.pauseCalls[1].resume || vs.pauseCalls[1].p.Value != "junk-net" {
		t.Fatalf("resume calls %+v", vs.pauseCalls)
	}
	requireContains(t, m.View(), "▶ source junk-net resumed: 42 released")
	requireLacks(t, m.View(), "⏸ paused")

	// By sub_id too; not by funnel or country, nor a row without value.
	m = press(t, m, "b", "P")
	requireContains(t, m.View(), "sending pauses by source or sub_id")
	m = press(t, m, "b", "j", "j", "P")
	if n := len(vs.pauseCalls); n != 2 {
		t.Fatalf("P on (none) called Pause: %+v", vs.pauseCalls)
	}
	requireContains(t, m.View(), "leads without a sub_id cannot be paused")
	m = press(t, m, "g", "P")
	if c := vs.pauseCalls[len(vs.pauseCalls)-1]; c.p.Field != crm.GroupSubID || c.p.Value != "google" || c.resume {
		t.Fatalf("pause by sub_id = %+v", c)
	}
}

func TestTrendWindows(t *testing.T) {
	_, vs, m := viewHarness(t, 80, 24, func(v *viewSource) {
		v.mu.Lock()
		v.leads[0].CreatedAt = t0.Add(-3*time.Hour - 20*time.Minute - 30*time.Second)
		v.mu.Unlock()
	})
	m = press(t, m, "7")
	// The five minutes are the header's 10 s read: nothing more.
	for _, c := range vs.tpCalls {
		if c.bucket != sparkBucket {
			t.Fatalf("the 5 min window read %+v", c)
		}
	}
	v := m.View()
	requireFrame(t, v, 80, 24)
	requireContains(t, v, "Throughput · last 5 min", "sent", "accepted", "failed", "callbacks", "total", "peak", "/min", "-5m", "now")

	m = press(t, m, "w")
	last := vs.tpCalls[len(vs.tpCalls)-1]
	if last.bucket != time.Minute || !last.since.Equal(t0.Add(-59*time.Minute)) {
		t.Fatalf("hour read %+v", last)
	}
	requireContains(t, m.View(), "Throughput · last hour", "-1h")

	m = press(t, m, "w")
	last = vs.tpCalls[len(vs.tpCalls)-1]
	if want := t0.Add(-3*time.Hour - 21*time.Minute); last.bucket != time.Minute || !last.since.Equal(want) {
		t.Fatalf("launch read %+v, want since %v (the first lead's minute)", last, want)
	}
	requireContains(t, m.View(), "Throughput · launch (since Mar 14 08:39)", "08:39")

	// The filter keeps the charts it names.
	m = press(t, m, "/")
	m = drive(t, m, keyMsg("fail"), keyMsg("enter"))
	requireContains(t, m.View(), "failed")
	requireLacks(t, m.View(), "accepted ", "callbacks total")
}

func TestTrendColumnsFitAndKeepTheNewest(t *testing.T) {
	v := trendView{tp: crm.Throughput{Bucket: time.Minute}}
	vals := make([]int, 600)
	vals[599] = 60
	cols := v.columns(vals, 70)
	if len(cols) > 70 || cols[len(cols)-1] <= 0 {
		t.Fatalf("%d columns, last %v: want ≤ 70 with the newest minute last", len(cols), cols[len(cols)-1])
	}
	// Ten-second buckets read as per-minute rates.
	v.tp.Bucket = 10 * time.Second
	if c := v.columns([]int{5}, 1); c[0] != 30 {
		t.Fatalf("5 per 10 s = %v/min, want 30", c[0])
	}
}

func TestHeaderSparklinesAtEveryWidth(t *testing.T) {
	for _, w := range []int{160, 100, 80} {
		h := newHarness()
		m := h.sized(t, w, 30)
		line := strings.Split(m.View(), "\n")[2]
		requireContains(t, line, "sent ")
		if !strings.ContainsAny(line, sparkBars) {
			t.Fatalf("no sparkline at %d: %q", w, line)
		}
		if w < 160 {
			requireContains(t, line, "24/m", "cb ")
		} else {
			requireContains(t, line, "24/min", "callbacks ✓ 2 verified")
		}
		if strings.HasSuffix(strings.TrimRight(line, " "), "…") {
			t.Fatalf("line 3 cut at %d: %q", w, line)
		}
	}
}

func TestHelpListsTheViewKeys(t *testing.T) {
	_, _, m := viewHarness(t, 160, 48, nil)
	m = press(t, m, "?")
	requireContains(t, m.View(), "5 6 7 :", "all leads · sources · throughput · go to lead", "b w P", "by · window (launch: from 1st lead, ≤ 24 h) · pause source")
}

func TestAllLeadsBulkQuery(t *testing.T) {
	p := newAllPane(testStyles(), newKeyMap().Dashboard)
	p.setFilter("401")
	q, ok := p.bulkQuery()
	if !ok || q.Filter != "401" || len(q.States) != 4 {
		t.Fatalf("bulk query for /401 = %+v, %v; want the four resubmittable states", q, ok)
	}
	p.setFilter("retry")
	if _, ok := p.bulkQuery(); ok {
		t.Fatal("retry_wait leads offered for a bulk resubmit")
	}
	p.setFilter("fail")
	if q, ok := p.bulkQuery(); !ok || len(q.States) != 1 || q.States[0] != crm.StateFailed || q.Filter != "" {
		t.Fatalf("bulk query for /fail = %+v", q)
	}
}
