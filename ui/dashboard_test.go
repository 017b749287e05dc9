package ui

import (
	"slices"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

func TestGridShowsEveryPane(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	v := m.View()
	requireFrame(t, v, 160, 48)
	requireContains(t, v,
		// header
		"● listening 127.0.0.1:8081", "CRM https://crm.example.test/api", "▶ sending",
		"3 retry wait", "2 duplicate", "1 validation error", "1 rejected", "1 failed", "1 accepted",
		"✓ 2 verified", "✗ 1 refused", "? 1 unmatched", "sent ", "/min",
		// retries: countdown, attempt n/max, last code or error, why
		"Pending retries (3)", "ext-102", "in 29s", "1/8", "HTTP 429", "Retry-After 30s",
		"ext-103", "due", "dial tcp", "backoff 2^4 s",
		// duplicates
		"Duplicates (2)", "crm-9001", "already exists",
		// rejections
		"Rejections (3)", "validation_error", "phone: not E.164", "blocked country", "unauthorized",
		// events
		"Status events (3)", "status_changed", "approved", "+1.2s",
	)
	requireLacks(t, v, "pw@", "token=x")

	t.Run("RefusedMarked", func(t *testing.T) {
		requireContains(t, v, "✗ 11:59:30 REFUSED", "REFUSED        bad_signature · signature made with none of the")
	})
	t.Run("UnmatchedMarked", func(t *testing.T) {
		requireContains(t, v, "? 11:59:50 status_changed", "unmatched")
	})
	t.Run("QueriesOnlyVisibleRows", func(t *testing.T) {
		// 48 rows: 3 header + 1 status = 44 body, 22 a pane, minus frame
		// and column header.
		q := h.src.lastLeadQuery(t, crm.StateRetryWait)
		if q.Limit != 19 || q.Offset != 0 {
			t.Fatalf("retries query = %+v, want Limit 19 Offset 0", q)
		}
	})
}

func TestFocusCycles(t *testing.T) {
	m := newHarness().sized(t, 160, 48)
	requireContains(t, m.View(), "┏━ Pending retries")
	m = press(t, m, "tab")
	requireContains(t, m.View(), "┏━ Duplicates", "╭─ Pending retries")
	// Past the four panes the tab order runs through the views (All
	// leads, Sources, Throughput), then back.
	m = press(t, m, "tab", "tab", "tab", "tab", "tab", "tab")
	requireContains(t, m.View(), "┏━ Pending retries")
	m = press(t, m, "shift+tab")
	requireContains(t, m.View(), "┏━ Throughput")
	m = press(t, m, "shift+tab", "shift+tab", "shift+tab")
	requireContains(t, m.View(), "┏━ Status events")
}

func TestCursorMoves(t *testing.T) {
	m := newHarness().sized(t, 160, 48)
	sel := func(m Model) string { l, _ := m.retries.selected(); return l.ExternalID }
	if got := sel(m); got != "ext-103" {
		t.Fatalf("first row = %s, want the soonest due ext-103", got)
	}
	m = press(t, m, "j")
	if got := sel(m); got != "ext-102" {
		t.Fatalf("after j: %s", got)
	}
	m = press(t, m, "G")
	if got := sel(m); got != "ext-101" {
		t.Fatalf("after G: %s", got)
	}
	m = press(t, m, "g")
	if got := sel(m); got != "ext-103" {
		t.Fatalf("after g: %s", got)
	}
	requireContains(t, m.View(), "▸ ext-103")
}

func TestFilter(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "/", "3", "0", "2")
	// The store's filter, then the scan of the newest rows the pane
	// matches its drawn words on.
	h.src.mu.Lock()
	qs := slices.Clone(h.src.leadQueries[len(h.src.leadQueries)-2:])
	h.src.mu.Unlock()
	if qs[0].Filter != "302" || qs[1].Filter != "" || qs[1].Limit != leadScan {
		t.Fatalf("rejections queries = %+v, want filter 302 then a scan of %d", qs, leadScan)
	}
	v := m.View()
	requireContains(t, v, "Rejections (1/3) · /302", "ext-302", "/302")
	requireLacks(t, v, "ext-303", "ext-301")

	m = press(t, m, "enter") // keep it, leave the input
	requireContains(t, m.View(), "· /302")
	if m.filter.active {
		t.Fatal("still typing after enter")
	}

	m = press(t, m, "esc")
	if q := h.src.lastLeadQuery(t, crm.StateRejected, crm.StateValidationError, crm.StateFailed); q.Filter != "" {
		t.Fatalf("filter after esc = %q", q.Filter)
	}
	requireContains(t, m.View(), "ext-303", "ext-301")

	t.Run("Events", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "4", "/", "9", "9", "9")
		// The last queries are the store-filtered ones and the unfiltered
		// scan of the newest rows the pane matches its drawn words on.
		h.src.mu.Lock()
		qs := h.src.eventQueries[len(h.src.eventQueries)-2:]
		h.src.mu.Unlock()
		if qs[0].Filter != "999" || qs[1].Filter != "" || qs[1].Limit != eventScan {
			t.Fatalf("events queries = %+v, want filter 999 then a scan of %d", qs, eventScan)
		}
		requireContains(t, m.View(), "ext-999")
		requireLacks(t, m.View(), "ext-401")
	})
}

