package ui

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/leadwatch/leadwatch/crm"
)

func requireContains(t *testing.T, view string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(view, w) {
			t.Fatalf("view lacks %q:\n%s", w, view)
		}
	}
}

func requireLacks(t *testing.T, view string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(view, b) {
			t.Fatalf("view has %q:\n%s", b, view)
		}
	}
}

// requireFrame checks the frame fills the terminal exactly: a layout
// that overflows would scroll or wrap the real screen.
func requireFrame(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Fatalf("line %d is %d cells wide, more than %d: %q", i, lw, w, l)
		}
	}
}

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
	m = press(t, m, "tab", "tab", "tab")
	requireContains(t, m.View(), "┏━ Pending retries")
	m = press(t, m, "shift+tab")
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

func TestDetail(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	m = press(t, m, "3", "enter") // rejections, newest first: ext-301 (failed)
	v := m.View()
	requireFrame(t, v, 160, 48)
	requireContains(t, v, "Lead ext-301 · failed", "Timeline", "→ enqueued", "→ attempt 1", "HTTP 401", "120ms",
		"Payload", `"first_name": "O'Brien"`, "Last response", `"error": "unauthorized"`)

	m = press(t, m, "esc")
	requireContains(t, m.View(), "Pending retries", "Status events")

	t.Run("AttemptDelays", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "G", "enter") // ext-101
		requireContains(t, m.View(), "error: context deadline exceeded", "retry in 2.0s (backoff 2^1 s, jittered)",
			"HTTP 503", "next attempt", "in 42s")
	})
	t.Run("Refusal", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "4", "j", "enter")
		requireContains(t, m.View(), "Refused callback #1", "signature made with none of the 2 secrets",
			"bad_signature", "HTTP 403", "10.0.0.7:51234", `{"internal_id":"crm-1","event":"st`)
	})
	t.Run("UnmatchedCallback", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "4", "enter")
		requireContains(t, m.View(), "Unmatched", "crm-7777:status_changed:1773489580", "clock skew", "-45s")
	})
	t.Run("MatchedCallbackOpensItsLead", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "4", "j", "j", "enter")
		requireContains(t, m.View(), "Lead ext-401 · accepted", "← callback status_changed", "approved")
	})
}

func TestResubmit(t *testing.T) {
	cases := []struct {
		name    string
		keys    []string
		lead    string
		wantKey string
	}{
		{"FailedKeepsKey", []string{"3"}, "ext-301", "same key ext-301-1773489000000-0a0b0c0d (unchanged failed lead)"},
		{"RejectedNewKey", []string{"3", "G"}, "ext-303", "a new key, since rejected is a final answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			m := press(t, h.sized(t, 160, 48), append(tc.keys, "r")...)
			v := m.View()
			requireContains(t, v, "Resubmit "+tc.lead+"?", tc.wantKey, "[ No ]")

			t.Run("EnterDefaultsToNo", func(t *testing.T) {
				m := press(t, m, "enter")
				requireLacks(t, m.View(), "Resubmit "+tc.lead+"?")
				if len(h.src.resubmits) != 0 {
					t.Fatalf("resubmitted on enter: %+v", h.src.resubmits)
				}
			})
			t.Run("NCancels", func(t *testing.T) {
				m := press(t, m, "n")
				requireLacks(t, m.View(), "Resubmit "+tc.lead+"?")
				if len(h.src.resubmits) != 0 {
					t.Fatalf("resubmitted on n: %+v", h.src.resubmits)
				}
			})
			t.Run("YResubmits", func(t *testing.T) {
				m := press(t, m, "y")
				if len(h.src.resubmits) != 1 || h.src.resubmits[0].ExternalID != tc.lead || h.src.resubmits[0].Payload != nil {
					t.Fatalf("resubmits = %+v, want one of %s with the stored payload", h.src.resubmits, tc.lead)
				}
				requireContains(t, m.View(), "resubmitted "+tc.lead)
			})
		})
	}
	t.Run("NotResubmittable", func(t *testing.T) {
		h := newHarness()
		m := press(t, h.sized(t, 160, 48), "r") // a retrying lead
		requireContains(t, m.View(), "ext-103 is retry_wait")
		requireLacks(t, m.View(), "Confirm")
	})
	t.Run("ArrowsThenEnter", func(t *testing.T) {
		h := newHarness()
		m := press(t, h.sized(t, 160, 48), "3", "r", "l")
		requireContains(t, m.View(), "[ Yes ]")
		m = press(t, m, "enter")
		if len(h.src.resubmits) != 1 {
			t.Fatalf("resubmits = %+v", h.src.resubmits)
		}
	})
}

