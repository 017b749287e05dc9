package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// BenchmarkEnqueue enqueues leads one by one: one transaction and one
// fsync (synchronous=FULL) each.
func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := db.Enqueue(ctx, payload(fmt.Sprintf("E-%d", i)), store.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leads/s")
}

// BenchmarkEnqueueBatch enqueues 1,000 leads per transaction, as `submit`
// does with a file.
func BenchmarkEnqueueBatch(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	const batch = 1000
	n := 0
	for b.Loop() {
		ps := make([][]byte, batch)
		for i := range ps {
			ps[i] = payload(fmt.Sprintf("E-%d", n))
			n++
		}
		_, errs, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "leads/s")
}

// BenchmarkClaimRecord is the dispatcher's storage cost per lead: claims
// of 32 and one Record each (op = one lead sent).
func BenchmarkClaimRecord(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	enqueue := func(n, from int) {
		ps := make([][]byte, n)
		for i := range ps {
			ps[i] = payload(fmt.Sprintf("CR-%d", from+i))
		}
		if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	made := 0
	var queue []crm.Lead
	body := []byte(`{"id":"crm-1","status":"accepted","reason":null}`)
	b.ResetTimer()
	for b.Loop() {
		if len(queue) == 0 {
			b.StopTimer()
			enqueue(1000, made)
			made += 1000
			b.StartTimer()
			var err error
			if queue, err = db.Claim(ctx, "bench", time.Now(), time.Minute, 32); err != nil || len(queue) == 0 {
				b.Fatal(len(queue), err)
			}
		}
		l := queue[0]
		queue = queue[1:]
		err := db.Record(ctx, "bench", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: l.ID, StartedAt: time.Now(), Duration: time.Millisecond,
				HTTPStatus: 200, ResponseBody: body, Outcome: crm.StateAccepted},
			CRMID: fmt.Sprintf("crm-%d", l.ID),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leads/s")
}

// BenchmarkRecordConcurrent records attempts from 32 concurrent senders
// (the dispatcher's concurrency), where the group commit shares fsyncs.
func BenchmarkRecordConcurrent(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ps := make([][]byte, b.N)
	for i := range ps {
		ps[i] = payload(fmt.Sprintf("RC-%d", i))
	}
	if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
		b.Fatal(err)
	}
	ids := make(chan int64, b.N)
	for {
		got, err := db.Claim(ctx, "bench", time.Now(), time.Hour, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		for _, l := range got {
			ids <- l.ID
		}
	}
	close(ids)
	body := []byte(`{"id":"crm-1","status":"accepted","reason":null}`)
	b.SetParallelism(16) // × GOMAXPROCS (2 here) = 32 senders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := <-ids
			err := db.Record(ctx, "bench", crm.AttemptResult{
				Attempt: crm.Attempt{LeadID: id, StartedAt: time.Now(), Duration: time.Millisecond,
					HTTPStatus: 200, ResponseBody: body, Outcome: crm.StateAccepted},
				CRMID: fmt.Sprintf("crm-%d", id),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leads/s")
}

// BenchmarkSaveCallbacks stores callbacks in group commits of 32 (the
// listener's batching under 32 connections); op = one callback.
func BenchmarkSaveCallbacks(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	var ps [][]byte
	for i := range 1000 {
		ps = append(ps, payload(fmt.Sprintf("SC-%d", i)))
	}
	if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
		b.Fatal(err)
	}
	const batch = 32
	evs := make([]crm.CallbackEvent, 0, batch)
	flush := func() {
		if _, err := db.SaveCallbacks(ctx, evs); err != nil {
			b.Fatal(err)
		}
		evs = evs[:0]
	}
	for i := 0; b.Loop(); i++ {
		evs = append(evs, callback(fmt.Sprintf("crm-%d", i), fmt.Sprintf("SC-%d", i%1000), "lead.contacted", "contacted", int64(1_700_000_000+i)))
		if len(evs) == batch {
			flush()
		}
	}
	if len(evs) > 0 {
		flush()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "callbacks/s")
}

// bigStoreSize is 1,000,000 leads and callbacks with LEADWATCH_BIG=1,
// else 100,000 so a plain `go test -bench .` stays quick.
func bigStoreSize() int {
	if os.Getenv("LEADWATCH_BIG") == "1" {
		return 1_000_000
	}
	return 100_000
}

// bigStore opens a synthetic store of n leads and n callbacks, building it
// once into a file in the system temp directory that later runs reuse (its
// name carries the size, the schema version and a digest of the
// migrations, so a migration rewritten under a reserved number is not
// taken for the one the file was built with; it is renamed into place
// only when complete, so an interrupted build is never reused).
func bigStore(b *testing.B, n int) *DB {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("leadwatch-bench-v%d-%s-%d.db", SchemaVersion(), migrationsDigest(b), n))
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		start := time.Now()
		db, err := Open(ctx, tmp, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Fill(ctx, n, n); err != nil {
			b.Fatal(err)
		}
		if _, err := db.writer.ExecContext(ctx, `ANALYZE`); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %v", path, time.Since(start).Round(time.Millisecond))
	}
	db := MustOpenPath(b, path, store.Options{})
	// Pin the clock to the newest callback so Throughput's window holds
	// data however old the cached file is.
	var latest int64
	if err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(received_at), 0) FROM callbacks`).Scan(&latest); err != nil {
		b.Fatal(err)
	}
	db.now = func() time.Time { return fromMS(latest) }
	return db
}

// migrationsDigest is the first 8 hex digits of a SHA-256 over the
// embedded migrations, names and contents.
func migrationsDigest(b *testing.B) string {
	h := sha256.New()
	err := fs.WalkDir(migrationFS, "migrations", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(migrationFS, p)
		fmt.Fprintf(h, "%s %d\n", p, len(body))
		h.Write(body)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// BenchmarkPaneQueries measures each dashboard refresh query against a
// large store (budget: ≤ 10 ms each at 1,000,000 leads and callbacks).
func BenchmarkPaneQueries(b *testing.B) {
	ctx := context.Background()
	n := bigStoreSize()
	db := bigStore(b, n)
	page := 40
	panes := []struct {
		name string
		q    crm.LeadQuery
	}{
		{"Retries", crm.LeadQuery{States: []crm.State{crm.StateRetryWait}, Limit: page}},
		{"Queued", crm.LeadQuery{States: []crm.State{crm.StateQueued}, Limit: page}},
		{"InFlight", crm.LeadQuery{States: []crm.State{crm.StateInFlight}, Limit: page}},
		{"Duplicates", crm.LeadQuery{States: []crm.State{crm.StateDuplicate}, Limit: page}},
		{"Rejections", crm.LeadQuery{States: []crm.State{crm.StateRejected, crm.StateValidationError, crm.StateFailed}, Limit: page}},
		{"Accepted", crm.LeadQuery{States: []crm.State{crm.StateAccepted}, Limit: page}},
		{"AllStates", crm.LeadQuery{Limit: page}},
		{"AllStatesPage10", crm.LeadQuery{Limit: page, Offset: 10 * page}},
		{"FilterCommon", crm.LeadQuery{States: []crm.State{crm.StateAccepted}, Filter: "fill-1", Limit: page}},
		// A filter matching almost nothing walks the whole state: the
		// documented cost of substring search without a text index.
		{"FilterRareAllStates", crm.LeadQuery{Filter: fillExternalID(int64(n)), Limit: page}},
	}
	b.Run("Counts", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Counts(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, p := range panes {
		b.Run("Leads/"+p.name, func(b *testing.B) {
			for b.Loop() {
				ls, err := db.Leads(ctx, p.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(ls) == 0 {
					b.Fatal("empty pane")
				}
			}
		})
	}
	b.Run("Callbacks", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Callbacks(ctx, crm.EventQuery{Limit: page}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CallbacksFilter", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Callbacks(ctx, crm.EventQuery{Limit: page, Filter: "converted"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CallbacksFilterRare", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Callbacks(ctx, crm.EventQuery{Limit: page, Filter: "no-such-lead"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Refusals", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Refusals(ctx, crm.EventQuery{Limit: page}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Throughput1h", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Throughput(ctx, db.now().Add(-time.Hour), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("NextDue", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := db.NextDue(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LeadDetail", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := db.LeadDetail(ctx, fillExternalID(int64(1+i%n))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestQueryPlans checks that the hot queries use the indexes meant for
// them (a full scan would pass small tests and miss the budget at 1M rows).
func TestQueryPlans(t *testing.T) {
	db, _ := MustOpen(t)
	tests := []struct {
		name, query, want string
	}{
		{"ClaimRetry", `SELECT id, next_attempt_at FROM leads WHERE state = 'retry_wait' AND next_attempt_at <= 5 ORDER BY next_attempt_at, id LIMIT 5`, "leads_state_due"},
		{"NextDue", `SELECT MIN(next_attempt_at) FROM leads WHERE state = 'queued'`, "leads_state_due"},
		{"PaneUpdated", `SELECT id FROM leads WHERE state = 'accepted' ORDER BY updated_at DESC, id DESC LIMIT 40`, "leads_state_updated"},
		{"PaneKeys", `SELECT COALESCE(updated_at, 0), id FROM leads WHERE state = 'accepted' ORDER BY updated_at DESC, id DESC LIMIT 40`, "COVERING INDEX leads_state_updated"},
		{"PaneKeysFiltered", `SELECT COALESCE(updated_at, 0), id FROM leads WHERE state = 'accepted' AND (lower(external_id) LIKE '%a%' ESCAPE '\' OR lower(crm_id) LIKE '%a%' ESCAPE '\' OR lower(reason) LIKE '%a%' ESCAPE '\') ORDER BY updated_at DESC, id DESC LIMIT 40`, "COVERING INDEX leads_state_updated"},
		{"RetryKeys", `SELECT COALESCE(next_attempt_at, 0), id FROM leads WHERE state = 'retry_wait' ORDER BY next_attempt_at, id LIMIT 40`, "COVERING INDEX leads_state_due"},
		{"LinkByCRM", `SELECT id FROM leads WHERE crm_id = 'x' ORDER BY id DESC LIMIT 1`, "leads_crm_id"},
		// Late linking walks the unlinked callbacks received since the
		// lead was created, in arrival order (migration 012).
		{"LateLink", strings.NewReplacer("?1", "1", "?2", "'x'", "?3", "0").Replace(sqlLinkLate), "callbacks_unlinked (received_at>?)"},
		{"Throughput", `SELECT (sec - 0) / 10, SUM(sent), SUM(callbacks) FROM throughput WHERE sec >= 0 AND sec < 100 GROUP BY (sec - 0) / 10`, "USING INTEGER PRIMARY KEY"},
		{"DetailAttempts", `SELECT id FROM attempts WHERE lead_id = 1 ORDER BY id`, "attempts_lead"},
		{"DetailCallbacks", `SELECT id FROM callbacks WHERE lead_id = 1 ORDER BY id`, "callbacks_lead"},
		// Issue 11: the report and the pulse read one key range; the All
		// leads pane walks the primary key from its bound, whatever the
		// states asked for (leadsWhere's +state).
		{"ReportAll", `SELECT value, SUM(accepted) FROM source_stats WHERE field = 'source' AND bucket = -1 GROUP BY value`, "source_stats USING PRIMARY KEY (field=? AND bucket=?)"},
		{"ReportSince", `SELECT value, SUM(accepted) FROM source_stats WHERE field = 'sub_id' AND bucket >= 5 GROUP BY value`, "source_stats USING PRIMARY KEY (field=? AND bucket>?)"},
		{"Pulse", `SELECT sec, sent, answered, accepted, callbacks, refused FROM throughput WHERE sec > 1 AND sec <= 3601 ORDER BY sec`, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"},
		{"ThroughputMinutes", `SELECT (min - 0) / 60, SUM(sent) FROM throughput_min WHERE min >= 0 AND min < 86400 GROUP BY (min - 0) / 60`, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"},
		{"LeadsNewest", `SELECT id FROM leads WHERE +state IN ('accepted', 'queued') AND id < 500 ORDER BY id DESC LIMIT 40`, "USING INTEGER PRIMARY KEY (rowid<?)"},
		{"LeadsOldestFiltered", `SELECT id FROM leads WHERE true AND (lower(external_id) LIKE '%a%' ESCAPE '\') AND id > 5 AND id <= 100005 ORDER BY id LIMIT 40`, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"},
		{"FindByCRM", `SELECT id FROM leads WHERE crm_id = 'x' ORDER BY id DESC LIMIT 1`, "leads_crm_id"},
		{"Held", `UPDATE leads SET state = 'queued' WHERE state = 'held' AND hold = 'source' AND source = 'x'`, "leads_state_due (state=?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := db.reader.Query(`EXPLAIN QUERY PLAN ` + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "; ")
			if !strings.Contains(all, tt.want) || strings.Contains(all, "TEMP B-TREE FOR ORDER BY") {
				t.Fatalf("plan %q; want index %s and no sort", all, tt.want)
			}
		})
	}
}
