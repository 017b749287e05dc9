package ui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// leadPane is a pane of leads in some states: pending retries,
// duplicates, or rejections. It holds only the rows it shows; moving past
// the window changes the offset and asks the root for a refresh.
type leadPane struct {
	paneFrame
	id          paneID
	states      []crm.State
	maxAttempts int // retry.max_attempts, for "n/max"; 0 unknown

	filter    string
	rows      []crm.Lead
	loaded    bool
	cursor    int
	offset    int
	keepIndex bool // the user scrolled: keep the cursor's row, not its lead
	matched   int  // leads the filter matches, when the store counts them; -1 unknown

	// What a filter that names no state matches, kept between refreshes
	// so that a refresh reads only what changed (see research).
	srch  leadSearch
	bg    *research[leadResult]
	bgSeq int // the last background search taken
}

// leadSearch is what a filtering lead pane knows of its filter's
// matches: a full search, brought up to date by the leads that changed
// at the top of the pane's states since.
type leadSearch struct {
	key      string     // the filter and page size it is for; "" none
	stored   []crm.Lead // the leads the store's filter matches, in the pane's order
	complete bool       // stored is every such lead: the search came back short
	window   []crm.Lead // the newest leadScan leads of the states, matched on their drawn words
	at       time.Time  // when (the dashboard's clock) the last full search started
}

func newLeadPane(id paneID, st *Styles, keys dashboardKeys, states ...crm.State) leadPane {
	return leadPane{paneFrame: newPaneFrame(st, keys), id: id, states: states, matched: -1, bg: &research[leadResult]{}}
}

// followMargin is how many rows a pane following its selected lead
// reads on each side of its window: under live traffic the lead moves by
// the rows that arrived or left since the last refresh, and the pane
// re-anchors its window on it (a lead that moved further, or left the
// pane's states, leaves the cursor on the same screen row). The read asks
// for followNarrow rows on each side first, which is where the lead is
// unless a burst moved it, and for followMargin only when it was not
// there: each row read costs a row fetch at a million leads.
const (
	followMargin = 100
	followNarrow = 10
)

// query is what the pane asks the Source for, and how its rows map to
// the window.
func (p leadPane) query() (crm.LeadQuery, leadWindow) {
	q := crm.LeadQuery{States: slices.Clone(p.states), Filter: p.filter, Limit: p.limit(), Offset: p.offset}
	if st := p.filterStates(); len(st) > 0 {
		q.States, q.Filter = st, ""
	}
	w := leadWindow{offset: p.offset, filter: p.filter}
	if p.scanning() {
		w.key = p.searchKey()
		// The matches are merged with those of the scan, so the store's
		// rows are read from the top down to the window's end.
		q.Offset, q.Limit, w.merged = 0, p.offset+q.Limit+1, true
		return q, w
	}
	if p.tracking() {
		lo := max(p.offset-followNarrow, 0)
		w.skip = p.offset - lo
		q.Offset, q.Limit = lo, q.Limit+w.skip+followNarrow
		if l, ok := p.selected(); ok {
			wide := q
			lo = max(p.offset-followMargin, 0)
			wide.Offset, wide.Limit = lo, p.limit()+(p.offset-lo)+followMargin
			w.follow, w.wide = l.ID, wide
		}
	}
	return q, w
}

// filterStates are the pane's states whose drawn name holds the filter
// (case-insensitively): the store filters external_id, crm_id and
// reason, so a state word such as "failed" is mapped to its states
// here. Only the Rejections pane draws its state; the others match none.
func (p leadPane) filterStates() []crm.State {
	f := strings.ToLower(strings.TrimSpace(p.filter))
	if f == "" || p.id != paneRejections {
		return nil
	}
	var out []crm.State
	for _, st := range p.states {
		if strings.Contains(string(st), f) {
			out = append(out, st)
		}
	}
	return out
}

// leadScan is how many of the newest leads a filtering pane reads
// unfiltered to match the words it draws that the store's filter does
// not see: "HTTP 401", a LAST error such as "dial tcp", a countdown.
const leadScan = 200

// scanning reports whether the filter is matched on drawn text too: a
// filter that names no state.
func (p leadPane) scanning() bool {
	return p.filter != "" && len(p.filterStates()) == 0
}

// drawn is the text of a lead's row as the pane draws it.
func (p leadPane) drawn(l crm.Lead) string {
	cs := p.cells(l)
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.text
	}
	if p.id == paneRejections && l.LastHTTPStatus != 0 {
		// The HTTP column's code reads as "HTTP 401" under its title.
		parts = append(parts, "HTTP "+strconv.Itoa(l.LastHTTPStatus))
	}
	return strings.Join(parts, " ")
}

