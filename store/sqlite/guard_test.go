package sqlite

// Tests of the guards that keep the store correct without relying on
// SQLite serializing writers (guard.go). Under SQLite's write lock nothing
// can change between a transaction's read and its write, so most tests use
// the afterRead hook to change the row there, inside the transaction, as
// a concurrent writer would have; the write must notice. Each fails on the
// unguarded statement it replaced (`WHERE id = ?`).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// guardClock is a settable clock shared by the handles of one test.
type guardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *guardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *guardClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// guardOpen opens the store at path on clk's time and closes it at the end
// of the test.
func guardOpen(tb testing.TB, path string, clk *guardClock) *DB {
	tb.Helper()
	opt := store.Options{}
	if clk != nil {
		opt.Now = clk.Now
	}
	db, err := Open(context.Background(), path, opt)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

// guardStore is a fresh store on a test clock.
func guardStore(tb testing.TB) (*DB, *guardClock) {
	tb.Helper()
	clk := &guardClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	return guardOpen(tb, filepath.Join(tb.TempDir(), "guard.db"), clk), clk
}

func guardPayload(ext string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":"DE"}`, ext))
}

func guardEnqueue(tb testing.TB, db *DB, ext string) crm.Lead {
	tb.Helper()
	l, err := db.Enqueue(context.Background(), guardPayload(ext), store.EnqueueOptions{})
	if err != nil {
		tb.Fatalf("enqueue %s: %v", ext, err)
	}
	return l
}

// hookOnce sets db's afterRead hook for op to run f once, on the first
// read-then-write of op; it reports how often the hook ran for op.
func hookOnce(db *DB, op string, f func(ctx context.Context, tx *sql.Tx) error) (calls *atomic.Int32, errp *error) {
	calls = new(atomic.Int32)
	var hookErr error
	db.afterRead = func(ctx context.Context, o string, tx *sql.Tx) {
		if o != op {
			return
		}
		if calls.Add(1) == 1 {
			hookErr = f(ctx, tx)
		}
	}
	return calls, &hookErr
}

// queryOne reads one value with the reader pool.
func queryOne[T any](t *testing.T, db *DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.reader.QueryRowContext(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestClaimGuard changes a candidate between Claim's read and its lease
// UPDATE: a lead another worker leased meanwhile, or one finished
// meanwhile, is not handed out (the old per-id UPDATE leased it again);
// what is still due is leased, in due order.
func TestClaimGuard(t *testing.T) {
	ctx := context.Background()
	t.Run("LeasedMeanwhile", func(t *testing.T) {
		db, clk := guardStore(t)
		a := guardEnqueue(t, db, "A")
		clk.Advance(time.Second)
		b := guardEnqueue(t, db, "B")
		later := ms(clk.Now().Add(time.Hour))
		calls, herr := hookOnce(db, "claim", func(ctx context.Context, tx *sql.Tx) error {
			// Another worker's claim, committed between the read and the write.
			_, err := tx.ExecContext(ctx, `UPDATE leads SET state = 'in_flight', lease_owner = 'other',
				lease_expires_at = ?, next_attempt_at = ?, attempts = attempts + 1 WHERE id = ?`, later, later, a.ID)
			return err
		})
		got, err := db.Claim(ctx, "w1", clk.Now(), time.Minute, 2)
		if err != nil || *herr != nil {
			t.Fatal(err, *herr)
		}
		if calls.Load() != 1 {
			t.Fatalf("hook ran %d times", calls.Load())
		}
		if len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("claimed %v; want only B (A was leased by another worker meanwhile)", ids(got))
		}
		l, _ := db.Lead(ctx, "A")
		if l.LeaseOwner != "other" || l.Attempts != 1 {
			t.Fatalf("A = owner %q attempts %d; want other's lease untouched", l.LeaseOwner, l.Attempts)
		}
	})
	t.Run("FinishedMeanwhile", func(t *testing.T) {
		db, clk := guardStore(t)
		a := guardEnqueue(t, db, "A")
		hookOnce(db, "claim", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE leads SET state = 'accepted', next_attempt_at = NULL WHERE id = ?`, a.ID)
			return err
		})
		got, err := db.Claim(ctx, "w1", clk.Now(), time.Minute, 5)
		if err != nil || len(got) != 0 {
			t.Fatalf("claimed %v, %v; want nothing", ids(got), err)
		}
		if l, _ := db.Lead(ctx, "A"); l.State != crm.StateQueued {
			// The transaction took nothing, so it did not commit the hook's change either.
			t.Fatalf("A = %s, want queued (nothing committed)", l.State)
		}
	})
	t.Run("RetryNotDueMeanwhile", func(t *testing.T) {
		db, clk := guardStore(t)
		a := guardEnqueue(t, db, "A")
		b := guardEnqueue(t, db, "B")
		future := ms(clk.Now().Add(time.Hour))
		hookOnce(db, "claim", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE leads SET state = 'retry_wait', next_attempt_at = ? WHERE id = ?`, future, a.ID)
			return err
		})
		got, err := db.Claim(ctx, "w1", clk.Now(), time.Minute, 5)
		if err != nil || len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("claimed %v, %v; want only B", ids(got), err)
		}
	})
}

