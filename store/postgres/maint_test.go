package postgres

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// TestMaintPrune: old raw bodies, final leads' attempts and refusals go;
// the rows and counts of callbacks stay; live leads keep their attempts.
func TestMaintPrune(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "pr", 2)
	ls, err := db.Claim(ctx, "w", time.Now(), time.Hour, 2)
	if err != nil || len(ls) != 2 {
		t.Fatalf("claim: %v", err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateAccepted,
		HTTPStatus: 201, StartedAt: old, ResponseBody: []byte("12345")}, CRMID: "crm-pr"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[1].ID, Outcome: crm.StateRetryWait,
		HTTPStatus: 503, StartedAt: old, ResponseBody: []byte("busy")}, NextAttemptAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	oldEv := event("crm-pr", "", "won", "1")
	oldEv.ReceivedAt, oldEv.RawBody = old, []byte("0123456789")
	newEv := event("crm-pr", "", "won", "2")
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{oldEv, newEv}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{At: old, Code: "old", Head: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: "new"}); err != nil {
		t.Fatal(err)
	}
	st, err := db.Prune(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := store.PruneStats{RawBodies: 1, Attempts: 1, Refusals: 1, Bytes: 10 + 5 + 3}
	if st != want {
		t.Fatalf("prune stats %+v, want %+v", st, want)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.CallbacksVerified != 2 || c.Refusals != 1 {
		t.Fatalf("counts after prune %+v, %v; want 2 callbacks, 1 refusal", c, err)
	}
	d, err := db.LeadDetail(ctx, "pr-1")
	if err != nil || len(d.Attempts) != 1 {
		t.Fatalf("live lead's attempts: %d, %v; want 1 kept", len(d.Attempts), err)
	}
	if fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{oldEv}); err != nil || fresh[0] {
		t.Fatalf("replay of a pruned callback: fresh %v, %v; want a replay", fresh, err)
	}
	if st, err := db.Prune(ctx, time.Now().Add(-24*time.Hour)); err != nil || st != (store.PruneStats{}) {
		t.Fatalf("second prune: %+v, %v; want nothing", st, err)
	}
}

// TestMaintForget erases a lead's personal data and keeps its counts.
func TestMaintForget(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "fg", 2)
	ls, err := db.Claim(ctx, "w", time.Now(), time.Hour, 1)
	if err != nil || len(ls) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateAccepted,
		HTTPStatus: 201, ResponseBody: []byte(`{"phone":"+4915112345678"}`)}, CRMID: "crm-fg"}); err != nil {
		t.Fatal(err)
	}
	linked := event("crm-fg", "", "won", "1")
	linked.Reason = "called +4915112345678"
	byCRM := event("crm-fg", "", "", "2")
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{linked, byCRM}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: "bad", Head: []byte(`{"external_id":"` + ls[0].ExternalID + `"`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: "other", Head: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	before, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := db.Forget(ctx, ls[0].ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Withdrawn || st.Attempts != 1 || st.Callbacks != 2 || st.Refusals != 1 || st.Checkpointed {
		t.Fatalf("forget stats %+v; want not withdrawn, 1 attempt, 2 callbacks, 1 refusal, not checkpointed", st)
	}
	d, err := db.LeadDetail(ctx, ls[0].ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Lead.Payload) != forgottenPayload || d.Attempts[0].ResponseBody != nil || len(d.Callbacks[0].RawBody) != 0 || d.Callbacks[0].Reason != "" {
		t.Fatalf("after forget: payload %q, response %q, callback %+v", d.Lead.Payload, d.Attempts[0].ResponseBody, d.Callbacks[0])
	}
	after, err := db.Counts(ctx)
	if err != nil || after.CallbacksVerified != before.CallbacksVerified || after.States[crm.StateAccepted] != 1 {
		t.Fatalf("counts moved: %+v -> %+v (%v)", before, after, err)
	}
	// The other lead, still queued, is withdrawn.
	st, err = db.Forget(ctx, "fg-1")
	if err != nil || !st.Withdrawn {
		t.Fatalf("forget a queued lead: %+v, %v; want withdrawn", st, err)
	}
	if l, err := db.Lead(ctx, "fg-1"); err != nil || l.State != crm.StateFailed {
		t.Fatalf("withdrawn lead: %v, %v; want failed", l.State, err)
	}
	if _, err := db.Forget(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forget an unknown id: %v, want ErrNotFound", err)
	}
}

// TestMaintBackupUnsupported: Backup points at pg_dump.
func TestMaintBackupUnsupported(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	err := db.Backup(context.Background(), "/tmp/x.dump")
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "pg_dump --format=custom") {
		t.Fatalf("Backup: %v; want ErrUnsupported naming pg_dump", err)
	}
}

