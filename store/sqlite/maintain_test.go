package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// countRows counts the rows the counters stand for. (countStar adds the
// throughput check, which Prune's tests skip: the rollup keeps counting
// what happened after Prune deletes attempts, by design.)
func countRows(t *testing.T, db *DB) crm.Counts {
	t.Helper()
	c := crm.Counts{States: map[crm.State]int{}}
	for _, s := range crm.States {
		var n int
		if err := db.reader.QueryRow(`SELECT COUNT(*) FROM leads WHERE state = ?`, string(s)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		c.States[s] = n
	}
	for q, dst := range map[string]*int{
		`SELECT COUNT(*) FROM callbacks`:                       &c.CallbacksVerified,
		`SELECT COUNT(*) FROM callbacks WHERE lead_id IS NULL`: &c.CallbacksUnmatched,
		`SELECT COUNT(*) FROM refusals`:                        &c.Refusals,
	} {
		if err := db.reader.QueryRow(q).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// assertCounts checks that the counters agree with the rows.
func assertCounts(t *testing.T, db *DB) crm.Counts {
	t.Helper()
	rows := countRows(t, db)
	got, err := db.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(rows) {
		t.Fatalf("counters %v, rows %v", got, rows)
	}
	return got
}

// queryInt runs a query returning one integer on the reader pool.
func queryInt(t *testing.T, db *DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.reader.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// sendOnce claims the lead and records one attempt with body as the CRM's
// answer.
func sendOnce(t *testing.T, db *DB, clk *testClock, ext string, outcome crm.State, crmID string, body []byte) {
	t.Helper()
	r := crm.AttemptResult{
		Attempt: crm.Attempt{HTTPStatus: 200, Outcome: outcome, StartedAt: clk.Now(), ResponseBody: body},
		CRMID:   crmID,
	}
	if outcome == crm.StateRetryWait {
		r.NextAttemptAt = clk.Now().Add(time.Hour)
	}
	sendAttempt(t, db, clk, ext, r)
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	old := clk.Now()
	mustEnqueue(t, db, "P-final")
	mustEnqueue(t, db, "P-live")
	sendOnce(t, db, clk, "P-final", crm.StateAccepted, "crm-final", []byte(`{"status":"accepted"}`))
	sendOnce(t, db, clk, "P-live", crm.StateRetryWait, "", []byte(`{"error":"busy"}`))
	oldEv := callback("crm-final", "P-final", "lead.created", "new", old.Unix())
	oldEv.ReceivedAt = old
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{oldEv}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{At: old, Code: "bad_signature", Head: []byte(`{"old":1}`)}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(48 * time.Hour)
	recent := clk.Now()
	mustEnqueue(t, db, "P-new")
	sendOnce(t, db, clk, "P-new", crm.StateAccepted, "crm-new", []byte(`{"status":"accepted"}`))
	newEv := callback("crm-new", "P-new", "lead.created", "new", recent.Unix())
	newEv.ReceivedAt = recent
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{newEv}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{At: recent, Code: "bad_signature", Head: []byte(`{"new":1}`)}); err != nil {
		t.Fatal(err)
	}
	before := assertCounts(t, db)

	st, err := db.Prune(ctx, recent.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := store.PruneStats{RawBodies: 1, Attempts: 1, Refusals: 1,
		Bytes: int64(len(oldEv.RawBody) + len(`{"status":"accepted"}`) + len(`{"old":1}`))}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}

	t.Run("CountsStay", func(t *testing.T) {
		after := assertCounts(t, db)
		before.Refusals-- // the one old refusal is gone, and the counter follows
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("counts %v, want %v", after, before)
		}
	})
	t.Run("OldRawBodyDroppedNewKept", func(t *testing.T) {
		d, err := db.LeadDetail(ctx, "P-final")
		if err != nil || len(d.Callbacks) != 1 || len(d.Callbacks[0].RawBody) != 0 {
			t.Fatalf("old callback %+v, %v", d.Callbacks, err)
		}
		if d.Callbacks[0].DedupKey != oldEv.DedupKey || d.Callbacks[0].Status != "new" {
			t.Fatalf("old callback lost its fields: %+v", d.Callbacks[0])
		}
		d, err = db.LeadDetail(ctx, "P-new")
		if err != nil || len(d.Callbacks) != 1 || !bytes.Equal(d.Callbacks[0].RawBody, newEv.RawBody) {
			t.Fatalf("new callback %+v, %v", d.Callbacks, err)
		}
	})
	t.Run("OldEventStillAReplay", func(t *testing.T) {
		again := callback("crm-final", "P-final", "lead.created", "new", old.Unix())
		fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{again})
		if err != nil || fresh[0] {
			t.Fatalf("replayed old event: fresh = %v, %v; want a replay", fresh, err)
		}
	})
	t.Run("AttemptsOfFinalLeadsOnly", func(t *testing.T) {
		for ext, n := range map[string]int{"P-final": 0, "P-live": 1, "P-new": 1} {
			d, err := db.LeadDetail(ctx, ext)
			if err != nil || len(d.Attempts) != n {
				t.Fatalf("%s: %d attempts, want %d (%v)", ext, len(d.Attempts), n, err)
			}
		}
		l, _ := db.Lead(ctx, "P-final")
		if l.State != crm.StateAccepted || l.CRMID != "crm-final" || l.Attempts != 1 || l.LastHTTPStatus != 200 {
			t.Fatalf("the lead's summary changed: %+v", l)
		}
	})
	t.Run("RefusalsByAge", func(t *testing.T) {
		rs, err := db.Refusals(ctx, crm.EventQuery{})
		if err != nil || len(rs) != 1 || string(rs[0].Head) != `{"new":1}` {
			t.Fatalf("refusals %+v, %v", rs, err)
		}
	})
	t.Run("Again", func(t *testing.T) {
		st, err := db.Prune(ctx, recent.Add(-24*time.Hour))
		if err != nil || st != (store.PruneStats{}) {
			t.Fatalf("second prune = %+v, %v; want nothing left to drop", st, err)
		}
	})
}

func TestPruneManyChunks(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	// Fill spreads 3 chunks' worth of callbacks over the last 24 hours.
	if err := db.Fill(ctx, 300, 3*pruneChunk+17); err != nil {
		t.Fatal(err)
	}
	cut := ms(clk.Now().Add(-12 * time.Hour))
	oldBodies := queryInt(t, db, `SELECT COUNT(*) FROM callbacks WHERE received_at < ? AND length(raw_body) > 0`, cut)
	newBodies := queryInt(t, db, `SELECT COUNT(*) FROM callbacks WHERE received_at >= ? AND length(raw_body) > 0`, cut)
	oldAttempts := queryInt(t, db, `SELECT COUNT(*) FROM attempts WHERE started_at < ? AND `+finalLead, cut)
	if oldBodies < pruneChunk || newBodies == 0 || oldAttempts == 0 {
		t.Fatalf("fill gave %d old bodies, %d new, %d old attempts: not a test of chunks", oldBodies, newBodies, oldAttempts)
	}
	before := assertCounts(t, db)
	st, err := db.Prune(ctx, fromMS(cut))
	if err != nil {
		t.Fatal(err)
	}
	if st.RawBodies != oldBodies || st.Attempts != oldAttempts {
		t.Fatalf("stats %+v, want %d raw bodies and %d attempts", st, oldBodies, oldAttempts)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM callbacks WHERE received_at < ? AND length(raw_body) > 0`, cut); n != 0 {
		t.Fatalf("%d old raw bodies left", n)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM callbacks WHERE received_at >= ? AND length(raw_body) > 0`, cut); n != newBodies {
		t.Fatalf("%d new raw bodies, want %d untouched", n, newBodies)
	}
	if after := assertCounts(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("counts %v, want %v", after, before)
	}
}

func TestPruneCanceled(t *testing.T) {
	db, _ := MustOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mustEnqueue(t, db, "X")
	if _, err := db.Prune(ctx, time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	for i := range 50 {
		mustEnqueue(t, db, fmt.Sprintf("B-%d", i))
	}
	// A writer that keeps committing callbacks and leads through the
	// whole backup.
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		wrote  atomic.Int64
		werr   = make(chan error, 1)
		target = filepath.Join(t.TempDir(), "copy.db")
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			evs := []crm.CallbackEvent{callback(fmt.Sprintf("crm-%d", i), "", "lead.created", "new", int64(i))}
			if _, err := db.SaveCallbacks(ctx, evs); err != nil {
				werr <- err
				return
			}
			if _, err := db.Enqueue(ctx, payload(fmt.Sprintf("W-%d", i)), store.EnqueueOptions{}); err != nil {
				werr <- err
				return
			}
			wrote.Add(1)
		}
	})
	// Let the writer get going so the copy runs beside commits.
	poll.Until(t, "the writer to commit 20 rounds", func() bool { return wrote.Load() >= 20 || len(werr) > 0 })
	err := db.Backup(ctx, target)
	atBackup := wrote.Load()
	close(stop)
	wg.Wait()
	close(werr)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}

	t.Run("IntegrityAndConsistency", func(t *testing.T) {
		raw, err := sql.Open("sqlite", "file:"+target+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		err = raw.QueryRow(`PRAGMA integrity_check`).Scan(&ok)
		raw.Close() // before the store opens it read-write
		if err != nil || ok != "ok" {
			t.Fatalf("integrity_check = %q, %v", ok, err)
		}
		cp := MustOpenPath(t, target, store.Options{})
		c := assertCounts(t, cp) // a snapshot: the counters match its rows
		if c.CallbacksVerified == 0 || c.States[crm.StateQueued] < 50 {
			t.Fatalf("copy counts %v", c)
		}
		t.Logf("copy holds %d callbacks, %d queued leads; the writer had done %d rounds when Backup returned",
			c.CallbacksVerified, c.States[crm.StateQueued], atBackup)
	})
	t.Run("Mode0600", func(t *testing.T) {
		fi, err := os.Stat(target)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	})
	t.Run("RefusesExistingFile", func(t *testing.T) {
		before, _ := os.ReadFile(target)
		err := db.Backup(ctx, target)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		t.Logf("refused: %v", err)
		after, _ := os.ReadFile(target)
		if !bytes.Equal(before, after) {
			t.Fatal("the existing file changed")
		}
	})
	t.Run("MissingDirectoryLeavesNothing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "no", "such", "dir", "copy.db")
		if err := db.Backup(ctx, p); err == nil {
			t.Fatal("backup into a missing directory succeeded")
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("left %s behind: %v", p, err)
		}
	})
	t.Run("CanceledRemovesPartialCopy", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		p := filepath.Join(t.TempDir(), "canceled.db")
		if err := db.Backup(cctx, p); err == nil {
			t.Fatal("canceled backup succeeded")
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("left %s behind: %v", p, err)
		}
	})
}

