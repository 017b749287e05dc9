package ui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// polledCallback is a status reconciliation learned for ext-401 by a
// lookup: a row of the callbacks table of kind polled, newest of all.
func polledCallback() crm.CallbackEvent {
	return crm.CallbackEvent{
		ID: 3, DedupKey: "polled:crm-9004:ftd:1773489595000", InternalID: "crm-9004", ExternalID: "ext-401",
		Event: "status_polled", Status: "ftd", ReceivedAt: t0.Add(-5 * time.Second), LeadID: 9, Kind: crm.KindPolled,
		RawBody: []byte(`{"event":"status_polled","internal_id":"crm-9004","external_id":"ext-401","status":"ftd","reason":"","polled_at":1773489595000}`),
	}
}

// ext401Forwards are the app's answers to ext-401's two stored statuses:
// the callback refused once with a 503, then taken, then replayed; the
// polled status timed out and is waiting to retry.
func ext401Forwards() []crm.ForwardAttempt {
	return []crm.ForwardAttempt{
		{ID: 1, DeliveryID: 1, CallbackID: 1, ExternalID: "ext-401", WebhookID: "cb_1", DeliveryResult: crm.DeliveryResult{
			ID: 1, At: t0.Add(-58 * time.Second), Status: 503, Head: []byte("upstream down\n"), Latency: 80 * time.Millisecond,
			Error: "HTTP 503", NextAt: t0.Add(-56 * time.Second)}},
		{ID: 2, DeliveryID: 1, CallbackID: 1, ExternalID: "ext-401", WebhookID: "cb_1", DeliveryResult: crm.DeliveryResult{
			ID: 1, At: t0.Add(-55 * time.Second), Status: 200, Head: []byte(`{"ok":true}`), Latency: 12 * time.Millisecond, Delivered: true}},
		{ID: 3, DeliveryID: 2, CallbackID: 3, ExternalID: "ext-401", WebhookID: "cb_3", DeliveryResult: crm.DeliveryResult{
			ID: 2, At: t0.Add(-4 * time.Second), Latency: 5 * time.Second,
			Error: `Post "https://app:hunter2@app.example.test/hook?token=s3cr3t": context deadline exceeded`, NextAt: t0.Add(-2 * time.Second)}},
		// The operator replayed the callback: a new delivery, same id.
		{ID: 4, DeliveryID: 3, CallbackID: 1, ExternalID: "ext-401", WebhookID: "cb_1", DeliveryResult: crm.DeliveryResult{
			ID: 3, At: t0.Add(-3 * time.Second), Status: 200, Head: []byte(`{"ok":true}`), Latency: 9 * time.Millisecond, Delivered: true}},
	}
}

// forwardHarness is the harness with a polled status, ext-401's
// deliveries and the forward queue answering fs.
func forwardHarness(fs crm.ForwardStats) *harness {
	h := newHarness()
	h.src.callbacks = append(h.src.callbacks, polledCallback())
	h.src.setForwards("ext-401", ext401Forwards())
	h.src.setForward(fs)
	return h
}

// failingStats is a queue whose app has stopped answering: deliveries
// failed for good, more waiting, and an error that quotes the URL.
func failingStats() crm.ForwardStats {
	return crm.ForwardStats{
		Enabled: true, Pending: 12, InFlight: 3, Failed: 2, Delivered: 1480, Lag: 40,
		OldestPending: t0.Add(-30 * time.Second), LastErrorAt: t0.Add(-14 * time.Second),
		LastError: `Post "https://app:hunter2@app.example.test/hook?token=s3cr3t": dial tcp 127.0.0.1:9: connect: connection refused`,
	}
}

