package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// allPane is every lead, whatever its state, newest first by id. It
// pages by keyset (crm.OrderNewest with BeforeID), never by offset, so a
// page anywhere in a million leads costs one page of the primary key:
// the window is named by the id of its first row, and G reads the oldest
// page (crm.OrderOldest) and turns it over.
type allPane struct {
	paneFrame
	filter string

	rows   []crm.Lead
	loaded bool
	cursor int
	// top is the id the window starts at (its first row has the largest
	// id <= top); 0 is the live top, where new leads come in above the
	// rows. A cursor moved off the first row pins the window (top set),
	// so the row under ▸ stays the same lead while leads arrive.
	top    int64
	bottom bool // G: the next read is the oldest page
	// below is the first row past the window (the read asks one more
	// than fits), or nil at the end; above is up to a page of the rows
	// just above a pinned window, nearest first.
	below *crm.Lead
	above []crm.Lead

	// matched is the filter's matches (capped at countCap, capped set);
	// -1 unknown. counter counts them off the refresh (see leadCounter).
	matched     int
	capped      bool
	counter     *leadCounter
	searchBound bool // the last filtered read may have stopped at the store's scan bound
	// What a text filter's window holds between refreshes: such a search
	// may scan the store's whole 100,000-row window, so a refresh reads
	// only the leads stored since, and the search runs again in the
	// background every researchEvery (see research).
	srch  allSearch
	bg    *research[allResult]
	bgSeq int
}

// allSearch is a text-filtered window as last searched, brought up to
// date by the matching leads stored since.
type allSearch struct {
	key   string     // the window and filter it is for (allPane.searchKey); "" none
	rows  []crm.Lead // the window and the row past it, newest first
	above []crm.Lead // the rows above a pinned window, nearest first
	seen  int64      // the newest lead id when it was read
	at    time.Time  // when (the dashboard's clock) the last full search started
}

func newAllPane(st *Styles, keys dashboardKeys) allPane {
	return allPane{paneFrame: newPaneFrame(st, keys), matched: -1, counter: &leadCounter{}, bg: &research[allResult]{}}
}

// countTimeout bounds one count of a filter's matches.
const countTimeout = 30 * time.Second

// leadCounter counts a filter's matches in the background. A rare
// filter makes CountLeads scan the whole store (a second at a million
// leads), which would hold up every refresh; so the refresh only starts
// the count, and a later refresh shows its answer (the heartbeat
// refreshes every two seconds at most). Copies of the pane share it: it
// is a cache of the store, not state of the screen.
type leadCounter struct {
	mu      sync.Mutex
	filter  string    // what the count below is for
	at      time.Time // when (the dashboard's clock) it was asked
	n       int
	capped  bool
	done    bool
	running bool
	wg      sync.WaitGroup // the count running, for benchmarks to wait on
}

// due reports whether filter should be counted (again) at now: no count
// is running, and the last one is for another filter or recountEvery
// old. It claims the count: the caller must start it.
func (c *leadCounter) due(filter string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running || (c.done && c.filter == filter && now.Sub(c.at) < recountEvery) {
		return false
	}
	c.running, c.at = true, now
	c.wg.Add(1)
	return true
}

// start counts q's matches for filter; due claimed it.
func (c *leadCounter) start(src Source, q crm.LeadQuery, filter string) {
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
		defer cancel()
		n, capped, err := src.CountLeads(ctx, q, countCap)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = false
		if err != nil {
			return // the title keeps "…"; the next filter or recount tries again
		}
		c.filter, c.n, c.capped, c.done = filter, n, capped, true
	}()
}

// wait blocks until no count runs (benchmarks).
func (c *leadCounter) wait() { c.wg.Wait() }

// get is the last count for filter, if there is one.
func (c *leadCounter) get(filter string) (n int, capped, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done || c.filter != filter {
		return 0, false, false
	}
	return c.n, c.capped, true
}

