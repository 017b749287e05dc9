package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// Issue 11's read budgets (≤ 10 ms each at 1M leads, the store Filled):
//
//	LEADWATCH_BIG=1 go test ./store/postgres -run '^$' -bench 'Report|ThroughputDay|Pulse|LeadsAllPage|FindLead' -benchtime 200x
//
// The store is Filled with 1,000,000 leads and as many callbacks with
// LEADWATCH_BIG=1, else 200,000 of each. The filled database is kept on
// the server (lw_bench_filled_<n>_<schema hash>) and reused by later runs,
// as filling takes a while; drop it by hand when done.

var (
	filledMu  sync.Mutex
	filledDBs = map[int]*DB{}
)

// benchFilled is a DB over a Filled database, shared by the benchmarks of
// one process and kept on the server for the next.
func benchFilled(b *testing.B) *DB {
	b.Helper()
	storetest.SkipWithoutPostgres(b)
	n := 200_000
	if os.Getenv("LEADWATCH_BIG") == "1" {
		n = 1_000_000
	}
	filledMu.Lock()
	defer filledMu.Unlock()
	if db := filledDBs[n]; db != nil {
		return db
	}
	ctx := context.Background()
	admin := os.Getenv(storetest.PostgresEnv)
	// The name carries a hash of the schema, so a changed migration never
	// reuses a database filled under the old one.
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		b.Fatal(err)
	}
	h := fnv.New32a()
	for _, m := range ms {
		h.Write([]byte(m.SQL))
	}
	name := fmt.Sprintf("lw_bench_filled_%d_%08x", n, h.Sum32())
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		b.Fatal(err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		u = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	db, err := Open(ctx, u, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var have int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM leads`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have != n {
		if have != 0 {
			b.Fatalf("%s holds %d leads, not %d: drop it", name, have, n)
		}
		start := time.Now()
		if err := db.Fill(ctx, n, n); err != nil {
			b.Fatal(err)
		}
		if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
		b.Logf("filled %s with %d leads and callbacks in %v", name, n, time.Since(start).Round(time.Millisecond))
	}
	filledDBs[n] = db
	return db
}

// reportMS adds the mean time per op in milliseconds, the unit of the
// budget.
func reportMS(b *testing.B, start time.Time) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkReport reads the Sources view: every grouping over each of
// its windows (and a day, report --since 24h). "after" is Report as
// built, "before" the window summed from source_stats' minutes alone, as
// Report read it before migration 007 (reportMinutes), in the same run.
func BenchmarkReport(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	// The windows end at the newest lead, however long ago the database
	// was filled.
	var newest int64
	if err := db.pool.QueryRow(ctx, `SELECT max(created_at) FROM leads`).Scan(&newest); err != nil {
		b.Fatal(err)
	}
	for _, by := range crm.GroupFields {
		for _, w := range []struct {
			name string
			span time.Duration
		}{{"all", 0}, {"5min", 5 * time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}} {
			for _, v := range []struct {
				name   string
				report func(context.Context, crm.ReportQuery) ([]crm.ReportRow, error)
			}{{"after", db.Report}, {"before", db.reportMinutes}} {
				if w.span == 0 && v.name == "before" {
					continue // the all-time rows, unchanged
				}
				b.Run(by+"/"+w.name+"/"+v.name, func(b *testing.B) {
					q := crm.ReportQuery{By: by}
					if w.span > 0 {
						q.Since = time.UnixMilli(newest).Add(-w.span)
					}
					b.ResetTimer()
					start := time.Now()
					for range b.N {
						rows, err := v.report(ctx, q)
						if err != nil || len(rows) == 0 {
							b.Fatalf("report: %d rows, %v", len(rows), err)
						}
					}
					reportMS(b, start)
				})
			}
		}
	}
}

// reportMinutes is Report over a window as it was before migration 007:
// source_stats' minutes since q.Since, every one of them, and the deltas.
func (db *DB) reportMinutes(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	cols, sums := "", ""
	for _, c := range sourceCounters {
		cols += ", " + c
		sums += ", sum(" + c + "::int)"
	}
	return queryAll(ctx, db.pool, func(r pgx.Row) (crm.ReportRow, error) {
		var row crm.ReportRow
		dest := []any{&row.Value, &row.Accepted, &row.Duplicate, &row.Rejected, &row.ValidationError,
			&row.Failed, &row.WithStatus, &row.FTD}
		for i := range row.FirstStatus {
			dest = append(dest, &row.FirstStatus[i])
		}
		return row, r.Scan(dest...)
	}, `SELECT value`+sums+` FROM (
			SELECT value`+cols+` FROM source_stats WHERE field = $1 AND bucket >= $2
			UNION ALL
			SELECT value`+cols+` FROM source_deltas WHERE field = $1 AND bucket >= $2
		) s GROUP BY value`, q.By, ms(q.Since.Truncate(time.Minute)))
}

// BenchmarkThroughputDay reads the day's chart by the minute (the
// per-minute rollups).
func BenchmarkThroughputDay(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		tp, err := db.Throughput(ctx, time.Now().Add(-24*time.Hour), time.Minute)
		if err != nil || len(tp.Sent) < 1440 {
			b.Fatalf("throughput: %d buckets, %v", len(tp.Sent), err)
		}
	}
	reportMS(b, start)
}

// BenchmarkPulse reads the last hour's per-second counters.
func BenchmarkPulse(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		p, err := db.Pulse(ctx, time.Now())
		if err != nil || p.LastAttempt.IsZero() {
			b.Fatalf("pulse %+v, %v", p, err)
		}
	}
	reportMS(b, start)
}

// BenchmarkLeadsAllPage reads a page of 50 of the All leads pane (newest
// first) at the top, in the middle of the store (keyset bound), and with
// a filter that matches few (at most maxScan rows examined).
func BenchmarkLeadsAllPage(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	var top int64
	if err := db.pool.QueryRow(ctx, `SELECT max(id) FROM leads`).Scan(&top); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    crm.LeadQuery
	}{
		{"top", crm.LeadQuery{Order: crm.OrderNewest, Limit: 50}},
		{"middle", crm.LeadQuery{Order: crm.OrderNewest, Limit: 50, BeforeID: top / 2}},
		{"oldest_middle", crm.LeadQuery{Order: crm.OrderOldest, Limit: 50, AfterID: top / 2}},
		{"retry_wait_state", crm.LeadQuery{Order: crm.OrderNewest, Limit: 50, BeforeID: top / 2, States: []crm.State{crm.StateRetryWait}}},
		{"rare_filter", crm.LeadQuery{Order: crm.OrderNewest, Limit: 50, BeforeID: top / 2, Filter: "fill-" + strconv.FormatInt(top/2-7, 10)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				rows, err := db.Leads(ctx, tc.q)
				if err != nil || len(rows) == 0 {
					b.Fatalf("leads: %d rows, %v", len(rows), err)
				}
			}
			reportMS(b, start)
		})
	}
}

// BenchmarkFindLead looks a lead up by external id and by CRM id.
func BenchmarkFindLead(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	var ext, crmID string
	if err := db.pool.QueryRow(ctx, `SELECT external_id, crm_id FROM leads WHERE crm_id <> '' ORDER BY id LIMIT 1 OFFSET 1000`).
		Scan(&ext, &crmID); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, id string }{{"external_id", ext}, {"crm_id", crmID}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				l, err := db.FindLead(ctx, tc.id)
				if err != nil || l.ExternalID != ext {
					b.Fatalf("find %s: %s, %v", tc.id, l.ExternalID, err)
				}
			}
			reportMS(b, start)
		})
	}
}

// BenchmarkFoldSources is the fold's price for the coarse spans
// (migration 007): the fold's statement over a fold interval's source
// deltas (20,000 rows over 2 minutes of 8 sources, 40 sub_ids, 4
// funnels and 10 countries), "coarse" as built (sqlFoldSources),
// "minutes" merging into source_stats alone as it did before, the two
// taking turns on one database. Only the statement is timed.
func BenchmarkFoldSources(b *testing.B) {
	db, _ := openTest(b, store.Options{})
	ctx := context.Background()
	sums := make([]string, len(sourceCounters))
	sets := make([]string, len(sourceCounters))
	for i, c := range sourceCounters {
		sums[i] = "sum(" + c + ")"
		sets[i] = c + " = source_stats." + c + " + excluded." + c
	}
	minutes := `WITH d AS (DELETE FROM source_deltas RETURNING *)
		INSERT INTO source_stats (field, bucket, value, ` + strings.Join(sourceCounters, ", ") + `)
		SELECT field, bucket, value, ` + strings.Join(sums, ", ") + ` FROM d GROUP BY field, bucket, value
		ON CONFLICT (field, bucket, value) DO UPDATE SET ` + strings.Join(sets, ", ")
	minute := time.Now().Truncate(time.Minute).UnixMilli()
	type variant struct {
		name string
		sql  string
		wall time.Duration
		n    int
	}
	vs := []*variant{{name: "coarse", sql: sqlFoldSources}, {name: "minutes", sql: minutes}}
	for b.Loop() {
		for _, v := range vs {
			if _, err := db.pool.Exec(ctx, `INSERT INTO source_deltas (field, bucket, value, accepted)
				SELECT f.field, CASE WHEN i % 3 = 0 THEN -1 ELSE $1::bigint + 60000 * (i % 2) END,
					f.field || '-' || (i % f.n), 1
				FROM generate_series(1, 5000) AS i,
					(VALUES ('source', 8), ('funnel', 4), ('sub_id', 40), ('country', 10)) AS f(field, n)`, minute); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if _, err := db.pool.Exec(ctx, v.sql); err != nil {
				b.Fatal(err)
			}
			v.wall += time.Since(start)
			v.n++
		}
	}
	for _, v := range vs {
		b.ReportMetric(float64(v.wall.Microseconds())/1000/float64(v.n), "ms/fold("+v.name+")")
	}
}