// merge is every match a filtering pane knows of: the store's, then the
// newest rows whose drawn text holds the filter, in the pane's order.
// It sets matched, negative (a lower bound) when the store's matches were
// cut short or the newest rows are not every row.
func (p *leadPane) merge(stored []crm.Lead, complete bool, scan []crm.Lead) []crm.Lead {
	f := strings.ToLower(p.filter)
	seen := make(map[int64]bool, len(stored))
	out := slices.Clone(stored)
	for _, l := range stored {
		seen[l.ID] = true
	}
	for _, l := range scan {
		if !seen[l.ID] && strings.Contains(strings.ToLower(p.drawn(l)), f) {
			seen[l.ID] = true
			out = append(out, l)
		}
	}
	p.sortLeads(out)
	p.matched = len(out)
	if !complete || len(scan) >= leadScan {
		p.matched = -len(out)
	}
	return out
}

// byDue reports whether the pane is ordered by next attempt (soonest
// first) rather than by update (newest first).
func (p leadPane) byDue() bool { return len(p.states) == 1 && p.states[0] == crm.StateRetryWait }

// sortLeads puts leads in the pane's order, as the store does.
func (p leadPane) sortLeads(ls []crm.Lead) {
	due := p.byDue()
	slices.SortStableFunc(ls, func(a, b crm.Lead) int {
		switch {
		case leadBefore(due, a, b):
			return -1
		case leadBefore(due, b, a):
			return 1
		}
		return 0
	})
}

// leadBefore reports whether a comes before b in a pane's order: by next
// attempt and id when due, else newest update and id first.
func leadBefore(due bool, a, b crm.Lead) bool {
	if due {
		if !a.NextAttemptAt.Equal(b.NextAttemptAt) {
			return a.NextAttemptAt.Before(b.NextAttemptAt)
		}
		return a.ID < b.ID
	}
	if !a.UpdatedAt.Equal(b.UpdatedAt) {
		return a.UpdatedAt.After(b.UpdatedAt)
	}
	return a.ID > b.ID
}

// storeMatch reports whether the store's filter matches l: a
// case-insensitive substring of its external_id, CRM id or reason.
func (p leadPane) storeMatch(l crm.Lead) bool {
	return containsFold(p.filter, l.ExternalID, l.CRMID, l.Reason)
}

// containsFold reports whether one of hay holds needle, ignoring case.
func containsFold(needle string, hay ...string) bool {
	n := strings.ToLower(needle)
	for _, h := range hay {
		if strings.Contains(strings.ToLower(h), n) {
			return true
		}
	}
	return false
}

// searchKey names what a search of the pane's filter is for: the filter
// and the page size.
func (p leadPane) searchKey() string { return p.filter + "\x00" + strconv.Itoa(p.limit()) }

// rebase takes a full search: the store's matches and the newest rows.
// Rows the pane read after that search's newest row (a background
// search may have started before them) are applied on top again.
func (p *leadPane) rebase(key string, r leadResult) {
	old := p.srch
	p.srch.key, p.srch.stored, p.srch.window = key, r.rows, r.scan
	p.srch.complete = len(r.rows) < r.q.Limit
	if old.key != key || p.byDue() {
		return
	}
	var newer []crm.Lead
	for _, l := range old.window {
		if len(r.scan) == 0 || leadBefore(false, l, r.scan[0]) {
			newer = append(newer, l)
		}
	}
	p.advance(newer)
}

// advance brings the search up to date with rows read from the top of
// the pane's states since (the soonest leadScan of a pane by due time,
// which replace its window): each replaces its older copy, joins the
// store's matches if it matches, or leaves them if it no longer does.
func (p *leadPane) advance(tail []crm.Lead) {
	s := &p.srch
	fresh := make(map[int64]bool, len(tail))
	for _, l := range tail {
		fresh[l.ID] = true
	}
	keep := func(ls []crm.Lead) []crm.Lead {
		return slices.DeleteFunc(slices.Clone(ls), func(l crm.Lead) bool { return fresh[l.ID] })
	}
	if p.byDue() {
		// A lead the soonest rows would hold if it were still due is
		// gone (sent, or out of retry_wait).
		full := len(tail) >= leadScan
		s.stored = slices.DeleteFunc(keep(s.stored), func(l crm.Lead) bool {
			return !full || !leadBefore(true, tail[len(tail)-1], l)
		})
		s.window = slices.Clone(tail)
	} else {
		s.stored = keep(s.stored)
		s.window = append(slices.Clone(tail), keep(s.window)...)
		p.sortLeads(s.window)
		s.window = s.window[:min(len(s.window), leadScan)]
	}
	for _, l := range tail {
		if p.storeMatch(l) {
			s.stored = append(s.stored, l)
		}
	}
	p.sortLeads(s.stored)
}

