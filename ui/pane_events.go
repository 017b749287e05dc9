package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
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

	// What the filter matches, kept between refreshes so that a refresh
	// reads only the events that arrived since (see research).
	srch  eventSearch
	bg    *research[eventResult]
	bgSeq int
}

// eventSearch is what the filtering events pane knows of its filter's
// matches: a full search, brought up to date by the events stored since.
type eventSearch struct {
	key string // the filter and page size it is for; "" none
	// stored and window hold, as the store reads them, up to a page of
	// the newest callbacks and of the newest refusals (by id) the store's
	// filter matches, and up to eventScan of each unfiltered, whose drawn
	// words the filter is matched on; both newest first (by time).
	stored []eventRow
	window []eventRow
	cbTop  int64 // the newest callback and refusal ids read
	refTop int64
	at     time.Time // when (the dashboard's clock) the last full search started
}

// eventResult is a full search of the events' filter.
type eventResult struct {
	stored, scan  []eventRow
	cbTop, refTop int64
	ok            bool
}

// eventTailMax is how many callbacks (and refusals) a filtering refresh
// reads past the newest it had; when more arrived it searches afresh.
const eventTailMax = 1000

// eventTail is the filtering pane's read of the events after the newest
// it has read.
type eventTail struct{ cbAfter, refAfter int64 }

// eventBg is a background search the pane claimed in this refresh.
type eventBg struct {
	r   *research[eventResult]
	key string
	q   crm.EventQuery
}

func newEventPane(st *Styles, keys dashboardKeys) eventPane {
	return eventPane{paneFrame: newPaneFrame(st, keys), bg: &research[eventResult]{}}
}

// readEventSearch is a full search of q's filter: the store's matches and
// the newest eventScan events unfiltered. ok is whether any rows came:
// a failing table leaves the other's.
func readEventSearch(ctx context.Context, src Source, q crm.EventQuery) (eventResult, error) {
	var r eventResult
	cbs, err1 := src.Callbacks(ctx, q)
	refs, err2 := src.Refusals(ctx, q)
	if err1 != nil && err2 != nil {
		return r, errors.Join(err1, err2)
	}
	r.stored, r.ok = mergeEvents(cbs, refs, len(cbs)+len(refs)), true
	r.cbTop, r.refTop = topIDs(cbs, refs)
	sq := crm.EventQuery{Limit: eventScan}
	scbs, err3 := src.Callbacks(ctx, sq)
	srefs, err4 := src.Refusals(ctx, sq)
	r.scan = mergeEvents(scbs, srefs, len(scbs)+len(srefs))
	c, f := topIDs(scbs, srefs)
	r.cbTop, r.refTop = max(r.cbTop, c), max(r.refTop, f)
	return r, errors.Join(err1, err2, err3, err4)
}

// readEventTail reads the events after t's ids, newest first, and the
// newest ids then. reached is false when eventTailMax of a kind came:
// more may lie between, and the pane searches afresh.
func readEventTail(ctx context.Context, src Source, t eventTail) (rows []eventRow, cbTop, refTop int64, reached bool, err error) {
	cbs, err := src.Callbacks(ctx, crm.EventQuery{AfterID: t.cbAfter, Limit: eventTailMax})
	if err != nil {
		return nil, 0, 0, false, err
	}
	refs, err := src.Refusals(ctx, crm.EventQuery{AfterID: t.refAfter, Limit: eventTailMax})
	if err != nil {
		return nil, 0, 0, false, err
	}
	cbTop, refTop = topIDs(cbs, refs)
	reached = len(cbs) < eventTailMax && len(refs) < eventTailMax
	return mergeEvents(cbs, refs, len(cbs)+len(refs)), max(cbTop, t.cbAfter), max(refTop, t.refAfter), reached, nil
}

// topIDs is the newest callback and refusal ids among rows read newest
// first (0 when none).
func topIDs(cbs []crm.CallbackEvent, refs []crm.Refusal) (cb, ref int64) {
	for _, c := range cbs {
		cb = max(cb, c.ID)
	}
	for _, r := range refs {
		ref = max(ref, r.ID)
	}
	return cb, ref
}

// query is what the pane asks for, of callbacks and of refusals alike.
func (p eventPane) query() crm.EventQuery {
	return crm.EventQuery{Filter: p.filter, Limit: p.limit()}
}

func (p *eventPane) ask(q *snapshotQuery) {
	eq := p.query()
	q.events = &eq
	if p.filter == "" {
		return
	}
	q.eventScan, q.eventKey = eventScan, p.searchKey()
	if p.srch.key != q.eventKey {
		return // the first search of this filter, in this refresh
	}
	q.eventTail = &eventTail{cbAfter: p.srch.cbTop, refAfter: p.srch.refTop}
	if p.bg.due(p.srch.at, q.now) && p.bg.claim() {
		p.srch.at = q.now
		q.eventBg = &eventBg{r: p.bg, key: q.eventKey, q: eq}
	}
}

// searchKey names what a search of the filter is for: the filter and
// the page size.
func (p eventPane) searchKey() string { return p.filter + "\x00" + strconv.Itoa(p.limit()) }