// countCap is where the title's count of filter matches stops: counting
// further would scan the store inside the refresh budget.
const countCap = 1000

// scanBound is how many rows past the bound a filtered keyset read of
// the store examines at most (store.Store documents it); the pane says
// so when its search may have stopped there.
const scanBound = 100_000

// researchEvery paces the full search of a text filter that did not
// change, run in the background (see research): a rare filter scans
// 100,000 rows (a quarter of a second at a million leads) or every row of
// a pane's states, which must not run on every change signal.
const researchEvery = 2 * time.Second

// recountEvery paces the filter's CountLeads, which may scan up to the
// cap: once when the filter changes, then at most this often.
const recountEvery = 10 * time.Second

// allQuery is the pane's reads for one refresh.
type allQuery struct {
	main    crm.LeadQuery  // the window, and one row past it
	above   *crm.LeadQuery // the rows above a pinned window
	count   *crm.LeadQuery // the filter's matches, when due: counted in the background
	counter *leadCounter
	// What the read is for: a result for another window or filter is
	// stale and dropped.
	top    int64
	bottom bool
	filter string
	// A text filter: key names the search (allPane.searchKey); tail, when
	// set, reads only the matches stored after the search's newest lead,
	// and main and above are read instead when more matched than fit.
	key  string
	tail *crm.LeadQuery
	bg   *research[allResult] // claimed: the full search, in the background
	now  time.Time            // the refresh's clock, for the search's pacing
}

// allResult is allQuery's answer.
type allResult struct {
	q      allQuery
	rows   []crm.Lead
	above  []crm.Lead
	seen   int64      // with a text filter: the newest lead id before the reads
	tail   []crm.Lead // with tailed: the new matches, oldest first, read instead of rows and above
	tailed bool
	ok     bool
}

// loadAll runs the pane's reads.
func loadAll(ctx context.Context, src Source, q allQuery, fail func(string, error)) allResult {
	if q.count != nil {
		// First: the count was claimed, and must run even if a read fails.
		q.counter.start(src, *q.count, q.filter)
	}
	if q.bg != nil {
		full := q
		full.tail, full.bg, full.count = nil, nil, nil
		q.bg.start(q.key, func(ctx context.Context) (allResult, error) {
			var errs []error
			r := loadAll(ctx, src, full, func(_ string, err error) { errs = append(errs, err) })
			return r, errors.Join(errs...)
		})
	}
	r := allResult{q: q}
	var err error
	if q.key != "" {
		// The newest id first: what is stored after it, the next
		// refresh reads.
		if r.seen, err = newestLeadID(ctx, src); err != nil {
			fail(paneAll.name(), err)
			return r
		}
	}
	if q.tail != nil {
		rows, err := src.Leads(ctx, *q.tail)
		if err != nil {
			fail(paneAll.name(), err)
			return r
		}
		if len(rows) < q.tail.Limit {
			r.tail, r.tailed, r.ok = rows, true, true
			if len(rows) > 0 {
				r.seen = max(r.seen, rows[len(rows)-1].ID)
			}
			return r
		}
		// More new matches than the window: they are common, and the
		// full read is quick.
	}
	rows, err := src.Leads(ctx, q.main)
	if err != nil {
		fail(paneAll.name(), err)
		return r
	}
	r.rows = rows
	if q.above != nil {
		if r.above, err = src.Leads(ctx, *q.above); err != nil {
			fail(paneAll.name(), err)
			return r
		}
	}
	r.ok = true
	return r
}

// newestLeadID is the largest lead id stored, by the primary key.
func newestLeadID(ctx context.Context, src Source) (int64, error) {
	ls, err := src.Leads(ctx, crm.LeadQuery{Order: crm.OrderNewest, Limit: 1})
	if err != nil || len(ls) == 0 {
		return 0, err
	}
	return ls[0].ID, nil
}

