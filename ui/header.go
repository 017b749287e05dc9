package ui

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// stateLabel is the header's name for a state; short ones fit every
// count on a narrow line.
func stateLabel(st crm.State, short bool) string {
	if short {
		switch st {
		case crm.StateInFlight:
			return "sending"
		case crm.StateRetryWait:
			return "retry"
		case crm.StateAccepted:
			return "ok"
		case crm.StateDuplicate:
			return "dup"
		case crm.StateValidationError:
			return "invalid"
		}
		return string(st)
	}
	return strings.ReplaceAll(string(st), "_", " ")
}

// header is the top three lines: who we talk to and whether it works;
// the outbox by state; callbacks and throughput. The counts, throughput
// and the store's health come with each refresh; the status is what main
// reported last, given by the root.
type header struct {
	st         *Styles
	status     Status
	counts     crm.Counts
	haveCounts bool
	tp         crm.Throughput
	health     storeHealth
}

// Update takes a refresh's counts and throughput, each only when its
// query worked, so a failing one keeps the last numbers on screen, and
// its health reading, always: a store that recovered must stop showing
// red.
func (h header) Update(msg tea.Msg) header {
	if s, ok := msg.(snapshotMsg); ok {
		h.health = s.health
		if s.countsOK {
			h.counts, h.haveCounts = s.counts, true
		}
		if s.tpOK {
			h.tp = s.tp
		}
	}
	return h
}

// countsLine is the outbox by state, every state coloured the same way
// everywhere.
func (h header) countsLine(short bool, sep string) string {
	st := h.st
	counts := make([]string, 0, len(crm.States))
	for _, state := range crm.States {
		n := "–"
		if h.haveCounts {
			n = fmt.Sprint(h.counts.States[state])
		}
		counts = append(counts, st.State(state).Render(n)+" "+st.Muted.Render(stateLabel(state, short)))
	}
	return strings.Join(counts, st.Border.Render(sep))
}

// View draws the three lines width cells wide.
func (h header) View(width int) string {
	st, s := h.st, h.status
	sep := st.Border.Render(" │ ")

	var listener string
	switch {
	case h.health.code != "":
		// Before the listener's own state: while the store cannot commit,
		// a bound listener answers every callback 503.
		listener = st.Bad.Render("✗ " + storeTrouble(h.health.code))
	case s.ListenerErr != nil:
		listener = st.Bad.Render("✗ listener down: " + clean(s.ListenerErr.Error()))
	case s.NoListener:
		listener = st.Muted.Render("○ attached: no listener here")
	case s.ListenerAddr == "":
		listener = st.Muted.Render("○ no listener")
	case s.Healthy:
		listener = st.Good.Render("● listening ") + clean(s.ListenerAddr)
	default:
		listener = st.Warn.Render("◌ starting ") + clean(s.ListenerAddr)
	}
	crmURL := st.Muted.Render("CRM ") + clean(safeBaseURL(s.BaseURL))
	if s.BaseURL == "" {
		crmURL = st.Muted.Render("CRM not configured")
	}
	sending := st.Good.Render("▶ sending")
	switch {
	case s.NoSender:
		sending = st.Muted.Render("◎ attached: not sending")
	case s.Paused:
		sending = st.Warn.Render("⏸ paused")
	}
	// The URL is the longest and the least urgent: it goes last, where a
	// narrow terminal cuts.
	line1 := st.AppName.Render("leadwatch") + sep + sending + sep + listener + sep + crmURL

	line2 := h.countsLine(false, " · ")
	if lipgloss.Width(line2) > width {
		line2 = h.countsLine(true, " ")
	}

	c := h.counts
	cb := st.Muted.Render("callbacks ") +
		st.Good.Render(fmt.Sprintf("✓ %d verified", c.CallbacksVerified)) + st.Border.Render(" · ") +
		h.nonZero(c.Refusals, st.Bad).Render(fmt.Sprintf("✗ %d refused", c.Refusals)) + st.Border.Render(" · ") +
		h.nonZero(c.CallbacksUnmatched, st.Warn).Render(fmt.Sprintf("? %d unmatched", c.CallbacksUnmatched))
	if !h.haveCounts {
		cb = st.Muted.Render("callbacks –")
	}
	// Two sparklines share what is left of the line.
	room := width - lipgloss.Width(cb) - 4
	sw := min(sparkBuckets, max((room-2*len("sent  9999/min  "))/2, 0))
	spark := ""
	if sw >= 6 {
		spark = "    " + h.spark("sent", h.tp.Sent, sw, st.SparkSent) + "  " + h.spark("callbacks", h.tp.Callbacks, sw, st.SparkCB)
	}
	line3 := cb + spark

	return fit(line1, width) + "\n" + fit(line2, width) + "\n" + fit(line3, width)
}

// storeTrouble is the few words for a store that cannot commit, by its
// Health code: what is wrong, and that callbacks are not acknowledged
// (they get 503 until it is fixed).
func storeTrouble(code string) string {
	var what string
	switch code {
	case "store_replaced":
		what = "store replaced"
	case "disk_full":
		what = "disk full"
	case "read_only":
		what = "store read-only"
	case "unreachable":
		what = "store unreachable"
	default:
		what = "store failing (" + clean(code) + ")"
	}
	return what + " — not acknowledging"
}

func (h header) nonZero(n int, s lipgloss.Style) lipgloss.Style {
	if n == 0 {
		return h.st.Muted
	}
	return s
}

// spark draws one sparkline with its label and the last minute's total.
func (h header) spark(label string, vals []int, w int, s lipgloss.Style) string {
	perMin := 0
	per := int(time.Minute / sparkBucket)
	for i := max(len(vals)-per, 0); i < len(vals); i++ {
		perMin += vals[i]
	}
	return h.st.Muted.Render(label+" ") + s.Render(sparkline(vals, w)) + " " + fmt.Sprintf("%d/min", perMin)
}
