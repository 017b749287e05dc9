package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Folding the counter deltas (migrations 001 and 003): the committed delta
// rows of count_deltas are replaced by their sums, those of
// throughput_deltas merged into throughput_seconds and throughput_minutes,
// and those of source_deltas into source_stats (and, per 10 minutes, hour
// and day, source_stats_coarse: migration 007), so reads stay short
// however much was written.

// foldLock is the pg_try_advisory_xact_lock key of a fold: one instance
// folds at a time, the others skip (their fold would find little left).
const foldLock int64 = 0x6c77_666f_6c64 // "lw" "fold"

// foldInterval is how often the background ticker folds.
const foldInterval = 5 * time.Second

// foldThreshold is how many delta rows Counts tolerates before it folds
// first: summing a few thousand rows costs well under a millisecond.
const foldThreshold = 2000

// foldLoop folds every foldInterval until Close.
func (db *DB) foldLoop() {
	defer db.bgDone.Done()
	t := time.NewTicker(foldInterval)
	defer t.Stop()
	for {
		select {
		case <-db.bg.Done():
			return
		case <-t.C:
		}
		if err := db.fold(db.bg); err != nil && db.bg.Err() == nil {
			db.log.Warn("store: fold counter deltas", "db", db.location, "err", err)
		}
	}
}

// fold replaces the committed deltas with their sums in one transaction,
// unless another connection is folding right now. Rows committed by others
// after this statement's snapshot are not deleted (nor summed): they stay
// for the next fold.
func (db *DB) fold(ctx context.Context) error {
	if db.readOnly {
		return nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer rollback(tx)
	var got bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, foldLock).Scan(&got); err != nil {
		return mapErr(ctx, err)
	}
	if !got {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`WITH d AS (DELETE FROM count_deltas RETURNING name, n)
		INSERT INTO count_deltas (name, n) SELECT name, sum(n) FROM d GROUP BY name HAVING sum(n) <> 0`)
	// The per-second deltas are merged into throughput_seconds and, by the
	// minute, throughput_minutes (migration 003): only the seconds that
	// got traffic since the last fold are written.
	b.Queue(`WITH d AS (DELETE FROM throughput_deltas RETURNING *),
		s AS (INSERT INTO throughput_seconds AS t (sec, sent, callbacks, answered, accepted, failed, refused)
			SELECT sec, sum(sent), sum(callbacks), sum(answered), sum(accepted), sum(failed), sum(refused)
			FROM d GROUP BY sec
			ON CONFLICT (sec) DO UPDATE SET sent = t.sent + excluded.sent, callbacks = t.callbacks + excluded.callbacks,
				answered = t.answered + excluded.answered, accepted = t.accepted + excluded.accepted,
				failed = t.failed + excluded.failed, refused = t.refused + excluded.refused)
		INSERT INTO throughput_minutes AS t (minute, sent, callbacks, answered, accepted, failed, refused)
		SELECT sec / 60, sum(sent), sum(callbacks), sum(answered), sum(accepted), sum(failed), sum(refused)
		FROM d GROUP BY sec / 60
		ON CONFLICT (minute) DO UPDATE SET sent = t.sent + excluded.sent, callbacks = t.callbacks + excluded.callbacks,
			answered = t.answered + excluded.answered, accepted = t.accepted + excluded.accepted,
			failed = t.failed + excluded.failed, refused = t.refused + excluded.refused`)
	// The report's deltas are merged into source_stats rather than
	// re-inserted: only the fold (under foldLock) writes source_stats, so
	// its upsert waits on no writer, and Report reads one row per group
	// plus the few deltas appended since.
	b.Queue(sqlFoldSources)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("fold counters: %w", mapErr(ctx, err))
	}
	return db.commit(ctx, tx)
}

// foldIfLarge folds when count_deltas holds more than foldThreshold rows
// (counted only up to just past the threshold).
func (db *DB) foldIfLarge(ctx context.Context) error {
	if db.readOnly {
		return nil
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM count_deltas LIMIT $1) s`,
		foldThreshold+1).Scan(&n); err != nil {
		return mapErr(ctx, err)
	}
	if n <= foldThreshold {
		return nil
	}
	return db.fold(ctx)
}

// sourceCounters are the counter columns of source_stats and source_deltas
// (migration 003), in the order Report scans them.
var sourceCounters = func() []string {
	cols := []string{"accepted", "duplicate", "rejected", "validation_error", "failed", "with_status", "ftd"}
	for i := range crm.LatencyBuckets {
		cols = append(cols, "h"+strconv.Itoa(i))
	}
	return cols
}()

// sqlFoldSources moves the committed source deltas into source_stats,
// summed per group once (m), and those sums into source_stats_coarse's
// spans (migration 007, store.ReportSpans). The sums are of ints: the server
// adds BIGINTs in numeric, several times slower, and one fold's deltas
// never near 2^31 leads.
var sqlFoldSources = func() string {
	sums := make([]string, len(sourceCounters))
	coarseSums := make([]string, len(sourceCounters))
	sets := make([]string, len(sourceCounters))
	coarseSets := make([]string, len(sourceCounters))
	for i, c := range sourceCounters {
		sums[i] = "sum(" + c + "::int) AS " + c
		coarseSums[i] = "sum(" + c + "::int)"
		sets[i] = c + " = source_stats." + c + " + excluded." + c
		coarseSets[i] = c + " = c." + c + " + excluded." + c
	}
	spans := make([]string, len(store.ReportSpans))
	for i, sp := range store.ReportSpans {
		spans[i] = "(" + strconv.FormatInt(sp, 10) + "::bigint)"
	}
	cols := strings.Join(sourceCounters, ", ")
	return `WITH d AS (DELETE FROM source_deltas RETURNING *),
		m AS (SELECT field, bucket, value, ` + strings.Join(sums, ", ") + ` FROM d GROUP BY field, bucket, value),
		s AS (INSERT INTO source_stats (field, bucket, value, ` + cols + `)
			SELECT field, bucket, value, ` + cols + ` FROM m
			ON CONFLICT (field, bucket, value) DO UPDATE SET ` + strings.Join(sets, ", ") + `)
		INSERT INTO source_stats_coarse AS c (field, span, bucket, value, ` + cols + `)
		SELECT field, sp.span, bucket - bucket % sp.span, value, ` + strings.Join(coarseSums, ", ") + `
		FROM m CROSS JOIN (VALUES ` + strings.Join(spans, ", ") + `) AS sp(span) WHERE bucket >= 0
		GROUP BY field, sp.span, bucket - bucket % sp.span, value
		ON CONFLICT (field, span, bucket, value) DO UPDATE SET ` + strings.Join(coarseSets, ", ")
}()
