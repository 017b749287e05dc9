package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Folding the counter deltas (migration 001): the committed delta rows of
// count_deltas and throughput_deltas are replaced by their sums, so reads
// stay short however much was written.

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
	b.Queue(`WITH d AS (DELETE FROM throughput_deltas RETURNING sec, sent, callbacks)
		INSERT INTO throughput_deltas (sec, sent, callbacks)
		SELECT sec, sum(sent), sum(callbacks) FROM d GROUP BY sec`)
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
