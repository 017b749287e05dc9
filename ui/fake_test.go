package ui

import (
	"context"
	"errors"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/leadwatch/leadwatch/crm"
)

func TestMain(m *testing.M) {
	// Goldens and View assertions compare plain text.
	lipgloss.SetColorProfile(termenv.Ascii)
	lipgloss.SetHasDarkBackground(true)
	os.Exit(m.Run())
}

// t0 is the fake clock: every countdown and age is measured from it.
var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// resubmitCall is one recorded Source.Resubmit.
type resubmitCall struct {
	ExternalID string
	Payload    []byte
}

// fakeSource is a deterministic ui.Source: a handful of leads, callbacks
// and refusals in memory, recording what the dashboard asks of it.
type fakeSource struct {
	mu          sync.Mutex
	leads       []crm.Lead
	attempts    map[string][]crm.Attempt
	callbacks   []crm.CallbackEvent
	refusals    []crm.Refusal
	countsErr   error
	leadsErr    error
	callbackErr error
	healthCode  string // what Health reports: "" healthy, else a store code
	healthErr   error
	healthReads int

	leadQueries   []crm.LeadQuery
	eventQueries  []crm.EventQuery
	callbackLoads []int64
	resubmits     []resubmitCall
}

func lead(id int64, ext string, st crm.State, mod func(*crm.Lead)) crm.Lead {
	l := crm.Lead{
		ID:             id,
		ExternalID:     ext,
		Payload:        []byte(`{"external_id":"` + ext + `","phone":"+4915112345678","country":"DE"}`),
		IdempotencyKey: ext + "-1773489000000-0a0b0c0d",
		State:          st,
		CreatedAt:      t0.Add(-10 * time.Minute),
		UpdatedAt:      t0.Add(-time.Duration(id) * time.Minute),
	}
	if mod != nil {
		mod(&l)
	}
	return l
}

