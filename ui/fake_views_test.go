package ui

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The fake's finding and Sources methods, and viewSource: the fake as
// the views' tests need it (keyset paging, a report, pauses and
// throughput by window, every call recorded).

func (f *fakeSource) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leads {
		if l.ExternalID == id {
			return l, nil
		}
	}
	for i := len(f.leads) - 1; i >= 0; i-- {
		if l := f.leads[i]; l.CRMID != "" && l.CRMID == id {
			return l, nil
		}
	}
	return crm.Lead{}, fmt.Errorf("lead %q: %w", id, crm.ErrNotFound)
}

func (f *fakeSource) CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leadsErr != nil {
		return 0, false, f.leadsErr
	}
	n := len(f.matching(q))
	if limit > 0 && n >= limit {
		return limit, true, nil
	}
	return n, false, nil
}

// matching is every lead q selects, in id order, ignoring its order and
// bounds: no states means every state, as the store does. f.mu is held.
func (f *fakeSource) matching(q crm.LeadQuery) []crm.Lead {
	var out []crm.Lead
	for _, l := range f.leads {
		if len(q.States) > 0 && !slices.Contains(q.States, l.State) {
			continue
		}
		if q.Filter != "" && !containsFold(q.Filter, l.ExternalID, l.CRMID, l.Reason) {
			continue
		}
		if q.Reason != "" && !containsFold(q.Reason, l.Reason) {
			continue
		}
		out = append(out, l)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// byID answers a keyset query (crm.OrderNewest / OrderOldest) as the
// store does: ordered by id, bounded by BeforeID / AfterID, no offset.
func (f *fakeSource) byID(q crm.LeadQuery) []crm.Lead {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leadQueries = append(f.leadQueries, q)
	rows := f.matching(q)
	var out []crm.Lead
	if q.Order == crm.OrderOldest {
		for _, l := range rows {
			if l.ID > q.AfterID {
				out = append(out, l)
			}
		}
	} else {
		for i := len(rows) - 1; i >= 0; i-- {
			if l := rows[i]; q.BeforeID == 0 || l.ID < q.BeforeID {
				out = append(out, l)
			}
		}
	}
	return window(out, 0, q.Limit)
}

// sampleReport is the fake's Sources rows: a good source, a junk one
// (mostly rejected and invalid), one without a value, and one with
// leads still waiting (no outcome, so not in Sent).
func sampleReport() []crm.ReportRow {
	var fs [crm.LatencyBuckets]int
	fs[crm.LatencyBucket(8*time.Second)] = 30
	fs[crm.LatencyBucket(90*time.Second)] = 20
	return []crm.ReportRow{
		{Value: "google", Sent: 120, Accepted: 96, Duplicate: 12, Rejected: 6, ValidationError: 4, Failed: 2, WithStatus: 50, FTD: 9, FirstStatus: fs},
		{Value: "junk-net", Sent: 80, Accepted: 8, Duplicate: 2, Rejected: 40, ValidationError: 28, Failed: 2},
		{Value: "", Sent: 5, Accepted: 5},
	}
}

func (f *fakeSource) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	if !crm.ValidGroup(q.By) {
		return nil, fmt.Errorf("report: no field %q", q.By)
	}
	return sampleReport(), nil
}

// pauseCall is one recorded Pause or Resume.
type pauseCall struct {
	resume bool
	p      crm.Pause
}

// tpCall is one recorded Throughput.
type tpCall struct {
	since  time.Time
	bucket time.Duration
}

// viewSource is the fake with what the views read: keyset paging over
// its leads, a report that moves, pauses kept, throughput shaped by
// the window asked; every call recorded.
type viewSource struct {
	*fakeSource
	vmu        sync.Mutex
	report     []crm.ReportRow
	reportQs   []crm.ReportQuery
	pauses     []crm.Pause
	pauseCalls []pauseCall
	held       int // what Pause answers
	tpCalls    []tpCall
	finds      []string
	extra      int // added to the queued count, to play a big store
}

func newViewSource() *viewSource {
	return &viewSource{fakeSource: newFakeSource(), report: sampleReport(), held: 42}
}

// manyLeads replaces the fake's leads with n of every state, ids 1..n,
// lead-00001 the oldest.
func (v *viewSource) manyLeads(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.leads = v.leads[:0]
	for i := 1; i <= n; i++ {
		v.leads = append(v.leads, manyLead(int64(i)))
	}
}

func manyLead(id int64) crm.Lead {
	st := crm.States[int(id)%len(crm.States)]
	return lead(id, fmt.Sprintf("lead-%05d", id), st, func(l *crm.Lead) {
		l.Source = []string{"google", "junk-net", "meta"}[id%3]
		l.CreatedAt = t0.Add(-time.Duration(20_000-id) * time.Second)
		l.UpdatedAt = l.CreatedAt
		l.Attempts = int(id % 3)
		if st == crm.StateRejected {
			l.Reason = "blocked country"
		}
	})
}

// addLeads appends n new leads past the newest, as live traffic does.
func (v *viewSource) addLeads(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	next := v.leads[len(v.leads)-1].ID + 1
	for i := range n {
		v.leads = append(v.leads, manyLead(next+int64(i)))
	}
}

func (v *viewSource) Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error) {
	if q.Order != crm.OrderDefault || len(q.States) == 0 {
		if v.leadsErr != nil {
			return nil, v.leadsErr
		}
		return v.byID(q), nil
	}
	return v.fakeSource.Leads(ctx, q)
}