// TestClaimGuardKeepsDueLeads checks that the guard is not stricter than
// the candidates' query: a queued lead whose time lies in the future (a
// clock set back) and an in_flight lead whose lease expired are both
// taken, and the batch comes back oldest due first across states although
// RETURNING's order is unspecified.
func TestClaimGuardKeepsDueLeads(t *testing.T) {
	ctx := context.Background()
	db, clk := guardStore(t)
	t0 := clk.Now()
	a := guardEnqueue(t, db, "A") // due t0, will be in_flight with its lease expired at t0+1m
	if got, err := db.Claim(ctx, "dead", t0, time.Minute, 1); err != nil || len(got) != 1 {
		t.Fatal(ids(got), err)
	}
	clk.Advance(2 * time.Second)
	b := guardEnqueue(t, db, "B") // queued, due t0+2s
	if _, err := db.writer.ExecContext(ctx, `UPDATE leads SET next_attempt_at = ? WHERE id = ?`, ms(t0.Add(time.Hour)), b.ID); err != nil {
		t.Fatal(err) // its enqueue time now lies in the future: the clock was set back
	}
	c := guardEnqueue(t, db, "C") // queued, due t0+2s
	if _, err := db.writer.ExecContext(ctx, `UPDATE leads SET state = 'retry_wait', next_attempt_at = ? WHERE id = ?`, ms(t0.Add(30*time.Second)), c.ID); err != nil {
		t.Fatal(err)
	}
	d := guardEnqueue(t, db, "D") // queued, due t0+2s
	now := t0.Add(2 * time.Minute)
	got, err := db.Claim(ctx, "w", now, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Due times: D t0+2s, C t0+30s, A t0+1m (lease expiry), B t0+1h.
	want := []int64{d.ID, c.ID, a.ID, b.ID}
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Fatalf("claimed %v, want %v (D, C, A, B by due time)", ids(got), want)
	}
	for _, l := range got {
		if l.State != crm.StateInFlight || l.LeaseOwner != "w" || !l.LeaseExpiresAt.Equal(now.Add(time.Minute)) {
			t.Errorf("%s = %s owner %q expires %v", l.ExternalID, l.State, l.LeaseOwner, l.LeaseExpiresAt)
		}
	}
	if got[2].Attempts != 2 || got[2].IdempotencyKey != a.IdempotencyKey {
		t.Errorf("retaken A: attempts %d key %q; want 2 and its key", got[2].Attempts, got[2].IdempotencyKey)
	}
}

