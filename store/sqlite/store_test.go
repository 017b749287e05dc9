package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
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
			// What migrations 005 to 007 (and 011) added beside the leads columns
			// (005 rebuilds leads from the columns it names, so those stay).
			`DROP TRIGGER refusals_throughput`, `DROP TABLE throughput_min`, `DROP TABLE pauses`,
			`DROP TRIGGER leads_stats_insert`, `DROP TRIGGER leads_stats_update`, `DROP TRIGGER leads_stats_delete`,
			`DROP TRIGGER leads_stats_move`, `DROP TABLE stats_deltas`, `DROP TABLE source_stats`,
			`DROP TABLE source_stats_coarse`, // 011
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

func callback(internal, ext, event, status string, ts int64) crm.CallbackEvent {
	raw := fmt.Sprintf(`{"internal_id":%q,"external_id":%q,"event":%q,"status":%q,"timestamp":%d}`, internal, ext, event, status, ts)
	ev, err := crm.ParseCallback([]byte(raw))
	if err != nil {
		panic(err)
	}
	return ev
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

// TestCountsMatchCountStar stays beside the suite's Counts test (which
// counts rows through the interface) for what only SQL can see: the
// throughput rollup against the attempt and callback rows (countStar).
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

// TestReadOnly covers what the suite's read-only tests cannot reach from
// outside: the driver's own refusal on the mode=ro connection, and a
// read-only open with no read-write handle beside it.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	t.Run("DriverRefusalMaps", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ro.db")
		rw := MustOpenPath(t, path, store.Options{})
		mustEnqueue(t, rw, "RO-1")
		ro := MustOpenPath(t, path, store.Options{ReadOnly: true})
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

// LimitPages caps the writer connection's database at its current page
// count plus two (PRAGMA max_page_count is per connection; the writer has
// exactly one), so writes soon fail as on a full disk; undo lifts the cap.
// It is the suite's DiskFull hook (suite_test.go), declared here because
// it needs the writer.
func LimitPages(db *DB) (undo func() error, err error) {
	var pages int
	if err := db.writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		return nil, err
	}
	if _, err := db.writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
		return nil, err
	}
	return func() error {
		_, err := db.writer.Exec(`PRAGMA max_page_count = 1073741823`)
		return err
	}, nil
}
