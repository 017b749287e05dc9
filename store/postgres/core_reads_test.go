package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCoreThroughput: sends by start second and callbacks by arrival, in
// buckets, read from the deltas before and after a fold alike.
func TestCoreThroughput(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db, _ := openTest(t, store.Options{Now: clk.Now})
	ctx := context.Background()
	since := clk.Now()
	enqueueN(t, db, "tp", 3)
	got, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("claim: %d, %v", len(got), err)
	}
	for i, l := range got {
		if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted,
			StartedAt: since.Add(time.Duration(i) * 10 * time.Second)}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(35 * time.Second)
	for range 2 { // two statements, two delta rows for one second
		if _, err := db.pool.Exec(ctx, `INSERT INTO callbacks (dedup_key, internal_id, event, timestamp, received_at, raw_body)
			VALUES ('x', gen_random_uuid()::text, 'e', '1', $1, '{}')`, ms(clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	for _, fold := range []bool{false, true} {
		if fold {
			if err := db.fold(ctx); err != nil {
				t.Fatal(err)
			}
		}
		tp, err := db.Throughput(ctx, since, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(tp.Sent) != "[1 1 1 0]" || fmt.Sprint(tp.Callbacks) != "[0 0 0 2]" || tp.Bucket != 10*time.Second || !tp.Start.Equal(since) {
			t.Fatalf("folded %v: throughput = %+v, want sent [1 1 1 0], callbacks [0 0 0 2] from %v by 10s", fold, tp, since)
		}
	}
	var rows, deltas int
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM throughput_seconds), (SELECT count(*) FROM throughput_deltas)`).
		Scan(&rows, &deltas); err != nil {
		t.Fatal(err)
	}
	if rows != 4 || deltas != 0 {
		t.Fatalf("%d throughput rows and %d deltas after a fold, want 4 (one per second used) and none", rows, deltas)
	}
}

// TestCoreNextDueAndStates covers NextDue across the live states and
// States over more ids than one query's chunk holds.
func TestCoreNextDueAndStates(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db, _ := openTest(t, store.Options{Now: clk.Now})
	ctx := context.Background()
	if _, ok, err := db.NextDue(ctx); ok || err != nil {
		t.Fatalf("empty: ok %v, %v", ok, err)
	}
	enqueueN(t, db, "nd", 2)
	due, ok, err := db.NextDue(ctx)
	if err != nil || !ok || !due.Equal(clk.Now()) {
		t.Fatalf("queued: %v %v %v", due, ok, err)
	}
	ls, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 2)
	if err != nil || len(ls) != 2 {
		t.Fatal(err)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateRetryWait}, NextAttemptAt: clk.Now().Add(20 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if due, _, _ := db.NextDue(ctx); !due.Equal(clk.Now().Add(20 * time.Second)) {
		t.Fatalf("retry before lease: due %v", due)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateAccepted}}); err == nil {
		t.Fatal("recorded a lead not in flight")
	}
	ids := make([]string, 0, 6001)
	for i := range 6000 {
		ids = append(ids, fmt.Sprint("none-", i))
	}
	ids = append(ids, "nd-1")
	st, err := db.States(ctx, ids)
	if err != nil || len(st) != 1 || st["nd-1"] != crm.StateInFlight {
		t.Fatalf("states: %v %v", st, err)
	}
}
