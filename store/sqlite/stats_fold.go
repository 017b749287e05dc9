package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The report's deltas (migration 007): stats_deltas holds, per change to
// a lead's counted columns, its group (minute and source fields) and the
// contribution it had (was) and has (now), each packed in one integer:
//
//	bits 0-2  state: 0 none, 1 accepted, 2 duplicate, 3 rejected,
//	          4 validation_error, 5 failed (statsCounters' first five)
//	bits 3-7  0 without a first status, else 1 + its latency bucket
//	bit 8     ftd
//
// The triggers pack; statsDecode unpacks, for the fold and for Report's
// unfolded rows.

// Masks and shifts of the packed contribution.
const (
	statsStateMask  = 7
	statsStatusMask = 31 << 3
	statsStatusStep = 8 // the status field's 1
	statsFTDShift   = 8
)

// statsDecode is the counters (in statsCounters' order) a packed
// contribution stands for.
func statsDecode(c int64) (out [statsColumns]int64) {
	if st := c & statsStateMask; st >= 1 && st <= 5 {
		out[st-1] = 1
	}
	if s := (c & statsStatusMask) / statsStatusStep; s > 0 {
		out[5] = 1
		out[7+s-1] = 1
	}
	out[6] = c >> statsFTDShift & 1
	return out
}

// statsPair is a group of Report's unfolded deltas: a value, a packed
// contribution pair and how many rows had it.
type statsPair struct {
	value    string
	was, now int64
	n        int
}

func scanStatsPair(s scanner) (statsPair, error) {
	var p statsPair
	err := s.Scan(&p.value, &p.was, &p.now, &p.n)
	return p, err
}

// statsPairRows unpacks pairs into one report row per value (not in any
// order, and with Sent summed).
func statsPairRows(pairs []statsPair) []crm.ReportRow {
	at := map[string]int{}
	var out []crm.ReportRow
	for _, p := range pairs {
		i, ok := at[p.value]
		if !ok {
			i = len(out)
			at[p.value] = i
			out = append(out, crm.ReportRow{Value: p.value})
		}
		c, old := statsDecode(p.now), statsDecode(p.was)
		d := func(col int) int { return int(c[col]-old[col]) * p.n }
		r := &out[i]
		r.Accepted += d(0)
		r.Duplicate += d(1)
		r.Rejected += d(2)
		r.ValidationError += d(3)
		r.Failed += d(4)
		r.WithStatus += d(5)
		r.FTD += d(6)
		for b := range r.FirstStatus {
			r.FirstStatus[b] += d(7 + b)
		}
		r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
	}
	return out
}

// statsFoldInterval is how often a writable handle folds stats_deltas
// into source_stats: at the sender's few thousand leads a second, Report
// then adds at most a few thousand unfolded rows, about a millisecond,
// and the fold is a handful of commits a second, each upserting a row per
// group touched instead of 8 per lead changed.
const statsFoldInterval = 250 * time.Millisecond

// foldLoop folds the report's deltas every interval until Close. A
// failed fold is tried again at the next tick: the deltas stay until a
// fold commits, and Report counts them meanwhile. A failure is logged
// when it starts or changes, not four times a second while the disk
// stays full.
func (db *DB) foldLoop(interval time.Duration) {
	defer db.watches.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last string
	for {
		select {
		case <-db.closed:
			return
		case <-t.C:
		}
		_, err := db.foldStats(db.bg)
		switch {
		case db.bg.Err() != nil:
			return
		case err == nil:
			last = ""
		case err.Error() != last:
			last = err.Error()
			db.log.Warn("store: fold the report's deltas", "path", db.path, "err", err)
		}
	}
}

// foldStats merges the committed rows of stats_deltas into source_stats
// (and their minutes into source_stats_coarse, migration 011) and
// deletes them, in one write transaction: it reads the highest id,
// adds the rows up to it (summed per source_stats row first, so a busy
// group costs one upsert per fold, not one per lead) and deletes the
// same rows. Handles sharing the file fold one after the other (SQLite's
// write lock; the write transaction starts with it), so a second fold
// finds nothing left; readers see the rows either unfolded or folded,
// never both. It returns how many delta rows it folded; without any it
// does not take the write lock.
func (db *DB) foldStats(ctx context.Context) (int, error) {
	var pending bool
	if err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM stats_deltas)`).Scan(&pending); err != nil {
		return 0, fmt.Errorf("fold report: %w", mapErr(ctx, err))
	}
	if !pending {
		return 0, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("fold report: %w", err)
	}
	defer tx.Rollback()
	n, err := foldStatsTx(ctx, tx)
	if err != nil {
		return 0, fmt.Errorf("fold report: %w", mapErr(ctx, err))
	}
	if n == 0 {
		return 0, nil // another handle folded them first
	}
	// Not db.commit: the fold changes no answer, so watchers are not told.
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("fold report: %w", mapErr(ctx, err))
	}
	return n, nil
}

// foldStatsTx is foldStats' work inside tx.
func foldStatsTx(ctx context.Context, tx *sql.Tx) (int, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM stats_deltas`).Scan(&last); err != nil {
		return 0, err
	}
	if last == 0 {
		return 0, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT minute, source, funnel, sub_id, country, was, now
		FROM stats_deltas WHERE id <= ?`, last)
	if err != nil {
		return 0, err
	}
	acc := statsAcc{}
	n := 0
	for rows.Next() {
		var (
			minute, was, now               int64
			source, funnel, subID, country string
		)
		if err := rows.Scan(&minute, &source, &funnel, &subID, &country, &was, &now); err != nil {
			rows.Close()
			return 0, err
		}
		c, old := statsDecode(now), statsDecode(was)
		for i := range c {
			c[i] -= old[i]
		}
		acc.addGroup(minute, source, funnel, subID, country, &c)
		n++
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	rows.Close()
	if err := acc.flush(ctx, tx); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM stats_deltas WHERE id <= ?`, last); err != nil {
		return 0, err
	}
	return n, nil
}
