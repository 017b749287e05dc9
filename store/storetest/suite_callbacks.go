package storetest

// suite_callbacks.go: callbacks (dedup, linking by external_id and by
// crm_id, late linking, lists and the tail cursor) and refusals.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

func testCallbacks(t *testing.T, h Harness) {
	t.Run("save", func(t *testing.T) { testSaveCallbacks(t, h) })
	t.Run("late_linking_concurrent", func(t *testing.T) { testLateLinkingConcurrent(t, h) })
	t.Run("late_linking_window", func(t *testing.T) { testLateLinkingWindow(t, h) })
	t.Run("cursor_out_of_order", func(t *testing.T) { testCursorOutOfOrder(t, h) })
	t.Run("filter_window", func(t *testing.T) { testCallbackFilterWindow(t, h) })
}

// testLateLinkingWindow: a Record that learns a CRM id links the unlinked
// callbacks naming it that arrived since the lead was created, less
// store.LateLinkSlack, and leaves an older one unmatched: it names a CRM
// lead of some other sender's. Every callback is received at the clock's
// time.
func testLateLinkingWindow(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	save := func(ev crm.CallbackEvent) {
		t.Helper()
		if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	ts := clk.Now().Unix()
	save(callback("crm-9", "", "lead.created", "new", ts)) // 2 slacks before the lead
	clk.Advance(store.LateLinkSlack)
	save(callback("crm-9", "", "lead.contacted", "contacted", ts+1)) // on the bound: linked
	clk.Advance(store.LateLinkSlack / 2)
	save(callback("crm-9", "", "lead.qualified", "qualified", ts+2)) // within the slack
	clk.Advance(store.LateLinkSlack / 2)
	mustEnqueue(t, s, "E-9")
	clk.Advance(time.Second)
	save(callback("crm-9", "", "lead.ftd", "ftd", ts+3)) // after the lead, before its Record
	if c := assertCounts(t, s, "before the record"); c.CallbacksUnmatched != 4 {
		t.Fatalf("unmatched = %d before the record, want 4", c.CallbacksUnmatched)
	}
	setState(t, s, clk, "E-9", crm.StateAccepted, "crm-9")
	d := mustDetail(t, s, "E-9")
	var events []string
	for _, ev := range d.Callbacks {
		events = append(events, ev.Event)
	}
	slices.Sort(events)
	if want := []string{"lead.contacted", "lead.ftd", "lead.qualified"}; !slices.Equal(events, want) {
		t.Fatalf("linked %v, want %v", events, want)
	}
	if d.Lead.CRMStatus != "ftd" {
		t.Fatalf("crm status %q, want the newest linked event's", d.Lead.CRMStatus)
	}
	if c := assertCounts(t, s, "after the record"); c.CallbacksUnmatched != 1 {
		t.Fatalf("unmatched = %d after the record, want 1 (the callback from before the lead)", c.CallbacksUnmatched)
	}
}

// testCallbackFilterWindow: a filtered Callbacks matches among the newest
// store.EventScanWindow callbacks only, so a filter that matches nothing
// costs a bounded read, not every callback in the store.
func testCallbackFilterWindow(t *testing.T, h Harness) {
	if testing.Short() {
		t.Skip("stores 20,000 callbacks; skipped with -short")
	}
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	ts := clk.Now().Unix()
	save := func(evs ...crm.CallbackEvent) {
		t.Helper()
		if _, err := s.SaveCallbacks(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	save(callback("old-1", "needle-old", "status_changed", "new", ts))
	batch := make([]crm.CallbackEvent, 0, 1000)
	for i := range store.EventScanWindow {
		batch = append(batch, callback(fmt.Sprintf("hay-%d", i), "", "status_changed", "new", ts))
		if len(batch) == cap(batch) {
			save(batch...)
			batch = batch[:0]
		}
	}
	save(batch...)
	save(callback("new-1", "needle-new", "status_changed", "new", ts))

	got, err := s.Callbacks(ctx, crm.EventQuery{Filter: "NEEDLE", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ExternalID != "needle-new" {
		t.Fatalf("filter NEEDLE found %v, want only needle-new (needle-old is past the newest %d)", externalIDs(got), store.EventScanWindow)
	}
	// Unfiltered reads are not bounded: the oldest is still there.
	all, err := s.Callbacks(ctx, crm.EventQuery{Limit: 10000, AfterID: 0})
	if err != nil || len(all) != 10000 {
		t.Fatalf("unfiltered: %d rows, %v", len(all), err)
	}
}

func externalIDs(evs []crm.CallbackEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ExternalID
	}
	return out
}

func testSaveCallbacks(t *testing.T, h Harness) {
	ctx := context.Background()
	// One database: the steps build on each other.
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "E-1")
	mustEnqueue(t, s, "E-2")
	l2 := setState(t, s, clk, "E-2", crm.StateAccepted, "crm-2")
	ts := clk.Now().Unix()

	byExt := callback("crm-1", "E-1", "lead.created", "new", ts)
	byCRM := callback("crm-2", "", "lead.qualified", "qualified", ts)
	unmatched := callback("crm-404", "", "lead.created", "new", ts)
	older := callback("crm-2", "", "lead.created", "new", ts-60) // arrives late, must not win
	fresh, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{byExt, byCRM, unmatched, byExt, older})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, false, true}; fmt.Sprint(fresh) != fmt.Sprint(want) {
		t.Fatalf("fresh = %v, want %v (the repeat within the batch is not fresh)", fresh, want)
	}
	t.Run("replay", func(t *testing.T) {
		fresh, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{byCRM, callback("crm-2", "", "lead.qualified", "qualified", ts+1)})
		if err != nil || fmt.Sprint(fresh) != "[false true]" {
			t.Fatalf("replay fresh = %v, %v; want [false true]", fresh, err)
		}
	})
	t.Run("dedup_triple_number_is_its_digits", func(t *testing.T) {
		a, err := crm.ParseCallback([]byte(`{"internal_id":7001,"event":"lead.created","timestamp":1700000000}`))
		if err != nil {
			t.Fatal(err)
		}
		b, err := crm.ParseCallback([]byte(`{"internal_id":"7001","event":"lead.created","timestamp":"1700000000","extra":1}`))
		if err != nil {
			t.Fatal(err)
		}
		c, err := crm.ParseCallback([]byte(`{"internal_id":"7001","event":"lead.Created","timestamp":1700000000}`))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{a})
		if err != nil || !fresh[0] {
			t.Fatalf("first: %v, %v", fresh, err)
		}
		fresh, err = s.SaveCallbacks(ctx, []crm.CallbackEvent{b, c})
		if err != nil || fmt.Sprint(fresh) != "[false true]" {
			t.Fatalf("same triple as a string, another event: fresh %v, %v; want [false true]", fresh, err)
		}
	})
	t.Run("linked_by_external_id", func(t *testing.T) {
		d := mustDetail(t, s, "E-1")
		if len(d.Callbacks) != 1 || d.Callbacks[0].DedupKey != byExt.DedupKey || d.Lead.CRMStatus != "new" {
			t.Fatalf("detail = %+v", d)
		}
		if !bytes.Equal(d.Callbacks[0].RawBody, byExt.RawBody) {
			t.Fatalf("raw body changed: %q", d.Callbacks[0].RawBody)
		}
	})
	t.Run("linked_by_crm_id", func(t *testing.T) {
		d := mustDetail(t, s, "E-2")
		if len(d.Callbacks) != 3 || d.Callbacks[0].LeadID != l2.ID {
			t.Fatalf("callbacks = %+v", d.Callbacks)
		}
		if d.Lead.CRMStatus != "qualified" {
			t.Fatalf("crm status = %q, want the newer event's", d.Lead.CRMStatus)
		}
	})
	t.Run("unmatched_kept", func(t *testing.T) {
		evs, err := s.Callbacks(ctx, crm.EventQuery{Filter: "CRM-404"})
		if err != nil || len(evs) != 1 || evs[0].LeadID != 0 {
			t.Fatalf("unmatched = %+v, %v", evs, err)
		}
		c := assertCounts(t, s, "callbacks")
		if c.CallbacksUnmatched != 3 { // crm-404 and the two 7001s
			t.Fatalf("unmatched = %d, want 3", c.CallbacksUnmatched)
		}
	})
	t.Run("linked_late_by_record", func(t *testing.T) {
		// The CRM's callback overtakes the sender's Record of the answer.
		mustEnqueue(t, s, "E-3")
		early := callback("crm-3", "", "lead.created", "new", ts)
		if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{early}); err != nil {
			t.Fatal(err)
		}
		before := mustCounts(t, s).CallbacksUnmatched
		setState(t, s, clk, "E-3", crm.StateAccepted, "crm-3")
		d := mustDetail(t, s, "E-3")
		if len(d.Callbacks) != 1 || d.Lead.CRMStatus != "new" {
			t.Fatalf("detail = %+v", d)
		}
		if c := assertCounts(t, s, "late link"); c.CallbacksUnmatched != before-1 {
			t.Fatalf("unmatched = %d, want %d", c.CallbacksUnmatched, before-1)
		}
	})
	t.Run("lists_and_tail", func(t *testing.T) {
		all, err := s.Callbacks(ctx, crm.EventQuery{Limit: 100})
		if err != nil || len(all) != 8 {
			t.Fatalf("callbacks = %d, %v; want 8", len(all), err)
		}
		if !slices.IsSortedFunc(all, func(a, b crm.CallbackEvent) int { return int(b.ID - a.ID) }) {
			t.Fatalf("callbacks not newest first: %v", ids(all))
		}
		tail, err := tailOf(t, s, all[2].ID, 10, 2)
		if err != nil || len(tail) != 2 || tail[0].ID != all[1].ID || tail[1].ID != all[0].ID {
			t.Fatalf("tail = %v, %v; want oldest first after %d", ids(tail), err, all[2].ID)
		}
		if tail, _ := tailOf(t, s, 0, 3, 3); len(tail) != 3 || tail[0].ID != all[7].ID {
			t.Fatalf("tail limit 3 from the start = %v", ids(tail))
		}
		if after, _ := s.Callbacks(ctx, crm.EventQuery{AfterID: all[2].ID}); len(after) != 2 {
			t.Fatalf("after = %d, want 2", len(after))
		}
		if page, _ := s.Callbacks(ctx, crm.EventQuery{Limit: 3}); len(page) != 3 || page[0].ID != all[0].ID {
			t.Fatalf("limit 3 = %v", ids(page))
		}
		if like, _ := s.Callbacks(ctx, crm.EventQuery{Filter: "%"}); len(like) != 0 {
			t.Fatalf("%% is a wildcard in filters: %d rows", len(like))
		}
		if like, _ := s.Callbacks(ctx, crm.EventQuery{Filter: "_"}); len(like) != 0 {
			t.Fatalf("_ is a wildcard in filters: %d rows", len(like))
		}
		if byEvent, _ := s.Callbacks(ctx, crm.EventQuery{Filter: "QUALIFIED"}); len(byEvent) != 2 {
			t.Fatalf("filter on event/status = %d rows, want 2", len(byEvent))
		}
	})
	t.Run("lists_without_body_detail_with_body", func(t *testing.T) {
		all, err := s.Callbacks(ctx, crm.EventQuery{Filter: "crm-1"})
		if err != nil || len(all) != 1 {
			t.Fatalf("callbacks = %+v, %v", all, err)
		}
		tail, err := tailOf(t, s, all[0].ID-1, 1, 1)
		if err != nil || len(tail) != 1 {
			t.Fatalf("tail = %+v, %v", tail, err)
		}
		var exported []crm.CallbackEvent
		if err := s.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
			exported = append(exported, ev)
			return nil
		}); err != nil || len(exported) != 8 {
			t.Fatalf("export = %d, %v", len(exported), err)
		}
		for list, evs := range map[string][]crm.CallbackEvent{"Callbacks": all, "CallbacksAfter": tail, "ExportCallbacks": exported} {
			for _, ev := range evs {
				if ev.RawBody != nil {
					t.Errorf("%s loaded the raw body of %d (%d bytes): lists leave it nil", list, ev.ID, len(ev.RawBody))
					break
				}
			}
		}
		ev, err := s.Callback(ctx, all[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		want := all[0]
		want.RawBody = byExt.RawBody
		if !bytes.Equal(ev.RawBody, byExt.RawBody) || fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Fatalf("Callback = %+v\nwant       %+v", ev, want)
		}
		_, err = s.Callback(ctx, 1<<40)
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, crm.ErrNotFound) {
			t.Fatalf("missing callback: %v, want store.ErrNotFound", err)
		}
	})
	t.Run("empty_dedup_key_refused_whole", func(t *testing.T) {
		good := callback("crm-9", "", "lead.created", "new", ts)
		if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{good, {}}); err == nil {
			t.Fatal("stored an event without a dedup key")
		}
		if evs, _ := s.Callbacks(ctx, crm.EventQuery{Filter: "crm-9"}); len(evs) != 0 {
			t.Fatal("half a batch stored")
		}
		if fresh, err := s.SaveCallbacks(ctx, nil); err != nil || len(fresh) != 0 {
			t.Fatalf("empty batch: %v, %v", fresh, err)
		}
	})
	assertCounts(t, s, "the callback steps")
}