// TestMaintHealth: a healthy store reports "", probes are cached and
// shared, a read-only handle reports read_only, a closed one unreachable.
func TestMaintHealth(t *testing.T) {
	db, u := openTest(t, store.Options{ProbeMaxAge: time.Hour})
	ctx := context.Background()
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if code, err := db.Health(ctx); code != "" || err != nil {
			t.Fatalf("Health: %q, %v; want healthy", code, err)
		}
	}
	if n := db.health.Probes(); n != 1 {
		t.Fatalf("%d probes for 5 Health calls within the probe age; want 1", n)
	}
	ro, err := Open(ctx, u, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := ro.Health(ctx); code != store.HealthReadOnly || err == nil {
		t.Fatalf("read-only Health: %q, %v; want %q", code, err, store.HealthReadOnly)
	}
	ro.Close()
	if code, _ := ro.Health(ctx); code != store.HealthUnreachable {
		t.Fatalf("closed Health: %q; want %q", code, store.HealthUnreachable)
	}
}

// TestMaintHealthDiskFull: a write failing with SQLSTATE 53100 makes
// Health report disk_full until a write succeeds.
func TestMaintHealthDiskFull(t *testing.T) {
	db, u := openTest(t, store.Options{ProbeMaxAge: time.Hour})
	ctx := context.Background()
	execURL(t, u, `CREATE FUNCTION lw_test_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;
		CREATE TRIGGER lw_test_full BEFORE INSERT ON callbacks FOR EACH ROW EXECUTE FUNCTION lw_test_full()`)
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{event("full", "", "", "1")}); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("SaveCallbacks on a full disk: %v, want ErrDiskFull", err)
	}
	if code, _ := db.Health(ctx); code != store.HealthDiskFull {
		t.Fatalf("Health after a full disk: %q, want %q", code, store.HealthDiskFull)
	}
	// The failed insert released idOrderLock: another save goes through.
	execURL(t, u, `DROP TRIGGER lw_test_full ON callbacks`)
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{event("full", "", "", "1")}); err != nil {
		t.Fatal(err)
	}
	if code, err := db.Health(ctx); code != "" {
		t.Fatalf("Health after a commit: %q, %v; want healthy", code, err)
	}
}

// TestMaintFill: Fill stores exactly what it is asked, with the counts
// (kept by the statement triggers, which fire for COPY) matching the rows.
func TestMaintFill(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	if err := db.Fill(ctx, 2000, 3000); err != nil {
		t.Fatal(err)
	}
	var leads, cbs, unmatched, attempts int
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM callbacks),
		(SELECT count(*) FROM callbacks WHERE lead_id IS NULL), (SELECT count(*) FROM attempts)`).Scan(&leads, &cbs, &unmatched, &attempts); err != nil {
		t.Fatal(err)
	}
	if leads != 2000 || cbs != 3000 || attempts == 0 {
		t.Fatalf("rows: %d leads, %d callbacks, %d attempts; want 2000, 3000, some", leads, cbs, attempts)
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range c.States {
		sum += n
	}
	if sum != leads || c.CallbacksVerified != cbs || c.CallbacksUnmatched != unmatched || c.States[crm.StateAccepted] < 1000 {
		t.Fatalf("counts %+v; want %d leads, %d callbacks, %d unmatched", c, leads, cbs, unmatched)
	}
	if unmatched < 30 || unmatched > 200 {
		t.Fatalf("%d unmatched of 3000; want about 3%%", unmatched)
	}
	// A second fill appends, and a normal enqueue still gets a fresh id.
	if err := db.Fill(ctx, 10, 10); err != nil {
		t.Fatal(err)
	}
	l, err := db.Enqueue(ctx, leadJSON("after-fill"), store.EnqueueOptions{})
	if err != nil || l.ID != 2011 {
		t.Fatalf("enqueue after fill: id %d, %v; want 2011", l.ID, err)
	}
}

// BenchmarkMaintFill times Fill of n leads and n callbacks into a fresh
// database: 1,000,000 with LEADWATCH_BIG=1, else 100,000.
//
//	LEADWATCH_BIG=1 go test ./store/postgres -run '^$' -bench MaintFill -benchtime 1x
func BenchmarkMaintFill(b *testing.B) {
	n := 100_000
	if os.Getenv("LEADWATCH_BIG") == "1" {
		n = 1_000_000
	}
	for range b.N {
		db, _ := openTest(b, store.Options{})
		start := time.Now()
		if err := db.Fill(context.Background(), n, n); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/fill")
		c, err := db.Counts(context.Background())
		if err != nil || c.CallbacksVerified != n {
			b.Fatalf("counts %+v, %v; want %d callbacks", c, err, n)
		}
	}
}