func ids(ls []crm.Lead) []int64 {
	out := make([]int64, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}

// TestLeaseGuardTwoHandles: two handles of one file are two workers. A's
// lease expires and B retakes the lead; A's Record and Release then write
// nothing (no attempt row, B's lease intact) and say crm.ErrLeaseLost,
// while B's Record goes through.
func TestLeaseGuardTwoHandles(t *testing.T) {
	ctx := context.Background()
	clk := &guardClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "two.db")
	dbA, dbB := guardOpen(t, path, clk), guardOpen(t, path, clk)
	l := guardEnqueue(t, dbA, "L")
	if got, err := dbA.Claim(ctx, "A", clk.Now(), time.Minute, 1); err != nil || len(got) != 1 {
		t.Fatal(ids(got), err)
	}
	clk.Advance(2 * time.Minute)
	if got, err := dbB.Claim(ctx, "B", clk.Now(), time.Minute, 1); err != nil || len(got) != 1 {
		t.Fatal(ids(got), err)
	}
	err := dbA.Record(ctx, "A", crm.AttemptResult{
		Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: 200, Outcome: crm.StateAccepted}, CRMID: "crm-A"})
	if !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("A's record: %v, want ErrLeaseLost", err)
	}
	if err := dbA.Release(ctx, "A", []int64{l.ID}); !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("A's release: %v, want ErrLeaseLost", err)
	}
	if n := queryOne[int](t, dbB, `SELECT COUNT(*) FROM attempts WHERE lead_id = ?`, l.ID); n != 0 {
		t.Fatalf("a lost lease wrote %d attempt rows", n)
	}
	got, _ := dbB.Lead(ctx, "L")
	if got.State != crm.StateInFlight || got.LeaseOwner != "B" || got.CRMID != "" || got.Attempts != 2 {
		t.Fatalf("after A's lost writes: %s owner %q crm %q attempts %d; want B's lease untouched",
			got.State, got.LeaseOwner, got.CRMID, got.Attempts)
	}
	if err := dbB.Record(ctx, "B", crm.AttemptResult{
		Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: 200, Outcome: crm.StateAccepted}, CRMID: "crm-B"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dbA.Lead(ctx, "L"); got.State != crm.StateAccepted || got.CRMID != "crm-B" {
		t.Fatalf("after B's record: %s %q", got.State, got.CRMID)
	}
}

// failLead makes ext a failed lead with its attempt recorded.
func failLead(t *testing.T, db *DB, clk *guardClock, ext string) crm.Lead {
	t.Helper()
	ctx := context.Background()
	l := guardEnqueue(t, db, ext)
	if _, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{
		Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: 500, Outcome: crm.StateFailed}, Reason: "gave up"}); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestResubmitGuard changes the lead between Resubmit's read and its
// UPDATE. Resubmitted by someone else meanwhile: refused, nothing written
// (the old `WHERE id = ?` resubmitted it twice). Failed again with a new
// key meanwhile: the lead is read again and the result reports the key it
// really replaced. Changing every time: ErrBusy after maxGuardRetries.
func TestResubmitGuard(t *testing.T) {
	ctx := context.Background()
	t.Run("ResubmittedMeanwhile", func(t *testing.T) {
		db, clk := guardStore(t)
		l := failLead(t, db, clk, "R")
		hookOnce(db, "resubmit", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE leads SET state = 'queued', attempts = 0 WHERE id = ?`, l.ID)
			return err
		})
		_, err := db.Resubmit(ctx, "R", nil)
		if !errors.Is(err, store.ErrNotResubmittable) {
			t.Fatalf("resubmit of a lead resubmitted meanwhile: %v, want ErrNotResubmittable", err)
		}
		if n := queryOne[int](t, db, `SELECT COUNT(*) FROM attempts WHERE lead_id = ? AND kind = 'resubmit'`, l.ID); n != 0 {
			t.Fatalf("%d resubmit rows written", n)
		}
	})
	t.Run("KeyChangedMeanwhile", func(t *testing.T) {
		db, clk := guardStore(t)
		l := failLead(t, db, clk, "R")
		calls, herr := hookOnce(db, "resubmit", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE leads SET idempotency_key = 'key-meanwhile' WHERE id = ?`, l.ID)
			return err
		})
		res, err := db.Resubmit(ctx, "R", nil)
		if err != nil || *herr != nil {
			t.Fatal(err, *herr)
		}
		if calls.Load() != 2 {
			t.Fatalf("read %d times, want 2 (the guard missed once)", calls.Load())
		}
		if res.OldKey != "key-meanwhile" || !res.KeyKept || res.Lead.IdempotencyKey != "key-meanwhile" {
			t.Fatalf("resubmission = old %q kept %v new %q; want the key read again kept", res.OldKey, res.KeyKept, res.Lead.IdempotencyKey)
		}
		if n := queryOne[int](t, db, `SELECT COUNT(*) FROM attempts WHERE lead_id = ? AND kind = 'resubmit'`, l.ID); n != 1 {
			t.Fatalf("%d resubmit rows, want 1", n)
		}
	})
	t.Run("AlwaysChanging", func(t *testing.T) {
		db, clk := guardStore(t)
		l := failLead(t, db, clk, "R")
		var n atomic.Int32
		db.afterRead = func(ctx context.Context, op string, tx *sql.Tx) {
			if op == "resubmit" {
				tx.ExecContext(ctx, `UPDATE leads SET idempotency_key = ? WHERE id = ?`, fmt.Sprint("k", n.Add(1)), l.ID)
			}
		}
		_, err := db.Resubmit(ctx, "R", nil)
		if !errors.Is(err, store.ErrBusy) || int(n.Load()) != maxGuardRetries {
			t.Fatalf("err %v after %d reads; want ErrBusy after %d", err, n.Load(), maxGuardRetries)
		}
		if got, _ := db.Lead(ctx, "R"); got.State != crm.StateFailed {
			t.Fatalf("lead = %s, want failed (nothing committed)", got.State)
		}
	})
}

