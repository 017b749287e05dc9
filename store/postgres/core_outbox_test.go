package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// enqueueN enqueues n leads named prefix-0 … in one batch.
func enqueueN(t testing.TB, db *DB, prefix string, n int) {
	t.Helper()
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = leadJSON(fmt.Sprintf("%s-%d", prefix, i))
	}
	_, errs, err := db.EnqueueBatch(context.Background(), ps, store.EnqueueOptions{})
	if err != nil {
		t.Fatalf("enqueue batch: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
}

// TestCoreTwoClaimersNeverShareALead runs two dispatcher-like claimers,
// each on its own DB (own pool, as two instances would), over 500 leads:
// a lead is never handed out while another holds its lease, and every
// lead is claimed and recorded exactly once.
func TestCoreTwoClaimersNeverShareALead(t *testing.T) {
	db, u := openTest(t, store.Options{})
	other, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const n = 500
	enqueueN(t, db, "claim", n)

	var (
		mu      sync.Mutex
		holder  = map[int64]string{} // lead -> owner holding its lease now
		claimed = map[int64]int{}
	)
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for w, s := range []*DB{db, other} {
		owner := fmt.Sprintf("worker-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				leads, err := s.Claim(ctx, owner, time.Now(), time.Hour, 7)
				if err != nil {
					errc <- fmt.Errorf("%s: claim: %w", owner, err)
					return
				}
				if len(leads) == 0 {
					return
				}
				mu.Lock()
				for _, l := range leads {
					if h, ok := holder[l.ID]; ok {
						mu.Unlock()
						errc <- fmt.Errorf("lead %d claimed by %s while %s holds it", l.ID, owner, h)
						return
					}
					holder[l.ID] = owner
					claimed[l.ID]++
				}
				mu.Unlock()
				for _, l := range leads {
					mu.Lock()
					delete(holder, l.ID) // before Record: the lead is final once it commits
					mu.Unlock()
					err := s.Record(ctx, owner, crm.AttemptResult{Attempt: crm.Attempt{
						LeadID: l.ID, Outcome: crm.StateAccepted, HTTPStatus: 201}, CRMID: "crm-" + l.ExternalID})
					if err != nil {
						errc <- fmt.Errorf("%s: record %d: %w", owner, l.ID, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if len(claimed) != n {
		t.Fatalf("%d leads claimed, want %d", len(claimed), n)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Fatalf("lead %d claimed %d times", id, c)
		}
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.States[crm.StateAccepted] != n || c.States[crm.StateQueued] != 0 || c.States[crm.StateInFlight] != 0 {
		t.Fatalf("counts %v, want %d accepted and nothing else", c.States, n)
	}
}

// TestCoreRecordAfterLeaseRetaken: a worker whose lease expired and was
// taken by another writes nothing, neither the lead nor an attempt row, and
// says so; Release likewise.
func TestCoreRecordAfterLeaseRetaken(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "lease", 1)
	t0 := time.Now()
	a, err := db.Claim(ctx, "A", t0, time.Second, 1)
	if err != nil || len(a) != 1 {
		t.Fatalf("claim A: %v, %d leads", err, len(a))
	}
	if none, err := db.Claim(ctx, "B", t0.Add(500*time.Millisecond), time.Second, 1); err != nil || len(none) != 0 {
		t.Fatalf("claim B before the lease expired: %v, %d leads; want none", err, len(none))
	}
	b, err := db.Claim(ctx, "B", t0.Add(2*time.Second), time.Minute, 1)
	if err != nil || len(b) != 1 || b[0].ID != a[0].ID {
		t.Fatalf("claim B after expiry: %v, %v", err, b)
	}
	if b[0].IdempotencyKey != a[0].IdempotencyKey || b[0].Attempts != 2 {
		t.Errorf("retaken lead: key %q attempts %d; want the same key %q and 2 attempts", b[0].IdempotencyKey, b[0].Attempts, a[0].IdempotencyKey)
	}
	err = db.Record(ctx, "A", crm.AttemptResult{Attempt: crm.Attempt{LeadID: a[0].ID, Outcome: crm.StateAccepted, HTTPStatus: 201}, CRMID: "crm-x"})
	if !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("Record by the old owner: %v, want ErrLeaseLost", err)
	}
	if err := db.Release(ctx, "A", []int64{a[0].ID}); !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("Release by the old owner: %v, want ErrLeaseLost", err)
	}
	d, err := db.LeadDetail(ctx, "lease-0")
	if err != nil {
		t.Fatal(err)
	}
	if d.Lead.State != crm.StateInFlight || d.Lead.LeaseOwner != "B" || d.Lead.CRMID != "" || len(d.Attempts) != 0 {
		t.Fatalf("after the lost Record: state %s owner %q crm_id %q, %d attempts; want in_flight, B, none, 0",
			d.Lead.State, d.Lead.LeaseOwner, d.Lead.CRMID, len(d.Attempts))
	}
	if err := db.Record(ctx, "B", crm.AttemptResult{Attempt: crm.Attempt{LeadID: a[0].ID, Outcome: crm.StateAccepted, HTTPStatus: 201}}); err != nil {
		t.Fatalf("Record by the lease holder: %v", err)
	}
	d, err = db.LeadDetail(ctx, "lease-0")
	if err != nil {
		t.Fatal(err)
	}
	if d.Lead.State != crm.StateAccepted || len(d.Attempts) != 1 || d.Attempts[0].Number != 2 {
		t.Fatalf("after B's Record: state %s, %d attempts; want accepted, one attempt number 2", d.Lead.State, len(d.Attempts))
	}
}

// TestCoreReleaseAndResubmit covers the guarded writes beside Record.
func TestCoreReleaseAndResubmit(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "rel", 2)
	now := time.Now()
	ls, err := db.Claim(ctx, "A", now, time.Minute, 2)
	if err != nil || len(ls) != 2 {
		t.Fatalf("claim: %v, %d", err, len(ls))
	}
	if err := db.Release(ctx, "A", []int64{ls[0].ID, ls[1].ID, 999999}); !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("Release with an unknown id: %v, want ErrLeaseLost for it", err)
	}
	l, err := db.Lead(ctx, ls[0].ExternalID)
	if err != nil || l.State != crm.StateQueued || l.Attempts != 0 || l.LeaseOwner != "" {
		t.Fatalf("released lead: %v %+v", err, l)
	}
	if _, err := db.Resubmit(ctx, ls[0].ExternalID, nil); !errors.Is(err, store.ErrNotResubmittable) {
		t.Fatalf("Resubmit of a queued lead: %v, want ErrNotResubmittable", err)
	}
	ls, err = db.Claim(ctx, "A", now, time.Minute, 1)
	if err != nil || len(ls) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if err := db.Record(ctx, "A", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateFailed}, Reason: "gave up"}); err != nil {
		t.Fatal(err)
	}
	// Concurrent resubmits of one lead: exactly one wins (the row lock).
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.Resubmit(ctx, ls[0].ExternalID, nil)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotResubmittable):
			t.Fatalf("concurrent resubmit: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent resubmits succeeded, want 1", won)
	}
	d, err := db.LeadDetail(ctx, ls[0].ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Lead.State != crm.StateQueued || len(d.Attempts) != 2 || d.Attempts[1].Kind != crm.AttemptKind("resubmit") {
		t.Fatalf("after resubmit: state %s, attempts %+v", d.Lead.State, d.Attempts)
	}
}

