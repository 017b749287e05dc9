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
	fwd        crm.ForwardStats // the forward queue; a line of its own while Enabled
	now        time.Time        // the model's clock, for ages
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
		if s.fwdOK {
			h.fwd = s.fwd
		}
	}
	return h
}

// height is the header's lines: three, and the forwarding line while
// forwarding is enabled.
func (h header) height() int { return headerHeight + h.forwardLines() }

// countsLine is the outbox by state, every state coloured the same way
// everywhere.
func (h header) countsLine(short bool, sep string) string {
	st := h.st
	counts := make([]string, 0, len(crm.States))
	for _, state := range crm.States {
		if state == crm.StateHeld && h.counts.States[state] == 0 {
			// Held leads exist only after a hold or a pause: a standing
			// "0 held" would be noise on every launch.
			continue
		}
		n := "–"
		if h.haveCounts {
			n = fmt.Sprint(h.counts.States[state])
		}
		counts = append(counts, st.State(state).Render(n)+" "+st.Muted.Render(stateLabel(state, short)))
	}
	return strings.Join(counts, st.Border.Render(sep))
}

// View draws the three lines (four with forwarding) width cells wide.
func (h header) View(width int) string {
	// Compact only when the state itself would be cut: the URL may be.
	line1 := h.line1(false, true)
	if lipgloss.Width(h.line1(false, false)) > width {
		line1 = h.line1(true, true)
	}

	line2 := h.countsLine(false, " · ")
	if lipgloss.Width(line2) > width {
		line2 = h.countsLine(true, " ")
	}

	// The throughput line shrinks to fit (trend.go).
	line3 := h.line3(width)

	out := fit(line1, width) + "\n" + fit(line2, width) + "\n" + fit(line3, width)
	if h.fwd.Enabled {
		out += "\n" + fit(h.forwardLine(width), width)
	}
	return out
}

// line1 is who we talk to and whether it works. compact drops the
// listener's address and the CRM's details but the red, for narrow
// terminals; withURL false leaves the CRM's URL out.
func (h header) line1(compact, withURL bool) string {
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
		// Another process listens; the traffic is what the store holds.
		if d, silent := h.silent(); silent {
			listener = st.Warn.Render("⚠ no callback stored for " + ago(d) + " while leads are accepted")
			break
		}
		listener = st.Muted.Render("○ attached: no listener here")
		if compact {
			listener = st.Muted.Render("○ no listener here")
		}
		listener += h.listenerTraffic(compact)
	case s.ListenerAddr == "":
		listener = st.Muted.Render("○ no listener")
	case s.Healthy:
		if d, silent := h.silent(); silent {
			listener = st.Warn.Render("⚠ no callback for " + ago(d) + " while leads are accepted")
			if !compact {
				listener += " " + clean(s.ListenerAddr)
			}
			break
		}
		listener = st.Good.Render("● listening")
		if !compact {
			listener += " " + clean(s.ListenerAddr)
		}
		listener += h.listenerTraffic(compact)
	default:
		listener = st.Warn.Render("◌ starting ") + clean(s.ListenerAddr)
	}
	crmURL := st.Muted.Render("CRM ") + clean(safeBaseURL(s.BaseURL))
	if s.BaseURL == "" {
		crmURL = st.Muted.Render("CRM not configured")
	}
	sending := st.Good.Render("▶ sending")
	if _, _, down := crmDown(s.CRM, h.now); down {
		// Still sending, amber, beside the red CRM state.
		sending = st.Warn.Render("▶ sending")
		if compact {
			sending = "" // the red CRM state says it
		}
	} else if compact {
		sending = st.Good.Render("▶")
	}
	switch {
	case s.NoSender:
		sending = st.Muted.Render("◎ attached: not sending")
	case s.Paused:
		sending = st.Warn.Render("⏸ paused")
	}
	if c := h.crmState(compact); c != "" {
		sending = strings.TrimPrefix(sending+" "+c, " ")
	}
	// The URL is the longest and the least urgent: it goes last, where a
	// narrow terminal cuts.
	line := st.AppName.Render("leadwatch") + sep + sending + sep + listener
	if withURL {
		line += sep + crmURL
	}
	return line
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

// answeredMin is "sent N/min"'s N: the attempts the CRM answered over
// the last minute, or -1 when this process sends nothing (the store's
// attempts then, unreached ones included).
func (h header) answeredMin() int {
	if h.status.CRM == nil {
		return -1
	}
	return h.status.CRM.Answered
}

// spark draws one sparkline with its label and the last minute's total:
// perMin when it is not negative, else the sum of the last minute's
// buckets.
func (h header) spark(label string, vals []int, w int, s lipgloss.Style, perMin int, unit string) string {
	if perMin < 0 {
		perMin = 0
		per := int(time.Minute / sparkBucket)
		for i := max(len(vals)-per, 0); i < len(vals); i++ {
			perMin += vals[i]
		}
	}
	return h.st.Muted.Render(label+" ") + s.Render(sparkline(vals, w)) + " " + fmt.Sprintf("%d%s", perMin, unit)
}

// unreachableAfter is how many attempts in a row must get no answer
// before the header says the CRM is unreachable; failingAfter the same
// for failures of any kind (5xx, 429, 401 answers included).
const (
	unreachableAfter = 3
	failingAfter     = 3
)