func TestEditAndResubmit(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "j", "e") // ext-302, validation_error
	requireContains(t, m.View(), "Edit payload of ext-302", `"phone": "12345"`)

	t.Run("InvalidJSONRefused", func(t *testing.T) {
		m := press(t, m, "x", "ctrl+s")
		requireContains(t, m.View(), "not valid JSON")
		requireLacks(t, m.View(), "Resubmit ext-302?")
	})
	t.Run("ExternalIDMustStay", func(t *testing.T) {
		m := m
		m.editor.ta.SetValue(`{"external_id":"other","phone":"+4915112345678"}`)
		m = press(t, m, "ctrl+s")
		requireContains(t, m.View(), `external_id must stay "ext-302"`)
	})

	m.editor.ta.SetValue("{\n  \"external_id\": \"ext-302\",\n  \"phone\": \"+4915112345678\"\n}")
	m = press(t, m, "ctrl+s")
	requireContains(t, m.View(), "Resubmit ext-302?", "a new key, since the payload changed", "edited (", "[ No ]")

	t.Run("NoReturnsToEditor", func(t *testing.T) {
		m := press(t, m, "n")
		requireContains(t, m.View(), "Edit payload of ext-302", "+4915112345678")
	})
	m = press(t, m, "y")
	want := `{"external_id":"ext-302","phone":"+4915112345678"}`
	if len(h.src.resubmits) != 1 || string(h.src.resubmits[0].Payload) != want {
		t.Fatalf("resubmits = %+v, want the compact edit %s", h.src.resubmits, want)
	}
	requireContains(t, m.View(), "resubmitted ext-302 · new key")
}

func TestPause(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "p")
	requireContains(t, m.View(), "⏸ paused", "sending paused")
	m = press(t, m, "p")
	requireContains(t, m.View(), "▶ sending")
	if len(h.pauses) != 2 || !h.pauses[0] || h.pauses[1] {
		t.Fatalf("Pause calls = %v, want [true false]", h.pauses)
	}

	t.Run("Unavailable", func(t *testing.T) {
		cfg := newHarness().config()
		cfg.Pause = nil
		m := drive(t, New(cfg), tea.WindowSizeMsg{Width: 160, Height: 48})
		m = press(t, m, "p")
		requireContains(t, m.View(), "pausing is not available")
	})
}