// storeBytes is every byte of the database's files on disk: the database,
// its WAL and its shared-memory index.
func storeBytes(t *testing.T, db *DB) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(db.Path() + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestForget(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	const (
		ext      = "F-jane"
		phone    = "+4915199887766"
		newPhone = "+4915100112233"
		email    = "jane.doe.forget@example.org"
	)
	person := func(ph string) []byte {
		return []byte(fmt.Sprintf(`{"external_id":%q,"phone":%q,"email":%q,"name":"Jane","country":"DE"}`, ext, ph, email))
	}
	// Neighbours, so the person's rows share pages with others'.
	for i := range 40 {
		mustEnqueue(t, db, fmt.Sprintf("N-%d", i))
	}
	if _, err := db.Enqueue(ctx, person(phone), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 80; i++ {
		mustEnqueue(t, db, fmt.Sprintf("N-%d", i))
	}
	// Her history: a refused first try whose answer quotes her, an edit
	// (the previous payload is kept), an accepted second try, a callback
	// quoting her, a refused forgery quoting her.
	sendOnce(t, db, clk, ext, crm.StateValidationError, "",
		[]byte(`{"status":"validation_error","reason":"phone `+phone+` of `+email+` is invalid"}`))
	if _, err := db.Resubmit(ctx, ext, person(newPhone)); err != nil {
		t.Fatal(err)
	}
	sendOnce(t, db, clk, ext, crm.StateAccepted, "crm-jane", []byte(`{"id":"crm-jane","status":"accepted","echo":"`+newPhone+`"}`))
	raw := fmt.Sprintf(`{"internal_id":"crm-jane","external_id":%q,"event":"lead.updated","status":"qualified","reason":"called %s","timestamp":%d,"email":%q}`,
		ext, newPhone, clk.Now().Unix(), email)
	ev, err := crm.ParseCallback([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: "bad_signature", Head: []byte(`{"phone":"` + phone + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: "bad_signature", Head: []byte(`{"someone":"else"}`)}); err != nil {
		t.Fatal(err)
	}
	secrets := []string{phone, newPhone, email}
	all := storeBytes(t, db)
	for _, s := range secrets {
		if !bytes.Contains(all, []byte(s)) {
			t.Fatalf("setup: %q is not in the files before Forget", s)
		}
	}
	before := assertCounts(t, db)

	st, err := db.Forget(ctx, ext)
	if err != nil {
		t.Fatal(err)
	}
	want := store.ForgetStats{Attempts: 3, Callbacks: 1, Refusals: 1, Checkpointed: true}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}

	t.Run("WriterBackToFast", func(t *testing.T) {
		// ON costs a write per freed page; only Forget needs it.
		var v int
		if err := db.writer.QueryRow(`PRAGMA secure_delete`).Scan(&v); err != nil || v != 2 {
			t.Fatalf("writer secure_delete = %d, %v; want 2 (FAST)", v, err)
		}
	})
	t.Run("NoByteLeftInFiles", func(t *testing.T) {
		all := storeBytes(t, db)
		for _, s := range secrets {
			if i := bytes.Index(all, []byte(s)); i >= 0 {
				t.Errorf("%q still in the files at byte %d", s, i)
			}
		}
	})
	t.Run("CountsAndKeysStay", func(t *testing.T) {
		if after := assertCounts(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("counts %v, want %v", after, before)
		}
		fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{ev})
		if err != nil || fresh[0] {
			t.Fatalf("replayed callback: fresh = %v, %v; want a replay", fresh, err)
		}
		d, err := db.LeadDetail(ctx, ext)
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Lead.Payload) != forgottenPayload || d.Lead.State != crm.StateAccepted || d.Lead.CRMID != "crm-jane" {
			t.Fatalf("lead %+v", d.Lead)
		}
		if len(d.Attempts) != 3 || len(d.Callbacks) != 1 || len(d.Callbacks[0].RawBody) != 0 {
			t.Fatalf("history %d attempts, %d callbacks %+v", len(d.Attempts), len(d.Callbacks), d.Callbacks)
		}
		if d.Callbacks[0].DedupKey != ev.DedupKey {
			t.Fatalf("dedup key %q, want %q", d.Callbacks[0].DedupKey, ev.DedupKey)
		}
	})
	t.Run("NeighboursUntouched", func(t *testing.T) {
		l, err := db.Lead(ctx, "N-7")
		if err != nil || !bytes.Equal(l.Payload, payload("N-7")) {
			t.Fatalf("neighbour %+v, %v", l, err)
		}
		rs, _ := db.Refusals(ctx, crm.EventQuery{Filter: ""})
		kept := 0
		for _, r := range rs {
			if string(r.Head) == `{"someone":"else"}` {
				kept++
			}
		}
		if kept != 1 {
			t.Fatalf("other refusal heads: %+v", rs)
		}
	})
	t.Run("NotResentAsIs", func(t *testing.T) {
		// Forgotten and accepted; an operator resubmit without a new payload
		// would send "{}".
		if _, err := db.Resubmit(ctx, ext, nil); !errors.Is(err, store.ErrNotResubmittable) {
			t.Fatalf("resubmit of a forgotten lead: %v, want store.ErrNotResubmittable", err)
		}
	})
	t.Run("UnknownID", func(t *testing.T) {
		if _, err := db.Forget(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want store.ErrNotFound", err)
		}
	})
	t.Run("ReaderHoldsCheckpoint", func(t *testing.T) {
		mustEnqueue(t, db, "F-held")
		// A read transaction that has read keeps its snapshot: the WAL
		// cannot be truncated under it. Forget must not wait the busy
		// timeout for it (the store's writes would stall meanwhile).
		slow := MustOpenPath(t, db.Path(), store.Options{BusyTimeout: time.Minute})
		tx, err := slow.beginRead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM leads`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, db, "F-after-snapshot") // a frame the reader does not see
		st, err := slow.Forget(ctx, "F-held")
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpointed {
			t.Fatal("checkpointed under a reader's snapshot")
		}
		tx.Rollback()
		if l, _ := db.Lead(ctx, "F-held"); string(l.Payload) != forgottenPayload {
			t.Fatalf("payload %q: the erasure itself must commit", l.Payload)
		}
	})
	t.Run("LiveLeadWithdrawn", func(t *testing.T) {
		mustEnqueue(t, db, "F-live")
		sendOnce(t, db, clk, "F-live", crm.StateRetryWait, "", nil)
		st, err := db.Forget(ctx, "F-live")
		if err != nil || !st.Withdrawn {
			t.Fatalf("forget live lead = %+v, %v; want withdrawn", st, err)
		}
		l, _ := db.Lead(ctx, "F-live")
		if l.State != crm.StateFailed || !l.NextAttemptAt.IsZero() || l.Reason != forgottenReason {
			t.Fatalf("withdrawn lead %+v", l)
		}
		assertCounts(t, db)
		// Never claimed again.
		clk.Advance(2 * time.Hour)
		got, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			if c.ExternalID == "F-live" {
				t.Fatal("a forgotten lead was claimed")
			}
		}
	})
}

func TestForgetLargePayload(t *testing.T) {
	// A payload larger than a page lives in overflow pages, which a
	// rewrite frees whole: they must be zeroed too.
	ctx := context.Background()
	db, _ := MustOpen(t)
	const phone = "+4915144556677"
	notes := bytes.Repeat([]byte("call after six; "), 1200) // ~19 KiB
	p := fmt.Sprintf(`{"external_id":"F-big","phone":%q,"notes":"%s %s"}`, phone, notes, phone)
	if _, err := db.Enqueue(ctx, []byte(p), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, db, "N-after")
	if n := bytes.Count(storeBytes(t, db), []byte(phone)); n == 0 {
		t.Fatal("setup: the phone is not in the files")
	}
	st, err := db.Forget(ctx, "F-big")
	if err != nil || !st.Checkpointed {
		t.Fatalf("forget = %+v, %v", st, err)
	}
	if i := bytes.Index(storeBytes(t, db), []byte(phone)); i >= 0 {
		t.Fatalf("the phone is still in the files at byte %d", i)
	}
}