// testLateLinkingConcurrent races, per lead, the Record naming its crm_id
// against the callbacks naming it, on two Stores: whichever commits
// first, every callback ends linked to its lead, the lead takes the newest
// status, and the counters agree with the rows.
func testLateLinkingConcurrent(t *testing.T, h Harness) {
	ctx := context.Background()
	s1, clk, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{Now: clk.Now})
	n := 40
	if testing.Short() {
		n = 12
	}
	var ps [][]byte
	for i := range n {
		ps = append(ps, payload(fmt.Sprintf("LL-%d", i)))
	}
	if _, errs, err := s1.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("enqueue: %v %v", err, errors.Join(errs...))
	}
	leads, err := s1.Claim(ctx, "w", clk.Now(), time.Hour, n)
	if err != nil || len(leads) != n {
		t.Fatalf("claim: %d of %d, %v", len(leads), n, err)
	}
	ts := clk.Now().Unix()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	start := make(chan struct{})
	for i, l := range leads {
		crmID := fmt.Sprintf("crm-ll-%d", l.ID)
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-start
			if err := s1.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: 200, Outcome: crm.StateAccepted}, CRMID: crmID}); err != nil {
				fail(fmt.Errorf("record %s: %w", l.ExternalID, err))
			}
		}()
		for j, st := range []string{"new", "qualified"} {
			s := s2
			if (i+j)%2 == 1 {
				s = s1
			}
			ev := callback(crmID, "", "lead."+st, st, ts+int64(j))
			go func() {
				defer wg.Done()
				<-start
				if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
					fail(fmt.Errorf("save callback %s: %w", ev.DedupKey, err))
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%s", fewErrors(errs))
	}
	for _, l := range leads {
		d := mustDetail(t, s2, l.ExternalID)
		if d.Lead.State != crm.StateAccepted || len(d.Callbacks) != 2 {
			t.Fatalf("%s: state %s, %d callbacks linked, want accepted and 2", l.ExternalID, d.Lead.State, len(d.Callbacks))
		}
		if d.Lead.CRMStatus != "qualified" {
			t.Errorf("%s: crm status %q, want the newest event's (qualified)", l.ExternalID, d.Lead.CRMStatus)
		}
	}
	c := assertCounts(t, s1, "concurrent late linking")
	if c.CallbacksUnmatched != 0 || c.CallbacksVerified != 2*n {
		t.Fatalf("counts %s, want %d callbacks, none unmatched", countsString(c), 2*n)
	}
}

