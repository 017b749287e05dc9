package ui

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// detailKind is what the detail view shows.
type detailKind int

const (
	detailLead detailKind = iota
	detailCallback
	detailRefusal
)

// detailView is one lead's story (or one callback's, or one refusal's) in
// a scrollable viewport.
type detailView struct {
	st   *Styles
	keys detailKeys

	kind       detailKind
	externalID string
	lead       crm.LeadDetail
	loaded     bool
	cb         crm.CallbackEvent
	ref        crm.Refusal

	width, height int
	now           time.Time
	vp            viewport.Model
}

func newDetailView(st *Styles, keys detailKeys) detailView {
	vp := viewport.New(0, 0)
	// The detail keymap drives the viewport, so help and behaviour agree.
	vp.KeyMap = viewport.KeyMap{
		Up: keys.Up, Down: keys.Down, PageUp: keys.PageUp, PageDown: keys.PageDown,
	}
	return detailView{st: st, keys: keys, vp: vp}
}

// openLead starts showing externalID; the story arrives with setLead.
func (d *detailView) openLead(externalID string) {
	d.kind, d.externalID, d.loaded = detailLead, externalID, false
	d.lead = crm.LeadDetail{}
	d.vp.GotoTop()
	d.render()
}

func (d *detailView) openCallback(cb crm.CallbackEvent) {
	d.kind, d.cb, d.loaded, d.externalID = detailCallback, cb, true, ""
	d.vp.GotoTop()
	d.render()
}

func (d *detailView) openRefusal(r crm.Refusal) {
	d.kind, d.ref, d.loaded, d.externalID = detailRefusal, r, true, ""
	d.vp.GotoTop()
	d.render()
}

// setLead takes a loaded story, keeping the scroll position so a live
// update does not yank the reader back to the top.
func (d *detailView) setLead(ld crm.LeadDetail) {
	if d.kind != detailLead || ld.Lead.ExternalID != d.externalID {
		return
	}
	d.lead, d.loaded = ld, true
	d.render()
}

func (d *detailView) setSize(w, h int) {
	d.width, d.height = w, h
	d.vp.Width, d.vp.Height = max(w-2, 1), max(h-2, 1)
	d.render()
}

func (d *detailView) setNow(now time.Time) {
	d.now = now
}

// Update scrolls.
func (d detailView) Update(msg tea.Msg) (detailView, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok {
		switch {
		case key.Matches(k, d.keys.Top):
			d.vp.GotoTop()
			return d, nil
		case key.Matches(k, d.keys.Bottom):
			d.vp.GotoBottom()
			return d, nil
		}
	}
	var cmd tea.Cmd
	d.vp, cmd = d.vp.Update(msg)
	return d, cmd
}

func (d detailView) title() string {
	switch d.kind {
	case detailCallback:
		return "Callback " + clean(d.cb.DedupKey)
	case detailRefusal:
		return "Refused callback #" + strconv.FormatInt(d.ref.ID, 10)
	}
	t := "Lead " + clean(d.externalID)
	if d.loaded {
		t += " · " + string(d.lead.Lead.State)
	}
	return t
}

// View draws the detail box.
func (d detailView) View() string {
	title := d.title()
	if d.vp.TotalLineCount() > d.vp.Height {
		title += fmt.Sprintf(" · %d%%", int(d.vp.ScrollPercent()*100))
	}
	return d.st.box(title, d.vp.View(), d.width, d.height, true)
}

// render rebuilds the viewport's content; called when data or size
// change, never from View.
func (d *detailView) render() {
	var s string
	switch d.kind {
	case detailCallback:
		s = d.renderCallback()
	case detailRefusal:
		s = d.renderRefusal()
	default:
		if !d.loaded {
			s = d.st.Muted.Render("loading " + clean(d.externalID) + "…")
		} else {
			s = d.renderLead()
		}
	}
	d.vp.SetContent(wrapHard(s, d.vp.Width))
}

// stamp prints a time in full, in the dashboard clock's zone.
func (d detailView) stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(d.now.Location()).Format("2006-01-02 15:04:05.000")
}

func (d detailView) field(label, value string) string {
	return d.st.Muted.Render(fmt.Sprintf("%-16s", label)) + value
}

// timelineEntry is one line of a lead's story.
type timelineEntry struct {
	at    time.Time
	order int // tie-break: enqueue, then attempts, then callbacks
	text  string
}