// narrow filters the query by the pane's filter: a word that names
// states (as stored or as drawn, "retry" or "invalid") selects those
// states; anything else is the store's substring filter on external_id,
// CRM id and reason.
func (p allPane) narrow(q *crm.LeadQuery) {
	if st := p.filterStates(); len(st) > 0 {
		q.States = st
		return
	}
	q.Filter = p.filter
}

func (p allPane) filterStates() []crm.State {
	f := strings.ToLower(strings.TrimSpace(p.filter))
	if f == "" {
		return nil
	}
	var out []crm.State
	for _, st := range crm.States {
		if strings.Contains(string(st), f) || strings.Contains(stateLabel(st, true), f) || strings.Contains(stateLabel(st, false), f) {
			out = append(out, st)
		}
	}
	return out
}

// textFilter reports whether the filter is the store's substring filter
// rather than a state name.
func (p allPane) textFilter() bool { return p.filter != "" && len(p.filterStates()) == 0 }

// searchKey names what a text-filtered read is for: the window and the
// filter.
func (p allPane) searchKey() string { return fmt.Sprint(p.top, p.bottom, p.filter, p.height) }

func (p *allPane) ask(q *snapshotQuery) {
	lim := p.limit()
	aq := allQuery{top: p.top, bottom: p.bottom, filter: p.filter, now: q.now}
	if p.textFilter() && !p.bottom {
		aq.key = p.searchKey()
		if p.loaded && p.srch.key == aq.key {
			tail := crm.LeadQuery{Order: crm.OrderOldest, AfterID: p.srch.seen, Limit: lim + 1}
			p.narrow(&tail)
			aq.tail = &tail
			if p.bg.due(p.srch.at, q.now) && p.bg.claim() {
				p.srch.at = q.now
				aq.bg = p.bg
			}
		}
	}
	aq.main = crm.LeadQuery{Order: crm.OrderNewest, Limit: lim + 1}
	if p.top > 0 {
		aq.main.BeforeID = p.top + 1
		above := crm.LeadQuery{Order: crm.OrderOldest, AfterID: p.top, Limit: lim}
		p.narrow(&above)
		aq.above = &above
	}
	if p.bottom {
		aq.main = crm.LeadQuery{Order: crm.OrderOldest, Limit: lim}
	}
	p.narrow(&aq.main)
	if p.filter != "" && len(p.filterStates()) == 0 && p.counter.due(p.filter, q.now) {
		cq := crm.LeadQuery{}
		p.narrow(&cq)
		aq.count, aq.counter = &cq, p.counter
	}
	q.views.all = &aq
}

// take applies a refresh: the total from Counts, then the rows.
func (p *allPane) take(s snapshotMsg) bool {
	if s.countsOK {
		p.total = 0
		for _, n := range s.counts.States {
			p.total += n
		}
		if sts := p.filterStates(); len(sts) > 0 {
			p.matched, p.capped = 0, false
			for _, st := range sts {
				p.matched += s.counts.States[st]
			}
		}
	}
	if p.filter != "" && len(p.filterStates()) == 0 {
		// The background count, whether or not this refresh read rows.
		if n, capped, ok := p.counter.get(p.filter); ok {
			p.matched, p.capped = n, capped
		}
	}
	r := s.views.all
	if !r.ok || r.q.top != p.top || r.q.bottom != p.bottom || r.q.filter != p.filter {
		return false
	}
	if r.q.key != "" {
		if r.q.key != p.searchKey() {
			return false
		}
		if !p.searched(r) {
			return true // the search it extends is gone: search afresh
		}
		r.rows, r.above = p.srch.rows, p.srch.above
	}
	lim := p.limit()
	p.loaded = true
	rows := r.rows
	if r.q.bottom {
		// The oldest page, read oldest first: turned over, it is the
		// end of the newest-first list, the cursor on its last row.
		rows = slices.Clone(rows)
		slices.Reverse(rows)
		p.bottom, p.below, p.above = false, nil, nil
		p.rows = rows
		p.cursor = max(len(rows)-1, 0)
		if len(rows) == 0 {
			p.top = 0
			return false
		}
		p.top = rows[0].ID
		return true // read the rows above it
	}
	p.below = nil
	if len(rows) > lim {
		b := rows[lim]
		p.below = &b
		rows = rows[:lim]
	}
	p.rows, p.above = rows, r.above
	p.searchBound = p.filter != "" && len(p.filterStates()) == 0 && p.below == nil && p.scanMayStop()
	if p.top > 0 && len(p.rows) == 0 && p.filter == "" {
		// The window's leads are gone (pruned): back to the top. (A
		// filtered search past its window may well find none there.)
		p.top, p.cursor = 0, 0
		return true
	}
	if p.top > 0 && len(p.above) == 0 && p.cursor == 0 && p.filter == "" {
		// Scrolled back up to the newest lead: live again.
		p.top = 0
	}
	p.cursor = min(max(p.cursor, 0), max(len(p.rows)-1, 0))
	return false
}

