package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// Issue #10's PostgreSQL budgets, the store's side (tools/perf-listener-pg.sh
// measures the listener from outside):
//
//	go test ./store/postgres -run '^$' -bench 'SaveCallbacksPG|ClaimPG' -benchtime 3s
//
// Both skip without LEADWATCH_TEST_POSTGRES (openTest).

// benchCallback is a parsed callback as the listener hands it over.
func benchCallback(tb testing.TB, internal, ext string, ts int64) crm.CallbackEvent {
	tb.Helper()
	raw := fmt.Sprintf(`{"internal_id":%q,"external_id":%q,"event":"lead.contacted","status":"contacted","timestamp":%d}`, internal, ext, ts)
	ev, err := crm.ParseCallback([]byte(raw))
	if err != nil {
		tb.Fatal(err)
	}
	ev.ReceivedAt = time.Now()
	ev.RawBody = []byte(raw)
	return ev
}

// BenchmarkSaveCallbacksPG stores callbacks in group commits of 32 (the
// listener's batching under 32 connections); op = one callback. "unlinked"
// names no lead (tools/cbload against an empty store), "linked" names
// leads by external id (each also sets the lead's CRM status). "x1" is
// one committer, as one `serve`; "x2" two committers on two DBs at once,
// as two instances on one database. It reports callbacks/s and the mean
// batch time.
func BenchmarkSaveCallbacksPG(b *testing.B) {
	const batch = 32
	for _, linked := range []bool{false, true} {
		for _, writers := range []int{1, 2} {
			name := fmt.Sprintf("unlinked/x%d", writers)
			if linked {
				name = fmt.Sprintf("linked/x%d", writers)
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				db, u := openTest(b, store.Options{})
				dbs := []*DB{db}
				for len(dbs) < writers {
					other, err := Open(ctx, u, store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { other.Close() })
					dbs = append(dbs, other)
				}
				if linked {
					ps := make([][]byte, 1000)
					for i := range ps {
						ps[i] = leadJSON(fmt.Sprint("SC-", i))
					}
					if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				var seq atomic.Int64
				var batches atomic.Int64
				var batchTime atomic.Int64 // ns summed over batches
				ops := b.N
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w, s := range dbs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						evs := make([]crm.CallbackEvent, 0, batch)
						mine := ops / writers
						if w == 0 {
							mine += ops % writers
						}
						for done := 0; done < mine; {
							evs = evs[:0]
							for range min(batch, mine-done) {
								i := seq.Add(1)
								ext := ""
								if linked {
									ext = fmt.Sprint("SC-", i%1000)
								}
								evs = append(evs, benchCallback(b, fmt.Sprint("crm-", i), ext, 1_700_000_000_000+i))
							}
							t := time.Now()
							fresh, err := s.SaveCallbacks(ctx, evs)
							if err != nil {
								b.Error(err)
								return
							}
							batchTime.Add(int64(time.Since(t)))
							batches.Add(1)
							for i, f := range fresh {
								if !f {
									b.Errorf("callback %d of a batch of unique ones is not fresh", i)
									return
								}
							}
							done += len(evs)
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				var stored int64
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM callbacks`).Scan(&stored); err != nil {
					b.Fatal(err)
				}
				if stored < int64(b.N) {
					b.Fatalf("%d callbacks stored, want at least %d", stored, b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "callbacks/s")
				if n := batches.Load(); n > 0 {
					b.ReportMetric(float64(batchTime.Load())/float64(n)/1e6, "ms/batch")
				}
			})
		}
	}
}

// BenchmarkClaimPG measures Claim alone with two dispatchers on two DBs
// (as two instances): each claims 32 leads at a time until the queue is
// empty, nothing recorded; op = one lead claimed. The leads are enqueued
// before the timer starts. It checks no lead was claimed twice.
//
//	go test ./store/postgres -run '^$' -bench ClaimPG -benchtime 20000x
func BenchmarkClaimPG(b *testing.B) {
	ctx := context.Background()
	db, u := openTest(b, store.Options{})
	other, err := Open(ctx, u, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	for done := 0; done < b.N; done += 1000 {
		ps := make([][]byte, min(1000, b.N-done))
		for i := range ps {
			ps[i] = leadJSON(fmt.Sprintf("cl-%d", done+i))
		}
		if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = make(map[int64]bool, b.N)
		dup  int
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w, s := range []*DB{db, other} {
		owner := fmt.Sprint("dispatcher-", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				leads, err := s.Claim(ctx, owner, time.Now(), time.Hour, 32)
				if err != nil {
					b.Error(err)
					return
				}
				if len(leads) == 0 {
					return
				}
				mu.Lock()
				for _, l := range leads {
					if seen[l.ID] {
						dup++
					}
					seen[l.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if dup > 0 || len(seen) != b.N {
		b.Fatalf("%d leads claimed (%d twice), want %d once each", len(seen), dup, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "leads/s")
}

// BenchmarkClaimRecordPG is BenchmarkCoreClaimRecord (two dispatchers,
// claims of 32, 4 concurrent Records each) with the server's commit mode
// varied, to tell the WAL flush of each Record's commit from the rest:
// "sync" is the default (synchronous_commit on), "async" sets
// synchronous_commit=off on the connections (no flush wait; not a
// setting to run with, a measurement). op = one lead; it reports leads/s.
//
//	go test ./store/postgres -run '^$' -bench ClaimRecordPG -benchtime 5000x
func BenchmarkClaimRecordPG(b *testing.B) {
	for _, mode := range []string{"sync", "async"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			u := storetest.Postgres(b)
			if mode == "async" {
				u += map[bool]string{true: "&", false: "?"}[strings.Contains(u, "?")] + "synchronous_commit=off"
			}
			var dbs []*DB
			for range 2 {
				db, err := Open(ctx, u, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				dbs = append(dbs, db)
			}
			for done := 0; done < b.N; done += 1000 {
				ps := make([][]byte, min(1000, b.N-done))
				for i := range ps {
					ps[i] = leadJSON(fmt.Sprintf("crp-%d", done+i))
				}
				if _, _, err := dbs[0].EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			var total atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w, s := range dbs {
				owner := fmt.Sprint("dispatcher-", w)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						leads, err := s.Claim(ctx, owner, time.Now(), time.Minute, 32)
						if err != nil || len(leads) == 0 {
							if err != nil {
								b.Error(err)
							}
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
			elapsed := time.Since(start)
			if int(total.Load()) != b.N {
				b.Fatalf("%d leads done, want %d", total.Load(), b.N)
			}
			var accepted int
			if err := dbs[0].pool.QueryRow(ctx, `SELECT count(*) FROM leads WHERE state = 'accepted'`).Scan(&accepted); err != nil || accepted != b.N {
				b.Fatalf("%d leads accepted, want %d: %v", accepted, b.N, err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "leads/s")
		})
	}
}