// reusable reports whether the search can stand for the store's matches
// down to need rows: it is for the pane's filter and page, and holds
// every match or at least need of them.
func (p leadPane) reusable(need int) bool {
	return p.srch.key == p.searchKey() && (p.srch.complete || len(p.srch.stored) >= need)
}

// leadTailFirst is how many rows a filtering pane's refresh reads from
// the top of its states first; it reads on (four times as many, then up
// to leadScan) only while every row read changed since the last refresh.
const leadTailFirst = 16

// leadTail is a filtering pane's read of what changed at the top of its
// states since its last read, whose newest row was since (nil: none).
type leadTail struct {
	states []crm.State
	since  *crm.Lead
	byDue  bool // the pane is by next attempt: read its soonest leadScan again
}

// leadBg is a background search a pane claimed in this refresh.
type leadBg struct {
	r       *research[leadResult]
	key     string
	q, scan crm.LeadQuery
}

// readLeadTail reads t: the rows from the top down to the first that is
// not newer than since. reached is false when leadScan rows were read
// without getting there: too much changed, and the pane searches afresh.
func readLeadTail(ctx context.Context, src Source, t leadTail) (rows []crm.Lead, reached bool, err error) {
	if t.byDue {
		rows, err = src.Leads(ctx, crm.LeadQuery{States: t.states, Limit: leadScan})
		return rows, err == nil, err
	}
	for n := leadTailFirst; len(rows) < leadScan; n = min(4*n, leadScan-len(rows)) {
		page, err := src.Leads(ctx, crm.LeadQuery{States: t.states, Limit: n, Offset: len(rows)})
		if err != nil {
			return nil, false, err
		}
		rows = append(rows, page...)
		if len(page) < n || (t.since != nil && !leadBefore(false, page[len(page)-1], *t.since)) {
			return rows, true, nil
		}
	}
	return rows, false, nil
}

// readLeadSearch is a full search: the store's matches and the newest
// rows.
func readLeadSearch(ctx context.Context, src Source, q, scan crm.LeadQuery) (leadResult, error) {
	r := leadResult{q: q}
	var err error
	if r.rows, err = src.Leads(ctx, q); err != nil {
		return r, err
	}
	r.scan, err = src.Leads(ctx, scan)
	r.ok = err == nil
	return r, err
}

// tracking reports whether the cursor follows its lead across refreshes:
// the user moved it off the newest row and did not just scroll the window.
func (p leadPane) tracking() bool {
	_, ok := p.selected()
	return ok && !p.keepIndex && (p.cursor > 0 || p.offset > 0)
}

func (p *leadPane) ask(q *snapshotQuery) {
	lq, w := p.query()
	q.leads[p.id], q.leadWin[p.id] = &lq, w
	if !w.merged {
		return
	}
	scan := crm.LeadQuery{States: slices.Clone(p.states), Limit: leadScan}
	q.leadScan[p.id] = &scan
	if !p.reusable(lq.Limit) {
		return // the first search of this filter, in this refresh
	}
	// Only what changed at the top since; the full search above is the
	// fallback when more changed than the tail reads.
	t := &leadTail{states: slices.Clone(p.states), byDue: p.byDue()}
	if len(p.srch.window) > 0 {
		newest := p.srch.window[0]
		t.since = &newest
	}
	q.leadTail[p.id] = t
	if p.bg.due(p.srch.at, q.now) && p.bg.claim() {
		p.srch.at = q.now
		q.leadBg[p.id] = &leadBg{r: p.bg, key: w.key, q: lq, scan: scan}
	}
}

