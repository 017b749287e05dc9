package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/leadwatch/leadwatch/store"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// testClock is an injectable clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// MustOpen opens a fresh store in a temporary directory with a test clock
// and closes it when the test ends.
func MustOpen(tb testing.TB) (*DB, *testClock) {
	tb.Helper()
	clk := newClock()
	db := MustOpenPath(tb, filepath.Join(tb.TempDir(), "leadwatch.db"), store.Options{Now: clk.Now})
	return db, clk
}

// MustOpenPath opens the store at path with opt and closes it when the test
// ends.
func MustOpenPath(tb testing.TB, path string, opt store.Options) *DB {
	tb.Helper()
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

func payload(ext string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":"DE"}`, ext))
}

func mustEnqueue(tb testing.TB, db *DB, ext string) crm.Lead {
	tb.Helper()
	l, err := db.Enqueue(context.Background(), payload(ext), store.EnqueueOptions{})
	if err != nil {
		tb.Fatalf("enqueue %s: %v", ext, err)
	}
	return l
}

// sendAttempt claims the lead ext, as the dispatcher would, and records r
// as its attempt (r's LeadID is filled in).
func sendAttempt(tb testing.TB, db *DB, clk *testClock, ext string, r crm.AttemptResult) {
	tb.Helper()
	ctx := context.Background()
	l, err := db.Lead(ctx, ext)
	if err != nil {
		tb.Fatal(err)
	}
	// Claim takes the most overdue lead first; make this one the only due one.
	if _, err := db.writer.ExecContext(ctx, `UPDATE leads SET next_attempt_at = 0 WHERE id = ?`, l.ID); err != nil {
		tb.Fatal(err)
	}
	got, err := db.Claim(ctx, "setter", clk.Now(), time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].ID != l.ID {
		tb.Fatalf("claim %s: %v %+v", ext, err, got)
	}
	r.Attempt.LeadID = l.ID
	if err := db.Record(ctx, "setter", r); err != nil {
		tb.Fatalf("record %s: %v", ext, err)
	}
}

// setState drives a lead to a final state through Claim and Record, as the
// dispatcher would.
func setState(tb testing.TB, db *DB, clk *testClock, ext string, st crm.State, crmID string) crm.Lead {
	tb.Helper()
	sendAttempt(tb, db, clk, ext, crm.AttemptResult{
		Attempt: crm.Attempt{HTTPStatus: 200, Outcome: st, StartedAt: clk.Now()},
		CRMID:   crmID,
		Reason:  "set by test",
	})
	l, err := db.Lead(context.Background(), ext)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// holdWriteLock takes the write lock of the database at path on a
// connection of its own, as another process would, and returns what gives
// it back (the connection closes when the test ends).
func holdWriteLock(tb testing.TB, path string) (release func() error) {
	tb.Helper()
	ctx := context.Background()
	holder, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { holder.Close() })
	conn, err := holder.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		tb.Fatal(err)
	}
	return func() error {
		_, err := conn.ExecContext(ctx, `ROLLBACK`)
		return err
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("MigrationsApply", func(t *testing.T) {
		db, _ := MustOpen(t)
		var n int
		if err := db.reader.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion() || n == 0 {
			t.Fatalf("applied %d migrations, want %d", n, SchemaVersion())
		}
		for _, table := range []string{"leads", "attempts", "callbacks", "refusals", "lead_counts", "counters"} {
			if err := db.reader.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
				t.Errorf("table %s: %v", table, err)
			}
		}
		var mode string
		if err := db.writer.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		var sync int
		if err := db.writer.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
			t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
		}
		var fk int
		if err := db.writer.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
		}
	})
	t.Run("ReopenKeepsData", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		db, err := Open(ctx, path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, db, "L1")
		db.Close()
		db = MustOpenPath(t, path, store.Options{})
		if _, err := db.Lead(ctx, "L1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TooNew", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		db, err := Open(ctx, path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.writer.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`, SchemaVersion()+1); err != nil {
			t.Fatal(err)
		}
		db.Close()
		for _, ro := range []bool{false, true} {
			_, err = Open(ctx, path, store.Options{ReadOnly: ro})
			if !errors.Is(err, store.ErrTooNew) {
				t.Fatalf("read-only %v: err = %v, want store.ErrTooNew", ro, err)
			}
			t.Logf("read-only %v: %v", ro, err)
		}
	})
	t.Run("UpgradeFromVersion1", func(t *testing.T) {
		// Roll a database back to version 1 by hand (as an older build
		// left it, with traffic in it), then let Open migrate it again:
		// migration 2 must backfill its rollup from the rows, and every
		// later one apply on top.
		clk := newClock()
		path := filepath.Join(t.TempDir(), "a.db")
		db, err := Open(ctx, path, store.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Fill(ctx, 500, 700); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			`DROP TRIGGER attempts_throughput`, `DROP TRIGGER callbacks_throughput`, `DROP TABLE throughput`,
			`CREATE INDEX attempts_kind_started ON attempts (kind, started_at)`,
			`CREATE INDEX callbacks_received ON callbacks (received_at)`,
			`DROP INDEX leads_state_updated`, `CREATE INDEX leads_state_updated ON leads (state, updated_at, id)`,
			`DELETE FROM schema_migrations WHERE version >= 2`,
		} {
			if _, err := db.writer.Exec(stmt); err != nil {
				t.Fatal(stmt, err)
			}
		}
		db.Close()
		db = MustOpenPath(t, path, store.Options{Now: clk.Now})
		countStar(t, db) // fails unless the rollup matches the rows
		var v int
		db.reader.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v)
		if v != SchemaVersion() {
			t.Fatalf("version after upgrade = %d, want %d", v, SchemaVersion())
		}
		tp, err := db.Throughput(ctx, clk.Now().Add(-25*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, n := range tp.Callbacks {
			sum += n
		}
		if sum != 700 {
			t.Fatalf("throughput callbacks over 25h = %d, want 700", sum)
		}
	})
	t.Run("FileMode0600", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		db := MustOpenPath(t, path, store.Options{})
		mustEnqueue(t, db, "L1")
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode = %v, want 0600", filepath.Base(p), st.Mode().Perm())
			}
		}
	})
	t.Run("ReadOnlyMissingFile", func(t *testing.T) {
		_, err := Open(ctx, filepath.Join(t.TempDir(), "missing.db"), store.Options{ReadOnly: true})
		if !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("err = %v, want store.ErrReadOnly", err)
		}
	})
	t.Run("MemoryRefused", func(t *testing.T) {
		if _, err := Open(ctx, ":memory:", store.Options{}); err == nil {
			t.Fatal("opened :memory:")
		}
	})
}

func TestEnqueue(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	mustEnqueue(t, db, "DUP-1")
	tests := []struct {
		name      string
		payload   string
		strict    bool
		wantErr   error
		wantBadPh bool
	}{
		{name: "Good", payload: `{"external_id":"G-1","phone":"+4915112345678","extra":{"a":[1,2]}}`},
		{name: "GoodWithSpacesKeptVerbatim", payload: "  {\"phone\": \"+14155552671\",  \"external_id\": \"G-2\"}\n"},
		{name: "NotJSON", payload: `external_id=1`, wantErr: store.ErrInvalid},
		{name: "BrokenJSON", payload: `{"external_id":"X"`, wantErr: crm.ErrInvalidLead},
		{name: "MissingPhone", payload: `{"external_id":"X"}`, wantErr: store.ErrInvalid},
		{name: "EmptyExternalID", payload: `{"external_id":"","phone":"+4915112345678"}`, wantErr: store.ErrInvalid},
		{name: "Duplicate", payload: string(payload("DUP-1")), wantErr: store.ErrDuplicate},
		{name: "BadPhoneFlagged", payload: `{"external_id":"P-1","phone":"0151 1234"}`, wantBadPh: true},
		{name: "NationalFormatFlagged", payload: `{"external_id":"P-2","phone":"015112345678"}`, wantBadPh: true},
		{name: "BadPhoneStrict", payload: `{"external_id":"P-3","phone":"+49 151 1234"}`, strict: true, wantErr: store.ErrInvalid},
		{name: "GoodPhoneStrict", payload: `{"external_id":"P-4","phone":"+447911123456"}`, strict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := db.Enqueue(ctx, []byte(tt.payload), store.EnqueueOptions{Strict: tt.strict})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				// An invalid lead is both the store's and crm's sentinel,
				// whichever a caller knows.
				if (errors.Is(err, store.ErrInvalid) || errors.Is(err, crm.ErrInvalidLead)) &&
					!(errors.Is(err, store.ErrInvalid) && errors.Is(err, crm.ErrInvalidLead)) {
					t.Fatalf("err = %v wraps only one of store.ErrInvalid and crm.ErrInvalidLead", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(l.Payload) != tt.payload {
				t.Errorf("payload changed: %q", l.Payload)
			}
			if l.State != crm.StateQueued || l.Attempts != 0 || !l.NextAttemptAt.Equal(clk.Now()) {
				t.Errorf("lead = %+v", l)
			}
			if l.IdempotencyKey == "" || l.PhoneInvalid != tt.wantBadPh {
				t.Errorf("key %q phone invalid %v, want %v", l.IdempotencyKey, l.PhoneInvalid, tt.wantBadPh)
			}
			got, err := db.Lead(ctx, l.ExternalID)
			if err != nil || got.IdempotencyKey != l.IdempotencyKey || string(got.Payload) != tt.payload {
				t.Errorf("stored lead = %+v, %v", got, err)
			}
		})
	}
	t.Run("DuplicateNamesState", func(t *testing.T) {
		_, err := db.Enqueue(ctx, payload("DUP-1"), store.EnqueueOptions{})
		if err == nil || err.Error() != "external_id already in the outbox: DUP-1 is already there (queued)" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		if _, err := db.Lead(ctx, "nope"); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, crm.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEnqueueBatch(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	mustEnqueue(t, db, "OLD")
	payloads := [][]byte{
		payload("B-1"),
		[]byte(`{"external_id":"B-2"}`), // no phone
		payload("OLD"),                  // already stored
		payload("B-3"),
		payload("B-1"), // repeated within the batch
		[]byte(`nonsense`),
	}
	leads, errs, err := db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, store.ErrInvalid, store.ErrDuplicate, nil, store.ErrDuplicate, store.ErrInvalid}
	for i, w := range want {
		if w == nil && (errs[i] != nil || leads[i].ID == 0) {
			t.Errorf("item %d: err %v lead %+v", i, errs[i], leads[i])
		}
		if w != nil && !errors.Is(errs[i], w) {
			t.Errorf("item %d: err %v, want %v", i, errs[i], w)
		}
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.States[crm.StateQueued] != 3 {
		t.Errorf("queued = %d, want 3", c.States[crm.StateQueued])
	}
}

func TestClaimRecordRelease(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	a := mustEnqueue(t, db, "A")
	clk.Advance(time.Second)
	b := mustEnqueue(t, db, "B")
	clk.Advance(time.Second)
	c := mustEnqueue(t, db, "C")

	t.Run("ClaimOldestFirst", func(t *testing.T) {
		got, err := db.Claim(ctx, "w1", clk.Now(), 30*time.Second, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
			t.Fatalf("claimed %+v", got)
		}
		for _, l := range got {
			if l.State != crm.StateInFlight || l.LeaseOwner != "w1" || l.Attempts != 1 ||
				!l.LeaseExpiresAt.Equal(clk.Now().Add(30*time.Second)) || l.IdempotencyKey == "" {
				t.Errorf("claimed lead = %+v", l)
			}
		}
	})
	t.Run("RecordRetryWait", func(t *testing.T) {
		next := clk.Now().Add(4 * time.Second)
		err := db.Record(ctx, "w1", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: a.ID, StartedAt: clk.Now(), Duration: 1500 * time.Microsecond,
				HTTPStatus: 503, ResponseBody: []byte("busy"), Outcome: crm.StateRetryWait,
				Delay: 4 * time.Second, DelayWhy: "backoff 2^2 s"},
			NextAttemptAt: next,
		})
		if err != nil {
			t.Fatal(err)
		}
		l, _ := db.Lead(ctx, "A")
		if l.State != crm.StateRetryWait || !l.NextAttemptAt.Equal(next) || l.LeaseOwner != "" ||
			l.LastHTTPStatus != 503 || l.LastDelay != 4*time.Second || l.LastDelayWhy != "backoff 2^2 s" {
			t.Fatalf("lead = %+v", l)
		}
		d, err := db.LeadDetail(ctx, "A")
		if err != nil || len(d.Attempts) != 1 {
			t.Fatalf("detail %+v %v", d, err)
		}
		at := d.Attempts[0]
		if at.Kind != crm.KindSend || at.Number != 1 || at.IdempotencyKey != a.IdempotencyKey ||
			at.Duration != 1500*time.Microsecond || string(at.ResponseBody) != "busy" || at.Outcome != crm.StateRetryWait {
			t.Errorf("attempt = %+v", at)
		}
	})
	t.Run("RecordWrongOwner", func(t *testing.T) {
		err := db.Record(ctx, "w2", crm.AttemptResult{Attempt: crm.Attempt{LeadID: b.ID, Outcome: crm.StateAccepted}})
		if !errors.Is(err, crm.ErrLeaseLost) {
			t.Fatalf("err = %v, want ErrLeaseLost", err)
		}
		d, _ := db.LeadDetail(ctx, "B")
		if len(d.Attempts) != 0 || d.Lead.State != crm.StateInFlight {
			t.Fatalf("a lost lease wrote: %+v", d)
		}
	})
	t.Run("RecordBadOutcome", func(t *testing.T) {
		err := db.Record(ctx, "w1", crm.AttemptResult{Attempt: crm.Attempt{LeadID: b.ID, Outcome: crm.StateQueued}})
		if err == nil {
			t.Fatal("recorded outcome queued")
		}
	})
	t.Run("RecordAcceptedCapsBody", func(t *testing.T) {
		big := make([]byte, store.MaxResponseBody+100)
		err := db.Record(ctx, "w1", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: b.ID, HTTPStatus: 200, ResponseBody: big, Outcome: crm.StateAccepted},
			CRMID:   "crm-b",
		})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := db.LeadDetail(ctx, "B")
		if d.Lead.State != crm.StateAccepted || d.Lead.CRMID != "crm-b" || !d.Lead.NextAttemptAt.IsZero() {
			t.Errorf("lead = %+v", d.Lead)
		}
		if len(d.Attempts[0].ResponseBody) != store.MaxResponseBody {
			t.Errorf("body kept %d bytes", len(d.Attempts[0].ResponseBody))
		}
	})
	t.Run("RetryNotDueYet", func(t *testing.T) {
		got, err := db.Claim(ctx, "w1", clk.Now(), 30*time.Second, 10)
		if err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("claimed %+v, %v; want only C", got, err)
		}
	})
	t.Run("Release", func(t *testing.T) {
		if err := db.Release(ctx, "w1", []int64{c.ID}); err != nil {
			t.Fatal(err)
		}
		l, _ := db.Lead(ctx, "C")
		if l.State != crm.StateQueued || l.Attempts != 0 || l.LeaseOwner != "" {
			t.Fatalf("released lead = %+v", l)
		}
		if err := db.Release(ctx, "w1", []int64{c.ID}); !errors.Is(err, crm.ErrLeaseLost) {
			t.Fatalf("second release err = %v, want ErrLeaseLost", err)
		}
	})
	t.Run("ReleaseRetryKeepsCount", func(t *testing.T) {
		clk.Advance(5 * time.Second)
		got, err := db.Claim(ctx, "w1", clk.Now(), 30*time.Second, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("claimed %+v, %v; want A and C", got, err)
		}
		for _, l := range got {
			if want := map[int64]int{a.ID: 2, c.ID: 1}[l.ID]; l.Attempts != want {
				t.Fatalf("%s attempts = %d, want %d", l.ExternalID, l.Attempts, want)
			}
		}
		if err := db.Release(ctx, "w1", []int64{a.ID, c.ID}); err != nil {
			t.Fatal(err)
		}
		l, _ := db.Lead(ctx, "A")
		if l.State != crm.StateRetryWait || l.Attempts != 1 || l.NextAttemptAt.After(clk.Now()) {
			t.Fatalf("released A = %+v", l)
		}
	})
}

func TestNextDue(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	if _, ok, err := db.NextDue(ctx); ok || err != nil {
		t.Fatalf("empty store: ok %v err %v", ok, err)
	}
	a := mustEnqueue(t, db, "A")
	due, ok, err := db.NextDue(ctx)
	if err != nil || !ok || !due.Equal(clk.Now()) {
		t.Fatalf("queued: due %v ok %v err %v", due, ok, err)
	}
	if _, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	due, ok, _ = db.NextDue(ctx)
	if !ok || !due.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("in flight: due %v, want lease expiry", due)
	}
	next := clk.Now().Add(10 * time.Second)
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: a.ID, Outcome: crm.StateRetryWait}, NextAttemptAt: next}); err != nil {
		t.Fatal(err)
	}
	due, ok, _ = db.NextDue(ctx)
	if !ok || !due.Equal(next) {
		t.Fatalf("retry: due %v, want %v", due, next)
	}
}

func TestExpiredLeaseRetakenWithSameKey(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	l := mustEnqueue(t, db, "A")
	first, err := db.Claim(ctx, "dead-worker", clk.Now(), time.Minute, 1)
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	if got, _ := db.Claim(ctx, "w2", clk.Now().Add(30*time.Second), time.Minute, 1); len(got) != 0 {
		t.Fatalf("lease not expired yet but retaken: %+v", got)
	}
	clk.Advance(2 * time.Minute)
	second, err := db.Claim(ctx, "w2", clk.Now(), time.Minute, 1)
	if err != nil || len(second) != 1 {
		t.Fatal(second, err)
	}
	if second[0].ID != l.ID || second[0].IdempotencyKey != l.IdempotencyKey || second[0].Attempts != 2 || second[0].LeaseOwner != "w2" {
		t.Fatalf("retaken = %+v", second[0])
	}
	err = db.Record(ctx, "dead-worker", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}})
	if !errors.Is(err, crm.ErrLeaseLost) {
		t.Fatalf("old owner record err = %v", err)
	}
	if err := db.Record(ctx, "w2", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}}); err != nil {
		t.Fatal(err)
	}
	d, _ := db.LeadDetail(ctx, "A")
	if len(d.Attempts) != 1 || d.Attempts[0].Number != 2 || d.Attempts[0].IdempotencyKey != l.IdempotencyKey {
		t.Fatalf("attempts = %+v", d.Attempts)
	}
}

func TestConcurrentClaimTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	db1 := MustOpenPath(t, path, store.Options{})
	db2 := MustOpenPath(t, path, store.Options{})
	const leads = 300
	var ps [][]byte
	for i := range leads {
		ps = append(ps, payload(fmt.Sprintf("C-%d", i)))
	}
	if _, _, err := db1.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		seen   = map[int64]string{}
		dupes  []string
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []error
	)
	for w := range 16 {
		db := db1
		if w%2 == 1 {
			db = db2
		}
		owner := fmt.Sprintf("w%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := db.Claim(ctx, owner, time.Now(), time.Hour, 3)
				if err != nil {
					errsMu.Lock()
					errs = append(errs, err)
					errsMu.Unlock()
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, l := range got {
					if prev, ok := seen[l.ID]; ok {
						dupes = append(dupes, fmt.Sprintf("%d by %s and %s", l.ID, prev, owner))
					}
					seen[l.ID] = owner
				}
				mu.Unlock()
				for _, l := range got {
					if err := db.Record(ctx, owner, crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}}); err != nil {
						errsMu.Lock()
						errs = append(errs, err)
						errsMu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(dupes) > 0 {
		t.Fatalf("leads claimed twice: %v", dupes)
	}
	if len(seen) != leads {
		t.Fatalf("claimed %d leads, want %d", len(seen), leads)
	}
	c, _ := db2.Counts(ctx)
	if c.States[crm.StateAccepted] != leads {
		t.Fatalf("accepted = %d", c.States[crm.StateAccepted])
	}
}

func TestResubmit(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	edit := func(ext string) []byte {
		return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915198765432","country":"DE"}`, ext))
	}
	tests := []struct {
		name     string
		state    crm.State // "" leaves it queued; in_flight claims it
		payload  func(ext string) []byte
		wantErr  error
		wantKept bool
	}{
		{name: "FailedUnchangedKeepsKey", state: crm.StateFailed, wantKept: true},
		{name: "FailedSamePayloadKeepsKey", state: crm.StateFailed, payload: payload, wantKept: true},
		{name: "FailedEditedNewKey", state: crm.StateFailed, payload: edit},
		{name: "RejectedNewKey", state: crm.StateRejected},
		{name: "ValidationErrorEditedNewKey", state: crm.StateValidationError, payload: edit},
		{name: "DuplicateNewKey", state: crm.StateDuplicate},
		{name: "AcceptedRefused", state: crm.StateAccepted, wantErr: store.ErrNotResubmittable},
		{name: "InFlightRefused", state: crm.StateInFlight, wantErr: store.ErrNotResubmittable},
		{name: "QueuedRefused", wantErr: store.ErrNotResubmittable},
		{name: "EditChangesExternalIDRefused", state: crm.StateFailed, wantErr: store.ErrInvalid,
			payload: func(string) []byte { return payload("SOMEONE-ELSE") }},
		{name: "EditInvalidRefused", state: crm.StateFailed, wantErr: store.ErrInvalid,
			payload: func(ext string) []byte { return []byte(`{"external_id":"` + ext + `"}`) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := fmt.Sprintf("R-%d", i)
			old := mustEnqueue(t, db, ext)
			switch tt.state {
			case "":
			case crm.StateInFlight:
				if _, err := db.writer.Exec(`UPDATE leads SET next_attempt_at = -1 WHERE id = ?`, old.ID); err != nil {
					t.Fatal(err)
				}
				got, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 1)
				if err != nil || len(got) != 1 || got[0].ID != old.ID {
					t.Fatal(got, err)
				}
				old = got[0]
			default:
				old = setState(t, db, clk, ext, tt.state, "")
			}
			var p []byte
			if tt.payload != nil {
				p = tt.payload(ext)
			}
			clk.Advance(time.Second)
			res, err := db.Resubmit(ctx, ext, p)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				t.Logf("refused: %v", err)
				after, _ := db.Lead(ctx, ext)
				if after.State != old.State || after.IdempotencyKey != old.IdempotencyKey {
					t.Fatalf("refused resubmit changed the lead: %+v", after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.KeyKept != tt.wantKept || (res.Lead.IdempotencyKey == old.IdempotencyKey) != tt.wantKept || res.OldKey != old.IdempotencyKey {
				t.Fatalf("key kept %v (old %s new %s), want %v", res.KeyKept, old.IdempotencyKey, res.Lead.IdempotencyKey, tt.wantKept)
			}
			if res.Lead.State != crm.StateQueued || res.Lead.Attempts != 0 || !res.Lead.NextAttemptAt.Equal(clk.Now()) || res.Lead.Reason != "" {
				t.Fatalf("lead = %+v", res.Lead)
			}
			edited := p != nil && string(p) != string(old.Payload)
			if res.Edited != edited {
				t.Fatalf("edited = %v, want %v", res.Edited, edited)
			}
			d, err := db.LeadDetail(ctx, ext)
			if err != nil {
				t.Fatal(err)
			}
			h := d.Attempts[len(d.Attempts)-1]
			if h.Kind != crm.KindResubmit || h.IdempotencyKey != res.Lead.IdempotencyKey || h.Note == "" {
				t.Fatalf("history row = %+v", h)
			}
			if edited {
				if string(h.PrevPayload) != string(old.Payload) || string(d.Lead.Payload) != string(p) {
					t.Fatalf("prev payload %q, payload %q", h.PrevPayload, d.Lead.Payload)
				}
			} else if h.PrevPayload != nil {
				t.Fatalf("prev payload kept for an unchanged resubmit: %q", h.PrevPayload)
			}
			t.Logf("note: %s", h.Note)
		})
	}
	t.Run("NotFound", func(t *testing.T) {
		if _, err := db.Resubmit(ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func callback(internal, ext, event, status string, ts int64) crm.CallbackEvent {
	raw := fmt.Sprintf(`{"internal_id":%q,"external_id":%q,"event":%q,"status":%q,"timestamp":%d}`, internal, ext, event, status, ts)
	ev, err := crm.ParseCallback([]byte(raw))
	if err != nil {
		panic(err)
	}
	return ev
}

func TestSaveCallbacks(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	mustEnqueue(t, db, "E-1")
	mustEnqueue(t, db, "E-2")
	l2 := setState(t, db, clk, "E-2", crm.StateAccepted, "crm-2")
	ts := clk.Now().Unix()

	byExt := callback("crm-1", "E-1", "lead.created", "new", ts)
	byCRM := callback("crm-2", "", "lead.qualified", "qualified", ts)
	unmatched := callback("crm-404", "", "lead.created", "new", ts)
	older := callback("crm-2", "", "lead.created", "new", ts-60) // arrives late, must not win
	fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{byExt, byCRM, unmatched, byExt, older})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, false, true}; fmt.Sprint(fresh) != fmt.Sprint(want) {
		t.Fatalf("fresh = %v, want %v", fresh, want)
	}
	t.Run("Replay", func(t *testing.T) {
		fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{byCRM})
		if err != nil || fresh[0] {
			t.Fatalf("replay fresh = %v, %v", fresh, err)
		}
	})
	t.Run("LinkedByExternalID", func(t *testing.T) {
		d, _ := db.LeadDetail(ctx, "E-1")
		if len(d.Callbacks) != 1 || d.Callbacks[0].DedupKey != byExt.DedupKey || d.Lead.CRMStatus != "new" {
			t.Fatalf("detail = %+v", d)
		}
		if string(d.Callbacks[0].RawBody) != string(byExt.RawBody) {
			t.Fatalf("raw body changed")
		}
	})
	t.Run("LinkedByCRMID", func(t *testing.T) {
		d, _ := db.LeadDetail(ctx, "E-2")
		if len(d.Callbacks) != 2 || d.Callbacks[0].LeadID != l2.ID {
			t.Fatalf("callbacks = %+v", d.Callbacks)
		}
		if d.Lead.CRMStatus != "qualified" {
			t.Fatalf("crm status = %q, want the newer event's", d.Lead.CRMStatus)
		}
	})
	t.Run("UnmatchedKept", func(t *testing.T) {
		evs, err := db.Callbacks(ctx, crm.EventQuery{Filter: "CRM-404"})
		if err != nil || len(evs) != 1 || evs[0].LeadID != 0 {
			t.Fatalf("unmatched = %+v, %v", evs, err)
		}
		c, _ := db.Counts(ctx)
		if c.CallbacksVerified != 4 || c.CallbacksUnmatched != 1 {
			t.Fatalf("counts = %+v", c)
		}
	})
	t.Run("LinkedLateByRecord", func(t *testing.T) {
		// The CRM's callback overtakes the sender's Record of the answer.
		mustEnqueue(t, db, "E-3")
		early := callback("crm-3", "", "lead.created", "new", ts)
		if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{early}); err != nil {
			t.Fatal(err)
		}
		setState(t, db, clk, "E-3", crm.StateAccepted, "crm-3")
		d, _ := db.LeadDetail(ctx, "E-3")
		if len(d.Callbacks) != 1 || d.Lead.CRMStatus != "new" {
			t.Fatalf("detail = %+v", d)
		}
		c, _ := db.Counts(ctx)
		if c.CallbacksUnmatched != 1 {
			t.Fatalf("unmatched = %d, want 1", c.CallbacksUnmatched)
		}
	})
	t.Run("ListsAndTail", func(t *testing.T) {
		all, err := db.Callbacks(ctx, crm.EventQuery{Limit: 100})
		if err != nil || len(all) != 5 || all[0].ID < all[1].ID {
			t.Fatalf("callbacks = %d, %v (newest first)", len(all), err)
		}
		tail, err := db.CallbacksAfter(ctx, all[2].ID, 10)
		if err != nil || len(tail) != 2 || tail[0].ID != all[1].ID || tail[1].ID != all[0].ID {
			t.Fatalf("tail = %+v, %v", tail, err)
		}
		after, _ := db.Callbacks(ctx, crm.EventQuery{AfterID: all[2].ID})
		if len(after) != 2 {
			t.Fatalf("after = %d", len(after))
		}
		like, _ := db.Callbacks(ctx, crm.EventQuery{Filter: "%"})
		if len(like) != 0 {
			t.Fatalf("%% is a wildcard in filters: %d rows", len(like))
		}
	})
	t.Run("ListsWithoutBodyDetailWithBody", func(t *testing.T) {
		// Lists leave the raw body out; Callback(id) brings it back.
		all, err := db.Callbacks(ctx, crm.EventQuery{Filter: "crm-1"})
		if err != nil || len(all) != 1 {
			t.Fatalf("callbacks = %+v, %v", all, err)
		}
		tail, err := db.CallbacksAfter(ctx, all[0].ID-1, 1)
		if err != nil || len(tail) != 1 {
			t.Fatalf("tail = %+v, %v", tail, err)
		}
		var exported []crm.CallbackEvent
		if err := db.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
			exported = append(exported, ev)
			return nil
		}); err != nil || len(exported) != 5 {
			t.Fatalf("export = %d, %v", len(exported), err)
		}
		for _, ev := range append(append(all, tail...), exported...) {
			if ev.RawBody != nil {
				t.Fatalf("list loaded the raw body of %d", ev.ID)
			}
		}
		ev, err := db.Callback(ctx, all[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		want := all[0]
		want.RawBody = byExt.RawBody
		if !bytes.Equal(ev.RawBody, byExt.RawBody) || fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Fatalf("Callback = %+v\nwant       %+v", ev, want)
		}
		if _, err := db.Callback(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, crm.ErrNotFound) {
			t.Fatalf("missing callback: %v, want store.ErrNotFound", err)
		}
	})
	t.Run("EmptyDedupKeyRefusedWhole", func(t *testing.T) {
		good := callback("crm-9", "", "lead.created", "new", ts)
		if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{good, {}}); err == nil {
			t.Fatal("stored an event without a dedup key")
		}
		if evs, _ := db.Callbacks(ctx, crm.EventQuery{Filter: "crm-9"}); len(evs) != 0 {
			t.Fatal("half a batch stored")
		}
	})
}