// testCursorOutOfOrder: two transactions take callback ids N and N+1; N+1
// commits first. A tail reading CallbacksAfter from its cursor must still
// see N once N commits (the cursor may not have moved past it while it was
// open).
func testCursorOutOfOrder(t *testing.T, h Harness) {
	if h.StallCallback == nil {
		t.Skip("this backend commits callbacks in id order (one writer): no out-of-order commit to test")
	}
	ctx := context.Background()
	s1, clk, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{Now: clk.Now})
	ts := clk.Now().Unix()
	if _, err := s1.SaveCallbacks(ctx, []crm.CallbackEvent{callback("before", "", "e", "", ts)}); err != nil {
		t.Fatal(err)
	}
	var cursor int64
	var seen []int64
	read := func(step string) {
		t.Helper()
		evs, err := s2.CallbacksAfter(ctx, cursor, 100)
		if err != nil {
			t.Fatalf("%s: callbacks after %d: %v", step, cursor, err)
		}
		for _, ev := range evs {
			if ev.ID <= cursor {
				t.Fatalf("%s: callbacks after %d returned id %d", step, cursor, ev.ID)
			}
			seen = append(seen, ev.ID)
			cursor = ev.ID
		}
	}
	read("start")

	stalled, resume := h.StallCallback(t, s1, "slow")
	slowDone := make(chan error, 1)
	go func() {
		_, err := s1.SaveCallbacks(ctx, []crm.CallbackEvent{callback("slow", "", "e", "", ts)})
		slowDone <- err
	}()
	poll.Until(t, "the slow save to stall inside its transaction, its id taken", func() bool {
		select {
		case err := <-slowDone:
			t.Fatalf("the slow save returned without stalling: %v", err)
		default:
		}
		return stalled()
	})
	// The slow one is stalled in its transaction, its id taken: commit a
	// later id from the other Store, and read the tail while the slow one
	// is still open. A backend may instead make the second save wait for
	// the first (serialized inserts cannot commit out of order); the tail
	// is read after a bounded wait then, and must still miss nothing.
	fastDone := make(chan error, 1)
	go func() {
		_, err := s2.SaveCallbacks(ctx, []crm.CallbackEvent{callback("fast", "", "e", "", ts)})
		fastDone <- err
	}()
	fastFirst := false
	select {
	case err := <-fastDone:
		if err != nil {
			resume()
			t.Fatalf("a second store's callback while the first's transaction is open: %v", err)
		}
		fastFirst = true
	case err := <-slowDone:
		t.Fatalf("the stalled save returned before it was resumed: %v", err)
	case <-time.After(3 * time.Second):
		t.Log("the second save waits for the stalled one: inserts are serialized, not committed out of order")
	}
	read("the later id committed")
	select {
	case err := <-slowDone:
		t.Fatalf("the stalled save returned before it was resumed: %v", err)
	default:
	}
	resume()
	if err := <-slowDone; err != nil {
		t.Fatalf("the stalled save: %v", err)
	}
	if !fastFirst {
		if err := <-fastDone; err != nil {
			t.Fatalf("the second save: %v", err)
		}
	}
	all, err := s2.Callbacks(ctx, crm.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var slow, fast int64
	for _, ev := range all {
		switch ev.InternalID {
		case "slow":
			slow = ev.ID
		case "fast":
			fast = ev.ID
		}
	}
	if slow == 0 || fast == 0 {
		t.Fatalf("callbacks stored: %+v", all)
	}
	if slow > fast {
		t.Fatalf("test setup: the stalled save took id %d after the other's %d, so nothing committed out of id order", slow, fast)
	}
	// The tail may withhold rows while any transaction on the server is
	// older than theirs (other tests' included): read until it reaches the
	// newest row, then compare.
	newest := ids(all)[len(all)-1]
	poll.Until(t, "the tail to reach the newest callback", func() bool {
		read("the earlier id committed")
		return cursor >= newest
	})
	slices.Sort(seen)
	if want := ids(all); fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("the tail saw ids %v, the table holds %v (slow %d, fast %d): a row committed out of id order was skipped",
			seen, want, slow, fast)
	}
}

