package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/store"
)

// BenchmarkCheckFile is the file identity check every commit pays (one
// stat of the path); op = one check.
func BenchmarkCheckFile(b *testing.B) {
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	for b.Loop() {
		if err := db.checkFile(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHealthCached is what a /healthz request costs while the probe
// is fresh; op = one Health call, 32 callers at once.
func BenchmarkHealthCached(b *testing.B) {
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{ProbeMaxAge: time.Hour})
	if code, err := db.Health(context.Background()); code != "" {
		b.Fatal(code, err)
	}
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if code, err := db.Health(ctx); code != "" {
				b.Error(code, err)
				return
			}
		}
	})
}

// BenchmarkHealthProbe is one write probe (a committed one-row write with
// its fsync), what a flood of /healthz costs once every ProbeMaxAge.
func BenchmarkHealthProbe(b *testing.B) {
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ctx := context.Background()
	for b.Loop() {
		if err := db.probeWrite(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPruneChunk is one Prune transaction: the write lock held while
// pruneChunk callbacks lose their raw bodies; op = one chunk. It bounds how
// long a listener's commit waits behind a running prune.
func BenchmarkPruneChunk(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err := db.Fill(ctx, 1000, pruneChunk); err != nil {
		b.Fatal(err)
	}
	future := ms(time.Now().Add(time.Hour))
	for b.Loop() {
		b.StopTimer()
		if _, err := db.writer.ExecContext(ctx, `UPDATE callbacks SET raw_body = randomblob(300)`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, _, err := db.pruneChunk(ctx, pruneSteps()[0], 0, pruneChunk, future)
		if err != nil || n != pruneChunk {
			b.Fatalf("pruned %d, %v", n, err)
		}
	}
}

// BenchmarkPrune is a whole Prune of 100,000 callbacks' raw bodies, the
// chunks one after another; op = one Prune.
func BenchmarkPrune(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	const n = 100_000
	if err := db.Fill(ctx, 1000, n); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if _, err := db.writer.ExecContext(ctx, `UPDATE callbacks SET raw_body = randomblob(300)`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := db.Prune(ctx, time.Now().Add(time.Hour))
		if err != nil || st.RawBodies != n {
			b.Fatalf("pruned %+v, %v", st, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