// searched takes a text-filtered read into the pane's search: a full
// one replaces it, new matches join it (above the window at the live top,
// or above a pinned window, nearest first), and a background search
// that landed meanwhile replaces it first. It reports false when new
// matches came for a search the pane no longer has.
func (p *allPane) searched(r allResult) bool {
	key := r.q.key
	if res, seq, ok := p.bg.result(key, p.bgSeq); ok && p.srch.key == key {
		p.bgSeq = seq
		old := p.srch
		p.srch = allSearch{key: key, rows: res.rows, above: res.above, seen: res.seen, at: old.at}
		// Matches the pane read after that search began stay.
		var newer []crm.Lead
		for _, l := range append(slices.Clone(old.rows), old.above...) {
			if l.ID > res.seen {
				newer = append(newer, l)
			}
		}
		slices.SortFunc(newer, func(a, b crm.Lead) int { return cmp.Compare(a.ID, b.ID) })
		p.addMatches(newer, old.seen)
	}
	if !r.tailed {
		p.srch = allSearch{key: key, rows: r.rows, above: r.above, seen: r.seen, at: r.q.now}
		return true
	}
	if p.srch.key != key {
		return false
	}
	p.addMatches(r.tail, r.seen)
	return true
}

// addMatches adds leads stored after the search, oldest first, seen the
// newest id then.
func (p *allPane) addMatches(news []crm.Lead, seen int64) {
	s := &p.srch
	has := make(map[int64]bool, len(s.rows)+len(s.above))
	for _, l := range s.rows {
		has[l.ID] = true
	}
	for _, l := range s.above {
		has[l.ID] = true
	}
	news = slices.DeleteFunc(slices.Clone(news), func(l crm.Lead) bool { return has[l.ID] })
	lim := p.limit()
	if p.top == 0 {
		// Newest first, above the rows; the window and one past it.
		slices.Reverse(news)
		s.rows = append(news, s.rows...)
		s.rows = s.rows[:min(len(s.rows), lim+1)]
	} else {
		s.above = append(slices.Clone(s.above), news...)
		s.above = s.above[:min(len(s.above), lim)]
	}
	s.seen = max(s.seen, seen)
}

// scanMayStop reports whether a filtered read ending short may have
// stopped at the store's bound rather than at the last lead: more than
// scanBound leads lie past the window's start (ids are dense enough for
// the top's id to say how many are older).
func (p allPane) scanMayStop() bool {
	if p.top > 0 {
		return p.top > scanBound
	}
	return p.total > scanBound
}

// searchedTo is the lowest id the last filtered read looked at: the
// store's window of scanBound ids below the bound (below the newest id,
// which is the total when no lead was ever deleted, at the top).
func (p allPane) searchedTo() int64 {
	from := p.top + 1
	if p.top == 0 {
		from = int64(p.total) + 1
	}
	return max(from-scanBound, 1)
}

// pin fixes the window on the rows shown, so arrivals above stop moving
// them.
func (p *allPane) pin() {
	if p.top == 0 && len(p.rows) > 0 {
		p.top = p.rows[0].ID
	}
}

