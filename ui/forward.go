package ui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/leadwatch/leadwatch/crm"
)

// Forwarding to the user's app (docs/protocol.md §5), as the dashboard
// shows it: a fourth header line while a forwarder has ever run on the
// store, and the app's answers in a lead's timeline. The line is the
// queue as ForwardStats counts it; it never says the app's URL or the
// secret, and the last error is scrubbed of anything a URL carries
// besides its host and path.

// forwardStuckAfter is when a pending delivery counts as stuck: the
// forwarder retries within seconds and backs off to a minute or so, so
// a delivery older than this means the app has been down (or the
// forwarder gone) for a while.
const forwardStuckAfter = 2 * time.Minute

// forwardErrorFresh is how long the last error stays on the line once
// the queue is healthy again: long enough to be read after a blip.
const forwardErrorFresh = 5 * time.Minute

// forwardHeadCells caps the app's first bytes in a timeline line: the
// start of an answer says what it is; the rest is noise.
const forwardHeadCells = 40

// readForward reads the queue's stats; a store without forwarding is
// not a refresh error: the header then draws no forwarding line.
func readForward(ctx context.Context, src Source, fail func(string, error)) (crm.ForwardStats, bool) {
	fs, err := src.ForwardStats(ctx)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return crm.ForwardStats{}, true
	case err != nil:
		fail("forward", err)
		return crm.ForwardStats{}, false
	}
	return fs, true
}

// forwardHealth is how the queue looks: fine, retrying (amber) or
// failing (red), and the words for it.
type forwardHealth int

const (
	forwardOK forwardHealth = iota
	forwardRetrying
	forwardFailing
)

// forwardRetryingAfter is how old the oldest pending delivery must be,
// with a recent error, to call the queue retrying: a 503 retried within
// a second or two is the queue working, not news.
const forwardRetryingAfter = 10 * time.Second

// forwardState judges fs as of now: failed deliveries (the app never got
// them; they wait for a replay) or a queue that stands still
// (forwardStuck) are red; an error within the last minute while a
// delivery has waited forwardRetryingAfter is amber.
func forwardState(fs crm.ForwardStats, now time.Time) forwardHealth {
	waited := time.Duration(0)
	if fs.Pending > 0 && !fs.OldestPending.IsZero() {
		waited = now.Sub(fs.OldestPending)
	}
	_, stuck := forwardStuck(fs, now)
	switch {
	case fs.Failed > 0, stuck:
		return forwardFailing
	case waited >= forwardRetryingAfter && fs.LastError != "" && now.Sub(fs.LastErrorAt) < time.Minute:
		return forwardRetrying
	}
	return forwardOK
}

// forwardStuck reports whether the queue stands still, and since how
// long: a delivery pending for forwardStuckAfter, or callbacks waiting
// to be queued (lag) while nothing was delivered for as long, which is
// what a store looks like whose forwarder stopped.
func forwardStuck(fs crm.ForwardStats, now time.Time) (time.Duration, bool) {
	if fs.Pending > 0 && !fs.OldestPending.IsZero() {
		if d := now.Sub(fs.OldestPending); d >= forwardStuckAfter {
			return d, true
		}
	}
	if fs.Lag > 0 && !fs.LastDelivered.IsZero() {
		if d := now.Sub(fs.LastDelivered); d >= forwardStuckAfter {
			return d, true
		}
	}
	return 0, false
}

// forwardLines is 1 while forwarding is enabled, else 0: the header's
// extra line.
func (h header) forwardLines() int {
	if h.fwd.Enabled {
		return 1
	}
	return 0
}

// forwardLine is the header's fourth line, width cells at most: the
// state first (it is the part a glance needs), then the counts, then
// the last error, which a narrow terminal cuts.
func (h header) forwardLine(width int) string {
	// The long words while they fit with room for the start of the
	// error; the error itself may be cut.
	long, errPart := h.forwardText(false)
	room := 0
	if errPart != "" {
		room = forwardErrorMin
	}
	if lipgloss.Width(long)+room <= width {
		return long + errPart
	}
	short, errPart := h.forwardText(true)
	return short + errPart
}

// forwardErrorMin is the least of the last error the long line leaves
// room for: a few words say what broke.
const forwardErrorMin = 30

