//go:build unix

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// BenchmarkRecordStatsCPU is the send path's SQL alone, in CPU time per
// lead (processCPU): batches of 32 Records (the group commit at the
// dispatcher's concurrency) written by runRecords, the enqueues and claims
// left out. Three stores take the batches in turn, so the machine's load
// weighs on each alike: "deltas" as built (migration 007's triggers, the
// fold counted every 40 batches, about what foldLoop does at 5,000 leads
// a second; "deltas-unfolded" without it, the triggers' share), "upserts" with migration 006's triggers put back, and
// "none" without the report's triggers, the floor. The figures to
// compare are the differences to "none".
func BenchmarkRecordStatsCPU(b *testing.B) {
	ctx := context.Background()
	v6, err := fs.ReadFile(migrationFS, "migrations/006_source_stats.sql")
	if err != nil {
		b.Fatal(err)
	}
	old := string(v6[strings.Index(string(v6), "CREATE VIEW stats_delta"):])
	drop := `DROP TRIGGER leads_stats_insert; DROP TRIGGER leads_stats_update; DROP TRIGGER leads_stats_delete;
		DROP TRIGGER leads_stats_move;`
	type variant struct {
		name  string
		setup string
		fold  bool
		db    *DB
		queue []crm.Lead
		made  int
		cpu   time.Duration
		n     int
	}
	vs := []*variant{{name: "deltas", fold: true}, {name: "deltas-unfolded"}, {name: "upserts", setup: drop + old}, {name: "none", setup: drop}}
	for _, v := range vs {
		v.db = MustOpenPath(b, filepath.Join(b.TempDir(), v.name+".db"), store.Options{})
		if v.setup != "" {
			if _, err := v.db.writer.ExecContext(ctx, v.setup); err != nil {
				b.Fatal(v.name, err)
			}
		}
	}
	body := []byte(`{"id":"crm-1","status":"accepted","reason":null}`)
	sources := [...]string{"fb", "google", "tiktok", "native"}
	batches := 0
	for b.Loop() {
		for _, v := range vs {
			if len(v.queue) < 32 {
				ps := make([][]byte, 2048)
				for i := range ps {
					j := v.made + i
					ps[i] = sourcePayload(fmt.Sprintf("RB-%d", j), sources[j%4], "quiz", fmt.Sprintf("s%d", j%50), "DE")
				}
				v.made += len(ps)
				if _, _, err := v.db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
					b.Fatal(err)
				}
				got, err := v.db.Claim(ctx, "bench", time.Now(), time.Hour, 2048)
				if err != nil {
					b.Fatal(err)
				}
				v.queue = append(v.queue, got...)
			}
			batch := make([]recordReq, 32)
			for i := range batch {
				l := v.queue[i]
				batch[i] = recordReq{owner: "bench", r: crm.AttemptResult{
					Attempt: crm.Attempt{LeadID: l.ID, StartedAt: time.Now(), Duration: time.Millisecond,
						HTTPStatus: 200, ResponseBody: body, Outcome: crm.StateAccepted},
					CRMID: fmt.Sprintf("crm-%d", l.ID),
				}}
			}
			v.queue = v.queue[32:]
			start := processCPU(b)
			res, err := v.db.runRecords(batch)
			if err == nil && v.fold && batches%40 == 39 {
				_, err = v.db.foldStats(ctx)
			}
			v.cpu += processCPU(b) - start
			if err != nil || res[0] != nil {
				b.Fatal(err, res[0])
			}
			v.n += len(batch)
		}
		batches++
	}
	for _, v := range vs {
		b.ReportMetric(float64(v.cpu.Microseconds())/float64(v.n), "cpu_µs/lead("+v.name+")")
	}
}

// BenchmarkReportUnfolded is Report's price for exactness between folds:
// a Filled store (bigStoreSize leads) read by a read-only handle (which
// does not fold) with 1,280 unfolded deltas, a fold interval's worth at
// 5,000 leads a second, against the same store folded.
func BenchmarkReportUnfolded(b *testing.B) {
	ctx := context.Background()
	n := bigStoreSize() / 10
	p := filepath.Join(b.TempDir(), "unfolded.db")
	clk := newClock()
	db, err := Open(ctx, p, store.Options{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Fill(ctx, n, n); err != nil {
		b.Fatal(err)
	}
	db.Close()
	// A plain connection, so no handle's fold loop folds them under the
	// benchmark: 1,280 leads accepted at once, each a delta.
	raw, err := sql.Open("sqlite", p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 1280)
		INSERT INTO leads (external_id, payload, idempotency_key, state, created_at, updated_at, source, funnel, sub_id,
			country, accepted_at)
		SELECT 'U-' || i, x'7b7d', 'u' || i, 'accepted', ?, ?, 'src-' || (i % 8), 'quiz', 'sub-' || (i % 40), 'DE', ?
		FROM k`, ms(clk.Now()), ms(clk.Now()), ms(clk.Now())); err != nil {
		b.Fatal(err)
	}
	raw.Close()
	for _, c := range []struct {
		name string
		fold bool
	}{{"unfolded", false}, {"folded", true}} {
		if c.fold {
			w := MustOpenPath(b, p, store.Options{Now: clk.Now})
			if _, err := w.foldStats(ctx); err != nil {
				b.Fatal(err)
			}
			w.Close()
		}
		ro := MustOpenPath(b, p, store.Options{Now: clk.Now, ReadOnly: true})
		b.Run(c.name, func(b *testing.B) {
			var pending int
			if err := ro.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM stats_deltas`).Scan(&pending); err != nil {
				b.Fatal(err)
			}
			for _, q := range []struct {
				name string
				q    crm.ReportQuery
			}{
				{"SourceAll", crm.ReportQuery{By: crm.GroupSource}},
				{"SubIDLastHour", crm.ReportQuery{By: crm.GroupSubID, Since: clk.Now().Add(-time.Hour)}},
			} {
				b.Run(q.name, func(b *testing.B) {
					for b.Loop() {
						if rows, err := ro.Report(ctx, q.q); err != nil || len(rows) == 0 {
							b.Fatal(len(rows), err)
						}
					}
					b.ReportMetric(float64(pending), "deltas")
				})
			}
		})
	}
}
