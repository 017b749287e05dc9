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

// BenchmarkReport is the Sources view's refresh: every grouping over each
// of its windows (and a day, the CLI's report --since 24h). "after" is
// Report as built, "before" the same window summed from source_stats'
// minutes alone, as Report read it before migration 011 (reportMinutes),
// in the same run. cpu_ms/op is the process's CPU time per report, the
// figure that moves least with the shared machine's load.
func BenchmarkReport(b *testing.B) {
	ctx := context.Background()
	db := bigStore(b, bigStoreSize())
	for _, by := range crm.GroupFields {
		for _, w := range []struct {
			name string
			span time.Duration
		}{{"All", 0}, {"Last5Min", 5 * time.Minute}, {"LastHour", time.Hour}, {"LastDay", 24 * time.Hour}} {
			q := crm.ReportQuery{By: by}
			if w.span > 0 {
				q.Since = db.now().Add(-w.span)
			}
			for _, v := range []struct {
				name   string
				report func(context.Context, crm.ReportQuery) ([]crm.ReportRow, error)
			}{{"after", db.Report}, {"before", db.reportMinutes}} {
				if w.span == 0 && v.name == "before" {
					continue // the all-time rows, unchanged
				}
				b.Run(by+"/"+w.name+"/"+v.name, func(b *testing.B) {
					start := processCPU(b)
					for b.Loop() {
						rows, err := v.report(ctx, q)
						if err != nil {
							b.Fatal(err)
						}
						if len(rows) == 0 {
							b.Fatal("no rows")
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
					b.ReportMetric(float64((processCPU(b)-start).Microseconds())/1000/float64(b.N), "cpu_ms/op")
				})
			}
		}
	}
}

// reportMinutes is Report over a window as it was before migration 011:
// source_stats' minutes since q.Since, every one of them, and the deltas.
func (db *DB) reportMinutes(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	var sums []string
	for _, c := range strings.Split(statsCounters, ",") {
		sums = append(sums, "SUM("+strings.TrimSpace(c)+")")
	}
	from := ms(q.Since.Truncate(time.Minute))
	tx, err := db.beginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := queryAll(ctx, tx, scanReportRow, `SELECT value, `+strings.Join(sums, ", ")+`
		FROM source_stats WHERE field = ? AND bucket >= ? GROUP BY value`, q.By, from)
	if err != nil {
		return nil, err
	}
	pairs, err := queryAll(ctx, tx, scanStatsPair, `SELECT `+q.By+`, was, now, COUNT(*) FROM stats_deltas
		WHERE minute >= ? GROUP BY `+q.By+`, was, now`, from)
	if err != nil {
		return nil, err
	}
	return addReportRows(rows, statsPairRows(pairs)), nil
}

// BenchmarkFoldStats is the fold's price for the coarse spans (migration
// 011): the write transaction that folds a fold interval's deltas at
// 5,000 leads a second (1,250 rows over 2 minutes of 8 sources, 40
// sub_ids, 4 funnels and 10 countries), "coarse" as built, "minutes"
// upserting source_stats' rows alone as the fold did before (foldMinutes),
// the two taking turns on one store. Only the fold is timed.
func BenchmarkFoldStats(b *testing.B) {
	ctx := context.Background()
	clk := newClock()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "fold.db"), store.Options{Now: clk.Now})
	minute := ms(clk.Now().Truncate(time.Minute))
	type variant struct {
		name string
		fold func(context.Context, *sql.Tx) (int, error)
		cpu  time.Duration
		wall time.Duration
		n    int
	}
	vs := []*variant{{name: "coarse", fold: foldStatsTx}, {name: "minutes", fold: foldMinutes}}
	for b.Loop() {
		for _, v := range vs {
			if _, err := db.writer.ExecContext(ctx, `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 1250)
				INSERT INTO stats_deltas (minute, source, funnel, sub_id, country, was, now)
				SELECT ? + 60000 * (i % 2), 'src-' || (i % 8), 'f-' || (i % 4), 'sub-' || (i % 40), 'c-' || (i % 10), 0, 1 + i % 5
				FROM k`, minute); err != nil {
				b.Fatal(err)
			}
			start, cpu := time.Now(), processCPU(b)
			tx, err := db.beginWrite(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n, err := v.fold(ctx, tx)
			if err == nil {
				err = tx.Commit()
			}
			if err != nil || n != 1250 {
				b.Fatal(n, err)
			}
			v.cpu += processCPU(b) - cpu
			v.wall += time.Since(start)
			v.n++
		}
	}
	for _, v := range vs {
		b.ReportMetric(float64(v.wall.Microseconds())/1000/float64(v.n), "ms/fold("+v.name+")")
		b.ReportMetric(float64(v.cpu.Microseconds())/1000/float64(v.n), "cpu_ms/fold("+v.name+")")
	}
}

// foldMinutes is foldStatsTx as it was before migration 011: the deltas
// summed into source_stats' rows only.
func foldMinutes(ctx context.Context, tx *sql.Tx) (int, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM stats_deltas`).Scan(&last); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT minute, source, funnel, sub_id, country, was, now
		FROM stats_deltas WHERE id <= ?`, last)
	if err != nil {
		return 0, err
	}
	acc := statsAcc{}
	n := 0
	for rows.Next() {
		var (
			minute, was, now               int64
			source, funnel, subID, country string
		)
		if err := rows.Scan(&minute, &source, &funnel, &subID, &country, &was, &now); err != nil {
			rows.Close()
			return 0, err
		}
		c, old := statsDecode(now), statsDecode(was)
		for i := range c {
			c[i] -= old[i]
		}
		acc.addGroup(minute, source, funnel, subID, country, &c)
		n++
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	rows.Close()
	if err := acc.upsert(ctx, tx); err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM stats_deltas WHERE id <= ?`, last)
	return n, err
}
