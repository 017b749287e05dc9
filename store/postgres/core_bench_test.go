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
)

// BenchmarkCoreEnqueueBatch measures batched inserts (EnqueueBatch of 100
// leads, 8 writers at once) with the counting triggers of migration 001
// (deltas), with no triggers at all, and with a row trigger updating one
// shared counter row per state (store/sqlite's scheme, the hot row the
// deltas avoid). It reports rows/s.
//
//	go test ./store/postgres -run '^$' -bench CoreEnqueueBatch -benchtime 20x
func BenchmarkCoreEnqueueBatch(b *testing.B) {
	for _, mode := range []string{"deltas", "none", "hot_row"} {
		b.Run(mode, func(b *testing.B) {
			db, u := openTest(b, store.Options{})
			switch mode {
			case "none":
				execURL(b, u, `ALTER TABLE leads DISABLE TRIGGER USER`)
			case "hot_row":
				execURL(b, u, `ALTER TABLE leads DISABLE TRIGGER USER;
					CREATE TABLE hot_counts (state TEXT PRIMARY KEY, n BIGINT NOT NULL);
					INSERT INTO hot_counts VALUES ('queued', 0);
					CREATE FUNCTION hot_count() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN UPDATE hot_counts SET n = n + 1 WHERE state = NEW.state; RETURN NULL; END $$;
					CREATE TRIGGER hot_count AFTER INSERT ON leads FOR EACH ROW EXECUTE FUNCTION hot_count()`)
			}
			const writers, batch = 8, 100
			var seq atomic.Int64
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ps := make([][]byte, batch)
						for i := range ps {
							ps[i] = leadJSON(fmt.Sprintf("b-%d", seq.Add(1)))
						}
						if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*writers*batch)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

// BenchmarkCoreInsertSQL is BenchmarkCoreEnqueueBatch without the Go side
// (no crm.CheckLead, no scanning): 8 writers each inserting 500 rows per
// statement, so the triggers' cost is not hidden behind payload checks.
//
//	go test ./store/postgres -run '^$' -bench CoreInsertSQL -benchtime 20x
func BenchmarkCoreInsertSQL(b *testing.B) {
	for _, mode := range []string{"deltas", "none", "hot_row"} {
		b.Run(mode, func(b *testing.B) {
			db, u := openTest(b, store.Options{})
			switch mode {
			case "none":
				execURL(b, u, `ALTER TABLE leads DISABLE TRIGGER USER`)
			case "hot_row":
				execURL(b, u, `ALTER TABLE leads DISABLE TRIGGER USER;
					CREATE TABLE hot_counts (state TEXT PRIMARY KEY, n BIGINT NOT NULL);
					INSERT INTO hot_counts VALUES ('queued', 0);
					CREATE FUNCTION hot_count() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN UPDATE hot_counts SET n = n + 1 WHERE state = NEW.state; RETURN NULL; END $$;
					CREATE TRIGGER hot_count AFTER INSERT ON leads FOR EACH ROW EXECUTE FUNCTION hot_count()`)
			}
			const writers, batch = 8, 500
			var seq atomic.Int64
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						first := seq.Add(batch) - batch
						_, err := db.pool.Exec(ctx, `INSERT INTO leads
							(external_id, payload, idempotency_key, state, next_attempt_at, created_at, updated_at)
							SELECT 's-' || g, '{}', 'k', 'queued', 0, 0, 0 FROM generate_series($1::bigint, $2::bigint) g`,
							first, first+batch-1)
						if err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*writers*batch)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

// BenchmarkCoreClaimRecord measures the sender's store path with two
// dispatchers on two DBs (as two instances): each claims 32 leads at a
// time and records every one accepted with 4 concurrent Records. It
// reports leads/s (claimed and recorded).
//
//	go test ./store/postgres -run '^$' -bench CoreClaimRecord -benchtime 5000x
func BenchmarkCoreClaimRecord(b *testing.B) {
	db, u := openTest(b, store.Options{})
	other, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	for done := 0; done < b.N; done += 1000 {
		ps := make([][]byte, min(1000, b.N-done))
		for i := range ps {
			ps[i] = leadJSON(fmt.Sprintf("cr-%d", done+i))
		}
		if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var total atomic.Int64
	var wg sync.WaitGroup
	for w, s := range []*DB{db, other} {
		owner := fmt.Sprint("dispatcher-", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				leads, err := s.Claim(ctx, owner, time.Now(), time.Minute, 32)
				if err != nil {
					b.Error(err)
					return
				}
				if len(leads) == 0 {
					return
				}
				sem := make(chan struct{}, 4)
				var rw sync.WaitGroup
				for _, l := range leads {
					sem <- struct{}{}
					rw.Add(1)
					go func() {
						defer rw.Done()
						defer func() { <-sem }()
						if err := s.Record(ctx, owner, crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID,
							Outcome: crm.StateAccepted, HTTPStatus: 201}, CRMID: "crm-" + l.ExternalID}); err != nil {
							b.Error(err)
						}
					}()
				}
				rw.Wait()
				total.Add(int64(len(leads)))
			}
		}()
	}
	wg.Wait()
	if int(total.Load()) != b.N {
		b.Fatalf("%d leads done, want %d", total.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "leads/s")
}
