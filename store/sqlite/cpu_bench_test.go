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
		return parsedEvents(tb, from, n, func(j int) string {
			return fmt.Sprintf(`{"internal_id":"crm-77-%d","external_id":"lead-%d","event":"status_changed","status":"interested","reason":null,"timestamp":1700000000,"extra":{"campaign":"launch","sub_id":"s-%d"}}`, j, j, j%97)
		})
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

// BenchmarkSaveCallbacksPages measures what one callback costs the store
// once the dedup index is larger than a commit: 50,000 events stored,
// then batches of 21 (the listener's measured events per commit at 32
// connections) whose internal ids are spread over a million leads, as
// tools/cbload and a real CRM send them, and that match no lead.
//
// "schema" is the store as migrated. "by_internal_id" is the store's
// indexes before migration 012, for comparison in the same run: the
// unique index led with internal_id, so each event landed on a leaf page
// of callbacks_dedup of its own, and every such page cost a WAL frame at
// the commit and a write at the next checkpoint; and callbacks_lead had
// an entry for unmatched callbacks too. Since 012 the unique index leads
// with the timestamp and a batch's keys are neighbours:
//
//	go test -run '^$' -bench SaveCallbacksPages -benchtime 1500x -count 3 ./store/sqlite/
func BenchmarkSaveCallbacksPages(b *testing.B) {
	ctx := context.Background()
	const (
		stored = 50_000
		batch  = 21
	)
	events := func(tb testing.TB, from, n int) []crm.CallbackEvent {
		return parsedEvents(tb, from, n, func(j int) string {
			return fmt.Sprintf(`{"internal_id":"crm-%d","event":"lead.contacted","status":"contacted","timestamp":%d}`,
				1+(j*7919)%1_000_003, 1_700_000_000_000+j)
		})
	}
	for _, v := range []struct {
		name   string
		schema []string
	}{
		{"schema", nil},
		{"by_internal_id", []string{`DROP INDEX callbacks_dedup`, `DROP INDEX callbacks_unlinked`, `DROP INDEX callbacks_lead`,
			`CREATE UNIQUE INDEX callbacks_dedup ON callbacks (internal_id, event, timestamp)`,
			`CREATE INDEX callbacks_lead ON callbacks (lead_id, id)`}},
	} {
		b.Run(v.name, func(b *testing.B) {
			db := MustOpenPath(b, filepath.Join(b.TempDir(), "pages.db"), store.Options{})
			for _, q := range v.schema {
				if _, err := db.writer.ExecContext(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			for i := 0; i < stored; i += 500 {
				if _, err := db.SaveCallbacks(ctx, events(b, i, 500)); err != nil {
					b.Fatal(err)
				}
			}
			start := processCPU(b)
			i := 0
			for b.Loop() {
				if _, err := db.SaveCallbacks(ctx, events(b, stored+i*batch, batch)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64((processCPU(b)-start).Microseconds())/float64(i*batch), "cpu_µs/callback")
		})
	}
}

// parsedEvents parses n callbacks, body(from) to body(from+n-1), received
// now, as the listener hands them to the store.
func parsedEvents(tb testing.TB, from, n int, body func(j int) string) []crm.CallbackEvent {
	evs := make([]crm.CallbackEvent, n)
	for k := range evs {
		ev, err := crm.ParseCallback([]byte(body(from + k)))
		if err != nil {
			tb.Fatal(err)
		}
		ev.ReceivedAt = time.Now()
		evs[k] = ev
	}
	return evs
}
