package storetest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// testReconcile covers status lookups (docs/protocol.md §6): which leads
// ClaimLookups hands out and when, that two Stores never hand out one
// lead, and that SavePolled stores a polled status apart from callbacks.
func testReconcile(t *testing.T, h Harness) {
	t.Run("Due", func(t *testing.T) { testLookupsDue(t, h) })
	t.Run("Named", func(t *testing.T) { testLookupsNamed(t, h) })
	t.Run("Concurrent", func(t *testing.T) { testLookupsConcurrent(t, h) })
	t.Run("SavePolled", func(t *testing.T) { testSavePolled(t, h) })
	t.Run("PolledNotCallback", func(t *testing.T) { testPolledNotCallback(t, h) })
}

// reconcileQuery is the default rules at now.
func reconcileQuery(now time.Time) crm.ReconcileQuery {
	return crm.ReconcileQuery{Now: now, After: 10 * time.Minute, Stale: 30 * time.Minute,
		Final: crm.DefaultReconcileFinal(), Limit: 100}
}

// claimLookups claims with q and returns the external ids, sorted.
func claimLookups(t *testing.T, s store.Store, q crm.ReconcileQuery) []string {
	t.Helper()
	leads, err := s.ClaimLookups(context.Background(), q)
	if err != nil {
		t.Fatalf("claim lookups: %v", err)
	}
	var out []string
	for _, l := range leads {
		if l.State != crm.StateAccepted {
			t.Errorf("claim lookups handed out %s in state %s", l.ExternalID, l.State)
		}
		out = append(out, l.ExternalID)
	}
	sort.Strings(out)
	return out
}

func statusAt(t *testing.T, s store.Store, internal, ext, status string, at time.Time) {
	t.Helper()
	ev := callback(internal, ext, "status_changed", status, at.UnixMilli())
	ev.ReceivedAt = at
	if _, err := s.SaveCallbacks(context.Background(), []crm.CallbackEvent{ev}); err != nil {
		t.Fatalf("save callback %s %s: %v", ext, status, err)
	}
}

func testLookupsDue(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	t0 := clk.Now()
	for _, ext := range []string{"quiet", "talked", "done", "DONE2"} {
		mustEnqueue(t, s, ext)
		setState(t, s, clk, ext, crm.StateAccepted, "crm-"+ext)
	}
	mustEnqueue(t, s, "queued")
	mustEnqueue(t, s, "rejected")
	setState(t, s, clk, "rejected", crm.StateRejected, "")
	statusAt(t, s, "crm-talked", "talked", "no_answer", t0)
	statusAt(t, s, "crm-done", "done", "ftd", t0)
	statusAt(t, s, "crm-DONE2", "DONE2", "Not_Interested", t0) // final whatever its case

	if got := claimLookups(t, s, reconcileQuery(t0.Add(5*time.Minute))); len(got) != 0 {
		t.Fatalf("5 min after acceptance: handed out %v, want none (after is 10 min)", got)
	}
	at11 := t0.Add(11 * time.Minute)
	if got := claimLookups(t, s, reconcileQuery(at11)); !slices.Equal(got, []string{"quiet"}) {
		t.Fatalf("11 min after: handed out %v, want [quiet] (no status, accepted)", got)
	}
	if got := claimLookups(t, s, reconcileQuery(at11)); len(got) != 0 {
		t.Fatalf("again at the same time: handed out %v, want none (just looked up)", got)
	}
	q := reconcileQuery(at11)
	q.After, q.Stale = 0, 0
	if got := claimLookups(t, s, q); !slices.Equal(got, []string{"talked"}) {
		t.Fatalf("after 0 at the same time: handed out %v, want [talked] only (quiet was looked up at that time; done, DONE2 final)", got)
	}
	// A lookup is news too: a lead is not looked up again before the
	// interval (after or stale) from its last lookup.
	if got := claimLookups(t, s, reconcileQuery(t0.Add(20*time.Minute))); len(got) != 0 {
		t.Fatalf("20 min: handed out %v, want none (both looked up 9 min ago)", got)
	}
	if got := claimLookups(t, s, reconcileQuery(t0.Add(22*time.Minute))); !slices.Equal(got, []string{"quiet"}) {
		t.Fatalf("22 min: handed out %v, want [quiet] (11 min since its lookup, no status)", got)
	}
	if got := claimLookups(t, s, reconcileQuery(t0.Add(42*time.Minute))); !slices.Equal(got, []string{"quiet", "talked"}) {
		t.Fatalf("42 min: handed out %v, want [quiet talked] (talked: 31 min since its lookup, not final)", got)
	}
}