// take applies a refresh: the total of the pane's states and its rows.
func (p *leadPane) take(s snapshotMsg) bool {
	if s.countsOK {
		p.total, p.matched = 0, -1
		for _, st := range p.states {
			p.total += s.counts.States[st]
		}
		if sts := p.filterStates(); len(sts) > 0 {
			p.matched = 0
			for _, st := range sts {
				p.matched += s.counts.States[st]
			}
		}
	}
	r := s.leads[p.id]
	if !r.ok {
		return false
	}
	w := s.q.leadWin[p.id]
	if r.wide {
		// The followed lead was not in the narrow read: the wide one's
		// rows start elsewhere.
		w.skip = w.offset - r.q.Offset
	}
	if w.merged && (w.filter != p.filter || w.key != p.searchKey()) {
		return false // read for another filter or page: a newer query is pending
	}
	if w.merged {
		if res, seq, ok := p.bg.result(w.key, p.bgSeq); ok && p.srch.key == w.key {
			p.bgSeq = seq
			p.rebase(w.key, res)
		}
		if r.tailed {
			if p.srch.key != w.key {
				return true // the search it extends is gone: search afresh
			}
			p.advance(r.tail)
		} else {
			p.rebase(w.key, r)
			p.srch.at = s.q.now
		}
		// All matches from the top, windowed like any read.
		r.rows = p.merge(p.srch.stored, p.srch.complete, p.srch.window)
		r.q.Offset, r.q.Limit = 0, len(r.rows)
		w.skip = p.offset
	}
	return p.setRows(r.q, w, r.rows)
}

// more reports whether rows may exist past the window.
func (p leadPane) more() bool {
	if len(p.rows) < p.limit() {
		return false
	}
	if p.total >= 0 && p.filter == "" {
		return p.offset+len(p.rows) < p.total
	}
	return true
}

// selected returns the lead under the cursor.
func (p leadPane) selected() (crm.Lead, bool) {
	if p.cursor < 0 || p.cursor >= len(p.rows) {
		return crm.Lead{}, false
	}
	return p.rows[p.cursor], true
}

func (p leadPane) selection() (selection, bool) {
	l, ok := p.selected()
	return selection{leadID: l.ExternalID}, ok
}

// Update moves the cursor. Keys are the only messages a pane gets; data
// arrives through take from the root, which owns the refresh cycle.
func (p *leadPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	lim, before := p.limit(), p.offset
	switch {
	case key.Matches(k, p.keys.Up):
		if p.cursor > 0 {
			p.cursor--
		} else if p.offset > 0 {
			p.offset--
		}
	case key.Matches(k, p.keys.Down):
		if p.cursor < len(p.rows)-1 {
			p.cursor++
		} else if p.more() {
			p.offset++
		}
	case key.Matches(k, p.keys.PageDown):
		if p.more() {
			p.offset += lim
		} else {
			p.cursor = max(len(p.rows)-1, 0)
		}
	case key.Matches(k, p.keys.PageUp):
		if p.offset > 0 {
			p.offset = max(p.offset-lim, 0)
		} else {
			p.cursor = 0
		}
	case key.Matches(k, p.keys.Top):
		p.offset, p.cursor = 0, 0
	case key.Matches(k, p.keys.Bottom):
		if p.total > lim && p.filter == "" {
			p.offset, p.cursor = p.total-lim, lim-1
		} else {
			p.cursor = max(len(p.rows)-1, 0)
		}
	}
	if p.offset != before {
		p.keepIndex = true
		return requestRefresh
	}
	return nil
}

func (p leadPane) filterText() string { return p.filter }

// setFilter changes the filter and starts again from the top.
func (p *leadPane) setFilter(f string) {
	if f != p.filter {
		p.filter, p.offset, p.cursor, p.matched = f, 0, 0, -1
		p.srch = leadSearch{}
	}
}

// setRows takes a query's result. A result for another window or filter
// is stale (a newer query is pending) and dropped. A cursor on the first
// row stays there, showing the newest; one the user moved follows its
// lead by id, and the window moves with it, so the row under ▸ stays the
// same lead as rows arrive or leave. It reports whether the pane needs
// another query at once (its window fell past the end, or the lead it
// follows sits past the rows read).
func (p *leadPane) setRows(q crm.LeadQuery, w leadWindow, rows []crm.Lead) (again bool) {
	if w.offset != p.offset || w.filter != p.filter {
		return false
	}
	var prev int64
	if l, ok := p.selected(); ok && p.tracking() {
		prev = l.ID
	}
	p.keepIndex = false
	lim := p.limit()
	window := func(from int) []crm.Lead {
		from = min(max(from, 0), len(rows))
		return rows[from:min(from+lim, len(rows))]
	}
	p.rows, p.loaded = window(w.skip), true
	if prev != 0 {
		for i, l := range rows {
			if l.ID != prev {
				continue
			}
			pos := q.Offset + i // the lead's place in the pane
			p.offset = max(pos-p.cursor, 0)
			p.cursor = pos - p.offset
			p.rows = window(p.offset - q.Offset)
			// The lead is near the end of what was read: read again
			// around it so the window below it fills.
			return !w.merged && len(p.rows) < lim && len(rows) == q.Limit
		}
	}
	if len(p.rows) == 0 && p.offset > 0 {
		p.offset = max(p.offset-lim, 0)
		return true
	}
	p.cursor = min(max(p.cursor, 0), max(len(p.rows)-1, 0))
	return false
}

