package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// queryTimeout bounds one refresh or action, so a wedged store shows an
// error in the status bar instead of a frozen dashboard.
const queryTimeout = 5 * time.Second

// Throughput window of the header sparklines: 30 buckets of 10 s, the
// last five minutes.
const (
	sparkBucket  = 10 * time.Second
	sparkBuckets = 30
)

// snapshotQuery is everything one refresh asks for, copied out of the
// model before the Cmd runs. A nil pane query means the pane is not on
// screen and is not asked for.
type snapshotQuery struct {
	now             time.Time
	leads           [paneCount]*crm.LeadQuery // by pane; the events pane asks with events
	leadWin         [paneCount]leadWindow     // what each lead pane shows of its query's rows
	leadScan        [paneCount]*crm.LeadQuery // newest rows, unfiltered, for a pane to match its drawn words
	leadTail        [paneCount]*leadTail      // a filtering pane's changes since: read instead of the two above when they fit
	leadBg          [paneCount]*leadBg        // a filtering pane's full search, run in the background
	events          *crm.EventQuery
	eventScan       int        // >0: also read this many newest events unfiltered, for the pane to match
	eventKey        string     // with a filter: what the events pane's search is for (eventPane.searchKey)
	eventTail       *eventTail // the filtering events pane's new rows: read instead when they fit
	eventBg         *eventBg   // its full search, in the background
	detailID        string
	throughputSince time.Time
	views           viewsQuery // the All leads, Sources and Throughput views' reads (jump.go)
	pulse           bool       // attached: read the store's Pulse for the header's health
}

// leadWindow is what a lead pane makes of its query's rows: the rows
// from index skip on are its window, which starts at offset in the pane;
// filter is the filter as typed (the query may carry another form of
// it). A pane following its selected lead asks for more rows than it
// shows, around the window, to find the lead where it moved.
type leadWindow struct {
	offset int
	skip   int
	filter string
	merged bool   // the rows are every match from the top: merge in the scan, then window
	key    string // with merged: the pane's search key (leadPane.searchKey)
	// follow is the lead a tracking pane follows; when the rows read do
	// not hold it, wide (a wider margin around the window) is read too.
	follow int64
	wide   crm.LeadQuery
}

// leadResult is one lead pane's rows.
type leadResult struct {
	q      crm.LeadQuery
	rows   []crm.Lead
	scan   []crm.Lead // the newest rows of the pane's states, when asked
	tail   []crm.Lead // with tailed: what changed at the top, read instead of rows and scan
	tailed bool
	wide   bool // q is the window's wide read (leadWindow.wide)
	ok     bool
}

// snapshotMsg is one refresh's result. Each part carries ok so a failing
// query leaves its pane as it was while the others update: the dashboard
// keeps running with what still works.
type snapshotMsg struct {
	q        snapshotQuery
	counts   crm.Counts
	countsOK bool
	tp       crm.Throughput
	tpOK     bool
	leads    [paneCount]leadResult // by pane, as asked
	events   []eventRow
	eventsQ  crm.EventQuery
	eventsOK bool
	scan     []eventRow // the newest eventScan events, unfiltered, when asked
	cbTop    int64      // with a filter: the newest callback and refusal ids read
	refTop   int64
	tail     []eventRow // with tailed: the events after the pane's newest, read instead of events and scan
	tailed   bool
	detail   crm.LeadDetail
	detailOK bool
	health   storeHealth
	views    viewsResult // as q.views asked
	pulse    crm.Pulse   // when q.pulse asked and it worked
	pulseOK  bool
	fwd      crm.ForwardStats // the forward queue, for the header's forwarding line
	fwdOK    bool
	err      error
}

// storeHealth is what Source.Health said in one refresh: code is "" while
// the store can commit, else a fixed code (store_replaced, disk_full,
// read_only, unreachable) and err its detail.
type storeHealth struct {
	code string
	err  error
}