func TestHelp(t *testing.T) {
	m := press(t, newHarness().sized(t, 160, 48), "?")
	requireContains(t, m.View(), "Keys · dashboard", "next pane", "copy as curl", "edit in $EDITOR", "pause/resume sending", "filter pane")
	m = press(t, m, "esc")
	requireLacks(t, m.View(), "Keys · dashboard")
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		t.Run(k, func(t *testing.T) {
			m := newHarness().sized(t, 160, 48)
			_, cmd := m.Update(keyMsg(k))
			msgs := runCmd(t, cmd)
			if len(msgs) != 1 {
				t.Fatalf("msgs = %v", msgs)
			}
			if _, ok := msgs[0].(tea.QuitMsg); !ok {
				t.Fatalf("got %T, want tea.QuitMsg", msgs[0])
			}
		})
	}
	t.Run("QTypesInFilter", func(t *testing.T) {
		m := press(t, newHarness().sized(t, 160, 48), "/")
		_, cmd := m.Update(keyMsg("q"))
		for _, msg := range runCmd(t, cmd) {
			if _, ok := msg.(tea.QuitMsg); ok {
				t.Fatal("q quit while typing a filter")
			}
		}
	})
}

func TestLayouts(t *testing.T) {
	cases := []struct {
		name string
		w, h int
		want []string
		lack []string
	}{
		{"TooSmall", 59, 20, []string{"terminal too small: need ≥ 60×16", "now 59×20"}, []string{"Pending retries"}},
		{"TooShort", 100, 15, []string{"terminal too small: need ≥ 60×16"}, nil},
		{"Tabs", 100, 30, []string{"[1 Pending retries 3]", " 2 Duplicates 2 ", "ext-102"}, []string{"┏━ Duplicates", "crm-9001"}},
		{"TabsWideButShort", 160, 29, []string{"[1 Pending retries 3]"}, nil},
		{"Minimum", 60, 16, []string{"[1 Pending retries", "ext-103"}, nil},
		{"Grid", 120, 30, []string{"Pending retries (3)", "Duplicates (2)"}, []string{"[1 Pending"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newHarness().sized(t, tc.w, tc.h)
			v := m.View()
			requireFrame(t, v, tc.w, tc.h)
			requireContains(t, v, tc.want...)
			requireLacks(t, v, tc.lack...)
		})
	}
	t.Run("TabSwitchQueriesTheNewTab", func(t *testing.T) {
		h := newHarness()
		m := h.sized(t, 100, 30)
		if h.src.lastLeadQueryOrNil(crm.StateDuplicate) != nil {
			t.Fatal("a hidden tab was queried")
		}
		m = press(t, m, "tab")
		requireContains(t, m.View(), "[2 Duplicates 2]", "crm-9001")
	})
	t.Run("ResizeNeverBreaks", func(t *testing.T) {
		m := newHarness().sized(t, 160, 48)
		m = press(t, m, "3", "enter")
		for _, sz := range [][2]int{{40, 10}, {61, 17}, {119, 40}, {200, 60}, {80, 24}, {160, 48}} {
			m = drive(t, m, tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
			requireFrame(t, m.View(), sz[0], sz[1])
		}
		requireContains(t, m.View(), "Lead ext-301")
	})
}

func TestPagingMovesTheWindow(t *testing.T) {
	h := newHarness()
	for i := 0; i < 30; i++ {
		id := int64(100 + i)
		ext := "ext-9" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		h.src.leads = append(h.src.leads, lead(id, ext, crm.StateDuplicate, nil))
	}
	m := press(t, h.sized(t, 160, 48), "2")
	if m.dups.limit() != 19 || len(m.dups.rows) != 19 {
		t.Fatalf("limit %d rows %d", m.dups.limit(), len(m.dups.rows))
	}
	for i := 0; i < 19; i++ {
		m = press(t, m, "j")
	}
	if q := h.src.lastLeadQuery(t, crm.StateDuplicate); q.Offset != 1 {
		t.Fatalf("offset after scrolling past the window = %d", q.Offset)
	}
	requireContains(t, m.View(), "Duplicates (32) · from #2")
	m = press(t, m, "G")
	if q := h.src.lastLeadQuery(t, crm.StateDuplicate); q.Offset != 32-19 {
		t.Fatalf("offset after G = %d", q.Offset)
	}
	m = press(t, m, "g")
	if q := h.src.lastLeadQuery(t, crm.StateDuplicate); q.Offset != 0 {
		t.Fatalf("offset after g = %d", q.Offset)
	}
}