func newFakeSource() *fakeSource {
	f := &fakeSource{attempts: map[string][]crm.Attempt{}}
	f.leads = []crm.Lead{
		lead(1, "ext-101", crm.StateRetryWait, func(l *crm.Lead) {
			l.Attempts, l.LastHTTPStatus, l.NextAttemptAt = 2, 503, t0.Add(42*time.Second)
			l.LastDelay, l.LastDelayWhy = 4*time.Second, "backoff 2^2 s, jittered"
		}),
		lead(2, "ext-102", crm.StateRetryWait, func(l *crm.Lead) {
			l.Attempts, l.LastHTTPStatus, l.NextAttemptAt = 1, 429, t0.Add(29*time.Second)
			l.LastDelay, l.LastDelayWhy = 30*time.Second, "Retry-After 30s"
		}),
		lead(3, "ext-103", crm.StateRetryWait, func(l *crm.Lead) {
			l.Attempts, l.LastError, l.NextAttemptAt = 5, "dial tcp 10.0.0.1:443: connection refused", t0.Add(-time.Second)
			l.LastDelay, l.LastDelayWhy = 16*time.Second, "backoff 2^4 s, jittered"
		}),
		lead(4, "ext-201", crm.StateDuplicate, func(l *crm.Lead) { l.CRMID, l.Reason = "crm-9001", "already exists" }),
		lead(5, "ext-202", crm.StateDuplicate, func(l *crm.Lead) { l.CRMID, l.Reason = "crm-9002", "phone seen in 24h" }),
		lead(6, "ext-301", crm.StateFailed, func(l *crm.Lead) {
			l.Payload = []byte(`{"external_id":"ext-301","phone":"+4915112345678","first_name":"O'Brien","note":"$HOME \\ \"q\" ü"}`)
			l.LastHTTPStatus, l.Reason, l.Attempts = 401, "unauthorized", 1
		}),
		lead(7, "ext-302", crm.StateValidationError, func(l *crm.Lead) {
			l.Payload = []byte(`{"external_id":"ext-302","phone":"12345"}`)
			l.LastHTTPStatus, l.Reason, l.Attempts = 422, "phone: not E.164", 1
		}),
		lead(8, "ext-303", crm.StateRejected, func(l *crm.Lead) {
			l.LastHTTPStatus, l.Reason, l.CRMID = 200, "blocked country", "crm-9003"
		}),
		lead(9, "ext-401", crm.StateAccepted, func(l *crm.Lead) { l.CRMID, l.CRMStatus = "crm-9004", "approved" }),
	}
	f.attempts["ext-301"] = []crm.Attempt{{
		ID: 1, LeadID: 6, Kind: crm.KindSend, Number: 1, IdempotencyKey: "ext-301-1773489000000-0a0b0c0d",
		StartedAt: t0.Add(-9 * time.Minute), Duration: 120 * time.Millisecond, HTTPStatus: 401,
		ResponseBody: []byte(`{"error":"unauthorized"}`), Outcome: crm.StateFailed,
	}}
	f.attempts["ext-101"] = []crm.Attempt{
		{ID: 2, LeadID: 1, Kind: crm.KindSend, Number: 1, IdempotencyKey: "ext-101-1773489000000-0a0b0c0d",
			StartedAt: t0.Add(-50 * time.Second), Duration: 2 * time.Second, Error: "context deadline exceeded",
			Outcome: crm.StateRetryWait, Delay: 2 * time.Second, DelayWhy: "backoff 2^1 s, jittered"},
		{ID: 3, LeadID: 1, Kind: crm.KindSend, Number: 2, IdempotencyKey: "ext-101-1773489000000-0a0b0c0d",
			StartedAt: t0.Add(-4 * time.Second), Duration: 80 * time.Millisecond, HTTPStatus: 503,
			ResponseBody: []byte(`{"error":"unavailable"}`), Outcome: crm.StateRetryWait, Delay: 4 * time.Second, DelayWhy: "backoff 2^2 s, jittered"},
	}
	f.callbacks = []crm.CallbackEvent{
		{ID: 1, DedupKey: "crm-9004:status_changed:1773489540", InternalID: "crm-9004", ExternalID: "ext-401",
			Event: "status_changed", Status: "approved", Timestamp: "1773489540", EventTime: t0.Add(-60 * time.Second),
			ReceivedAt: t0.Add(-59 * time.Second), Skew: 1200 * time.Millisecond, LeadID: 9,
			RawBody: []byte(`{"internal_id":"crm-9004","external_id":"ext-401","event":"status_changed","status":"approved","timestamp":1773489540}`)},
		{ID: 2, DedupKey: "crm-7777:status_changed:1773489580", InternalID: "crm-7777", ExternalID: "ext-999",
			Event: "status_changed", Status: "rejected", Timestamp: "1773489580", EventTime: t0.Add(-20 * time.Second),
			ReceivedAt: t0.Add(-10 * time.Second), Skew: -45 * time.Second,
			RawBody: []byte(`{"internal_id":"crm-7777","external_id":"ext-999","event":"status_changed","status":"rejected","timestamp":1773489580}`)},
	}
	f.refusals = []crm.Refusal{
		{ID: 1, At: t0.Add(-30 * time.Second), RemoteAddr: "10.0.0.7:51234", HTTPStatus: 403,
			Code: crm.CodeBadSignature, Detail: "signature made with none of the 2 secrets", Head: []byte(`{"internal_id":"crm-1","event":"st`)},
	}
	return f
}

func (f *fakeSource) Counts(ctx context.Context) (crm.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.countsErr != nil {
		return crm.Counts{}, f.countsErr
	}
	c := crm.Counts{States: map[crm.State]int{}}
	for _, l := range f.leads {
		c.States[l.State]++
	}
	for _, cb := range f.callbacks {
		if cb.Kind == crm.KindPolled {
			c.Polled++
			continue
		}
		c.CallbacksVerified++
		if cb.LeadID == 0 {
			c.CallbacksUnmatched++
		}
	}
	c.Refusals = len(f.refusals)
	return c, nil
}

func (f *fakeSource) Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leadQueries = append(f.leadQueries, q)
	if f.leadsErr != nil {
		return nil, f.leadsErr
	}
	var out []crm.Lead
	for _, l := range f.leads {
		if !slices.Contains(q.States, l.State) {
			continue
		}
		if q.Filter != "" && !containsFold(q.Filter, l.ExternalID, l.CRMID, l.Reason) {
			continue
		}
		out = append(out, l)
	}
	if len(q.States) == 1 && q.States[0] == crm.StateRetryWait {
		sort.SliceStable(out, func(i, j int) bool { return out[i].NextAttemptAt.Before(out[j].NextAttemptAt) })
	} else {
		sort.SliceStable(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	}
	return window(out, q.Offset, q.Limit), nil
}