func TestRefusalsBounded(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := MustOpenPath(t, filepath.Join(t.TempDir(), "r.db"), store.Options{Now: clk.Now, MaxRefusals: 5})
	for i := range 12 {
		err := db.SaveRefusal(ctx, crm.Refusal{RemoteAddr: "10.0.0.1:5000", HTTPStatus: 403, Code: crm.CodeBadSignature,
			Detail: fmt.Sprintf("no secret matches #%d", i), Head: []byte(`{"internal_id":`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	rs, err := db.Refusals(ctx, crm.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 5 || rs[0].Detail != "no secret matches #11" || rs[4].Detail != "no secret matches #7" {
		t.Fatalf("refusals = %+v", rs)
	}
	c, _ := db.Counts(ctx)
	if c.Refusals != 5 {
		t.Fatalf("refusal count = %d", c.Refusals)
	}
	if rs, _ := db.Refusals(ctx, crm.EventQuery{Filter: "#9"}); len(rs) != 1 {
		t.Fatalf("filtered = %+v", rs)
	}
}

// countStar reads the truth the counters must match (countRows), and
// checks the throughput rollup against the rows too.
func countStar(t *testing.T, db *DB) crm.Counts {
	t.Helper()
	c := countRows(t, db)
	var sent, sentRolled, cbRolled int
	db.reader.QueryRow(`SELECT COUNT(*) FROM attempts WHERE kind = 'send'`).Scan(&sent)
	db.reader.QueryRow(`SELECT COALESCE(SUM(sent), 0), COALESCE(SUM(callbacks), 0) FROM throughput`).Scan(&sentRolled, &cbRolled)
	if sent != sentRolled || c.CallbacksVerified != cbRolled {
		t.Fatalf("throughput rollup: sent %d vs %d rows, callbacks %d vs %d rows", sentRolled, sent, cbRolled, c.CallbacksVerified)
	}
	return c
}

func TestCountsMatchCountStar(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := MustOpenPath(t, filepath.Join(t.TempDir(), "c.db"), store.Options{Now: clk.Now, MaxRefusals: 3})
	check := func(step string) {
		t.Helper()
		got, err := db.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := countStar(t, db)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %s: counts %v, COUNT(*) %v", step, got, want)
		}
	}
	check("open")
	for i := range 20 {
		mustEnqueue(t, db, fmt.Sprintf("K-%d", i))
	}
	check("enqueue")
	claimed, _ := db.Claim(ctx, "w", clk.Now(), time.Minute, 12)
	check("claim")
	outcomes := []crm.State{crm.StateAccepted, crm.StateRetryWait, crm.StateFailed, crm.StateRejected, crm.StateDuplicate, crm.StateValidationError}
	for i, l := range claimed[:10] {
		if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: outcomes[i%len(outcomes)]}, CRMID: fmt.Sprintf("crm-%d", l.ID)}); err != nil {
			t.Fatal(err)
		}
	}
	check("record")
	db.Release(ctx, "w", []int64{claimed[10].ID, claimed[11].ID})
	check("release")
	for _, ext := range []string{"K-2", "K-3"} {
		if _, err := db.Resubmit(ctx, ext, nil); err != nil {
			t.Fatal(err)
		}
	}
	check("resubmit")
	db.SaveCallbacks(ctx, []crm.CallbackEvent{
		callback(fmt.Sprintf("crm-%d", claimed[0].ID), "", "lead.created", "new", 1),
		callback("crm-x", "", "lead.created", "new", 1),
		callback("crm-y", "K-5", "lead.created", "new", 1),
		callback("crm-x", "", "lead.created", "new", 1),
	})
	check("callbacks")
	for range 5 {
		db.SaveRefusal(ctx, crm.Refusal{Code: crm.CodeBadSignature})
	}
	check("refusals")
	if err := db.Fill(ctx, 3000, 2000); err != nil {
		t.Fatal(err)
	}
	check("fill")
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "w.db")
	db1 := MustOpenPath(t, path, store.Options{})
	db2 := MustOpenPath(t, path, store.Options{})
	ch := db1.watch(ctx, 10*time.Millisecond)
	// Only fresh signals count: drain whatever came before each step.
	drain := func() {
		for {
			select {
			case <-ch:
			default:
				return
			}
		}
	}
	wait := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no signal within 5s", what)
		}
	}
	t.Run("OwnCommit", func(t *testing.T) {
		drain()
		mustEnqueue(t, db1, "W-1")
		wait("own commit")
	})
	t.Run("OtherHandleCommit", func(t *testing.T) {
		// A fresh watcher, and no commits through db1 from here on: any
		// signal after the first can only come from polling db2's
		// commits. The first signal says the watcher has its starting
		// point (a commit before it would otherwise go unseen).
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		fresh := db1.watch(wctx, 10*time.Millisecond)
		select {
		case <-fresh:
		case <-time.After(5 * time.Second):
			t.Fatal("no initial signal within 5s")
		}
		mustEnqueue(t, db2, "W-2")
		select {
		case <-fresh:
		case <-time.After(5 * time.Second):
			t.Fatal("no signal for another handle's commit within 5s")
		}
	})
	t.Run("NoBlockWithoutReader", func(t *testing.T) {
		for i := range 50 {
			mustEnqueue(t, db1, fmt.Sprintf("W-x%d", i))
		}
	})
	t.Run("ClosedOnCancel", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		c := db1.watch(cctx, time.Hour)
		ccancel()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-c:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel not closed after cancel")
			}
		}
	})
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	if err := db.Fill(ctx, 2500, 2100); err != nil {
		t.Fatal(err)
	}
	var last int64
	n := 0
	err := db.ExportLeads(ctx, func(l crm.Lead) error {
		if l.ID <= last {
			return fmt.Errorf("out of order: %d after %d", l.ID, last)
		}
		last = l.ID
		n++
		return nil
	})
	if err != nil || n != 2500 {
		t.Fatalf("exported %d leads, %v", n, err)
	}
	n, last = 0, 0
	err = db.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
		if ev.ID <= last || ev.DedupKey == "" {
			return fmt.Errorf("bad row %+v", ev)
		}
		last = ev.ID
		n++
		return nil
	})
	if err != nil || n != 2100 {
		t.Fatalf("exported %d callbacks, %v", n, err)
	}
	stop := errors.New("stop")
	n = 0
	err = db.ExportLeads(ctx, func(crm.Lead) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stop: %v after %d", err, n)
	}
}