// TestForwardHeaderLine checks the forwarding line: absent while no
// forwarder ever ran (the header stays three lines), green when the
// queue keeps up, red with the last error once deliveries fail or wait
// too long, the error never carrying the URL's credentials or query,
// and every size's frame exact.
func TestForwardHeaderLine(t *testing.T) {
	t.Run("Off", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{})
		m := h.sized(t, 160, 48)
		requireLacks(t, m.View(), "forward", "fwd")
		if got := m.header.height(); got != headerHeight {
			t.Fatalf("header is %d lines with forwarding off, want %d", got, headerHeight)
		}
	})
	t.Run("Healthy", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{Enabled: true, Delivered: 1480, InFlight: 1, LastDelivered: t0})
		m := h.sized(t, 160, 48)
		view := m.View()
		requireContains(t, view, "✓ forward → app 0 queued · 1 in flight · 0 failed · 1,480 delivered · lag 0")
		requireLacks(t, view, "ago:", "✗ forward")
		lines := strings.Split(view, "\n")
		if !strings.HasPrefix(lines[3], "✓ forward → app") {
			t.Fatalf("line 4 is not the forwarding line: %q", lines[3])
		}
		if !strings.Contains(lines[4], "Pending retries") {
			t.Fatalf("the body does not start under the forwarding line: %q", lines[4])
		}
		requireFrame(t, view, 160, 48)
	})
	t.Run("Failing", func(t *testing.T) {
		h := forwardHarness(failingStats())
		for _, size := range [][2]int{{160, 48}, {100, 30}, {80, 24}} {
			m := h.sized(t, size[0], size[1])
			view := m.View()
			requireFrame(t, view, size[0], size[1])
			requireLacks(t, view, "hunter2", "s3cr3t", "token")
			line := strings.Split(view, "\n")[3]
			switch size[0] {
			case 160:
				requireContains(t, line, "✗ forward → app failing 12 queued · 3 in flight · 2 failed · 1,480 delivered · lag 40 │ 14 s ago: dial tcp 127.0.0.1:9: connect: connection refused")
			case 80:
				// Abbreviated: every count still there, the error cut.
				requireContains(t, line, "✗ fwd failing 12 queued 3 sending 2 failed 1,480 ok lag 40 │ dial tcp")
			}
		}
	})
	t.Run("Stuck", func(t *testing.T) {
		fs := crm.ForwardStats{Enabled: true, Pending: 4, Delivered: 9, OldestPending: t0.Add(-5 * time.Minute)}
		m := forwardHarness(fs).sized(t, 160, 48)
		requireContains(t, m.View(), "✗ forward → app stuck 5 min 4 queued", "oldest 5 min")
	})
	t.Run("NoForwarder", func(t *testing.T) {
		// Forwarding ran once, but nothing takes the stored callbacks in:
		// red, not a green line over a growing lag.
		fs := crm.ForwardStats{Enabled: true, Delivered: 9, Lag: 350, LastDelivered: t0.Add(-10 * time.Minute)}
		m := forwardHarness(fs).sized(t, 160, 48)
		requireContains(t, m.View(), "✗ forward → app stuck 10 min 0 queued", "lag 350")
		fs.LastDelivered = t0.Add(-5 * time.Second) // a burst being taken in
		m = forwardHarness(fs).sized(t, 160, 48)
		requireContains(t, m.View(), "✓ forward → app 0 queued", "lag 350")
	})
	t.Run("Retrying", func(t *testing.T) {
		fs := crm.ForwardStats{Enabled: true, Pending: 2, Delivered: 9, OldestPending: t0.Add(-15 * time.Second),
			LastError: "HTTP 503", LastErrorAt: t0.Add(-2 * time.Second)}
		m := forwardHarness(fs).sized(t, 160, 48)
		requireContains(t, m.View(), "⚠ forward → app retrying 2 queued", "│ 2 s ago: HTTP 503")

		// A 503 retried at once is the queue working: green, the error
		// still said.
		fs.OldestPending = t0.Add(-time.Second)
		h := forwardHarness(fs)
		requireContains(t, h.sized(t, 160, 48).View(), "✓ forward → app 2 queued", "│ 2 s ago: HTTP 503")
	})
	t.Run("ComesAndGoes", func(t *testing.T) {
		// Forwarding starts while the dashboard runs: the body gives up a
		// line, and the frame still fits.
		h := forwardHarness(crm.ForwardStats{})
		m := h.sized(t, 80, 24)
		before := m.bodyHeight()
		h.src.setForward(crm.ForwardStats{Enabled: true})
		m = refreshNow(t, m)
		if got := m.bodyHeight(); got != before-1 {
			t.Fatalf("body is %d lines with the forwarding line, want %d", got, before-1)
		}
		requireFrame(t, m.View(), 80, 24)
		requireContains(t, m.View(), "✓ forward → app 0 queued · 0 in flight")
	})
	t.Run("StatsFail", func(t *testing.T) {
		// A failing read keeps the last numbers and says why.
		h := forwardHarness(failingStats())
		m := h.sized(t, 160, 48)
		h.src.mu.Lock()
		h.src.fwd().statsErr = errors.New("database is locked")
		h.src.mu.Unlock()
		m = refreshNow(t, m)
		requireContains(t, m.View(), "2 failed · 1,480 delivered", "forward: database is locked")
	})
}

