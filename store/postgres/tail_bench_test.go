package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// sqlSaveRefusalUnordered is SaveRefusal's statement as it was before
// refusalOrderLock (migration 008): the baseline the benchmark compares
// the order lock's cost with, in the same run.
const sqlSaveRefusalUnordered = `WITH ins AS (INSERT INTO refusals (at, remote_addr, http_status, code, detail, head)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)
	DELETE FROM refusals WHERE id <= (SELECT id FROM ins) - $7::bigint
		AND ($8::bigint < 0 OR id > (SELECT id FROM ins) - $7::bigint - $8::bigint)`

// BenchmarkTailSaveRefusal is a refusal flood (hostile traffic: every
// request refused) stored by c goroutines spread over one or two DBs on
// one database (one or two instances); op = one refusal. "ordered" is
// SaveRefusal, "unordered" the statement without the order lock; "sync"
// commits as configured (fsync on, the flush usually dominates), "async"
// with synchronous_commit off, which leaves the statement's own cost and
// the lock's contention. It reports refusals/s.
//
//	go test ./store/postgres -run '^$' -bench TailSaveRefusal -benchtime 5000x
func BenchmarkTailSaveRefusal(b *testing.B) {
	for _, commit := range []string{"sync", "async"} {
		for _, c := range []struct{ dbs, writers int }{{1, 1}, {1, 32}, {2, 32}} {
			for _, mode := range []string{"unordered", "ordered"} {
				b.Run(fmt.Sprintf("%s/x%d/c=%d/%s", commit, c.dbs, c.writers, mode), func(b *testing.B) {
					benchSaveRefusal(b, commit == "async", c.dbs, c.writers, mode == "ordered")
				})
			}
		}
	}
}

func benchSaveRefusal(b *testing.B, async bool, instances, writers int, ordered bool) {
	ctx := context.Background()
	u := storetest.Postgres(b)
	if async {
		execURL(b, u, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$`)
	}
	var dbs []*DB
	for range instances {
		db, err := Open(ctx, u, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	r := crm.Refusal{RemoteAddr: "203.0.113.7", HTTPStatus: 401, Code: "bad_signature",
		Detail: "signature does not match", Head: []byte(`{"internal_id":"x","event":"lead.contacted"}`)}
	save := func(db *DB) error { return db.SaveRefusal(ctx, r) }
	if !ordered {
		save = func(db *DB) error {
			_, err := db.pool.Exec(ctx, sqlSaveRefusalUnordered, ms(time.Now()), r.RemoteAddr, r.HTTPStatus, r.Code,
				r.Detail, r.Head, int64(db.opt.MaxRefusals), int64(2*refusalSweepEvery))
			return err
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := dbs[w%len(dbs)]
			for left.Add(-1) >= 0 {
				if err := save(db); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "refusals/s")
}
