package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// event is a verified callback naming internal id iid.
func event(iid, ext, status, ts string) crm.CallbackEvent {
	return crm.CallbackEvent{InternalID: iid, ExternalID: ext, Event: "status", Status: status, Timestamp: ts,
		DedupKey: iid + ":status:" + ts, RawBody: []byte(`{"id":"` + iid + `"}`), ReceivedAt: time.Now()}
}

// TestEventsSaveReplay: a second save of the same triple is a replay
// (false) and stores nothing; equal events in one batch store one row;
// triples that join to the same dedup key are still two events.
func TestEventsSaveReplay(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	a := event("crm-1", "", "won", "100")
	fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{a, a})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fresh, []bool{true, false}) {
		t.Fatalf("first save: fresh %v, want [true false]", fresh)
	}
	fresh, err = db.SaveCallbacks(ctx, []crm.CallbackEvent{a})
	if err != nil || !slices.Equal(fresh, []bool{false}) {
		t.Fatalf("replay: fresh %v, %v; want [false]", fresh, err)
	}
	// ("a:b", "c") and ("a", "b:c") join to the same key but differ.
	x := crm.CallbackEvent{InternalID: "a:b", Event: "c", Timestamp: "1", RawBody: []byte("x")}
	y := crm.CallbackEvent{InternalID: "a", Event: "b:c", Timestamp: "1", RawBody: []byte("y")}
	fresh, err = db.SaveCallbacks(ctx, []crm.CallbackEvent{x, y})
	if err != nil || !slices.Equal(fresh, []bool{true, true}) {
		t.Fatalf("colliding display keys: fresh %v, %v; want [true true]", fresh, err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM callbacks WHERE internal_id = 'crm-1'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows for crm-1: %d, %v; want 1", n, err)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.CallbacksVerified != 3 || c.CallbacksUnmatched != 3 {
		t.Fatalf("counts %+v, %v; want 3 callbacks, 3 unmatched", c, err)
	}
	list, err := db.Callbacks(ctx, crm.EventQuery{Filter: "CRM-1"})
	if err != nil || len(list) != 1 || list[0].DedupKey != "crm-1:status:100" || list[0].RawBody != nil {
		t.Fatalf("Callbacks filter: %+v, %v", list, err)
	}
	full, err := db.Callback(ctx, list[0].ID)
	if err != nil || string(full.RawBody) != `{"id":"crm-1"}` {
		t.Fatalf("Callback: %+v, %v", full, err)
	}
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{{InternalID: "x"}}); err == nil {
		t.Fatal("an event without event and timestamp was accepted")
	}
}

// TestEventsSaveLinksAndStatus: events link by external_id or by CRM id,
// the newest event time's status wins whatever the arrival order, and an
// unmatched event stays unlinked.
func TestEventsSaveLinksAndStatus(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "ln", 2)
	ls, err := db.Claim(ctx, "w", time.Now(), time.Hour, 2)
	if err != nil || len(ls) != 2 {
		t.Fatalf("claim: %v", err)
	}
	for _, l := range ls {
		if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, HTTPStatus: 201},
			CRMID: "crm-" + l.ExternalID}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	newer := event("crm-ln-0", "", "won", "2")
	newer.EventTime = t0.Add(time.Minute)
	older := event("crm-ln-0", "", "contacted", "1")
	older.EventTime = t0
	byExt := event("other-id", "ln-1", "lost", "1")
	none := event("nobody", "", "won", "1")
	fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{newer, older, byExt, none})
	if err != nil || !slices.Equal(fresh, []bool{true, true, true, true}) {
		t.Fatalf("save: %v, %v", fresh, err)
	}
	d0, err := db.LeadDetail(ctx, "ln-0")
	if err != nil || d0.Lead.CRMStatus != "won" || len(d0.Callbacks) != 2 {
		t.Fatalf("ln-0: status %q, %d callbacks, %v; want won, 2", d0.Lead.CRMStatus, len(d0.Callbacks), err)
	}
	d1, err := db.LeadDetail(ctx, "ln-1")
	if err != nil || d1.Lead.CRMStatus != "lost" || len(d1.Callbacks) != 1 {
		t.Fatalf("ln-1: status %q, %d callbacks, %v; want lost, 1", d1.Lead.CRMStatus, len(d1.Callbacks), err)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.CallbacksVerified != 4 || c.CallbacksUnmatched != 1 {
		t.Fatalf("counts %+v, %v; want 4 callbacks, 1 unmatched", c, err)
	}
}