func (f *fakeSource) Callbacks(ctx context.Context, q crm.EventQuery) ([]crm.CallbackEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eventQueries = append(f.eventQueries, q)
	var out []crm.CallbackEvent
	for i := len(f.callbacks) - 1; i >= 0; i-- {
		c := f.callbacks[i]
		if c.ID <= q.AfterID {
			continue
		}
		if q.Filter == "" || containsFold(q.Filter, c.ExternalID, c.InternalID, c.Event, c.Status) {
			c.RawBody = nil // as the store: rows never carry the body
			out = append(out, c)
		}
	}
	return window(out, 0, q.Limit), nil
}

func (f *fakeSource) Callback(ctx context.Context, id int64) (crm.CallbackEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callbackLoads = append(f.callbackLoads, id)
	if f.callbackErr != nil {
		return crm.CallbackEvent{}, f.callbackErr
	}
	for _, c := range f.callbacks {
		if c.ID == id {
			return c, nil
		}
	}
	return crm.CallbackEvent{}, crm.ErrNotFound
}

func (f *fakeSource) Refusals(ctx context.Context, q crm.EventQuery) ([]crm.Refusal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []crm.Refusal
	for i := len(f.refusals) - 1; i >= 0; i-- {
		if r := f.refusals[i]; r.ID > q.AfterID && (q.Filter == "" || containsFold(q.Filter, r.Detail)) {
			out = append(out, r)
		}
	}
	return window(out, 0, q.Limit), nil
}

func (f *fakeSource) LeadDetail(ctx context.Context, externalID string) (crm.LeadDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leads {
		if l.ExternalID == externalID {
			d := crm.LeadDetail{Lead: l, Attempts: f.attempts[externalID], Forwards: f.forwardsOf(externalID)}
			for _, c := range f.callbacks {
				if c.LeadID == l.ID {
					d.Callbacks = append(d.Callbacks, c)
				}
			}
			return d, nil
		}
	}
	return crm.LeadDetail{}, crm.ErrNotFound
}

func (f *fakeSource) Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error) {
	tp := crm.Throughput{Start: since, Bucket: bucket}
	for i := 0; i < sparkBuckets; i++ {
		tp.Sent = append(tp.Sent, (i*7)%9)
		tp.Callbacks = append(tp.Callbacks, (i*5)%8)
	}
	return tp, nil
}

func (f *fakeSource) Health(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthReads++
	return f.healthCode, f.healthErr
}

// setHealth changes what Health reports from now on.
func (f *fakeSource) setHealth(code string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthCode, f.healthErr = code, err
}

func (f *fakeSource) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthReads
}

func (f *fakeSource) Resubmit(ctx context.Context, externalID string, payload []byte) (crm.Resubmission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resubmits = append(f.resubmits, resubmitCall{externalID, payload})
	for i, l := range f.leads {
		if l.ExternalID != externalID {
			continue
		}
		if !l.State.Resubmittable() {
			return crm.Resubmission{}, errors.New("not resubmittable")
		}
		res := crm.Resubmission{OldKey: l.IdempotencyKey, KeyKept: crm.KeepsKey(l.State, l.Payload, payload), Edited: payload != nil}
		if !res.KeyKept {
			l.IdempotencyKey = externalID + "-new"
		}
		if payload != nil {
			l.Payload = payload
		}
		l.State = crm.StateQueued
		f.leads[i] = l
		res.Lead = l
		return res, nil
	}
	return crm.Resubmission{}, crm.ErrNotFound
}

func (f *fakeSource) lastLeadQuery(t *testing.T, states ...crm.State) crm.LeadQuery {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.leadQueries) - 1; i >= 0; i-- {
		if slices.Equal(f.leadQueries[i].States, states) {
			return f.leadQueries[i]
		}
	}
	t.Fatalf("no Leads query for %v", states)
	return crm.LeadQuery{}
}

func (f *fakeSource) lastLeadQueryOrNil(states ...crm.State) *crm.LeadQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.leadQueries) - 1; i >= 0; i-- {
		if slices.Equal(f.leadQueries[i].States, states) {
			q := f.leadQueries[i]
			return &q
		}
	}
	return nil
}

func window[T any](rows []T, offset, limit int) []T {
	if offset >= len(rows) {
		return nil
	}
	rows = rows[offset:]
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	return rows
}

var _ Source = (*fakeSource)(nil)