func (p leadPane) columns() []column {
	switch p.id {
	case paneRetries:
		return []column{{"EXTERNAL ID", 16}, {"NEXT", 8}, {"TRY", 5}, {"LAST", 12}, {"WHY THIS DELAY", 0}}
	case paneDuplicates:
		return []column{{"EXTERNAL ID", 16}, {"CRM ID", 14}, {"REASON", 0}, {"WHEN", 8}}
	}
	return []column{{"EXTERNAL ID", 16}, {"STATE", 16}, {"HTTP", 4}, {"REASON", 0}, {"WHEN", 8}}
}

func (p leadPane) cells(l crm.Lead) []cell {
	st := p.st
	switch p.id {
	case paneRetries:
		try := strconv.Itoa(l.Attempts)
		if p.maxAttempts > 0 {
			try += "/" + strconv.Itoa(p.maxAttempts)
		}
		last := styled("—", st.Muted)
		switch {
		case l.LastHTTPStatus != 0:
			last = styled("HTTP "+strconv.Itoa(l.LastHTTPStatus), httpStyle(st, l.LastHTTPStatus))
		case l.LastError != "":
			last = styled(l.LastError, st.Bad)
		}
		why := l.LastDelayWhy
		if l.LastDelay > 0 {
			why = strings.TrimSpace(fmtDur(l.LastDelay) + " · " + why)
			why = strings.TrimSuffix(why, " ·")
		}
		next := fmtCountdown(l.NextAttemptAt, p.now)
		nextCell := styled(next, st.Warn)
		if next == "due" {
			nextCell = styled(next, st.Info)
		}
		return []cell{plain(l.ExternalID), nextCell, plain(try), last, styled(why, st.Muted)}
	case paneDuplicates:
		return []cell{plain(l.ExternalID), styled(l.CRMID, st.Dup), plain(l.Reason), styled(fmtAge(l.UpdatedAt, p.now), st.Muted)}
	}
	code := ""
	if l.LastHTTPStatus != 0 {
		code = strconv.Itoa(l.LastHTTPStatus)
	}
	reason := l.Reason
	if reason == "" {
		reason = l.LastError
	}
	return []cell{
		plain(l.ExternalID), styled(string(l.State), st.State(l.State)), styled(code, httpStyle(st, l.LastHTTPStatus)),
		plain(reason), styled(fmtAge(l.UpdatedAt, p.now), st.Muted),
	}
}

// httpStyle colours an HTTP status by what it means for the lead.
func httpStyle(st *Styles, code int) lipgloss.Style {
	switch {
	case code == 0:
		return st.Muted
	case code < 300:
		return st.Good
	case code == 409:
		return st.Dup
	case code == 429:
		return st.Warn
	}
	return st.Bad
}

// View draws the pane at its size.
func (p leadPane) View() string {
	title := p.id.title()
	title += countLabel(p.shown(), p.total, p.filter != "")
	if p.offset > 0 {
		title += fmt.Sprintf(" · from #%d", p.offset+1)
	}
	rows := make([][]cell, len(p.rows))
	for i, l := range p.rows {
		rows[i] = p.cells(l)
	}
	return table{
		st: p.st, title: title, cols: p.columns(), rows: rows, loaded: p.loaded, filter: p.filter,
		empty: p.emptyText(), cursor: p.cursor, focused: p.focused, height: p.height,
	}.View(p.width)
}

// shown is how many leads the filter matches: exact when it names a
// state (Counts has it) or when every match fits the window; otherwise
// a lower bound, negative ("at least -n").
func (p leadPane) shown() int {
	switch {
	case p.filter == "":
		return p.total
	case len(p.filterStates()) > 0 && p.matched >= 0, p.scanning() && p.matched != 0:
		return p.matched
	case len(p.rows) < p.limit():
		return p.offset + len(p.rows)
	}
	return -(p.offset + len(p.rows))
}

func (p leadPane) emptyText() string {
	switch p.id {
	case paneRetries:
		return "no lead is waiting to retry"
	case paneDuplicates:
		return "no duplicates"
	}
	return "no rejected, invalid or failed lead"
}