func testRefusals(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _, _ := open(t, h, store.Options{MaxRefusals: 5})
	for i := range 12 {
		err := s.SaveRefusal(ctx, crm.Refusal{RemoteAddr: "10.0.0.1:5000", HTTPStatus: 403, Code: crm.CodeBadSignature,
			Detail: fmt.Sprintf("no secret matches #%d", i), Head: []byte(`{"internal_id":`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Refusals(ctx, crm.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Detail)
	}
	if len(rs) != 5 || rs[0].Detail != "no secret matches #11" || rs[4].Detail != "no secret matches #7" {
		t.Fatalf("refusals = %q, want the newest 5, newest first", got)
	}
	r := rs[0]
	if r.RemoteAddr != "10.0.0.1:5000" || r.HTTPStatus != 403 || r.Code != crm.CodeBadSignature || string(r.Head) != `{"internal_id":` || r.ID == 0 {
		t.Fatalf("refusal = %+v", r)
	}
	if c := assertCounts(t, s, "refusals"); c.Refusals != 5 {
		t.Fatalf("refusal count = %d, want 5", c.Refusals)
	}
	if rs, _ := s.Refusals(ctx, crm.EventQuery{Filter: "#9"}); len(rs) != 1 {
		t.Fatalf("filtered = %+v", rs)
	}
	if rs, _ := s.Refusals(ctx, crm.EventQuery{AfterID: rs[1].ID}); len(rs) != 1 || rs[0].Detail != "no secret matches #11" {
		t.Fatalf("after the second newest = %+v", rs)
	}
}

// tailOf reads CallbacksAfter(after, limit) until it returns want rows or
// fails, within poll's deadline, and returns the last answer: a backend may
// withhold committed rows while an older transaction runs anywhere on its
// server (PostgreSQL's tail waits for pg_snapshot_xmin), so the rows come
// eventually, not at once.
func tailOf(t *testing.T, s store.Store, after int64, limit, want int) (evs []crm.CallbackEvent, err error) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("the tail after id %d to return %d callbacks", after, want), func() bool {
		evs, err = s.CallbacksAfter(context.Background(), after, limit)
		return err != nil || len(evs) >= want
	})
	return evs, err
}
