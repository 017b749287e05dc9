package ui

import (
	"fmt"
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
// a scrollable viewport. It replaces the dashboard while shown.
type detailView struct {
	st   *Styles
	keys detailKeys

	shown      bool
	kind       detailKind
	externalID string
	lead       crm.LeadDetail
	loaded     bool // the lead's story, or the callback's raw body, has arrived
	cb         crm.CallbackEvent
	cbErr      error // why the callback's body did not load
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
	d.shown, d.kind, d.externalID, d.loaded = true, detailLead, externalID, false
	d.lead = crm.LeadDetail{}
	d.vp.GotoTop()
	d.render()
}

// openCallback shows a callback's row at once; its raw body, which rows
// do not carry, arrives with setCallback.
func (d *detailView) openCallback(cb crm.CallbackEvent) {
	d.shown, d.kind, d.cb, d.loaded, d.cbErr, d.externalID = true, detailCallback, cb, false, nil, ""
	d.vp.GotoTop()
	d.render()
}

func (d *detailView) openRefusal(r crm.Refusal) {
	d.shown, d.kind, d.ref, d.loaded, d.externalID = true, detailRefusal, r, true, ""
	d.vp.GotoTop()
	d.render()
}

// close goes back to the dashboard.
func (d *detailView) close() { d.shown = false }

// leadID is the lead on screen, which every refresh re-reads; "" when
// the view is closed or shows an event.
func (d detailView) leadID() string {
	if !d.shown || d.kind != detailLead {
		return ""
	}
	return d.externalID
}

// setCallback takes the loaded callback, if it is still the one shown.
func (d *detailView) setCallback(msg callbackMsg) {
	if d.kind != detailCallback || msg.id != d.cb.ID {
		return
	}
	if msg.err != nil {
		d.cbErr = msg.err
	} else {
		d.cb, d.cbErr = msg.cb, nil
	}
	d.loaded = true
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

// setNow moves the clock, redrawing a shown countdown.
func (d *detailView) setNow(now time.Time) {
	d.now = now
	if d.shown && d.kind == detailLead && d.lead.Lead.State == crm.StateRetryWait {
		d.render()
	}
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
	if n := d.vp.TotalLineCount(); n > d.vp.Height {
		// Where the view is, in lines: a bare "0%" read as progress.
		top := d.vp.YOffset + 1
		title += fmt.Sprintf(" · lines %d–%d of %d", top, min(d.vp.YOffset+d.vp.Height, n), n)
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
	d.vp.SetContent(wrapWords(s, d.vp.Width))
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
	b.WriteString("\n" + st.Section.Render("Body"))
	switch {
	case !d.loaded:
		b.WriteString("\n" + st.Muted.Render("loading…"))
	case d.cbErr != nil:
		b.WriteString("\n" + st.Bad.Render("✗ "+clean(d.cbErr.Error())))
	default:
		b.WriteString(st.Muted.Render(fmt.Sprintf("  %d bytes, as signed", len(c.RawBody))) + "\n")
		b.WriteString(prettyJSON(c.RawBody))
	}
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