func TestLeadsPanes(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	var exts []string
	for i := range 6 {
		ext := fmt.Sprintf("P-%d", i)
		exts = append(exts, ext)
		mustEnqueue(t, db, ext)
		clk.Advance(time.Second)
	}
	setState(t, db, clk, "P-0", crm.StateAccepted, "CRM-ZERO")
	clk.Advance(time.Second)
	setState(t, db, clk, "P-1", crm.StateRejected, "")
	// Retry waits in an order unlike their update order.
	for _, r := range []struct {
		ext string
		d   time.Duration
	}{{"P-2", 30 * time.Second}, {"P-3", 10 * time.Second}} {
		l, _ := db.Lead(ctx, r.ext)
		d := r.d
		db.writer.Exec(`UPDATE leads SET next_attempt_at = 0 WHERE id = ?`, l.ID)
		db.Claim(ctx, "w", clk.Now(), time.Minute, 1)
		db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateRetryWait}, NextAttemptAt: clk.Now().Add(d)})
		clk.Advance(time.Second)
	}
	names := func(ls []crm.Lead) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.ExternalID)
		}
		return fmt.Sprint(s)
	}
	tests := []struct {
		name string
		q    crm.LeadQuery
		want string
	}{
		{"RetryByDue", crm.LeadQuery{States: []crm.State{crm.StateRetryWait}}, "[P-3 P-2]"},
		{"QueuedNewestFirst", crm.LeadQuery{States: []crm.State{crm.StateQueued}}, "[P-5 P-4]"},
		{"FinalMergedNewestFirst", crm.LeadQuery{States: []crm.State{crm.StateAccepted, crm.StateRejected}}, "[P-1 P-0]"},
		{"AllPaged", crm.LeadQuery{Limit: 2, Offset: 1}, "[P-2 P-1]"}, // P-3 was updated last,
		{"FilterCRMIDCaseInsensitive", crm.LeadQuery{Filter: "crm-zero"}, "[P-0]"},
		{"FilterReason", crm.LeadQuery{States: []crm.State{crm.StateRejected}, Filter: "BY TEST"}, "[P-1]"},
		{"FilterNoMatch", crm.LeadQuery{Filter: "_"}, "[]"},
		{"OffsetPastEnd", crm.LeadQuery{Offset: 100}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Leads(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tt.want {
				t.Fatalf("got %s, want %s", names(got), tt.want)
			}
		})
	}
	if _, err := db.Leads(ctx, crm.LeadQuery{States: []crm.State{"bogus"}}); err == nil {
		t.Fatal("unknown state accepted")
	}
}