// loadSnapshot runs one refresh: Counts, Throughput and only the visible
// rows of each pane on screen.
func loadSnapshot(src Source, q snapshotQuery) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		msg := snapshotMsg{q: q}
		var errs []error
		fail := func(what string, err error) { errs = append(errs, fmt.Errorf("%s: %w", what, err)) }

		// The store's ability to commit, first: when it has stopped, the
		// reads below may still work (a removed file stays readable) and
		// the header must not look healthy.
		msg.health.code, msg.health.err = src.Health(ctx)

		if c, err := src.Counts(ctx); err != nil {
			fail("counts", err)
		} else {
			msg.counts, msg.countsOK = c, true
		}
		if tp, err := src.Throughput(ctx, q.throughputSince, sparkBucket); err != nil {
			fail("throughput", err)
		} else {
			msg.tp, msg.tpOK = tp, true
		}
		for id, lq := range q.leads {
			if lq == nil {
				continue
			}
			out := &msg.leads[id]
			out.q = *lq
			if b := q.leadBg[id]; b != nil {
				// First: it was claimed, and must run even if a read fails.
				b.r.start(b.key, func(ctx context.Context) (leadResult, error) {
					return readLeadSearch(ctx, src, b.q, b.scan)
				})
			}
			if t := q.leadTail[id]; t != nil {
				rows, reached, err := readLeadTail(ctx, src, *t)
				if err != nil {
					fail(paneID(id).name(), err)
					continue
				}
				if reached {
					out.tail, out.tailed, out.ok = rows, true, true
					continue
				}
				// More changed than a tail reads: the full search.
			}
			rows, err := src.Leads(ctx, *lq)
			if err != nil {
				fail(paneID(id).name(), err)
				continue
			}
			if w := q.leadWin[id]; w.follow != 0 && !slices.ContainsFunc(rows, func(l crm.Lead) bool { return l.ID == w.follow }) {
				// The followed lead moved further than the narrow margin.
				if rows, err = src.Leads(ctx, w.wide); err != nil {
					fail(paneID(id).name(), err)
					continue
				}
				out.q, out.wide = w.wide, true
			}
			out.rows, out.ok = rows, true
			if sq := q.leadScan[id]; sq != nil {
				if out.scan, err = src.Leads(ctx, *sq); err != nil {
					fail(paneID(id).name(), err)
				}
			}
		}
		if q.events != nil {
			msg.eventsQ = *q.events
			if b := q.eventBg; b != nil {
				b.r.start(b.key, func(ctx context.Context) (eventResult, error) {
					return readEventSearch(ctx, src, b.q)
				})
			}
			if t := q.eventTail; t != nil {
				rows, cbTop, refTop, reached, err := readEventTail(ctx, src, *t)
				if err != nil {
					fail("events", err)
				} else if reached {
					msg.tail, msg.tailed, msg.eventsOK = rows, true, true
					msg.cbTop, msg.refTop = cbTop, refTop
				}
			}
		}
		if q.events != nil && !msg.tailed {
			if q.eventScan > 0 {
				// A filter: the store's matches, and the newest rows on
				// whose drawn words (REFUSED, unmatched, a refusal's code)
				// the pane matches it, which the store's filter does not see.
				r, err := readEventSearch(ctx, src, *q.events)
				if err != nil {
					fail("events", err)
				}
				msg.events, msg.scan, msg.cbTop, msg.refTop, msg.eventsOK = r.stored, r.scan, r.cbTop, r.refTop, r.ok
			} else {
				cbs, err1 := src.Callbacks(ctx, *q.events)
				refs, err2 := src.Refusals(ctx, *q.events)
				if err1 != nil {
					fail("callbacks", err1)
				}
				if err2 != nil {
					fail("refusals", err2)
				}
				if err1 == nil || err2 == nil {
					msg.events, msg.eventsOK = mergeEvents(cbs, refs, q.events.Limit), true
				}
			}
		}
		msg.fwd, msg.fwdOK = readForward(ctx, src, fail)
		msg.views = loadViews(ctx, src, q.views, fail)
		if q.pulse {
			msg.pulse, msg.pulseOK = readPulse(ctx, src, q.now, fail)
		}
		if q.detailID != "" {
			if d, err := src.LeadDetail(ctx, q.detailID); err != nil {
				fail("lead "+q.detailID, err)
			} else {
				msg.detail, msg.detailOK = d, true
			}
		}
		if len(errs) > 0 {
			msg.err = fmt.Errorf("refresh: %w", errors.Join(errs...))
		}
		return msg
	}
}