// forwardText draws the line long or short (80 columns: every count,
// abbreviated), and apart the last error, which follows it when there
// is one to tell.
func (h header) forwardText(short bool) (line, lastErr string) {
	st, fs := h.st, h.fwd
	health := forwardState(fs, h.now)
	sep := st.Border.Render(" · ")
	label := "forward → app"
	if short {
		label, sep = "fwd", " "
	}
	var state string
	switch health {
	case forwardFailing:
		switch {
		case fs.Failed > 0:
			state = st.Bad.Render("✗ " + label + " failing")
		default:
			d, _ := forwardStuck(fs, h.now)
			state = st.Bad.Render("✗ " + label + " stuck " + ago(d))
		}
	case forwardRetrying:
		state = st.Warn.Render("⚠ " + label + " retrying")
	default:
		state = st.Good.Render("✓ " + label)
	}

	type count struct {
		n           int
		long, short string
		style       lipgloss.Style
	}
	counts := []count{
		{fs.Pending, "queued", "queued", st.Info},
		{fs.InFlight, "in flight", "sending", st.Info},
		{fs.Failed, "failed", "failed", st.Bad},
		{fs.Delivered, "delivered", "ok", st.Good},
	}
	parts := make([]string, 0, len(counts)+2)
	for _, c := range counts {
		name := c.long
		if short {
			name = c.short
		}
		parts = append(parts, h.nonZero(c.n, c.style).Render(grouped(c.n))+" "+st.Muted.Render(name))
	}
	// Lag is callbacks stored but not yet queued: the forwarder's cursor
	// behind the listener, a burst being taken in.
	parts = append(parts, st.Muted.Render("lag ")+h.nonZero(fs.Lag, st.Warn).Render(grouped(fs.Lag)))
	if old := h.now.Sub(fs.OldestPending); fs.Pending > 0 && !fs.OldestPending.IsZero() && !short && old >= time.Minute {
		// Seconds-old deliveries are the queue working; a minute is the
		// app falling behind.
		s := st.Warn
		if old >= forwardStuckAfter {
			s = st.Bad
		}
		parts = append(parts, st.Muted.Render("oldest ")+s.Render(ago(old)))
	}
	line = state + " " + strings.Join(parts, sep)

	if e := scrubError(fs.LastError); e != "" && (health != forwardOK || h.now.Sub(fs.LastErrorAt) < forwardErrorFresh) {
		// Muted while the queue keeps up: a retried 503 is history.
		s := st.Muted
		switch health {
		case forwardFailing:
			s = st.Bad
		case forwardRetrying:
			s = st.Warn
		}
		if short {
			lastErr = st.Border.Render(" │ ") + s.Render(e)
		} else {
			lastErr = st.Border.Render(" │ ") + st.Muted.Render(ago(h.now.Sub(fs.LastErrorAt))+" ago: ") + s.Render(e)
		}
	}
	return line, lastErr
}

var (
	// urlInText finds URLs in an error: a Go HTTP error quotes the whole
	// request URL, userinfo and query (a token) included.
	urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]+`)
	// secretInText finds a Standard Webhooks secret, should one ever be
	// echoed back by an app into an error.
	secretInText = regexp.MustCompile(`whsec_[A-Za-z0-9+/=_\-]+`)
	// requestPrefix is the `Post "URL": ` a Go HTTP error starts with:
	// always the forward URL, which the user knows, ahead of the part
	// that says what went wrong.
	requestPrefix = regexp.MustCompile(`^(Get|Head|Post|Put|Patch|Delete|Options) "[^"]*": `)
)

// scrubError is an error fit to draw: one line, without the request's
// method and URL in front, any other URL reduced to its scheme, host and
// path, and no whsec_ secret.
func scrubError(s string) string {
	s = requestPrefix.ReplaceAllString(s, "")
	s = urlInText.ReplaceAllStringFunc(s, safeBaseURL)
	s = secretInText.ReplaceAllString(s, "whsec_…")
	return strings.TrimSpace(clean(s))
}

// forwardAttemptLine is one delivery attempt in a lead's timeline: the
// app's status (or why there was none), the latency, the first bytes of
// its answer and what the forwarder decided.
func (d detailView) forwardAttemptLine(a crm.ForwardAttempt, again bool) string {
	st := d.st
	line := st.Info.Render("→ app") + "  "
	switch {
	case a.Status != 0:
		line += httpStyle(st, a.Status).Render(fmt.Sprintf("HTTP %d", a.Status))
	case a.Error != "":
		line += st.Bad.Render(scrubError(a.Error))
	default:
		line += st.Muted.Render("no answer")
	}
	line += st.Muted.Render(" · " + fmtDur(a.Latency))
	if head := strings.TrimSpace(clean(string(a.Head))); head != "" {
		line += "  " + st.Muted.Render(`"`+ansi.Truncate(head, forwardHeadCells, "…")+`"`)
	}
	switch {
	case a.Delivered:
		line += "  " + st.Good.Render("✓ delivered")
	case a.Final:
		line += "  " + st.Bad.Render("✗ gave up")
		if a.Status != 0 && a.Error != "" {
			line += st.Muted.Render(" (" + scrubError(a.Error) + ")")
		}
		line += st.Muted.Render(" · a replays")
	case !a.NextAt.IsZero():
		line += "  " + st.Warn.Render("retry in "+fmtDur(a.NextAt.Sub(a.At).Round(time.Millisecond)))
	}
	if a.WebhookID != "" {
		line += st.Muted.Render("  · " + clean(a.WebhookID))
	}
	if again {
		line += st.Dup.Render("  ↻ replay")
	}
	return line
}

// forwardLines are the timeline's lines of the lead's delivery attempts;
// an attempt of a webhook-id the app already took is a replay (the
// attempts do not say so themselves).
func (d detailView) forwardLines() []timelineEntry {
	taken := map[string]bool{}
	out := make([]timelineEntry, 0, len(d.lead.Forwards))
	for _, a := range d.lead.Forwards {
		out = append(out, timelineEntry{a.At, 3, d.forwardAttemptLine(a, taken[a.WebhookID])})
		if a.Delivered {
			taken[a.WebhookID] = true
		}
	}
	return out
}
