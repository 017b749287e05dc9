package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
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

// BenchmarkReport reads the Sources view: by source and by sub_id (40
// values, the most groups), over the whole store and the last hour.
func BenchmarkReport(b *testing.B) {
	db := benchFilled(b)
	ctx := context.Background()
	for _, by := range []string{crm.GroupSource, crm.GroupSubID} {
		for _, window := range []string{"all", "hour"} {
			b.Run(by+"/"+window, func(b *testing.B) {
				q := crm.ReportQuery{By: by}
				if window == "hour" {
					q.Since = time.Now().Add(-time.Hour)
				}
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					rows, err := db.Report(ctx, q)
					if err != nil || len(rows) == 0 {
						b.Fatalf("report: %d rows, %v", len(rows), err)
					}
				}
				reportMS(b, start)
			})
		}
	}
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
