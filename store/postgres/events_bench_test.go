package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
)

// BenchmarkEventsSaveCallbacks is the listener's hot path: 32 goroutines
// each saving batches of 1 or 16 fresh callbacks (half naming one of 1,000
// leads by external id) on PostgreSQL and, for comparison on the same
// machine, on SQLite. It reports events/s.
//
//	go test ./store/postgres -run '^$' -bench EventsSaveCallbacks -benchtime 3s
func BenchmarkEventsSaveCallbacks(b *testing.B) {
	for _, backend := range []string{"postgres", "postgres-no-notify", "sqlite"} {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/batch=%d/c=32", backend, batch), func(b *testing.B) {
				var s store.Store
				switch backend {
				case "postgres":
					s, _ = openTest(b, store.Options{})
				case "postgres-no-notify":
					// What the NOTIFY trigger costs: the commit of a
					// notifying transaction takes a global queue lock.
					var u string
					s, u = openTest(b, store.Options{})
					execURL(b, u, `ALTER TABLE callbacks DISABLE TRIGGER callbacks_notify`)
				default:
					db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { db.Close() })
					s = db
				}
				ctx := context.Background()
				ps := make([][]byte, 1000)
				for i := range ps {
					ps[i] = leadJSON(fmt.Sprintf("SC-%d", i))
				}
				if _, _, err := s.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
					b.Fatal(err)
				}
				const writers = 32
				var seq atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				per := (b.N + writers - 1) / writers
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						evs := make([]crm.CallbackEvent, batch)
						for done := 0; done < per; done += batch {
							for j := range evs {
								i := seq.Add(1)
								ext := ""
								if i%2 == 0 {
									ext = fmt.Sprintf("SC-%d", i%1000)
								}
								evs[j] = crm.CallbackEvent{InternalID: fmt.Sprintf("crm-%d", i), ExternalID: ext,
									Event: "lead.contacted", Status: "contacted", Timestamp: fmt.Sprint(1_700_000_000 + i),
									RawBody: []byte(`{"internal_id":"x","event":"lead.contacted"}`), ReceivedAt: time.Now()}
							}
							if _, err := s.SaveCallbacks(ctx, evs); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(seq.Load())/time.Since(start).Seconds(), "events/s")
			})
		}
	}
}