func (d detailView) renderLead() string {
	st, l := d.st, d.lead.Lead
	var b strings.Builder
	b.WriteString(d.field("state", st.State(l.State).Render(string(l.State))) + "\n")
	b.WriteString(d.field("idempotency key", clean(l.IdempotencyKey)) + "\n")
	if l.CRMID != "" || l.CRMStatus != "" {
		b.WriteString(d.field("crm", clean(strings.TrimSpace(l.CRMID+"  "+l.CRMStatus))) + "\n")
	}
	if l.Reason != "" {
		b.WriteString(d.field("reason", clean(l.Reason)) + "\n")
	}
	if l.PhoneInvalid {
		b.WriteString(d.field("phone", st.Warn.Render("not valid E.164 (sent anyway)")) + "\n")
	}
	if l.State == crm.StateRetryWait {
		b.WriteString(d.field("next attempt", fmtCountdown(l.NextAttemptAt, d.now)+"  "+d.stamp(l.NextAttemptAt)) + "\n")
	}
	b.WriteString(d.field("attempts", strconv.Itoa(l.Attempts)+" under the current key") + "\n")

	b.WriteString("\n" + st.Section.Render("Timeline") + "\n")
	var tl []timelineEntry
	tl = append(tl, timelineEntry{l.CreatedAt, 0, st.Info.Render("→ enqueued") + "  " + st.Muted.Render("key "+clean(firstKey(d.lead)))})
	for _, a := range d.lead.Attempts {
		tl = append(tl, timelineEntry{a.StartedAt, 1, d.attemptLine(a)})
	}
	for _, c := range d.lead.Callbacks {
		line := st.Good.Render("← callback "+clean(c.Event)) + "  " + clean(strings.TrimSpace(c.Status+" "+c.Reason))
		line += st.Muted.Render(fmt.Sprintf("  · skew %s · %s", fmtSkew(c.Skew), clean(c.DedupKey)))
		tl = append(tl, timelineEntry{c.ReceivedAt, 2, line})
	}
	sort.SliceStable(tl, func(i, j int) bool {
		if !tl[i].at.Equal(tl[j].at) {
			return tl[i].at.Before(tl[j].at)
		}
		return tl[i].order < tl[j].order
	})
	for _, e := range tl {
		b.WriteString("  " + st.Muted.Render(d.stamp(e.at)) + "  " + e.text + "\n")
	}

	b.WriteString("\n" + st.Section.Render("Payload") + st.Muted.Render(fmt.Sprintf("  %d bytes, as signed and sent", len(l.Payload))) + "\n")
	b.WriteString(prettyJSON(l.Payload) + "\n")
	if a, ok := lastSend(d.lead.Attempts); ok {
		head := fmt.Sprintf("  attempt %d", a.Number)
		if a.HTTPStatus != 0 {
			head += fmt.Sprintf(" · HTTP %d", a.HTTPStatus)
		}
		b.WriteString("\n" + st.Section.Render("Last response") + st.Muted.Render(head) + "\n")
		switch {
		case len(a.ResponseBody) > 0:
			b.WriteString(prettyJSON(a.ResponseBody) + "\n")
		case a.Error != "":
			b.WriteString(st.Bad.Render(clean(a.Error)) + "\n")
		default:
			b.WriteString(st.Muted.Render("(no body)") + "\n")
		}
	}
	for i := len(d.lead.Attempts) - 1; i >= 0; i-- {
		a := d.lead.Attempts[i]
		if a.Kind == crm.KindResubmit && len(a.PrevPayload) > 0 {
			b.WriteString("\n" + st.Section.Render("Payload before the last edit") + "\n")
			b.WriteString(prettyJSON(a.PrevPayload) + "\n")
			break
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// firstKey is the key the lead was enqueued with: the first history row's
// key, or the current one when nothing was sent yet.
func firstKey(ld crm.LeadDetail) string {
	for _, a := range ld.Attempts {
		if a.IdempotencyKey != "" {
			return a.IdempotencyKey
		}
	}
	return ld.Lead.IdempotencyKey
}

// lastSend is the most recent HTTP attempt.
func lastSend(as []crm.Attempt) (crm.Attempt, bool) {
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].Kind != crm.KindResubmit {
			return as[i], true
		}
	}
	return crm.Attempt{}, false
}

func (d detailView) attemptLine(a crm.Attempt) string {
	st := d.st
	if a.Kind == crm.KindResubmit {
		line := st.Dup.Render("↻ resubmitted")
		if a.Note != "" {
			line += "  " + clean(a.Note)
		}
		line += st.Muted.Render("  · key " + clean(a.IdempotencyKey))
		if len(a.PrevPayload) > 0 {
			line += st.Warn.Render("  · payload edited")
		}
		return line
	}
	line := st.Info.Render(fmt.Sprintf("→ attempt %d", a.Number)) + "  "
	switch {
	case a.HTTPStatus != 0:
		line += httpStyle(st, a.HTTPStatus).Render(fmt.Sprintf("HTTP %d", a.HTTPStatus))
	case a.Error != "":
		line += st.Bad.Render("error: " + clean(a.Error))
	default:
		line += st.Muted.Render("no answer")
	}
	line += st.Muted.Render(" · " + fmtDur(a.Duration))
	if a.Outcome != "" {
		line += " → " + st.State(a.Outcome).Render(string(a.Outcome))
	}
	switch {
	case a.Delay > 0:
		why := "retry in " + fmtDur(a.Delay)
		if a.DelayWhy != "" {
			why += " (" + clean(a.DelayWhy) + ")"
		}
		line += "  " + st.Warn.Render(why)
	case a.DelayWhy != "":
		// A final outcome: the classifier's reason, no delay.
		line += st.Muted.Render("  (" + clean(a.DelayWhy) + ")")
	}
	if a.IdempotencyKey != "" && a.IdempotencyKey != d.lead.Lead.IdempotencyKey {
		line += st.Muted.Render("  · old key " + clean(a.IdempotencyKey))
	}
	return line
}

func (d detailView) renderCallback() string {
	st, c := d.st, d.cb
	var b strings.Builder
	if c.LeadID == 0 {
		b.WriteString(st.Warn.Render("Unmatched: no lead in the outbox has this external_id / internal_id.") + "\n\n")
	}
	b.WriteString(d.field("event", clean(c.Event)) + "\n")
	b.WriteString(d.field("status", clean(c.Status)) + "\n")
	if c.Reason != "" {
		b.WriteString(d.field("reason", clean(c.Reason)) + "\n")
	}
	b.WriteString(d.field("external_id", clean(c.ExternalID)) + "\n")
	b.WriteString(d.field("internal_id", clean(c.InternalID)) + "\n")
	b.WriteString(d.field("dedup key", clean(c.DedupKey)) + "\n")
	b.WriteString(d.field("timestamp", clean(c.Timestamp)+"  "+st.Muted.Render(d.stamp(c.EventTime))) + "\n")
	b.WriteString(d.field("received", d.stamp(c.ReceivedAt)) + "\n")
	b.WriteString(d.field("clock skew", fmtSkew(c.Skew)) + "\n")
	b.WriteString(d.field("verified with", fmt.Sprintf("callback secret #%d", c.SecretIdx+1)) + "\n")
	b.WriteString("\n" + st.Section.Render("Body") + st.Muted.Render(fmt.Sprintf("  %d bytes, as signed", len(c.RawBody))) + "\n")
	b.WriteString(prettyJSON(c.RawBody))
	return b.String()
}

func (d detailView) renderRefusal() string {
	st, r := d.st, d.ref
	var b strings.Builder
	b.WriteString(st.Bad.Render("Refused: not verified, not stored as an event, never trusted.") + "\n\n")
	b.WriteString(d.field("reason", st.Bad.Render(clean(r.Detail))) + "\n")
	b.WriteString(d.field("code", clean(r.Code)) + "\n")
	b.WriteString(d.field("answered", fmt.Sprintf("HTTP %d", r.HTTPStatus)) + "\n")
	b.WriteString(d.field("from", clean(r.RemoteAddr)) + "\n")
	b.WriteString(d.field("at", d.stamp(r.At)) + "\n")
	b.WriteString("\n" + st.Section.Render("First bytes of the body") + st.Muted.Render(fmt.Sprintf("  %d bytes", len(r.Head))) + "\n")
	if len(r.Head) == 0 {
		b.WriteString(st.Muted.Render("(empty)"))
	} else {
		// Head is cut short, so it is rarely valid JSON: show it as text.
		b.WriteString(cleanBlock(string(r.Head)))
	}
	return b.String()
}
