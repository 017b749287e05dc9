package ui

import (
	"errors"
	"slices"
	"testing"
)

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

// TestCallbackDetailLoadsBody: the events pane's rows carry no raw body
// (the store's list queries leave it out), so opening a callback fetches
// it whole, once.
func TestCallbackDetailLoadsBody(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	if r, ok := m.events.selected(); !ok || r.cb == nil || r.cb.RawBody != nil {
		t.Fatalf("the unmatched row = %+v; want a callback without its body", r)
	}
	m = press(t, m, "4", "enter")
	requireContains(t, m.View(), "Callback crm-7777:status_changed:1773489580", "Body", "bytes, as signed",
		`"external_id": "ext-999"`, `"status": "rejected"`)
	h.src.mu.Lock()
	loads := slices.Clone(h.src.callbackLoads)
	h.src.mu.Unlock()
	if !slices.Equal(loads, []int64{2}) {
		t.Fatalf("Callback loads = %v, want [2]", loads)
	}

	t.Run("LoadingUntilItArrives", func(t *testing.T) {
		m := newHarness().sized(t, 160, 48)
		next, cmd := m.Update(keyMsg("4"))
		m = next.(Model)
		m = drive(t, m, runCmd(t, cmd)...)
		next, _ = m.Update(keyMsg("enter")) // the load Cmd is not run
		v := next.(Model).View()
		requireContains(t, v, "Unmatched", "clock skew", "Body", "loading…")
		requireLacks(t, v, "bytes, as signed")
	})
	t.Run("StaleResultDropped", func(t *testing.T) {
		m := m
		m.detail.setCallback(callbackMsg{id: 1, cb: h.src.callbacks[0]})
		requireLacks(t, m.View(), `"external_id": "ext-401"`)
		requireContains(t, m.View(), `"external_id": "ext-999"`)
	})
	t.Run("LoadFails", func(t *testing.T) {
		h := newHarness()
		h.src.callbackErr = errors.New("database is locked")
		m := press(t, h.sized(t, 160, 48), "4", "enter")
		v := m.View()
		requireContains(t, v, "Unmatched", "-45s", "✗ load callback #2: database is locked")
		requireLacks(t, v, "loading…", "bytes, as signed")
	})
}