// silentAfter is the silent listener's rule: leads accepted within the
// last silentAfter, and no verified callback for as long (counted from
// the listener's start when none came), warn that callbacks stopped
// arriving.
const silentAfter = 2 * time.Minute

// ago is a short age: "42 s", "3 min", "2 h"; no false precision.
func ago(d time.Duration) string {
	switch d = max(d, 0); {
	case d < 100*time.Second:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < 100*time.Minute:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return fmt.Sprintf("%d h", int(d/time.Hour))
}

// crmDown is how long the CRM has been failing by h as of now, and
// whether it is unreachable (no answers at all) or failing (answers that
// take no lead), or neither (ok false).
func crmDown(h *crm.Health, now time.Time) (since time.Duration, unreachable, ok bool) {
	if h == nil {
		return 0, false, false
	}
	switch {
	case h.Unreached >= unreachableAfter:
		// Since the last answer of any kind; since the failures began
		// when none ever came.
		from := h.LastAnswer
		if from.IsZero() {
			from = h.FailingSince
		}
		return now.Sub(from), true, true
	case h.Failures >= failingAfter:
		return now.Sub(h.FailingSince), false, true
	}
	return 0, false, false
}

// crmTrouble is the status bar's error for a CRM that is down, with the
// whole error the last attempt met; "" while it answers.
func crmTrouble(h *crm.Health, now time.Time) string {
	d, unreachable, down := crmDown(h, now)
	switch {
	case !down:
		return ""
	case unreachable:
		msg := "CRM unreachable for " + ago(d)
		if h.LastError != "" {
			msg += ": " + h.LastError
		}
		return msg
	}
	return fmt.Sprintf("CRM failing for %s: %d attempts in a row taken by no decision (last HTTP %d)", ago(d), h.Failures, h.LastStatus)
}

// crmState is the header's CRM segment: red when requests stop reaching
// it or it stops deciding, else the age of its last answer and the share
// of the last minute's attempts that failed.
func (h header) crmState(compact bool) string {
	st, c := h.st, h.status.CRM
	if c == nil {
		return ""
	}
	if d, unreachable, down := crmDown(c, h.now); down {
		if unreachable {
			return st.Bad.Render(fmt.Sprintf("✗ CRM unreachable %s · %d failures", ago(d), c.Failures))
		}
		return st.Bad.Render(fmt.Sprintf("✗ CRM failing %s · %d failures · HTTP %d", ago(d), c.Failures, c.LastStatus))
	}
	if c.LastAttempt.IsZero() {
		return st.Muted.Render("CRM: no attempt yet")
	}
	s := st.Good.Render("✓ CRM")
	if c.LastAnswer.IsZero() {
		s += st.Muted.Render(" no answer yet")
	} else {
		if compact {
			s += st.Muted.Render(" " + ago(h.now.Sub(c.LastAnswer)) + " ago")
		} else {
			s += st.Muted.Render(" answered " + ago(h.now.Sub(c.LastAnswer)) + " ago")
		}
	}
	if c.Failures > 0 && !compact {
		s += st.Warn.Render(fmt.Sprintf(" · %d failing", c.Failures))
	}
	if n := c.Attempts(); n > 0 {
		pct := fmt.Sprintf(" · %.0f%% failed/min", 100*c.FailedShare())
		if compact {
			pct = fmt.Sprintf(" · %.0f%% failed", 100*c.FailedShare())
		}
		if c.FailedShare() > 0 {
			s += st.Warn.Render(pct)
		} else {
			s += st.Muted.Render(pct)
		}
	}
	return s
}

// silent reports whether the listener looks silent by silentAfter's rule.
func (h header) silent() (time.Duration, bool) {
	c, l := h.status.CRM, h.status.Listener
	if c == nil || l == nil || c.LastAccepted.IsZero() || h.now.Sub(c.LastAccepted) > silentAfter {
		return 0, false
	}
	last := l.LastVerified
	if last.IsZero() {
		last = l.Since
	}
	d := h.now.Sub(last)
	return d, d >= silentAfter
}

// listenerTraffic is what follows "● listening ADDR": the age of the last
// verified callback and the refusals of the last minute; compact, "✓ 3 s
// ✗ 2/min".
func (h header) listenerTraffic(compact bool) string {
	st, l := h.st, h.status.Listener
	if l == nil {
		return ""
	}
	if compact {
		s := st.Muted.Render(" ✓ –")
		if !l.LastVerified.IsZero() {
			s = st.Muted.Render(" ✓ " + ago(h.now.Sub(l.LastVerified)))
		}
		return s + h.nonZero(l.RefusedMin, st.Bad).Render(fmt.Sprintf(" ✗ %d/min", l.RefusedMin))
	}
	s := st.Muted.Render(" · ✓ none yet")
	if !l.LastVerified.IsZero() {
		s = st.Muted.Render(" · ✓ " + ago(h.now.Sub(l.LastVerified)) + " ago")
	}
	return s + h.nonZero(l.RefusedMin, st.Bad).Render(fmt.Sprintf(" · %d refused/min", l.RefusedMin))
}