// TestForgetGuard: a Record learns the lead's CRM id between Forget's read
// and its UPDATE, and an unmatched callback names that id. Forget reads
// the lead again and wipes that callback too (with the CRM id read first,
// it would have been left with the person's data).
func TestForgetGuard(t *testing.T) {
	ctx := context.Background()
	db, clk := guardStore(t)
	l := failLead(t, db, clk, "F")
	ev := crm.CallbackEvent{InternalID: "crm-late", Event: "lead.updated", Timestamp: "1", Status: "won",
		Reason: "Jane Doe called", RawBody: []byte(`{"name":"Jane Doe"}`)}
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
		t.Fatal(err)
	}
	calls, herr := hookOnce(db, "forget", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE leads SET crm_id = 'crm-late' WHERE id = ?`, l.ID)
		return err
	})
	st, err := db.Forget(ctx, "F")
	if err != nil || *herr != nil {
		t.Fatal(err, *herr)
	}
	if calls.Load() != 2 {
		t.Fatalf("read %d times, want 2", calls.Load())
	}
	if st.Callbacks != 1 {
		t.Errorf("forget wiped %d callbacks, want 1", st.Callbacks)
	}
	if n := queryOne[int](t, db, `SELECT length(raw_body) + length(reason) FROM callbacks WHERE internal_id = 'crm-late'`); n != 0 {
		t.Fatalf("the callback naming the CRM id learned meanwhile kept %d bytes of personal data", n)
	}
	if got, _ := db.Lead(ctx, "F"); string(got.Payload) != forgottenPayload || got.CRMID != "crm-late" {
		t.Fatalf("lead = %q crm %q", got.Payload, got.CRMID)
	}
}

// TestLateLinkingTwoHandles races, round after round, a Record that first
// learns a lead's CRM id (handle A) against a callback naming only that id
// (handle B, another "process" on the file). Whichever commits first, the
// callback ends linked to the lead and its status is the lead's.
func TestLateLinkingTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "link.db")
	dbA, dbB := guardOpen(t, path, nil), guardOpen(t, path, nil)
	rounds := 150
	if testing.Short() {
		rounds = 40
	}
	ps := make([][]byte, rounds)
	for i := range ps {
		ps[i] = guardPayload(fmt.Sprintf("LL-%d", i))
	}
	if _, _, err := dbA.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	leads, err := dbA.Claim(ctx, "A", time.Now(), time.Hour, rounds)
	if err != nil || len(leads) != rounds {
		t.Fatal(len(leads), err)
	}
	callbackFirst := 0
	for i, l := range leads {
		crmID := fmt.Sprintf("crm-%d", i)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var recErr, cbErr error
		var recDone, cbDone time.Time
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			recErr = dbA.Record(ctx, "A", crm.AttemptResult{
				Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: 200, Outcome: crm.StateAccepted}, CRMID: crmID})
			recDone = time.Now()
		}()
		go func() {
			defer wg.Done()
			<-start
			_, cbErr = dbB.SaveCallbacks(ctx, []crm.CallbackEvent{{InternalID: crmID, Event: "lead.status",
				Timestamp: "1", Status: "contacted", RawBody: []byte("{}")}})
			cbDone = time.Now()
		}()
		close(start)
		wg.Wait()
		if recErr != nil || cbErr != nil {
			t.Fatalf("round %d: record %v, callback %v", i, recErr, cbErr)
		}
		if cbDone.Before(recDone) {
			callbackFirst++
		}
		linked := queryOne[sql.NullInt64](t, dbA, `SELECT lead_id FROM callbacks WHERE internal_id = ?`, crmID)
		if !linked.Valid || linked.Int64 != l.ID {
			t.Fatalf("round %d: callback for %s linked to %v, want lead %d", i, crmID, linked, l.ID)
		}
		if got, _ := dbB.Lead(ctx, l.ExternalID); got.CRMStatus != "contacted" {
			t.Fatalf("round %d: lead's CRM status %q, want contacted", i, got.CRMStatus)
		}
	}
	c, err := dbB.Counts(ctx)
	if err != nil || c.CallbacksVerified != rounds || c.CallbacksUnmatched != 0 {
		t.Fatalf("counts %+v %v; want %d callbacks, none unmatched", c, err, rounds)
	}
	t.Logf("%d rounds, the callback finished first in %d", rounds, callbackFirst)
}

// countingHandler counts log records whose message is msg.
type countingHandler struct {
	msg string
	n   *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestConcurrentOpenMigratesOnce opens one fresh file from several
// goroutines at once (several instances starting together): every Open
// succeeds, the schema is at this build's version, and each migration was
// applied once (one "store migrated" log line per migration over all the
// handles, one schema_migrations row each).
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	rounds := 4 // fresh files: each a new race to migrate first
	if testing.Short() {
		rounds = 2
	}
	for r := range rounds {
		t.Run(fmt.Sprint("round", r), concurrentOpen)
	}
}

func concurrentOpen(t *testing.T) {
	const opens = 8
	path := filepath.Join(t.TempDir(), "fresh.db")
	var migrated atomic.Int32
	logger := slog.New(countingHandler{msg: "store migrated", n: &migrated})
	dbs := make([]*DB, opens)
	errs := make([]error, opens)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range opens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			dbs[i], errs[i] = Open(context.Background(), path, store.Options{Logger: logger})
		}()
	}
	close(start)
	wg.Wait()
	for i, db := range dbs {
		if db != nil {
			t.Cleanup(func() { db.Close() })
		}
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	want := SchemaVersion()
	if want < 1 {
		t.Fatal("no migrations embedded")
	}
	if n := int(migrated.Load()); n != want {
		t.Errorf("%d migrations applied over %d handles, want %d (each once)", n, opens, want)
	}
	rows := queryOne[int](t, dbs[0], `SELECT COUNT(*) FROM schema_migrations`)
	top := queryOne[int](t, dbs[0], `SELECT MAX(version) FROM schema_migrations`)
	if rows != want || top != want {
		t.Errorf("schema_migrations: %d rows up to version %d, want %d", rows, top, want)
	}
	// Every handle works on the result.
	for i, db := range dbs {
		if _, err := db.Enqueue(context.Background(), guardPayload(fmt.Sprint("M-", i)), store.EnqueueOptions{}); err != nil {
			t.Errorf("handle %d: enqueue: %v", i, err)
		}
	}
}

// TestPruneCountsWhatItDrops: Prune's row counts are the rows its
// statements changed, and a lead resubmitted (live again) keeps its
// attempts: the final-state condition is part of the DELETE itself.
func TestPruneCountsWhatItDrops(t *testing.T) {
	ctx := context.Background()
	db, clk := guardStore(t)
	failLead(t, db, clk, "P1")
	failLead(t, db, clk, "P2")
	if _, err := db.Resubmit(ctx, "P2", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	st, err := db.Prune(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempts != 1 {
		t.Fatalf("pruned %d attempt rows, want 1 (P1's; P2 is live again)", st.Attempts)
	}
	if n := queryOne[int](t, db, `SELECT COUNT(*) FROM attempts a JOIN leads l ON l.id = a.lead_id WHERE l.external_id = 'P2'`); n != 2 {
		t.Fatalf("P2 kept %d attempt rows, want 2", n)
	}
}

// TestClaimLeasePlan pins the lease UPDATE's plan: the candidates are
// looked up by rowid. Without the unary + in claimGuard SQLite serves the
// guard's OR with leads_state_due instead, walking every queued lead on
// every claim.
func TestClaimLeasePlan(t *testing.T) {
	db, _ := guardStore(t)
	rows, err := db.writer.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+sqlClaimLease, "o", 1, 1, 1, "[1,2]", 5)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(plan, "; ")
	if !strings.Contains(joined, "SEARCH leads USING INTEGER PRIMARY KEY") || strings.Contains(joined, "leads_state_due") {
		t.Fatalf("lease plan = %s; want the leads looked up by rowid", joined)
	}
}