func (v *viewSource) Counts(ctx context.Context) (crm.Counts, error) {
	c, err := v.fakeSource.Counts(ctx)
	if err == nil {
		c.States[crm.StateQueued] += v.extra
	}
	return c, err
}

func (v *viewSource) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	v.vmu.Lock()
	v.finds = append(v.finds, id)
	v.vmu.Unlock()
	return v.fakeSource.FindLead(ctx, id)
}

func (v *viewSource) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	v.reportQs = append(v.reportQs, q)
	if !crm.ValidGroup(q.By) {
		return nil, fmt.Errorf("report: no field %q", q.By)
	}
	return slices.Clone(v.report), nil
}

func (v *viewSource) Pause(ctx context.Context, p crm.Pause) (int, error) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	v.pauseCalls = append(v.pauseCalls, pauseCall{p: p})
	if err := p.Validate(); err != nil {
		return 0, err
	}
	p.At = t0
	v.pauses = append(v.pauses, p)
	return v.held, nil
}

func (v *viewSource) Resume(ctx context.Context, p crm.Pause) (int, error) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	v.pauseCalls = append(v.pauseCalls, pauseCall{resume: true, p: p})
	v.pauses = slices.DeleteFunc(v.pauses, func(o crm.Pause) bool { return o.Field == p.Field && o.Value == p.Value })
	return v.held, nil
}

func (v *viewSource) Pauses(ctx context.Context) ([]crm.Pause, error) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	return slices.Clone(v.pauses), nil
}

// Throughput has one bucket per bucket from since to t0, shaped so each
// series differs: sent rises and falls, a burst of failures in the
// middle (an outage), callbacks trailing accepted.
func (v *viewSource) Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error) {
	v.vmu.Lock()
	v.tpCalls = append(v.tpCalls, tpCall{since, bucket})
	v.vmu.Unlock()
	n := int(t0.Sub(since)/bucket) + 1
	tp := crm.Throughput{Start: since, Bucket: bucket}
	for i := range n {
		sent := 10 + (i*7)%23
		failed := 0
		if i > n/3 && i < n/2 {
			failed = 6
		}
		tp.Sent = append(tp.Sent, sent)
		tp.Accepted = append(tp.Accepted, sent*7/10)
		tp.Failed = append(tp.Failed, failed)
		tp.Callbacks = append(tp.Callbacks, (i*5)%13)
	}
	return tp, nil
}

func (v *viewSource) lastReport() (crm.ReportQuery, int) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	if len(v.reportQs) == 0 {
		return crm.ReportQuery{}, 0
	}
	return v.reportQs[len(v.reportQs)-1], len(v.reportQs)
}

// keysetQueries are the Leads queries with an id order, oldest first.
func (v *viewSource) keysetQueries() []crm.LeadQuery {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []crm.LeadQuery
	for _, q := range v.leadQueries {
		if q.Order != crm.OrderDefault {
			out = append(out, q)
		}
	}
	return out
}

var _ Source = (*viewSource)(nil)
