package ui

import (
	"errors"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

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
	requireContains(t, m.View(), "ext-104", "in 5s", "Pending retries (4)")

	t.Run("Coalesce", func(t *testing.T) {
		m := m
		first := m.refresh()
		if first == nil || !m.cycle.running {
			t.Fatal("no refresh started")
		}
		if again := m.refresh(); again != nil || !m.cycle.pending {
			t.Fatal("a second refresh started while one was in flight")
		}
		follow := m.applySnapshot(first().(snapshotMsg))
		if follow == nil {
			t.Fatal("the pending refresh did not run")
		}
		// The follow-up is paced: it may come as a delayed request.
		msg := follow()
		if _, ok := msg.(refreshRequestMsg); ok {
			if m.cycle.pending {
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
		requireContains(t, next.(Model).View(), "in 2s", "in 26s")
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
	m.cycle.running = false
	cmd := m.refresh() // the query for the unfiltered pane
	m = press(t, m, "3", "/", "3", "0", "2")
	m = drive(t, m, cmd())
	requireLacks(t, m.View(), "ext-303")
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
	if !ok || len(batch) != 2 || !m.cycle.running {
		t.Fatalf("an idle change gave %v, refreshing %v; want re-arm + refresh", batch, m.cycle.running)
	}
	snap := batch[1]().(snapshotMsg)
	for i := range 50 {
		if cmd := update(changeMsg{}); cmd != nil {
			t.Fatalf("change %d during a refresh gave a Cmd", i)
		}
	}
	if !m.cycle.pending || m.cycle.listening {
		t.Fatalf("pending %v, listening %v; want a parked listener and a pending refresh", m.cycle.pending, m.cycle.listening)
	}
	// The refresh lands: the listener is re-armed and the pending
	// refresh follows (paced, or at once if the gap has passed).
	follow, ok := update(snap)().(tea.BatchMsg)
	if !ok || len(follow) != 2 || !m.cycle.listening {
		t.Fatalf("landing gave %v, listening %v; want follow-up + re-arm", follow, m.cycle.listening)
	}
	if m.cycle.followUp {
		if cmd := update(changeMsg{}); cmd != nil || m.cycle.listening {
			t.Fatal("a change while the follow-up waits was not parked")
		}
		if update(refreshRequestMsg{}) == nil || !m.cycle.running {
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

// TestRefreshCycle drives the cycle alone: one query in flight, changes
// coalesced, follow-ups paced, the listener parked and re-armed.
func TestRefreshCycle(t *testing.T) {
	t.Run("OneInFlight", func(t *testing.T) {
		c := newRefreshCycle(make(chan struct{}))
		if !c.start() {
			t.Fatal("an idle cycle refused to start")
		}
		if c.start() || !c.pending {
			t.Fatal("a second start while running was not deferred")
		}
		// The follow-up is due, but the last query just started: it waits.
		now, later := c.landed(t0, false)
		if now || later == nil || !c.followUp || c.pending {
			t.Fatalf("landed = %v, %v; followUp %v pending %v; want a paced follow-up", now, later != nil, c.followUp, c.pending)
		}
		if _, ok := runCmd(t, later)[0].(refreshRequestMsg); !ok {
			t.Fatal("the paced follow-up is not a refresh request")
		}
		c.requested()
		if c.followUp {
			t.Fatal("the request left the follow-up scheduled")
		}
	})
	t.Run("AgainStartsAtOnce", func(t *testing.T) {
		c := newRefreshCycle(nil)
		c.start()
		if now, later := c.landed(t0, true); !now || later != nil {
			t.Fatalf("landed(again) = %v, %v; want now", now, later != nil)
		}
	})
	t.Run("FollowUpAfterTheGap", func(t *testing.T) {
		c := newRefreshCycle(nil)
		c.start()
		c.pending = true
		c.startedAt = time.Now().Add(-minRefreshGap)
		if now, later := c.landed(t0, false); !now || later != nil {
			t.Fatalf("landed = %v, %v; want a follow-up now", now, later != nil)
		}
	})
	t.Run("NothingPending", func(t *testing.T) {
		c := newRefreshCycle(nil)
		c.start()
		if now, later := c.landed(t0, false); now || later != nil || c.running {
			t.Fatalf("landed = %v, %v, running %v; want idle", now, later != nil, c.running)
		}
	})
	t.Run("ChangesParkTheListener", func(t *testing.T) {
		ch := make(chan struct{}, 1)
		c := newRefreshCycle(ch)
		if !c.listening || c.listen() != nil {
			t.Fatal("the listener Init arms was armed twice")
		}
		if !c.changed() || c.listening {
			t.Fatal("an idle change did not ask for a refresh")
		}
		c.start()
		if c.changed() || !c.pending {
			t.Fatal("a change during a refresh was not parked")
		}
		if c.listen() == nil || !c.listening {
			t.Fatal("the listener was not re-armed")
		}
		c.listening = false
		c.stop()
		if c.listen() != nil {
			t.Fatal("re-armed on a closed channel")
		}
	})
	t.Run("TickDue", func(t *testing.T) {
		polling := newRefreshCycle(nil)
		polling.lastBucket = t0
		if !polling.tickDue(t0) {
			t.Fatal("without a change signal every tick refreshes")
		}
		c := newRefreshCycle(make(chan struct{}))
		c.landed(t0, false)
		if c.tickDue(t0.Add(healthEvery - time.Second)) {
			t.Fatal("a tick in the same bucket, with the health fresh, refreshed")
		}
		// A store that stopped committing signals no change: the health on
		// screen is re-read at this age even within a bucket.
		if !c.tickDue(t0.Add(healthEvery)) {
			t.Fatal("the health on screen got old without a refresh")
		}
		c.landed(t0.Add(sparkBucket-time.Second), false)
		if !c.tickDue(t0.Add(sparkBucket)) {
			t.Fatal("the bucket rolled over without a refresh")
		}
	})
}
