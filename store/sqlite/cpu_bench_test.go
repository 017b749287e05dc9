//go:build unix

package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSaveCallbacksCPU measures the store's share of the listener's
// budget as CPU time per commit and per callback, one writer, at the batch
// sizes the group commit sees. On a shared 2-core machine CPU time moves
// far less than wall-clock rates do, so this is the figure to compare
// before and after a change to the callback path:
//
//	go test -run '^$' -bench SaveCallbacksCPU -count 3 ./store/
//
// "commit" is the floor every batch pays: BEGIN, a one-row write, COMMIT
// with its fsync. The batches' CPU includes building their events (about
// 2 µs each), as the listener's does.
func BenchmarkSaveCallbacksCPU(b *testing.B) {
	ctx := context.Background()
	events := func(tb testing.TB, from, n int) []crm.CallbackEvent {
		evs := make([]crm.CallbackEvent, n)
		for k := range evs {
			j := from + k
			raw := fmt.Sprintf(`{"internal_id":"crm-77-%d","external_id":"lead-%d","event":"status_changed","status":"interested","reason":null,"timestamp":1700000000,"extra":{"campaign":"launch","sub_id":"s-%d"}}`, j, j, j%97)
			ev, err := crm.ParseCallback([]byte(raw))
			if err != nil {
				tb.Fatal(err)
			}
			ev.ReceivedAt = time.Now()
			evs[k] = ev
		}
		return evs
	}
	measure := func(b *testing.B, perCommit int, op func(db *DB, i int)) {
		db := MustOpenPath(b, filepath.Join(b.TempDir(), "cpu.db"), store.Options{})
		start := processCPU(b)
		i := 0
		for b.Loop() {
			op(db, i)
			i++
		}
		cpu := (processCPU(b) - start).Microseconds()
		b.ReportMetric(float64(cpu)/float64(i), "cpu_µs/commit")
		if perCommit > 0 {
			b.ReportMetric(float64(cpu)/float64(i*perCommit), "cpu_µs/callback")
		}
	}
	b.Run("commit", func(b *testing.B) {
		measure(b, 0, func(db *DB, _ int) {
			tx, err := db.beginWrite(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, n) VALUES ('cpu_bench', 1)
				ON CONFLICT (name) DO UPDATE SET n = n + 1`); err != nil {
				b.Fatal(err)
			}
			if err := db.commit(ctx, tx); err != nil {
				b.Fatal(err)
			}
		})
	})
	for _, n := range []int{1, 10, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			measure(b, n, func(db *DB, i int) {
				evs := events(b, i*n, n)
				if _, err := db.SaveCallbacks(ctx, evs); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
