package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// eventRow is one line of the events pane: a verified callback or a
// refused one, merged by time.
type eventRow struct {
	cb  *crm.CallbackEvent
	ref *crm.Refusal
}

func (r eventRow) at() time.Time {
	if r.ref != nil {
		return r.ref.At
	}
	return r.cb.ReceivedAt
}

// key identifies a row across refreshes; callbacks and refusals have
// separate id spaces.
func (r eventRow) key() string {
	if r.ref != nil {
		return fmt.Sprintf("r%d", r.ref.ID)
	}
	return fmt.Sprintf("c%d", r.cb.ID)
}

// mergeEvents interleaves callbacks and refusals newest first and keeps
// the newest limit rows.
func mergeEvents(cbs []crm.CallbackEvent, refs []crm.Refusal, limit int) []eventRow {
	rows := make([]eventRow, 0, len(cbs)+len(refs))
	for i := range cbs {
		rows = append(rows, eventRow{cb: &cbs[i]})
	}
	for i := range refs {
		rows = append(rows, eventRow{ref: &refs[i]})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at().After(rows[j].at()) })
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows
}

// eventPane tails incoming status callbacks and refusals. EventQuery has
// no offset, so the pane always shows the newest rows: a tail, not a
// scroller.
type eventPane struct {
	paneFrame

	filter string
	rows   []eventRow
	loaded bool
	cursor int
}

func newEventPane(st *Styles, keys dashboardKeys) eventPane {
	return eventPane{paneFrame: newPaneFrame(st, keys)}
}

// query is what the pane asks for, of callbacks and of refusals alike.
func (p eventPane) query() crm.EventQuery {
	return crm.EventQuery{Filter: p.filter, Limit: p.limit()}
}

func (p *eventPane) ask(q *snapshotQuery) {
	eq := p.query()
	q.events = &eq
}

// take applies a refresh: verified plus refused callbacks, and the rows.
// A tail never needs a second query.
func (p *eventPane) take(s snapshotMsg) bool {
	if s.countsOK {
		p.total = s.counts.CallbacksVerified + s.counts.Refusals
	}
	if s.eventsOK {
		p.setRows(s.eventsQ, s.events)
	}
	return false
}

func (p eventPane) selected() (eventRow, bool) {
	if p.cursor < 0 || p.cursor >= len(p.rows) {
		return eventRow{}, false
	}
	return p.rows[p.cursor], true
}

// selection points at the callback's lead when it matched one; an
// unmatched callback or a refusal has only itself to show.
func (p eventPane) selection() (selection, bool) {
	r, ok := p.selected()
	switch {
	case !ok:
		return selection{}, false
	case r.ref != nil:
		ref := *r.ref
		return selection{ref: &ref}, true
	case r.cb.LeadID != 0 && r.cb.ExternalID != "":
		return selection{leadID: r.cb.ExternalID}, true
	}
	cb := *r.cb
	return selection{cb: &cb}, true
}

// Update moves the cursor within the visible rows.
func (p *eventPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	last := max(len(p.rows)-1, 0)
	switch {
	case key.Matches(k, p.keys.Up):
		p.cursor = max(p.cursor-1, 0)
	case key.Matches(k, p.keys.Down):
		p.cursor = min(p.cursor+1, last)
	case key.Matches(k, p.keys.PageUp), key.Matches(k, p.keys.Top):
		p.cursor = 0
	case key.Matches(k, p.keys.PageDown), key.Matches(k, p.keys.Bottom):
		p.cursor = last
	}
	return nil
}

func (p eventPane) filterText() string { return p.filter }

func (p *eventPane) setFilter(f string) {
	if f != p.filter {
		p.filter, p.cursor = f, 0
	}
}

// setRows takes a refresh's result; the cursor follows its row as new
// events push it down, and stays on top when it was there, so a tail
// keeps showing the newest.
func (p *eventPane) setRows(q crm.EventQuery, rows []eventRow) {
	if q.Filter != p.filter {
		return
	}
	prev := ""
	if r, ok := p.selected(); ok && p.cursor > 0 {
		prev = r.key()
	}
	p.rows, p.loaded = rows, true
	if prev != "" {
		for i, r := range rows {
			if r.key() == prev {
				p.cursor = i
				break
			}
		}
	}
	p.cursor = min(max(p.cursor, 0), max(len(rows)-1, 0))
}

func eventColumns() []column {
	return []column{{"", 1}, {"TIME", 8}, {"EVENT", 14}, {"EXTERNAL ID", 16}, {"STATUS", 12}, {"SKEW", 6}, {"NOTE", 0}}
}

func (p eventPane) cells(r eventRow) []cell {
	st := p.st
	loc := p.now.Location()
	if r.ref != nil {
		f := r.ref
		// A refusal has no event fields to trust: one cell spans the rest.
		return []cell{
			styled("✗", st.Bad), plain(f.At.In(loc).Format("15:04:05")), styled("REFUSED", st.Bad),
			styled(f.Code+" · "+f.Detail+" · from "+f.RemoteAddr, st.Bad),
		}
	}
	c := r.cb
	mark, note := styled("✓", st.Good), plain(c.Reason)
	if c.LeadID == 0 {
		mark = styled("?", st.Warn)
		note = styled(strings.TrimSpace("unmatched "+c.Reason), st.Warn)
	}
	skew := styled(fmtSkew(c.Skew), st.Muted)
	if c.Skew > 30*time.Second || c.Skew < -30*time.Second {
		skew = styled(fmtSkew(c.Skew), st.Warn)
	}
	return []cell{
		mark, plain(c.ReceivedAt.In(loc).Format("15:04:05")), plain(c.Event), plain(c.ExternalID),
		styled(c.Status, st.Info), skew, note,
	}
}

// View draws the pane at its size.
func (p eventPane) View() string {
	title := paneEvents.title()
	if p.total >= 0 {
		title += fmt.Sprintf(" (%d)", p.total)
	}
	rows := make([][]cell, len(p.rows))
	for i, r := range p.rows {
		rows[i] = p.cells(r)
	}
	return table{
		st: p.st, title: title, cols: eventColumns(), rows: rows, loaded: p.loaded, filter: p.filter,
		empty: "no callback yet", cursor: p.cursor, focused: p.focused, height: p.height,
	}.View(p.width)
}