// TestEventsRefusalBound: the refusals table holds the newest MaxRefusals,
// across the sweeps, and the count follows.
func TestEventsRefusalBound(t *testing.T) {
	const bound = 10
	db, _ := openTest(t, store.Options{MaxRefusals: bound})
	ctx := context.Background()
	total := 3*refusalSweepEvery + 5
	for i := range total {
		if err := db.SaveRefusal(ctx, crm.Refusal{RemoteAddr: "10.0.0.1", HTTPStatus: 401, Code: "bad_signature",
			Detail: fmt.Sprintf("refusal %d", i), Head: []byte("{")}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM refusals`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != bound {
		t.Fatalf("%d refusals kept after %d; want %d", n, total, bound)
	}
	rs, err := db.Refusals(ctx, crm.EventQuery{Limit: 1})
	if err != nil || len(rs) != 1 || rs[0].Detail != fmt.Sprintf("refusal %d", total-1) {
		t.Fatalf("newest refusal: %+v, %v", rs, err)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.Refusals != n {
		t.Fatalf("refusal count %d, %v; want %d (the rows kept)", c.Refusals, err, n)
	}
	if rs, err := db.Refusals(ctx, crm.EventQuery{Filter: "SIGNATURE"}); err != nil || len(rs) != min(n, 50) {
		t.Fatalf("filtered refusals: %d, %v", len(rs), err)
	}
}

// TestEventsCursorOutOfOrderCommit holds two transactions open: the first
// takes the smaller id, the second the larger and commits first. The
// cursor must not move past the smaller id before it is committed, so it
// yields both, none skipped.
func TestEventsCursorOutOfOrderCommit(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	insert := `INSERT INTO callbacks (dedup_key, internal_id, event, timestamp, received_at, raw_body)
		VALUES ($1, $1, 'status', '1', 0, '') RETURNING id`
	txA, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rollback(txA)
	txB, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rollback(txB)
	var idA, idB int64
	if err := txA.QueryRow(ctx, insert, "a").Scan(&idA); err != nil {
		t.Fatal(err)
	}
	if err := txB.QueryRow(ctx, insert, "b").Scan(&idB); err != nil {
		t.Fatal(err)
	}
	if idA >= idB {
		t.Fatalf("ids %d, %d: want the first smaller", idA, idB)
	}
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var cursor int64
	var seen []int64
	read := func() {
		evs, err := db.CallbacksAfter(ctx, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			seen = append(seen, ev.ID)
			cursor = ev.ID
		}
	}
	read()
	if len(seen) != 0 {
		t.Fatalf("cursor yielded %v while id %d was uncommitted; want nothing yet", seen, idA)
	}
	// The pane (not a cursor) shows the committed row at once.
	if list, err := db.Callbacks(ctx, crm.EventQuery{}); err != nil || len(list) != 1 || list[0].ID != idB {
		t.Fatalf("Callbacks: %+v, %v; want only %d", list, err, idB)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Other transactions on the server (any database) hold the cursor
	// back for as long as they run: poll.
	poll.Until(t, "the cursor to yield both callbacks", func() bool { read(); return len(seen) >= 2 })
	if !slices.Equal(seen, []int64{idA, idB}) {
		t.Fatalf("cursor yielded %v, want [%d %d]", seen, idA, idB)
	}
}

// TestEventsCursorConcurrentSaves: many concurrent SaveCallbacks and a
// tail reading as they go: the tail sees every stored callback exactly
// once, in id order.
func TestEventsCursorConcurrentSaves(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	const writers, per = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				ev := event(fmt.Sprintf("w%d-%d", w, i), "", "won", "1")
				if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{ev, event(fmt.Sprintf("x%d-%d", w, i), "", "", "1")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var cursor int64
	seen := map[int64]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		evs, err := db.CallbacksAfter(ctx, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.ID <= cursor || seen[ev.ID] {
				t.Fatalf("id %d after cursor %d (or twice)", ev.ID, cursor)
			}
			seen[ev.ID] = true
			cursor = ev.ID
		}
		if finished && len(evs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tail did not catch up within a minute")
		}
	}
	if len(seen) != writers*per*2 {
		t.Fatalf("tail saw %d callbacks, want %d", len(seen), writers*per*2)
	}
}

// TestEventsLateLinkRace races, lead by lead, the Record that learns a
// CRM id against SaveCallbacks of an event naming only that id (and one
// other, so the batch takes several link locks): whichever commits second
// links them, so none is left unmatched.
func TestEventsLateLinkRace(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	n := 40
	if testing.Short() {
		n = 15
	}
	enqueueN(t, db, "race", n)
	leads, err := db.Claim(ctx, "w", time.Now(), time.Hour, n)
	if err != nil || len(leads) != n {
		t.Fatalf("claim: %v, %d", err, len(leads))
	}
	for i, l := range leads {
		crmID := "crm-" + l.ExternalID
		var wg sync.WaitGroup
		var rerr, cerr error
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			rerr = db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, HTTPStatus: 201}, CRMID: crmID})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, cerr = db.SaveCallbacks(ctx, []crm.CallbackEvent{event(crmID, "", "won", "1"), event(fmt.Sprintf("zz-%d", i), "", "", "1")})
		}()
		close(start)
		wg.Wait()
		if rerr != nil || cerr != nil {
			t.Fatalf("record: %v; save: %v", rerr, cerr)
		}
	}
	var unmatched int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM callbacks WHERE lead_id IS NULL AND internal_id LIKE 'crm-%'`).Scan(&unmatched); err != nil {
		t.Fatal(err)
	}
	if unmatched != 0 {
		t.Fatalf("%d of %d callbacks left unmatched", unmatched, n)
	}
	d, err := db.LeadDetail(ctx, leads[0].ExternalID)
	if err != nil || d.Lead.CRMStatus != "won" {
		t.Fatalf("lead detail: status %q, %v; want won", d.Lead.CRMStatus, err)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.CallbacksVerified != 2*n || c.CallbacksUnmatched != n {
		t.Fatalf("counts %+v, %v; want %d callbacks, %d unmatched (the zz ones)", c, err, 2*n, n)
	}
}
