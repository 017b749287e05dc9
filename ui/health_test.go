package ui

import (
	"errors"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// TestStoreHealth: when the store reports that it cannot commit, the
// header's listener indicator turns to the store's trouble and the status
// bar keeps the detail until a refresh finds the store healthy again.
// Health is read in the refresh Cmd, never in Update or View.
func TestStoreHealth(t *testing.T) {
	for _, tc := range []struct {
		code, header string
	}{
		{"store_replaced", "✗ store replaced — not acknowledging"},
		{"disk_full", "✗ disk full — not acknowledging"},
		{"read_only", "✗ store read-only — not acknowledging"},
		{"unreachable", "✗ store unreachable — not acknowledging"},
		{"some_new_code", "✗ store failing (some_new_code) — not acknowledging"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			h := newHarness()
			m := h.sized(t, 160, 48)
			requireContains(t, m.View(), "● listening 127.0.0.1:8081")

			detail := errors.New("/tmp/lw.db was removed under the open store")
			h.src.setHealth(tc.code, detail)
			m = drive(t, m, refreshRequestMsg{})
			view := m.View()
			requireContains(t, view, tc.header, "/tmp/lw.db was removed")
			requireLacks(t, view, "● listening")

			// The error stays: esc clears notices and an action's error,
			// not a store that still cannot commit.
			m = press(t, m, "esc")
			requireContains(t, m.View(), "/tmp/lw.db was removed")

			// Update and View never ask the store themselves.
			reads := h.src.reads()
			next, _ := m.Update(tickMsg{now: t0.Add(time.Second), status: h.status})
			_ = next.(Model).View()
			if got := h.src.reads(); got != reads {
				t.Fatalf("Update or View read Health (%d reads, then %d)", reads, got)
			}

			h.src.setHealth("", nil)
			m = drive(t, m, refreshRequestMsg{})
			requireContains(t, m.View(), "● listening 127.0.0.1:8081")
			requireLacks(t, m.View(), "not acknowledging", "/tmp/lw.db")
		})
	}
	t.Run("ReadAgainByTheHeartbeat", func(t *testing.T) {
		// A store that stopped committing signals no change; the 1 s
		// heartbeat still refreshes once the reading is healthEvery old.
		h := newHarness()
		m := h.sized(t, 160, 48)
		h.src.setHealth("store_replaced", nil)
		next, cmd := m.Update(tickMsg{now: t0.Add(healthEvery), status: h.status})
		m = next.(Model)
		// The tick's Cmds are the next tick (a 1 s timer) and, when due,
		// the refresh: run them all and take the snapshot, which comes
		// first, without waiting for the timer.
		batch, ok := cmd().(tea.BatchMsg)
		if !ok {
			t.Fatal("the heartbeat returned no batch")
		}
		msgs := make(chan tea.Msg, len(batch))
		for _, c := range batch {
			if c != nil {
				go func() { msgs <- c() }()
			}
		}
		var snap *snapshotMsg
		timeout := time.After(5 * time.Second)
		for snap == nil {
			select {
			case msg := <-msgs:
				if _, isTick := msg.(tickMsg); isTick {
					t.Fatal("the heartbeat did not refresh a health reading healthEvery old")
				}
				if s, ok := msg.(snapshotMsg); ok {
					snap = &s
				}
			case <-timeout:
				t.Fatal("no refresh")
			}
		}
		m = drive(t, m, *snap)
		requireContains(t, m.View(), "✗ store replaced — not acknowledging")
	})
}