func TestFilter(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "/", "3", "0", "2")
	if q := h.src.lastLeadQuery(t, crm.StateRejected, crm.StateValidationError, crm.StateFailed); q.Filter != "302" {
		t.Fatalf("rejections query filter = %q, want 302", q.Filter)
	}
	v := m.View()
	requireContains(t, v, "Rejections (3) · /302", "ext-302", "/302")
	requireLacks(t, v, "ext-303", "ext-301")

	m = press(t, m, "enter") // keep it, leave the input
	requireContains(t, m.View(), "· /302")
	if m.filtering {
		t.Fatal("still typing after enter")
	}

	m = press(t, m, "esc")
	if q := h.src.lastLeadQuery(t, crm.StateRejected, crm.StateValidationError, crm.StateFailed); q.Filter != "" {
		t.Fatalf("filter after esc = %q", q.Filter)
	}
	requireContains(t, m.View(), "ext-303", "ext-301")

	t.Run("Events", func(t *testing.T) {
		m := press(t, h.sized(t, 160, 48), "4", "/", "9", "9", "9")
		h.src.mu.Lock()
		q := h.src.eventQueries[len(h.src.eventQueries)-1]
		h.src.mu.Unlock()
		if q.Filter != "999" {
			t.Fatalf("events filter = %q", q.Filter)
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

func TestCopyCurl(t *testing.T) {
	const secret, apiKey = "hmac-literal-s3cr3t", "api-literal-k3y"
	t.Setenv("CARTELCRM_HMAC_SECRET", secret)
	t.Setenv("CARTELCRM_API_KEY", apiKey)
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "c")
	if len(h.clip) != 1 {
		t.Fatalf("clipboard calls = %d", len(h.clip))
	}
	cmd := h.clip[0]
	for _, want := range []string{`"$CARTELCRM_HMAC_SECRET"`, `$CARTELCRM_API_KEY`, "Idempotency-Key: ext-301-1773489000000-0a0b0c0d",
		"https://crm.example.test/api", "/v1/inbound/leads", "openssl dgst -sha256 -hmac", "--data-binary \"$body\""} {
		if !strings.Contains(cmd, want) {
			t.Fatalf("curl lacks %q:\n%s", want, cmd)
		}
	}
	for _, bad := range []string{secret, apiKey, "pw@", "token=x"} {
		if strings.Contains(cmd, bad) {
			t.Fatalf("curl contains secret %q:\n%s", bad, cmd)
		}
	}
	requireContains(t, m.View(), "curl — secrets come from the environment", "copied to the clipboard", "CARTELCRM_HMAC_SECRET")
	m = press(t, m, "esc")
	requireLacks(t, m.View(), "curl — secrets")

	t.Run("ClipboardFails", func(t *testing.T) {
		cfg := newHarness().config()
		cfg.Clipboard = func(string) error { return errors.New("no tty") }
		m := press(t, drive(t, New(cfg), tea.WindowSizeMsg{Width: 160, Height: 48}), "c")
		requireContains(t, m.View(), "clipboard: no tty", "Idempotency-Key")
	})
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

func TestRefreshErrorShownAndCleared(t *testing.T) {
	h := newHarness()
	h.src.countsErr = errors.New("database is locked")
	m := h.sized(t, 160, 48)
	v := m.View()
	requireContains(t, v, "✗ refresh: counts: database is locked", "ext-102", "crm-9001")

	h.src.mu.Lock()
	h.src.countsErr = nil
	h.src.mu.Unlock()
	m = drive(t, m, refreshRequestMsg{})
	requireLacks(t, m.View(), "database is locked")

	t.Run("ListenerError", func(t *testing.T) {
		h := newHarness()
		h.status = Status{ListenerAddr: ":8081", ListenerErr: errors.New("listen tcp :8081: bind: address already in use")}
		m := h.sized(t, 160, 48)
		requireContains(t, m.View(), "✗ listener down: listen tcp", "✗ listener: listen tcp", "ext-102")
	})
}

func TestLiveUpdates(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	requireLacks(t, m.View(), "ext-104")

	h.src.mu.Lock()
	h.src.leads = append(h.src.leads, lead(10, "ext-104", crm.StateRetryWait, func(l *crm.Lead) {
		l.Attempts, l.NextAttemptAt, l.LastHTTPStatus = 1, t0.Add(5*time.Second), 502
	}))
	h.src.mu.Unlock()
	h.changes <- struct{}{}

	// The change listener is a Cmd that blocks on the channel.
	msgs := runCmd(t, waitForChange(h.changes))
	if len(msgs) != 1 {
		t.Fatalf("waitForChange gave %v", msgs)
	}
	next, cmd := m.Update(msgs[0])
	m = next.(Model)
	// Run the refresh, not the re-armed listener that blocks.
	batch := cmd().(tea.BatchMsg)
	if len(batch) != 2 {
		t.Fatalf("change gave %d Cmds, want re-arm + refresh", len(batch))
	}
	m = drive(t, m, batch[1]())
	requireContains(t, m.View(), "ext-104", "in 5.0s", "Pending retries (4)")

	t.Run("Coalesce", func(t *testing.T) {
		m := m
		first := m.refresh()
		if first == nil || !m.refreshing {
			t.Fatal("no refresh started")
		}
		if again := m.refresh(); again != nil || !m.pending {
			t.Fatal("a second refresh started while one was in flight")
		}
		follow := m.applySnapshot(first().(snapshotMsg))
		if follow == nil {
			t.Fatal("the pending refresh did not run")
		}
		// The follow-up is paced: it may come as a delayed request.
		msg := follow()
		if _, ok := msg.(refreshRequestMsg); ok {
			if m.pending {
				t.Fatal("still pending after scheduling the follow-up")
			}
			msg = m.refresh()()
		}
		if m.applySnapshot(msg.(snapshotMsg)) != nil {
			t.Fatal("refreshed again with nothing pending")
		}
	})
	t.Run("TickMovesCountdowns", func(t *testing.T) {
		next, _ := m.Update(tickMsg{now: t0.Add(3 * time.Second), status: h.status})
		requireContains(t, next.(Model).View(), "in 2.0s", "in 26s")
	})
	t.Run("ClosedChannel", func(t *testing.T) {
		ch := make(chan struct{})
		close(ch)
		if _, ok := runCmd(t, waitForChange(ch))[0].(changesClosedMsg); !ok {
			t.Fatal("closed channel not reported")
		}
		if waitForChange(nil) != nil {
			t.Fatal("nil channel gave a Cmd")
		}
	})
}

func TestStaleResultDropped(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	m.refreshing = false
	cmd := m.refresh() // the query for the unfiltered pane
	m = press(t, m, "3", "/", "3", "0", "2")
	m = drive(t, m, cmd())
	requireLacks(t, m.View(), "ext-303")
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

func TestSparkline(t *testing.T) {
	cases := []struct {
		vals  []int
		width int
		want  string
	}{
		{nil, 4, "▁▁▁▁"},
		{[]int{0, 1, 4, 8}, 4, "▁▂▅█"},
		{[]int{5, 5}, 3, "▁██"},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8}, 3, "▆▇█"},
	}
	for _, tc := range cases {
		if got := sparkline(tc.vals, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", tc.vals, tc.width, got, tc.want)
		}
	}
}

func TestCleanStripsTerminalControls(t *testing.T) {
	in := "ok\x1b]0;pwned\x07\x9b31m\u009b2J\ttab"
	got := clean(in)
	if strings.ContainsAny(got, "\x1b\x07\t") || strings.ContainsRune(got, 0x9b) || strings.Contains(got, "\x9b") {
		t.Fatalf("clean(%q) = %q", in, got)
	}
	pretty := prettyJSON([]byte("{\"a\":\"\u009b2J\"}"))
	if strings.ContainsRune(pretty, 0x9b) {
		t.Fatalf("prettyJSON kept a C1 control: %q", pretty)
	}
}

func TestNoColorHonoured(t *testing.T) {
	render := func() string {
		var buf bytes.Buffer
		// A renderer on a terminal, as the real program has.
		r := lipgloss.NewRenderer(&buf, termenv.WithTTY(true))
		st := NewStyles(r, DefaultPalette())
		return st.Bad.Render("failed") + st.Selected.Render("row")
	}
	t.Setenv("TERM", "xterm-256color")
	t.Setenv("COLORTERM", "truecolor")
	t.Setenv("NO_COLOR", "")
	if got := render(); !strings.Contains(got, "\x1b[") {
		t.Fatalf("a colour terminal got no colour: %q", got)
	}
	t.Setenv("NO_COLOR", "1")
	if got := render(); strings.Contains(got, "\x1b") {
		t.Fatalf("NO_COLOR still coloured: %q", got)
	}
}

func TestExternalEditorRoundTrip(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	lead := h.src.leads[6] // ext-302

	msgs := runCmd(t, writeEditorFile(lead))
	file, ok := msgs[0].(editorFileMsg)
	if !ok {
		t.Fatalf("writeEditorFile gave %T", msgs[0])
	}
	b, err := os.ReadFile(file.path)
	if err != nil || !strings.Contains(string(b), `"phone": "12345"`) {
		t.Fatalf("editor file = %q, %v", b, err)
	}
	// What $EDITOR would do.
	if err := os.WriteFile(file.path, []byte(`{"external_id":"ext-302","phone":"+4915112345678"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = drive(t, m, editorClosedMsg{path: file.path, lead: lead})
	if _, err := os.Stat(file.path); !os.IsNotExist(err) {
		t.Fatalf("temp file left behind: %v", err)
	}
	requireContains(t, m.View(), "Edit payload of ext-302", "+4915112345678")
	m = press(t, m, "ctrl+s", "y")
	if len(h.src.resubmits) != 1 || string(h.src.resubmits[0].Payload) != `{"external_id":"ext-302","phone":"+4915112345678"}` {
		t.Fatalf("resubmits = %+v", h.src.resubmits)
	}

	t.Run("EditorFailed", func(t *testing.T) {
		f, err := os.CreateTemp(t.TempDir(), "x-*.json")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		m := drive(t, h.sized(t, 160, 48), editorClosedMsg{path: f.Name(), lead: lead, err: errors.New("exit status 1")})
		requireContains(t, m.View(), "editor: exit status 1 (nothing resubmitted)")
		requireLacks(t, m.View(), "Edit payload")
	})
}

// TestChangeStormParksListener: while a refresh runs or waits its turn,
// change signals neither start queries nor re-arm the listener (each
// re-arm would wake Update and View again; under 1,000 callbacks/s that
// was hundreds of frames a second). The landing refresh re-arms it once.
func TestChangeStormParksListener(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	update := func(msg tea.Msg) tea.Cmd {
		t.Helper()
		next, cmd := m.Update(msg)
		m = next.(Model)
		return cmd
	}
	batch, ok := update(changeMsg{})().(tea.BatchMsg)
	if !ok || len(batch) != 2 || !m.refreshing {
		t.Fatalf("an idle change gave %v, refreshing %v; want re-arm + refresh", batch, m.refreshing)
	}
	snap := batch[1]().(snapshotMsg)
	for i := range 50 {
		if cmd := update(changeMsg{}); cmd != nil {
			t.Fatalf("change %d during a refresh gave a Cmd", i)
		}
	}
	if !m.pending || m.listening {
		t.Fatalf("pending %v, listening %v; want a parked listener and a pending refresh", m.pending, m.listening)
	}
	// The refresh lands: the listener is re-armed and the pending
	// refresh follows (paced, or at once if the gap has passed).
	follow, ok := update(snap)().(tea.BatchMsg)
	if !ok || len(follow) != 2 || !m.listening {
		t.Fatalf("landing gave %v, listening %v; want follow-up + re-arm", follow, m.listening)
	}
	if m.followUp {
		if cmd := update(changeMsg{}); cmd != nil || m.listening {
			t.Fatal("a change while the follow-up waits was not parked")
		}
		if update(refreshRequestMsg{}) == nil || !m.refreshing {
			t.Fatal("the follow-up did not refresh")
		}
	}
	h.changes <- struct{}{}
	if msgs := runCmd(t, follow[1]); len(msgs) != 1 {
		t.Fatalf("the re-armed listener gave %v", msgs)
	} else if _, ok := msgs[0].(changeMsg); !ok {
		t.Fatalf("the re-armed listener gave %T", msgs[0])
	}
}

// TestEditorUnchangedWhateverSpacing: a payload stored with spaces, opened
// and saved as it is, is unchanged (nil), so a failed lead keeps its key;
// characters the screen would replace reach the editor as they are.
func TestEditorUnchangedWhateverSpacing(t *testing.T) {
	st := NewStyles(lipgloss.NewRenderer(io.Discard), DefaultPalette())
	stored := []byte("{\"external_id\": \"x-1\", \"phone\": \"+4915112345678\", \"note\": \"caf\u00e9 \\u0007\"}")
	lead := crm.Lead{ExternalID: "x-1", State: crm.StateFailed, Payload: stored}
	e := newEditor(st, lead, editableJSON(stored))
	got, err := e.check()
	if err != nil || got != nil {
		t.Fatalf("check() = %q, %v; want nil, nil (unchanged)", got, err)
	}
	if !strings.Contains(e.ta.Value(), `\u0007`) {
		t.Fatalf("editor text altered: %q", e.ta.Value())
	}
	e.ta.SetValue(strings.Replace(editableJSON(stored), "+4915112345678", "+4915112345679", 1))
	got, err = e.check()
	if err != nil || string(got) != `{"external_id":"x-1","phone":"+4915112345679","note":"café \u0007"}` {
		t.Fatalf("edited: %q, %v", got, err)
	}
}