// Update moves the cursor and the window. Moves that stay within the
// rows read are drawn at once; each asks for a refresh of the new window.
func (p *allPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	lim := p.limit()
	beforeTop, beforeBottom := p.top, p.bottom
	switch {
	case key.Matches(k, p.keys.Down):
		switch {
		case p.cursor < len(p.rows)-1:
			p.cursor++
			p.pin()
		case p.below != nil:
			// One row on: the row past the window is already read.
			first := p.rows[0]
			p.rows = append(slices.Clone(p.rows[1:]), *p.below)
			p.above = append([]crm.Lead{first}, p.above...)
			p.top, p.below = p.rows[0].ID, nil
		}
	case key.Matches(k, p.keys.Up):
		switch {
		case p.cursor > 0:
			p.cursor--
		case len(p.above) > 0:
			p.rows = append([]crm.Lead{p.above[0]}, p.rows[:min(len(p.rows), lim-1)]...)
			p.top, p.above = p.above[0].ID, p.above[1:]
		}
	case key.Matches(k, p.keys.PageDown):
		switch {
		case p.below != nil:
			// The rows on screen stay until the next page lands.
			p.top = p.below.ID
		case p.searchBound:
			// The search stopped at the store's window: search the next
			// 100,000 below it.
			p.top = p.searchedTo() - 1
			p.searchBound = false
		default:
			p.cursor = max(len(p.rows)-1, 0)
		}
	case key.Matches(k, p.keys.PageUp):
		if n := min(len(p.above), lim); n > 0 {
			up := slices.Clone(p.above[:n])
			slices.Reverse(up)
			p.rows = append(up, p.rows...)[:min(lim, n+len(p.rows))]
			p.top, p.above = p.rows[0].ID, p.above[n:]
		} else {
			p.cursor = 0
		}
	case key.Matches(k, p.keys.Top):
		p.top, p.cursor, p.bottom = 0, 0, false
	case key.Matches(k, p.keys.Bottom):
		p.bottom = true
	}
	if p.top != beforeTop || p.bottom != beforeBottom {
		return requestRefresh
	}
	return nil
}

func (p allPane) filterText() string { return p.filter }

// setFilter changes the filter and starts again from the newest.
func (p *allPane) setFilter(f string) {
	if f != p.filter {
		p.filter, p.top, p.bottom, p.cursor = f, 0, false, 0
		p.below, p.above, p.matched, p.capped = nil, nil, -1, false
		p.srch = allSearch{}
	}
}

func (p allPane) selected() (crm.Lead, bool) {
	if p.cursor < 0 || p.cursor >= len(p.rows) {
		return crm.Lead{}, false
	}
	return p.rows[p.cursor], true
}

// selection is the lead under the cursor, as the other lead panes give
// theirs: enter and the lead keys act on it.
func (p allPane) selection() (selection, bool) {
	l, ok := p.selected()
	return selection{leadID: l.ExternalID}, ok
}

// columns fit the width: the source and the CRM id go first when it is
// narrow, and states take their short names.
func (p allPane) columns() ([]column, bool) {
	iw := p.width - 2
	switch {
	case iw >= 120:
		return []column{{"EXTERNAL ID", 16}, {"STATE", 16}, {"SOURCE", 12}, {"CRM ID", 14}, {"TRY", 3}, {"REASON / LAST", 0}, {"WHEN", 8}}, false
	case iw >= 90:
		return []column{{"EXTERNAL ID", 16}, {"STATE", 10}, {"SOURCE", 10}, {"TRY", 3}, {"REASON / LAST", 0}, {"WHEN", 8}}, true
	}
	return []column{{"EXTERNAL ID", 16}, {"STATE", 10}, {"TRY", 3}, {"REASON / LAST", 0}, {"WHEN", 7}}, true
}

