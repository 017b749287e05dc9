package ui

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// eventRow is one line of the events pane: a verified callback, a
// polled status (cb with Kind polled) or a refused callback, merged by
// time.
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

// eventScan is how many of the newest events the pane reads unfiltered
// while a filter is on, to match the words it draws (REFUSED, unmatched,
// a refusal's code and detail) that the store's filter does not see.
const eventScan = 500

// eventPane tails incoming status callbacks and refusals. EventQuery has
// no offset, so the pane shows the newest rows. While following, each
// refresh replaces them; frozen (the user moved off the newest row, or
// pressed f), it keeps the rows it has, so the row under the cursor stays
// put, and counts what arrived meanwhile. g or f follows again.
type eventPane struct {
	paneFrame

	filter  string
	rows    []eventRow
	rowsFor string // the filter rows were read for
	loaded  bool
	cursor  int
	frozen  bool
	frozeAt int // total when the pane froze, for "n new"
	matched int // rows the filter matched; negative: at least -matched
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
	if p.filter != "" {
		q.eventScan = eventScan
	}
}

// take applies a refresh: verified plus refused callbacks, and the rows.
// A tail never needs a second query.
func (p *eventPane) take(s snapshotMsg) bool {
	if s.countsOK {
		// Polled statuses are rows of the tail too, counted apart.
		p.total = s.counts.CallbacksVerified + s.counts.Refusals + s.counts.Polled
	}
	if s.eventsOK {
		p.setRows(s.eventsQ, p.matches(s.events, s.scan, s.q.eventScan))
	}
	return false
}

// matches is what the filter shows: the rows the store matched, and the
// scanned newest rows whose drawn text holds the filter
// (case-insensitively), newest first. It sets matched: a lower bound
// when the scan or the store's rows were cut at their limit.
func (p *eventPane) matches(stored, scan []eventRow, scanned int) []eventRow {
	if p.filter == "" {
		return stored
	}
	f := strings.ToLower(p.filter)
	seen := make(map[string]bool, len(stored))
	out := slices.Clone(stored)
	for _, r := range stored {
		seen[r.key()] = true
	}
	for _, r := range scan {
		if !seen[r.key()] && strings.Contains(strings.ToLower(p.drawn(r)), f) {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at().After(out[j].at()) })
	p.matched = len(out)
	if len(stored) >= p.limit() || (scanned > 0 && len(scan) >= scanned) {
		p.matched = -len(out)
	}
	if len(out) > p.limit() {
		out = out[:p.limit()]
	}
	return out
}

// drawn is the text of a row as the pane draws it, for the filter.
func (p eventPane) drawn(r eventRow) string {
	cs := p.cells(r)
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.text
	}
	return strings.Join(parts, " ")
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

// Update moves the cursor within the visible rows. Moving off the newest
// row freezes the tail; g, or f, follows it again.
func (p *eventPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	last := max(len(p.rows)-1, 0)
	switch {
	case key.Matches(k, p.keys.Follow):
		if p.frozen {
			p.follow()
			return requestRefresh
		}
		p.freeze()
		return nil
	case key.Matches(k, p.keys.Up):
		p.cursor = max(p.cursor-1, 0)
	case key.Matches(k, p.keys.Down):
		p.cursor = min(p.cursor+1, last)
	case key.Matches(k, p.keys.Top):
		if p.frozen {
			p.follow()
			return requestRefresh
		}
	case key.Matches(k, p.keys.PageUp):
		p.cursor = 0
	case key.Matches(k, p.keys.PageDown), key.Matches(k, p.keys.Bottom):
		p.cursor = last
	}
	if p.cursor > 0 && !p.frozen {
		p.freeze()
	}
	return nil
}

// freeze keeps the rows on screen until the user follows again.
func (p *eventPane) freeze() { p.frozen, p.frozeAt = true, p.total }

// follow goes back to the newest row and takes each refresh again.
func (p *eventPane) follow() { p.frozen, p.cursor = false, 0 }

// arrived is how many events came in since the pane froze.
func (p eventPane) arrived() int {
	if !p.frozen || p.total < 0 || p.frozeAt < 0 {
		return 0
	}
	return max(p.total-p.frozeAt, 0)
}

func (p eventPane) filterText() string { return p.filter }

// setFilter changes the filter and follows the tail of what it matches:
// the user asked for other rows.
func (p *eventPane) setFilter(f string) {
	if f != p.filter {
		p.filter = f
		p.follow()
	}
}

// setRows takes a refresh's result. A frozen pane keeps its rows (unless
// they were read for another filter); a following one takes them, and a
// cursor off the top (moved while the first rows were loading) follows
// its row by key.
func (p *eventPane) setRows(q crm.EventQuery, rows []eventRow) {
	if q.Filter != p.filter {
		return
	}
	if p.frozen && p.loaded && p.rowsFor == p.filter {
		return
	}
	prev := ""
	if r, ok := p.selected(); ok && p.cursor > 0 {
		prev = r.key()
	}
	p.rows, p.loaded, p.rowsFor = rows, true, p.filter
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
	mark, event, note := styled("✓", st.Good), plain(c.Event), plain(c.Reason)
	if c.Kind == crm.KindPolled {
		// Learned by a status lookup, not told by the CRM: never drawn
		// as a verified callback, and no skew to speak of.
		return []cell{
			styled("◇", st.Info), plain(c.ReceivedAt.In(loc).Format("15:04:05")), styled("polled", st.Info), plain(c.ExternalID),
			styled(c.Status, st.Info), styled("–", st.Muted), styled(strings.TrimSpace("lookup "+c.Reason), st.Muted),
		}
	}
	if c.LeadID == 0 {
		mark = styled("?", st.Warn)
		note = styled(strings.TrimSpace("unmatched "+c.Reason), st.Warn)
	}
	skew := styled(fmtSkew(c.Skew), st.Muted)
	if c.Skew > 30*time.Second || c.Skew < -30*time.Second {
		skew = styled(fmtSkew(c.Skew), st.Warn)
	}
	return []cell{
		mark, plain(c.ReceivedAt.In(loc).Format("15:04:05")), event, plain(c.ExternalID),
		styled(c.Status, st.Info), skew, note,
	}
}

// View draws the pane at its size.
func (p eventPane) View() string {
	title := paneEvents.title()
	shown := p.total
	if p.filter != "" {
		shown = p.matched
	}
	title += countLabel(shown, p.total, p.filter != "")
	if p.filter != "" && p.total > crm.EventScanWindow {
		title += " · searched newest " + grouped(crm.EventScanWindow)
	}
	if p.frozen {
		title += " · frozen"
		if n := p.arrived(); n > 0 {
			title += fmt.Sprintf(" · %d new (f follows)", n)
		}
	} else {
		title += " · following"
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