// storeMatch reports whether the store's filter matches r (see
// crm.EventQuery.Filter and the stores' Refusals).
func (p eventPane) storeMatch(r eventRow) bool {
	if r.ref != nil {
		return containsFold(p.filter, r.ref.Detail, r.ref.Code, r.ref.RemoteAddr)
	}
	return containsFold(p.filter, r.cb.ExternalID, r.cb.InternalID, r.cb.Event, r.cb.Status)
}

// rebase takes a full search. The events the pane read after it (a
// background search may have started before them) are applied again.
func (p *eventPane) rebase(key string, r eventResult) {
	old := p.srch
	p.srch = eventSearch{key: key, stored: r.stored, window: r.scan, cbTop: r.cbTop, refTop: r.refTop, at: old.at}
	if old.key != key {
		return
	}
	var newer []eventRow
	seen := map[string]bool{}
	for _, e := range append(slices.Clone(old.window), old.stored...) {
		if !seen[e.key()] && ((e.ref != nil && e.ref.ID > r.refTop) || (e.cb != nil && e.cb.ID > r.cbTop)) {
			seen[e.key()] = true
			newer = append(newer, e)
		}
	}
	p.advance(newer, old.cbTop, old.refTop)
}

// advance brings the search up to date with events read since, newest
// first: each replaces its older copy in the newest rows, and joins the
// store's matches if it matches.
func (p *eventPane) advance(tail []eventRow, cbTop, refTop int64) {
	s := &p.srch
	fresh := make(map[string]bool, len(tail))
	for _, e := range tail {
		fresh[e.key()] = true
	}
	drop := func(e eventRow) bool { return fresh[e.key()] }
	s.window = newestOf(append(slices.Clone(tail), slices.DeleteFunc(slices.Clone(s.window), drop)...), eventScan)
	s.stored = slices.DeleteFunc(slices.Clone(s.stored), drop)
	for _, e := range tail {
		if p.storeMatch(e) {
			s.stored = append(s.stored, e)
		}
	}
	s.stored = newestOf(s.stored, p.limit())
	s.cbTop, s.refTop = max(s.cbTop, cbTop), max(s.refTop, refTop)
}

// byTime sorts rows newest first, as mergeEvents does.
func byTime(rows []eventRow) {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at().After(rows[j].at()) })
}

// newestOf keeps of rows what a store's read of n of each would: the n
// newest callbacks and the n newest refusals by id, newest first by time.
func newestOf(rows []eventRow, n int) []eventRow {
	var cbs []crm.CallbackEvent
	var refs []crm.Refusal
	for _, r := range rows {
		if r.ref != nil {
			refs = append(refs, *r.ref)
		} else {
			cbs = append(cbs, *r.cb)
		}
	}
	slices.SortFunc(cbs, func(a, b crm.CallbackEvent) int { return cmp.Compare(b.ID, a.ID) })
	slices.SortFunc(refs, func(a, b crm.Refusal) int { return cmp.Compare(b.ID, a.ID) })
	cbs, refs = cbs[:min(len(cbs), n)], refs[:min(len(refs), n)]
	return mergeEvents(cbs, refs, len(cbs)+len(refs))
}

// take applies a refresh: verified plus refused callbacks, and the rows.
// A tail never needs a second query.
func (p *eventPane) take(s snapshotMsg) bool {
	if s.countsOK {
		// Polled statuses are rows of the tail too, counted apart.
		p.total = s.counts.CallbacksVerified + s.counts.Refusals + s.counts.Polled
	}
	if !s.eventsOK {
		return false
	}
	if p.filter == "" {
		p.setRows(s.eventsQ, s.events)
		return false
	}
	if s.q.eventKey != p.searchKey() {
		return false // read for another filter or page
	}
	if res, seq, ok := p.bg.result(s.q.eventKey, p.bgSeq); ok && p.srch.key == s.q.eventKey {
		p.bgSeq = seq
		p.rebase(s.q.eventKey, res)
	}
	if s.tailed {
		if p.srch.key != s.q.eventKey {
			return true // the search it extends is gone: search afresh
		}
		p.advance(s.tail, s.cbTop, s.refTop)
	} else {
		p.rebase(s.q.eventKey, eventResult{stored: s.events, scan: s.scan, cbTop: s.cbTop, refTop: s.refTop})
		p.srch.at = s.q.now
	}
	p.setRows(s.eventsQ, p.matches(mergeCut(p.srch.stored, p.limit()), mergeCut(p.srch.window, eventScan)))
	return false
}

// mergeCut is the newest n of rows kept newest first: mergeEvents' cut.
func mergeCut(rows []eventRow, n int) []eventRow { return rows[:min(len(rows), n)] }

// matches is what the filter shows: the rows the store matched, and the
// scanned newest rows whose drawn text holds the filter
// (case-insensitively), newest first. It sets matched: a lower bound
// when the store's rows or the scan were cut at their limit.
func (p *eventPane) matches(stored, scan []eventRow) []eventRow {
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
	byTime(out)
	p.matched = len(out)
	if len(stored) >= p.limit() || len(scan) >= eventScan {
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
		p.srch = eventSearch{}
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