func (p allPane) cells(l crm.Lead, cols []column, short bool) []cell {
	st := p.st
	out := make([]cell, 0, len(cols))
	for _, c := range cols {
		switch c.title {
		case "EXTERNAL ID":
			out = append(out, plain(l.ExternalID))
		case "STATE":
			out = append(out, styled(stateLabel(l.State, short), st.State(l.State)))
		case "SOURCE":
			out = append(out, styled(l.Source, st.Muted))
		case "CRM ID":
			out = append(out, styled(l.CRMID, st.Dup))
		case "TRY":
			out = append(out, plain(strconv.Itoa(l.Attempts)))
		case "REASON / LAST":
			out = append(out, p.reason(l))
		case "WHEN":
			out = append(out, styled(fmtAge(l.UpdatedAt, p.now), st.Muted))
		}
	}
	return out
}

// reason is what the lead is waiting for or why it ended.
func (p allPane) reason(l crm.Lead) cell {
	st := p.st
	var parts []string
	if l.State == crm.StateRetryWait {
		parts = append(parts, "next "+fmtCountdown(l.NextAttemptAt, p.now))
	}
	switch {
	case l.State == crm.StateAccepted && l.CRMStatus != "":
		parts = append(parts, "status "+l.CRMStatus)
	case l.Reason != "":
		parts = append(parts, l.Reason)
	case l.LastError != "":
		parts = append(parts, l.LastError)
	case l.LastHTTPStatus != 0:
		parts = append(parts, "HTTP "+strconv.Itoa(l.LastHTTPStatus))
	}
	s := strings.Join(parts, " · ")
	if l.State.Final() && l.State != crm.StateAccepted {
		return styled(s, st.State(l.State))
	}
	return styled(s, st.Muted)
}

// View draws the pane at its size.
func (p allPane) View() string {
	title := paneAll.title() + p.countLabel()
	if n := len(p.above); p.top > 0 && n > 0 {
		// Pinned below newer leads: where the window is, and how many
		// wait above it.
		more := ""
		if n >= p.limit() {
			more = "+"
		}
		title += fmt.Sprintf(" · from #%d · %d%s newer above (g: newest)", p.top, n, more)
	}
	if p.searchBound {
		if p.top > 0 {
			title += fmt.Sprintf(" · searched 100,000 below #%d · pgdn searches on", p.top+1)
		} else {
			title += " · searched newest 100,000 · pgdn searches on"
		}
	}
	cols, short := p.columns()
	rows := make([][]cell, len(p.rows))
	for i, l := range p.rows {
		rows[i] = p.cells(l, cols, short)
	}
	empty := "no lead stored yet"
	return table{
		st: p.st, title: title, cols: cols, rows: rows, loaded: p.loaded, filter: p.filter,
		empty: empty, cursor: p.cursor, focused: p.focused, height: p.height,
	}.View(p.width)
}

// countLabel is the title's " (shown/total)": the total from Counts; a
// filter's matches exact when it names states, else counted up to
// countCap ("1,000+").
func (p allPane) countLabel() string {
	if p.total < 0 {
		return ""
	}
	total := grouped(p.total)
	if p.filter == "" {
		return " (" + total + ")"
	}
	shown := "…"
	switch {
	case p.matched >= 0 && p.capped:
		shown = grouped(p.matched) + "+"
	case p.matched >= 0:
		shown = grouped(p.matched)
	}
	return " (" + shown + "/" + total + ")"
}

// bulkQuery is what a bulk resubmit (R) takes from the pane: the leads
// its filter shows, in the states a resubmission allows (all of them
// when the filter names no state). Every match counts, not only the
// newest 100,000 the filtered page looks through.
func (p allPane) bulkQuery() (crm.LeadQuery, bool) {
	q := crm.LeadQuery{}
	p.narrow(&q)
	states := q.States
	if len(states) == 0 {
		states = crm.States
	}
	var keep []crm.State
	for _, s := range states {
		if s.Resubmittable() {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return crm.LeadQuery{}, false
	}
	q.States = keep
	return q, true
}

var _ bulkPane = allPane{}
