package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// Replay hands stored callbacks to the app again (docs/protocol.md §5):
// the selected row of Status events, the callback a detail view shows,
// or every stored status of the lead a detail view shows, oldest first.
// It asks first (default No), then Source.Replay queues a new delivery
// of each with the same webhook-id, which the forwarder sends like any
// other. With forwarding off nothing would send them, so the key only
// says how to turn it on.

// replayedMsg is what Source.Replay did.
type replayedMsg struct {
	ids []int64
	n   int
	err error
}

// replayListMax is how many callbacks the replay question lists; the
// rest are counted.
const replayListMax = 6

// forwardOff is the status bar's answer to the replay key while no
// forwarder has ever run on the store.
const forwardOff = "forwarding is off: start it with --forward-to URL or [forward] url"

// replayKey answers the replay key on the dashboard: the selected row of
// Status events, if it is a stored callback.
func (m Model) replayKey() (tea.Model, tea.Cmd) {
	if !m.header.fwd.Enabled {
		m.bar.say(forwardOff)
		return m, nil
	}
	if m.focus != paneEvents {
		m.bar.say("select a callback in Status events (4), or open a lead: a replays its callbacks")
		return m, nil
	}
	r, ok := m.events.selected()
	switch {
	case !ok:
		m.bar.say("no callback selected")
		return m, nil
	case r.ref != nil:
		m.bar.say("a refused callback is never forwarded: it was not verified")
		return m, nil
	}
	if !m.events.frozen {
		// The tail would scroll the row away under the question: keep
		// it where the user chose it (f follows again).
		m.events.freeze()
	}
	m.overlay = m.askReplay("Replay "+replayName(*r.cb)+" to the app?", []crm.CallbackEvent{*r.cb})
	return m, nil
}

// replayName is how the question names one stored status: a polled one
// is never called a callback.
func replayName(c crm.CallbackEvent) string {
	if c.Kind == crm.KindPolled {
		return "polled status #" + fmt.Sprint(c.ID)
	}
	return "callback #" + fmt.Sprint(c.ID)
}

// replayDetail answers the replay key in a detail view: the lead's
// stored callbacks and polled statuses, or the one callback shown.
func (m Model) replayDetail() (tea.Model, tea.Cmd) {
	if !m.header.fwd.Enabled {
		m.bar.say(forwardOff)
		return m, nil
	}
	d := m.detail
	switch d.kind {
	case detailRefusal:
		m.bar.say("a refused callback is never forwarded: it was not verified")
		return m, nil
	case detailCallback:
		m.overlay = m.askReplay("Replay "+replayName(d.cb)+" to the app?", []crm.CallbackEvent{d.cb})
		return m, nil
	}
	if !d.loaded {
		m.bar.say("loading " + d.externalID + "…")
		return m, nil
	}
	cbs := d.lead.Callbacks
	switch len(cbs) {
	case 0:
		m.bar.say("no stored callback of " + d.externalID + " to replay")
		return m, nil
	case 1:
		m.overlay = m.askReplay("Replay the stored status of "+clean(d.externalID)+" to the app?", cbs)
	default:
		m.overlay = m.askReplay(fmt.Sprintf("Replay the %d stored statuses of %s to the app?", len(cbs), clean(d.externalID)), cbs)
	}
	return m, nil
}

// askReplay is the question before replaying cbs: which ones, and that
// the app sees the same bytes under the same webhook-id.
func (m Model) askReplay(question string, cbs []crm.CallbackEvent) overlay {
	st := m.st
	var b strings.Builder
	ids := make([]int64, len(cbs))
	for i, c := range cbs {
		ids[i] = c.ID
		if i >= replayListMax {
			continue
		}
		kind := "callback"
		if c.Kind == crm.KindPolled {
			kind = "polled  "
		}
		b.WriteString(st.Muted.Render(fmt.Sprintf("#%-6d %s  ", c.ID, kind)) +
			clean(strings.TrimSpace(c.Event+" "+c.Status)) + st.Muted.Render("  "+crm.WebhookID(c.ID)+"  "+c.ReceivedAt.In(m.now.Location()).Format("15:04:05")) + "\n")
	}
	if n := len(cbs) - replayListMax; n > 0 {
		b.WriteString(st.Muted.Render(fmt.Sprintf("… and %d more", n)) + "\n")
	}
	each := "each"
	if len(cbs) == 1 {
		each = "it"
	}
	b.WriteString("\nThe app gets " + each + " again, byte for byte, under the same webhook-id,\n")
	b.WriteString("in stored order per lead.")
	if forwardState(m.header.fwd, m.now) == forwardFailing {
		b.WriteString("\n" + st.Warn.Render("Forwarding is failing now: it goes once the app answers 2xx."))
	}
	return newAsk(st, m.keys.Confirm, "Replay", question, b.String(), replay(m.cfg.Source, ids))
}

// replay queues the callbacks with these ids for the app again.
func replay(src Source, ids []int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		n, err := src.Replay(ctx, ids, time.Time{})
		return replayedMsg{ids: ids, n: n, err: err}
	}
}

// replayed says what the replay did, and re-reads the header's queue.
func (m Model) replayed(msg replayedMsg) (tea.Model, tea.Cmd) {
	switch {
	case msg.err != nil:
		m.bar.fail(fmt.Errorf("replay: %w", msg.err))
		return m, nil
	case msg.n == 0:
		m.bar.say("nothing replayed: the store holds none of those callbacks any more")
	case msg.n == 1 && len(msg.ids) == 1:
		m.bar.err = nil
		m.bar.say("queued for the app: callback #" + fmt.Sprint(msg.ids[0]) + " as " + crm.WebhookID(msg.ids[0]))
	default:
		m.bar.err = nil
		m.bar.say(fmt.Sprintf("queued for the app: %d callbacks, each under its webhook-id", msg.n))
	}
	cmd := m.refresh()
	return m, cmd
}