// TestScrubError checks what the header and the timeline make of an
// error: URLs keep scheme, host and path only, whsec_ secrets go, and it
// is one line.
func TestScrubError(t *testing.T) {
	cases := []struct{ in, want string }{
		{`Post "https://u:pw@app.test/hook?token=x#f": EOF`, `EOF`},
		{`proxy https://u:pw@proxy.test:3128/?k=v refused`, `proxy https://proxy.test:3128 refused`},
		{"app echoed whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nbye", "app echoed whsec_… bye"},
		{"HTTP 503", "HTTP 503"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := scrubError(tc.in); got != tc.want {
			t.Errorf("scrubError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestForwardTimeline checks a lead's story: each delivery attempt after
// the status it carried, with the app's status, latency and first bytes,
// and the polled status marked as a lookup, never as a callback.
func TestForwardTimeline(t *testing.T) {
	h := forwardHarness(crm.ForwardStats{Enabled: true})
	m := press(t, h.sized(t, 160, 48), "4", "enter") // the polled row: ext-401's story
	view := m.View()
	want := []string{
		"← callback status_changed  approved",
		`→ app  HTTP 503 · 80ms  "upstream down"  retry in 2.0s  · cb_1`,
		`→ app  HTTP 200 · 12ms  "{"ok":true}"  ✓ delivered  · cb_1`,
		"◇ polled status  ftd  · status lookup, not a callback",
		`→ app  context deadline exceeded · 5.0s  retry in 2.0s  · cb_3`,
		`→ app  HTTP 200 · 9ms  "{"ok":true}"  ✓ delivered  · cb_1  ↻ replay`,
	}
	requireContains(t, view, want...)
	requireLacks(t, view, "hunter2", "s3cr3t", "← callback status_polled")
	if n := strings.Count(view, "↻ replay"); n != 1 {
		t.Fatalf("%d attempts marked as replays, want the one after cb_1 was delivered:\n%s", n, view)
	}

	// In time order, each answer after the status it carried.
	at := -1
	for _, w := range want {
		i := strings.Index(view, w)
		if i < at {
			t.Fatalf("%q is out of time order:\n%s", w, view)
		}
		at = i
	}

	// The app's bytes are drawn, never obeyed: an answer that carries a
	// terminal escape shows it defused, and is cut.
	as := ext401Forwards()
	as[0].Head = []byte("\x1b[2J\x1b]52;c;aGk=\x07" + strings.Repeat("x", 200))
	h.src.setForwards("ext-401", as)
	m = refreshNow(t, m)
	view = m.View()
	requireLacks(t, view, "\x1b[2J", "\x1b]52", strings.Repeat("x", forwardHeadCells+1))
	requireContains(t, view, `"�[2J�]52;c;aGk=�xxx`)
}

// TestEventsPanePolled checks the tail marks a polled status apart from
// verified callbacks, and the header counts it apart.
func TestEventsPanePolled(t *testing.T) {
	h := forwardHarness(crm.ForwardStats{})
	m := h.sized(t, 160, 48)
	view := m.View()
	requireContains(t, view, "callbacks ✓ 2 verified · ✗ 1 refused · ? 1 unmatched · ◇ 1 polled", "Status events (4)")
	var row string
	for _, l := range strings.Split(view, "\n") {
		if strings.Contains(l, "polled") && strings.Contains(l, "ext-401") {
			row = l
		}
	}
	if row == "" {
		t.Fatalf("no polled row in the events pane:\n%s", view)
	}
	requireContains(t, row, "◇", "polled", "ftd", "lookup")
	requireLacks(t, row, "✓", "status_polled")

	// No polled status yet: the header says nothing of them.
	m = newHarness().sized(t, 160, 48)
	requireLacks(t, m.View(), "polled")
}

// TestReplayKey checks replay end to end over the fake: the key is
// refused with a reason while forwarding is off, on a refusal and
// outside the events pane; otherwise it asks (default No) and a yes
// queues exactly the callbacks named, from the events pane and from a
// lead's detail (all of its stored statuses, oldest first).
func TestReplayKey(t *testing.T) {
	t.Run("Off", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{})
		m := press(t, h.sized(t, 160, 48), "4", "a")
		requireContains(t, m.View(), "forwarding is off")
		if m.overlay != nil || len(h.src.replayCalls()) != 0 {
			t.Fatalf("replay went on with forwarding off: overlay %T, calls %v", m.overlay, h.src.replayCalls())
		}
	})
	t.Run("EventsPane", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{Enabled: true})
		m := press(t, h.sized(t, 160, 48), "4", "a") // the polled status #3, on top
		requireContains(t, m.View(), "Replay polled status #3 to the app?", "#3      polled    status_polled ftd  cb_3")
		if !m.events.frozen {
			t.Fatal("the tail still follows under the replay question: its row may scroll away")
		}
		m = press(t, m, "esc", "j", "a") // j: the unmatched callback #2
		requireContains(t, m.View(), "Replay callback #2 to the app?", "#2      callback  status_changed rejected  cb_2", "[ No ]")
		m = press(t, m, "enter") // No is the default
		if m.overlay != nil || len(h.src.replayCalls()) != 0 {
			t.Fatalf("enter on a fresh dialog replayed: %v", h.src.replayCalls())
		}
		m = press(t, m, "a", "y")
		calls := h.src.replayCalls()
		if len(calls) != 1 || len(calls[0].IDs) != 1 || calls[0].IDs[0] != 2 || !calls[0].Since.IsZero() {
			t.Fatalf("replay calls = %+v, want one of [2]", calls)
		}
		requireContains(t, m.View(), "queued for the app: callback #2 as cb_2")
	})
	t.Run("Refusal", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{Enabled: true})
		m := press(t, h.sized(t, 160, 48), "4", "j", "j", "a") // the refusal
		requireContains(t, m.View(), "a refused callback is never forwarded")
		if len(h.src.replayCalls()) != 0 {
			t.Fatal("a refusal was replayed")
		}
	})
	t.Run("OtherPane", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{Enabled: true})
		m := press(t, h.sized(t, 160, 48), "a")
		requireContains(t, m.View(), "select a callback in Status events (4)")
	})
	t.Run("LeadDetail", func(t *testing.T) {
		h := forwardHarness(failingStats())
		m := press(t, h.sized(t, 160, 48), "4", "enter") // the polled row: ext-401's story
		m = press(t, m, "a")
		requireContains(t, m.View(), "Replay the 2 stored statuses of ext-401 to the app?",
			"#1      callback  status_changed approved  cb_1", "#3      polled    status_polled ftd  cb_3",
			"Forwarding is failing now")
		m = press(t, m, "y")
		calls := h.src.replayCalls()
		if len(calls) != 1 || len(calls[0].IDs) != 2 || calls[0].IDs[0] != 1 || calls[0].IDs[1] != 3 {
			t.Fatalf("replay calls = %+v, want one of [1 3]", calls)
		}
		requireContains(t, m.View(), "queued for the app: 2 callbacks")
		if !m.detail.shown {
			t.Fatal("the replay closed the lead's detail")
		}
	})
	t.Run("CallbackDetail", func(t *testing.T) {
		// An unmatched callback opens its own detail; a replays it.
		h := forwardHarness(crm.ForwardStats{Enabled: true})
		m := press(t, h.sized(t, 160, 48), "4", "j", "enter")
		requireContains(t, m.View(), "Callback crm-7777:status_changed:1773489580", "a replay to app")
		m = press(t, m, "a")
		requireContains(t, m.View(), "Replay callback #2 to the app?", "The app gets it again")
		m = press(t, m, "y")
		if calls := h.src.replayCalls(); len(calls) != 1 || len(calls[0].IDs) != 1 || calls[0].IDs[0] != 2 {
			t.Fatalf("replay calls = %+v, want one of [2]", calls)
		}
		// A refusal's detail refuses.
		m = press(t, m, "esc", "j", "enter", "a")
		requireContains(t, m.View(), "Refused callback #1", "a refused callback is never forwarded")
		if n := len(h.src.replayCalls()); n != 1 {
			t.Fatalf("%d replay calls after a on a refusal, want still 1", n)
		}
	})
	t.Run("Fails", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{Enabled: true})
		h.src.mu.Lock()
		h.src.fwd().replayErr = errors.New("database is locked")
		h.src.mu.Unlock()
		m := press(t, h.sized(t, 160, 48), "4", "a", "y")
		requireContains(t, m.View(), "✗ replay: database is locked")
	})
	t.Run("Help", func(t *testing.T) {
		h := forwardHarness(crm.ForwardStats{})
		m := press(t, h.sized(t, 160, 48), "?")
		requireContains(t, m.View(), "replay to app")
		m = press(t, newHarness().sized(t, 160, 48), "4")
		requireContains(t, m.View(), "a replay to app")
	})
}