// TestCoreCountsFoldedUnderLoad: folding while writers append never loses
// or doubles a delta: Counts equals a full count after concurrent
// enqueues, claims and folds.
func TestCoreCountsFoldedUnderLoad(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				ps := [][]byte{leadJSON(fmt.Sprintf("w%d-%d-a", w, i)), leadJSON(fmt.Sprintf("w%d-%d-b", w, i))}
				if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
					errc <- err
					return
				}
				if _, err := db.Claim(ctx, fmt.Sprint("w", w), time.Now(), time.Minute, 1); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 30 {
			if err := db.fold(ctx); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.pool.Query(ctx, `SELECT state, count(*) FROM leads GROUP BY state`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[crm.State]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		want[crm.State(s)] = n
	}
	rows.Close()
	for _, s := range crm.States {
		if c.States[s] != want[s] {
			t.Fatalf("Counts %v, full count %v", c.States, want)
		}
	}
	if want[crm.StateInFlight] != 60 || want[crm.StateQueued] != 60 {
		t.Fatalf("full count %v, want 60 in_flight and 60 queued", want)
	}
	if err := db.fold(ctx); err != nil {
		t.Fatal(err)
	}
	var deltas int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM count_deltas`).Scan(&deltas); err != nil {
		t.Fatal(err)
	}
	if deltas > len(crm.States) {
		t.Fatalf("%d delta rows after a quiet fold, want at most one per name", deltas)
	}
}

// TestCoreEnqueueBatchOrder: ids follow the batch order although rows are
// inserted sorted by external_id; the first of two equal ids wins.
func TestCoreEnqueueBatchOrder(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	ps := [][]byte{leadJSON("c"), leadJSON("a"), []byte(`not json`), leadJSON("b"), leadJSON("a")}
	leads, errs, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("errs %v", errs)
	}
	if !errors.Is(errs[2], store.ErrInvalid) || !errors.Is(errs[4], store.ErrDuplicate) {
		t.Fatalf("errs[2] %v (want ErrInvalid), errs[4] %v (want ErrDuplicate)", errs[2], errs[4])
	}
	if !(leads[0].ID < leads[1].ID && leads[1].ID < leads[3].ID) {
		t.Fatalf("ids %d %d %d not in batch order", leads[0].ID, leads[1].ID, leads[3].ID)
	}
	if _, err := db.Enqueue(ctx, leadJSON("b"), store.EnqueueOptions{}); !errors.Is(err, store.ErrDuplicate) || !strings.Contains(err.Error(), "b is already there (queued)") {
		t.Fatalf("second enqueue of b: %v", err)
	}
	got, err := db.Claim(ctx, "w", time.Now(), time.Minute, 10)
	if err != nil || len(got) != 3 || got[0].ExternalID != "c" || got[1].ExternalID != "a" || got[2].ExternalID != "b" {
		t.Fatalf("claim order: %v %v, want c a b", err, got)
	}
}