func TestThroughput(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	since := clk.Now()
	for i := range 3 {
		mustEnqueue(t, db, fmt.Sprintf("T-%d", i))
	}
	got, _ := db.Claim(ctx, "w", clk.Now(), time.Minute, 3)
	for i, l := range got {
		db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, StartedAt: since.Add(time.Duration(i) * 10 * time.Second)}})
	}
	clk.Advance(35 * time.Second)
	db.SaveCallbacks(ctx, []crm.CallbackEvent{callback("c1", "", "e", "", 1)})
	tp, err := db.Throughput(ctx, since, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tp.Sent) != "[1 1 1 0]" || fmt.Sprint(tp.Callbacks) != "[0 0 0 1]" {
		t.Fatalf("throughput = %+v", tp)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	big := func(ext string, size int) []byte {
		p := []byte(`{"external_id":"` + ext + `","phone":"+4915112345678","notes":"`)
		for len(p) < size-2 {
			p = append(p, 'x')
		}
		return append(p, '"', '}')
	}
	t.Run("FiveMiBLeadRefusedByDefault", func(t *testing.T) {
		db, _ := MustOpen(t)
		_, err := db.Enqueue(ctx, big("BIG", 5<<20), store.EnqueueOptions{})
		if !errors.Is(err, store.ErrInvalid) || !errors.Is(err, crm.ErrInvalidLead) {
			t.Fatalf("err = %v, want store.ErrInvalid and crm.ErrInvalidLead", err)
		}
		t.Logf("refused: %v", err)
		if _, err := db.Lead(ctx, "BIG"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stored anyway: %v", err)
		}
	})
	t.Run("FiveMiBLeadStoredWholeWhenAllowed", func(t *testing.T) {
		db := MustOpenPath(t, filepath.Join(t.TempDir(), "b.db"), store.Options{MaxPayload: 8 << 20})
		p := big("BIG", 5<<20)
		if _, err := db.Enqueue(ctx, p, store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		l, err := db.Lead(ctx, "BIG")
		if err != nil || string(l.Payload) != string(p) {
			t.Fatalf("stored %d bytes, %v", len(l.Payload), err)
		}
	})
	t.Run("ReadOnlyOption", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ro.db")
		rw := MustOpenPath(t, path, store.Options{})
		mustEnqueue(t, rw, "RO-1")
		ro := MustOpenPath(t, path, store.Options{ReadOnly: true})
		if l, err := ro.Lead(ctx, "RO-1"); err != nil || l.ExternalID != "RO-1" {
			t.Fatalf("read: %v", err)
		}
		if _, err := ro.Enqueue(ctx, payload("RO-2"), store.EnqueueOptions{}); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("enqueue err = %v, want store.ErrReadOnly", err)
		}
		if err := ro.Ping(ctx); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("ping err = %v, want store.ErrReadOnly", err)
		}
		// The driver's own refusal maps too: write on the mode=ro connection
		// directly, bypassing the handle's early check.
		_, err := ro.writer.ExecContext(ctx, `INSERT INTO refusals (at) VALUES (1)`)
		if err = mapErr(ctx, err); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("driver write on mode=ro: %v, want store.ErrReadOnly", err)
		}
	})
	t.Run("ReadOnlyAlone", func(t *testing.T) {
		// No read-write handle open: SQLite must read the WAL database
		// without creating anything itself.
		path := filepath.Join(t.TempDir(), "alone.db")
		rw, err := Open(ctx, path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, rw, "RO-1")
		rw.Close()
		ro := MustOpenPath(t, path, store.Options{ReadOnly: true})
		if _, err := ro.Lead(ctx, "RO-1"); err != nil {
			t.Fatal(err)
		}
		c, err := ro.Counts(ctx)
		if err != nil || c.States[crm.StateQueued] != 1 {
			t.Fatalf("counts %+v, %v", c, err)
		}
	})
	t.Run("ReadOnlyFileChmod", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: chmod 0400 does not stop root from writing; the read-only path is covered by ReadOnlyOption")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "ro.db")
		rw, err := Open(ctx, path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rw.Close()
		os.Chmod(path, 0o400)
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		db, err := Open(ctx, path, store.Options{})
		if err == nil {
			defer db.Close()
			_, err = db.Enqueue(ctx, payload("X"), store.EnqueueOptions{})
		}
		if err == nil {
			t.Fatal("wrote to a read-only file")
		}
		t.Logf("read-only file: %v", err)
	})
	t.Run("LockedPastBusyTimeout", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "busy.db")
		db := MustOpenPath(t, path, store.Options{BusyTimeout: 100 * time.Millisecond})
		release := holdWriteLock(t, path)
		start := time.Now()
		_, err := db.Enqueue(ctx, payload("BUSY-1"), store.EnqueueOptions{})
		if !errors.Is(err, store.ErrBusy) {
			t.Fatalf("err = %v, want store.ErrBusy", err)
		}
		if waited := time.Since(start); waited < 80*time.Millisecond {
			t.Errorf("gave up after %v, before the busy timeout", waited)
		}
		t.Logf("busy: %v", err)
		if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{callback("c", "", "e", "", 1)}); !errors.Is(err, store.ErrBusy) {
			t.Fatalf("save callbacks err = %v, want store.ErrBusy", err)
		}
		if err := release(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Lead(ctx, "BUSY-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half stored: %v", err)
		}
		if got := countStar(t, db); got.CallbacksVerified != 0 {
			t.Fatalf("callback stored: %+v", got)
		}
		mustEnqueue(t, db, "BUSY-1") // and the store works again
	})
	t.Run("DiskFull", func(t *testing.T) {
		db, _ := MustOpen(t)
		mustEnqueue(t, db, "F-0")
		var pages int
		if err := db.writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		// max_page_count is per connection; the writer has exactly one.
		if _, err := db.writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
			t.Fatal(err)
		}
		before := countStar(t, db)
		var full error
		var last string
		for i := range 50 {
			last = fmt.Sprintf("F-%d", i+1)
			if _, err := db.Enqueue(ctx, big(last, 3000), store.EnqueueOptions{}); err != nil {
				full = err
				break
			}
			before = countStar(t, db)
		}
		if !errors.Is(full, store.ErrDiskFull) {
			t.Fatalf("err = %v, want store.ErrDiskFull", full)
		}
		t.Logf("full: %v", full)
		if _, err := db.Lead(ctx, last); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("lead %s half stored: %v", last, err)
		}
		if after := countStar(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("counts moved: %v -> %v", before, after)
		}
		got, _ := db.Counts(ctx)
		if fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("counters %v, rows %v", got, before)
		}
	})
	t.Run("CanceledContext", func(t *testing.T) {
		db, _ := MustOpen(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := db.Enqueue(cctx, payload("X"), store.EnqueueOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestRecordGroupCommit(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	const n = 40
	for i := range n {
		mustEnqueue(t, db, fmt.Sprintf("G-%d", i))
	}
	leads, err := db.Claim(ctx, "w", clk.Now(), time.Minute, n)
	if err != nil || len(leads) != n {
		t.Fatal(len(leads), err)
	}
	// Concurrent Records share transactions; the odd ones name the wrong
	// owner and must fail alone, without taking their neighbours down.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, l := range leads {
		owner := "w"
		if i%2 == 1 {
			owner = "intruder"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Record(ctx, owner, crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}, CRMID: fmt.Sprint("crm-", l.ID)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Errorf("lead %d: %v", i, err)
		}
		if i%2 == 1 && !errors.Is(err, crm.ErrLeaseLost) {
			t.Errorf("lead %d: err = %v, want ErrLeaseLost", i, err)
		}
	}
	c := countStar(t, db)
	if c.States[crm.StateAccepted] != n/2 || c.States[crm.StateInFlight] != n/2 {
		t.Fatalf("states = %v", c.States)
	}
	var attempts int
	db.reader.QueryRow(`SELECT COUNT(*) FROM attempts`).Scan(&attempts)
	if attempts != n/2 {
		t.Fatalf("attempt rows = %d, want %d", attempts, n/2)
	}
	t.Run("CanceledBeforeCommit", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := db.Record(cctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: leads[1].ID, Outcome: crm.StateAccepted}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("AfterClose", func(t *testing.T) {
		db2 := MustOpenPath(t, filepath.Join(t.TempDir(), "x.db"), store.Options{})
		db2.Close()
		if err := db2.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: 1, Outcome: crm.StateAccepted}}); !errors.Is(err, errClosed) {
			t.Fatalf("Record after Close = %v, want %v", err, errClosed)
		}
	})
}

func TestStates(t *testing.T) {
	db, _ := MustOpen(t)
	var ids []string
	for i := range 1203 { // more than two chunks
		id := fmt.Sprintf("S-%04d", i)
		mustEnqueue(t, db, id)
		ids = append(ids, id)
	}
	got, err := db.States(context.Background(), append(ids, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) || got["S-0000"] != crm.StateQueued || got["S-1202"] != crm.StateQueued {
		t.Fatalf("States: %d entries", len(got))
	}
	if _, ok := got["missing"]; ok {
		t.Fatal("an unknown id has a state")
	}
	if got, err := db.States(context.Background(), nil); err != nil || len(got) != 0 {
		t.Fatalf("no ids: %v %v", got, err)
	}
}
