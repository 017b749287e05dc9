package storetest

// suite_reads.go: what the dashboard and the commands read (counts, the
// panes, throughput, the change signal, exports).

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// testCounts: after every step of a mixed run (on two Stores), Counts
// equals what a count of the rows says.
func testCounts(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, reopen := open(t, h, store.Options{MaxRefusals: 3})
	other := mustReopen(t, reopen, store.Options{Now: clk.Now, MaxRefusals: 3})
	assertCounts(t, s, "open")
	for i := range 20 {
		mustEnqueue(t, s, fmt.Sprintf("K-%d", i))
	}
	assertCounts(t, other, "enqueue")
	claimed, err := other.Claim(ctx, "w", clk.Now(), time.Minute, 12)
	if err != nil || len(claimed) != 12 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	assertCounts(t, s, "claim")
	outcomes := []crm.State{crm.StateAccepted, crm.StateRetryWait, crm.StateFailed, crm.StateRejected, crm.StateDuplicate, crm.StateValidationError}
	for i, l := range claimed[:10] {
		r := crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: outcomes[i%len(outcomes)]}, CRMID: fmt.Sprintf("crm-%d", l.ID)}
		if r.Attempt.Outcome == crm.StateRetryWait {
			r.NextAttemptAt = clk.Now().Add(time.Minute)
		}
		if err := s.Record(ctx, "w", r); err != nil {
			t.Fatal(err)
		}
	}
	assertCounts(t, other, "record")
	if err := s.Release(ctx, "w", []int64{claimed[10].ID, claimed[11].ID}); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, other, "release")
	for _, ext := range []string{"K-2", "K-3"} { // failed and rejected
		if _, err := other.Resubmit(ctx, ext, nil); err != nil {
			t.Fatal(err)
		}
	}
	assertCounts(t, s, "resubmit")
	if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{
		callback(fmt.Sprintf("crm-%d", claimed[0].ID), "", "lead.created", "new", 1),
		callback("crm-x", "", "lead.created", "new", 1),
		callback("crm-y", "K-5", "lead.created", "new", 1),
		callback("crm-x", "", "lead.created", "new", 1),
	}); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, other, "callbacks")
	for range 5 {
		if err := other.SaveRefusal(ctx, crm.Refusal{Code: crm.CodeBadSignature}); err != nil {
			t.Fatal(err)
		}
	}
	if c := assertCounts(t, s, "refusals"); c.Refusals != 3 {
		t.Fatalf("refusals = %d, want the bound 3", c.Refusals)
	}
	if testing.Short() {
		return
	}
	if err := s.Fill(ctx, 3000, 2000); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, other, "fill")
}

func testPanes(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	for i := range 6 {
		mustEnqueue(t, s, fmt.Sprintf("P-%d", i))
		clk.Advance(time.Second)
	}
	// Each lead driven is the oldest one due, so no other lead is touched.
	setState(t, s, clk, "P-0", crm.StateAccepted, "CRM-ZERO")
	clk.Advance(time.Second)
	setState(t, s, clk, "P-1", crm.StateRejected, "")
	clk.Advance(time.Second)
	// Retry waits in an order unlike their update order.
	for _, r := range []struct {
		ext string
		d   time.Duration
	}{{"P-2", 30 * time.Second}, {"P-3", 10 * time.Second}} {
		sendAttempt(t, s, clk, r.ext, crm.AttemptResult{
			Attempt:       crm.Attempt{HTTPStatus: 503, Outcome: crm.StateRetryWait, StartedAt: clk.Now()},
			NextAttemptAt: clk.Now().Add(r.d),
		})
		clk.Advance(time.Second)
	}
	tests := []struct {
		name string
		q    crm.LeadQuery
		want string
	}{
		{"retry_by_due", crm.LeadQuery{States: []crm.State{crm.StateRetryWait}}, "[P-3 P-2]"},
		{"queued_newest_first", crm.LeadQuery{States: []crm.State{crm.StateQueued}}, "[P-5 P-4]"},
		{"final_merged_newest_first", crm.LeadQuery{States: []crm.State{crm.StateAccepted, crm.StateRejected}}, "[P-1 P-0]"},
		{"all_newest_first", crm.LeadQuery{}, "[P-3 P-2 P-1 P-0 P-5 P-4]"},
		{"all_paged", crm.LeadQuery{Limit: 2, Offset: 1}, "[P-2 P-1]"},
		{"filter_external_id", crm.LeadQuery{Filter: "p-4"}, "[P-4]"},
		{"filter_crm_id_case_insensitive", crm.LeadQuery{Filter: "crm-zero"}, "[P-0]"},
		{"filter_reason", crm.LeadQuery{States: []crm.State{crm.StateRejected}, Filter: "BY TEST"}, "[P-1]"},
		{"filter_and_state", crm.LeadQuery{States: []crm.State{crm.StateQueued}, Filter: "BY TEST"}, "[]"},
		{"filter_underscore_literal", crm.LeadQuery{Filter: "_"}, "[]"},
		{"filter_percent_literal", crm.LeadQuery{Filter: "%"}, "[]"},
		{"offset_past_end", crm.LeadQuery{Offset: 100}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Leads(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tt.want {
				t.Fatalf("got %s, want %s", names(got), tt.want)
			}
		})
	}
	t.Run("unknown_state_refused", func(t *testing.T) {
		if _, err := s.Leads(ctx, crm.LeadQuery{States: []crm.State{"bogus"}}); err == nil {
			t.Fatal("unknown state accepted")
		}
	})
}