func testLookupsNamed(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	for _, ext := range []string{"a", "b"} {
		mustEnqueue(t, s, ext)
		setState(t, s, clk, ext, crm.StateAccepted, "crm-"+ext)
	}
	mustEnqueue(t, s, "queued")
	statusAt(t, s, "crm-b", "b", "ftd", clk.Now())
	q := crm.ReconcileQuery{Now: clk.Now(), ExternalIDs: []string{"a", "b", "queued", "missing"}, Limit: 10}
	// Named leads are looked up due or not, final or not: an operator
	// asked; a lead not accepted is not.
	if got := claimLookups(t, s, q); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("named a, b, queued, missing: handed out %v, want [a b]", got)
	}
	clk.Advance(time.Hour)
	q = reconcileQuery(clk.Now())
	q.AcceptedSince = clk.Now().Add(-30 * time.Minute)
	if got := claimLookups(t, s, q); len(got) != 0 {
		t.Fatalf("accepted since 30 min ago: handed out %v, want none (accepted an hour ago)", got)
	}
	q.AcceptedSince = time.Time{}
	if got := claimLookups(t, s, q); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("an hour later: handed out %v, want [a]", got)
	}
}

func testLookupsConcurrent(t *testing.T, h Harness) {
	s, clk, reopen := open(t, h, store.Options{})
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	const n = 40
	for i := range n {
		ext := fmt.Sprintf("L-%02d", i)
		mustEnqueue(t, s, ext)
		setState(t, s, clk, ext, crm.StateAccepted, "crm-"+ext)
		if i%2 == 1 {
			statusAt(t, s, "crm-"+ext, ext, "callback", clk.Now())
		}
	}
	now := clk.Now().Add(time.Hour)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for _, st := range []store.Store{s, other, s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				q := reconcileQuery(now)
				q.Limit = 3
				leads, err := st.ClaimLookups(context.Background(), q)
				if err != nil {
					t.Errorf("claim lookups: %v", err)
					return
				}
				if len(leads) == 0 {
					return
				}
				mu.Lock()
				for _, l := range leads {
					seen[l.ExternalID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("handed out %d distinct leads, want all %d", len(seen), n)
	}
	for ext, c := range seen {
		if c != 1 {
			t.Errorf("%s handed out %d times", ext, c)
		}
	}
}

func polled(l crm.Lead, status string, at time.Time) crm.PolledStatus {
	p := crm.PolledStatus{LeadID: l.ID, ExternalID: l.ExternalID, InternalID: l.CRMID, Status: status, PolledAt: at}
	p.RawBody = crm.PolledEvent(p)
	return p
}

func testSavePolled(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueueFields(t, s, "p1", fields{source: "fb"})
	l := setState(t, s, clk, "p1", crm.StateAccepted, "crm-p1")
	before, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Minute)
	p := polled(l, "interested", clk.Now())
	changed, err := s.SavePolled(ctx, p)
	if err != nil || !changed {
		t.Fatalf("save polled interested: changed %v, %v; want true", changed, err)
	}
	got := mustLead(t, s, "p1")
	if got.CRMStatus != "interested" || got.FirstStatusAt.IsZero() {
		t.Fatalf("lead after a polled status: crm status %q, first status %v; want interested and set", got.CRMStatus, got.FirstStatusAt)
	}
	d := mustDetail(t, s, "p1")
	if len(d.Callbacks) != 1 || d.Callbacks[0].Kind != crm.KindPolled || string(d.Callbacks[0].RawBody) != string(p.RawBody) ||
		d.Callbacks[0].Status != "interested" || d.Callbacks[0].LeadID != l.ID {
		t.Fatalf("timeline: %+v; want one polled row with the status_polled body", d.Callbacks)
	}
	c := assertCounts(t, s, "save polled")
	if c.Polled != before.Polled+1 || c.CallbacksVerified != before.CallbacksVerified || c.CallbacksUnmatched != before.CallbacksUnmatched {
		t.Fatalf("counts after a polled status: %s; before %s (polled counted apart)", countsString(c), countsString(before))
	}
	tp, err := s.Throughput(ctx, clk.Now().Add(-time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range tp.Callbacks {
		total += n
	}
	if total != 0 {
		t.Fatalf("callback throughput counts %d; a polled status is not a callback", total)
	}
	rows, err := s.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
	if err != nil || len(rows) != 1 || rows[0].WithStatus != 1 {
		t.Fatalf("sources report: %+v, %v; want fb with status 1", rows, err)
	}

	// The same status again is no news.
	clk.Advance(time.Minute)
	if changed, err := s.SavePolled(ctx, polled(l, "interested", clk.Now())); err != nil || changed {
		t.Fatalf("save the same status again: changed %v, %v; want false", changed, err)
	}
	// A status older than the one known (a callback told a newer one) is
	// not taken.
	statusAt(t, s, "crm-p1", "p1", "callback", clk.Now())
	old := polled(l, "no_answer", clk.Now().Add(time.Minute))
	old.UpdatedAt = clk.Now().Add(-5 * time.Minute)
	if changed, err := s.SavePolled(ctx, old); err != nil || changed {
		t.Fatalf("save a status older than the known one: changed %v, %v; want false", changed, err)
	}
	if got := mustLead(t, s, "p1").CRMStatus; got != "callback" {
		t.Fatalf("crm status %q after an older lookup; want callback", got)
	}
	// Without the CRM's updated_at a lookup keeps the lead's status time:
	// a callback the CRM sends next, stamped by its own clock (here an
	// hour behind this host's), still wins.
	crmClock := clk.Now().Add(-time.Hour)
	mustEnqueueFields(t, s, "p2", fields{source: "fb"})
	l2 := setState(t, s, clk, "p2", crm.StateAccepted, "crm-p2")
	statusAt(t, s, "crm-p2", "p2", "no_answer", crmClock)
	if changed, err := s.SavePolled(ctx, polled(l2, "interested", clk.Now())); err != nil || !changed {
		t.Fatalf("save polled without updated_at: changed %v, %v; want true", changed, err)
	}
	statusAt(t, s, "crm-p2", "p2", "ftd", crmClock.Add(time.Second))
	if got := mustLead(t, s, "p2").CRMStatus; got != "ftd" {
		t.Fatalf("crm status %q after a newer callback; want ftd (a lookup must not hold it back)", got)
	}
	if _, err := s.SavePolled(ctx, crm.PolledStatus{LeadID: l.ID + 1000, ExternalID: "nobody", InternalID: "x", Status: "new"}); err == nil {
		t.Fatal("save polled for a lead that does not exist: no error")
	}
	assertCounts(t, s, "end")
}

// testPolledNotCallback: a real callback for the change a lookup found,
// arriving later, is stored (fresh), not answered as a replay, and a
// polled row's identity cannot be taken by any callback.
func testPolledNotCallback(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "q1")
	l := setState(t, s, clk, "q1", crm.StateAccepted, "crm-q1")
	clk.Advance(11 * time.Minute)
	polledAt := clk.Now()
	if changed, err := s.SavePolled(ctx, polled(l, "ftd", polledAt)); err != nil || !changed {
		t.Fatalf("save polled: %v, %v", changed, err)
	}
	clk.Advance(time.Second)
	ts := strconv.FormatInt(polledAt.UnixMilli(), 10)
	real := []crm.CallbackEvent{
		callback("crm-q1", "q1", "status_changed", "ftd", polledAt.Add(-time.Second).UnixMilli()),
		// The same CRM id and timestamp as the polled row, and its event
		// name: still a different identity.
		callback("crm-q1", "q1", crm.EventStatusPolled, "ftd", polledAt.UnixMilli()),
	}
	if real[1].Timestamp != ts {
		t.Fatalf("test setup: timestamp %q, want %q", real[1].Timestamp, ts)
	}
	fresh, err := s.SaveCallbacks(ctx, real)
	if err != nil {
		t.Fatal(err)
	}
	if !fresh[0] || !fresh[1] {
		t.Fatalf("real callbacks after a polled status: fresh %v, want both fresh", fresh)
	}
	c := assertCounts(t, s, "callbacks after polled")
	if c.Polled != 1 || c.CallbacksVerified != 2 {
		t.Fatalf("counts %s; want polled 1, verified 2", countsString(c))
	}
	d := mustDetail(t, s, "q1")
	var kinds []string
	for _, ev := range d.Callbacks {
		k := ev.Kind
		if k == "" {
			k = crm.KindCallback
		}
		kinds = append(kinds, k)
	}
	if !slices.Equal(kinds, []string{crm.KindPolled, crm.KindCallback, crm.KindCallback}) {
		t.Fatalf("timeline kinds %v; want polled, callback, callback", kinds)
	}
	if got := mustLead(t, s, "q1").CRMStatus; got != "ftd" {
		t.Fatalf("crm status %q, want ftd", got)
	}
}