func testThroughput(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	since := clk.Now()
	for i := range 3 {
		mustEnqueue(t, s, fmt.Sprintf("T-%d", i))
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("claim: %d, %v", len(got), err)
	}
	for i, l := range got {
		if err := s.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, StartedAt: since.Add(time.Duration(i) * 10 * time.Second)}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(35 * time.Second)
	if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{callback("c1", "", "e", "", 1)}); err != nil {
		t.Fatal(err)
	}
	tp, err := s.Throughput(ctx, since, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tp.Sent) != "[1 1 1 0]" || fmt.Sprint(tp.Callbacks) != "[0 0 0 1]" || tp.Bucket != 10*time.Second || !tp.Start.Equal(since) {
		t.Fatalf("throughput = %+v, want sent [1 1 1 0], callbacks [0 0 0 1] from %v by 10s", tp, since)
	}
}

// testWatch: a commit signals the Store's own watchers, and a commit
// through a second Store on the same database (another process) signals
// them too; the channel closes when its context ends.
func testWatch(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s1, _, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{})
	ch := s1.Watch(ctx)
	if ch == nil {
		t.Fatal("Watch returned a nil channel")
	}
	drain := func() {
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					t.Fatal("watch channel closed")
				}
			default:
				return
			}
		}
	}
	n := 0
	// commitAndWait commits through s until a fresh signal comes: the
	// first commits may land before the watcher has its starting point
	// (SQLite's first poll, PostgreSQL's LISTEN), which a later one cannot.
	commitAndWait := func(s store.Store, what string) {
		t.Helper()
		drain()
		poll.Until(t, what, func() bool {
			n++
			mustEnqueue(t, s, fmt.Sprintf("W-%d", n))
			select {
			case _, ok := <-ch:
				return ok
			case <-time.After(time.Second):
				return false
			}
		})
	}
	t.Run("own_commit", func(t *testing.T) { commitAndWait(s1, "a signal for the store's own commit") })
	t.Run("other_store_commit", func(t *testing.T) {
		commitAndWait(s2, "a signal for a commit through a second store on the database")
	})
	t.Run("no_block_without_reader", func(t *testing.T) {
		for i := range 50 {
			mustEnqueue(t, s1, fmt.Sprintf("W-x%d", i))
		}
	})
	t.Run("closed_on_cancel", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		c := s1.Watch(cctx)
		ccancel()
		poll.Until(t, "the watch channel to close after its context ended", func() bool {
			select {
			case _, ok := <-c:
				return !ok
			default:
				return false
			}
		})
	})
}

func testExport(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _, _ := open(t, h, store.Options{})
	leads, callbacks := 2500, 2100 // past any export page
	if testing.Short() {
		leads, callbacks = 300, 200
	}
	if err := s.Fill(ctx, leads, callbacks); err != nil {
		t.Fatal(err)
	}
	var last int64
	n := 0
	err := s.ExportLeads(ctx, func(l crm.Lead) error {
		if l.ID <= last || l.ExternalID == "" || l.IdempotencyKey == "" {
			return fmt.Errorf("bad row %+v after id %d", l, last)
		}
		last = l.ID
		n++
		return nil
	})
	if err != nil || n != leads {
		t.Fatalf("exported %d leads, %v; want %d in id order", n, err, leads)
	}
	n, last = 0, 0
	err = s.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
		if ev.ID <= last || ev.DedupKey == "" {
			return fmt.Errorf("bad row %+v after id %d", ev, last)
		}
		last = ev.ID
		n++
		return nil
	})
	if err != nil || n != callbacks {
		t.Fatalf("exported %d callbacks, %v; want %d in id order", n, err, callbacks)
	}
	stop := errors.New("stop")
	n = 0
	err = s.ExportLeads(ctx, func(crm.Lead) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stop: %v after %d rows, want the callback's error after 1", err, n)
	}
	n = 0
	err = s.ExportCallbacks(ctx, func(crm.CallbackEvent) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stop callbacks: %v after %d rows, want the callback's error after 1", err, n)
	}
	assertCounts(t, s, "fill")
}
