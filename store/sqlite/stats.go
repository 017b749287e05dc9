package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The Sources report's aggregates (migration 006): source_stats holds, per
// group field, minute of creation (and -1 for all time) and value, the
// sums of what the leads contribute by their current columns. Triggers on
// leads keep it in the transaction of every change; Fill and the
// migration add many leads at once with statsAcc instead.

// statsCounters are source_stats' counter columns, in the order Report
// scans them.
const statsCounters = `accepted, duplicate, rejected, validation_error, failed, with_status, ftd,
	h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17`

// statsAcc adds up lead contributions in memory for Fill and the
// migration of existing leads, which write many leads at once: the sums
// the stats_delta trigger adds one lead at a time, upserted once per key
// (a grouped statement in SQL took seconds per 50,000 leads).
type statsAcc map[statsKey]*[statsColumns]int64

// statsKey is a source_stats row's key.
type statsKey struct {
	field, value string
	bucket       int64
}

// statsColumns is how many counters a source_stats row has (statsCounters).
const statsColumns = 7 + crm.LatencyBuckets

// statsLead is what a lead's contribution depends on.
type statsLead struct {
	created                        int64
	source, funnel, subID, country string
	state                          crm.State
	accepted, first, ftd           sql.NullInt64
}

// add adds l's contribution, as the stats_delta trigger computes it.
func (a statsAcc) add(l statsLead) {
	var c [statsColumns]int64
	switch l.state {
	case crm.StateAccepted:
		c[0] = 1
	case crm.StateDuplicate:
		c[1] = 1
	case crm.StateRejected:
		c[2] = 1
	case crm.StateValidationError:
		c[3] = 1
	case crm.StateFailed:
		c[4] = 1
	}
	if l.first.Valid {
		c[5] = 1
		b := 0
		if l.accepted.Valid {
			b = crm.LatencyBucket(time.Duration(l.first.Int64-l.accepted.Int64) * time.Millisecond)
		}
		c[7+b] = 1
	}
	if l.ftd.Valid {
		c[6] = 1
	}
	if c == ([statsColumns]int64{}) {
		return
	}
	minute := l.created / 60000 * 60000
	for _, fv := range [...][2]string{{crm.GroupSource, l.source}, {crm.GroupFunnel, l.funnel},
		{crm.GroupSubID, l.subID}, {crm.GroupCountry, l.country}} {
		for _, b := range [...]int64{-1, minute} {
			k := statsKey{fv[0], fv[1], b}
			sums := a[k]
			if sums == nil {
				sums = new([statsColumns]int64)
				a[k] = sums
			}
			for i, n := range c {
				sums[i] += n
			}
		}
	}
}

// flush upserts the sums into source_stats and empties a.
func (a statsAcc) flush(ctx context.Context, tx *sql.Tx) error {
	if len(a) == 0 {
		return nil
	}
	cols := strings.Split(statsCounters, ",")
	var set []string
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
		set = append(set, cols[i]+" = "+cols[i]+" + excluded."+cols[i])
	}
	up, err := tx.PrepareContext(ctx, `INSERT INTO source_stats (field, value, bucket, `+strings.Join(cols, ", ")+`)
		VALUES (?, ?, ?`+strings.Repeat(", ?", len(cols))+`)
		ON CONFLICT (field, bucket, value) DO UPDATE SET `+strings.Join(set, ", "))
	if err != nil {
		return err
	}
	defer up.Close()
	args := make([]any, 3+statsColumns)
	for k, sums := range a {
		args[0], args[1], args[2] = k.field, k.value, k.bucket
		for i, n := range sums {
			args[3+i] = n
		}
		if _, err := up.ExecContext(ctx, args...); err != nil {
			return err
		}
		delete(a, k)
	}
	return nil
}

// addStoredStats adds every lead of the store to source_stats (migration
// 006: the leads written before it), reading them in id order.
func addStoredStats(ctx context.Context, tx *sql.Tx) error {
	acc := statsAcc{}
	var after int64
	for {
		rows, err := tx.QueryContext(ctx, `SELECT id, created_at, source, funnel, sub_id, country, state,
				accepted_at, first_status_at, ftd_at
			FROM leads WHERE id > ? ORDER BY id LIMIT 10000`, after)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var (
				l     statsLead
				state string
			)
			if err := rows.Scan(&after, &l.created, &l.source, &l.funnel, &l.subID, &l.country, &state,
				&l.accepted, &l.first, &l.ftd); err != nil {
				rows.Close()
				return err
			}
			l.state = crm.State(state)
			acc.add(l)
			n++
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if n == 0 {
			return acc.flush(ctx, tx)
		}
	}
}

// migrationFixups are the Go steps of migrations, run after the
// migration's SQL in its transaction.
var migrationFixups = map[int]func(ctx context.Context, tx *sql.Tx) error{
	5: cutGroupValues,
	6: addStoredStats,
}

// cutGroupValues cuts the source fields migration 005 read from the
// payloads to crm.MaxGroupValue bytes, at a UTF-8 boundary, as
// crm.CutGroupValue does for new leads: SQLite's substr counts
// characters, not bytes. Few rows have such values; finding them is one
// pass over the table.
func cutGroupValues(ctx context.Context, tx *sql.Tx) error {
	for _, col := range []string{"source", "funnel", "sub_id", "country"} {
		rows, err := tx.QueryContext(ctx, `SELECT id, `+col+` FROM leads WHERE length(CAST(`+col+` AS BLOB)) > ?`, crm.MaxGroupValue)
		if err != nil {
			return err
		}
		type long struct {
			id int64
			v  string
		}
		ls, err := collect(rows, func(s scanner) (long, error) {
			var l long
			err := s.Scan(&l.id, &l.v)
			return l, err
		})
		if err != nil {
			return err
		}
		for _, l := range ls {
			if _, err := tx.ExecContext(ctx, `UPDATE leads SET `+col+` = ? WHERE id = ?`, crm.CutGroupValue(l.v), l.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// Report implements store.Store: the Sources view's rows, summed from
// source_stats (one range of its primary key: a field's all-time rows,
// or its minutes since q.Since truncated to the minute), never from the
// leads. Rows whose counters are all zero are left out; the order is
// Sent descending, then Value.
func (db *DB) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	if !crm.ValidGroup(q.By) {
		return nil, fmt.Errorf("report: cannot group by %q; use one of %s", q.By, strings.Join(crm.GroupFields, ", "))
	}
	var sums []string
	for _, c := range strings.Split(statsCounters, ",") {
		sums = append(sums, "SUM("+strings.TrimSpace(c)+")")
	}
	query := `SELECT value, ` + strings.Join(sums, ", ") + ` FROM source_stats WHERE field = ? AND bucket = -1 GROUP BY value`
	args := []any{q.By}
	if !q.Since.IsZero() {
		query = `SELECT value, ` + strings.Join(sums, ", ") + ` FROM source_stats WHERE field = ? AND bucket >= ? GROUP BY value`
		args = append(args, ms(q.Since.Truncate(time.Minute)))
	}
	rows, err := queryAll(ctx, db.reader, scanReportRow, query, args...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out := make([]crm.ReportRow, 0, len(rows))
	for _, r := range rows {
		if !reportZero(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Sent != out[j].Sent {
			return out[i].Sent > out[j].Sent
		}
		return out[i].Value < out[j].Value
	})
	return out, nil
}

// reportZero reports whether every counter of r is zero: a group whose
// leads all left the counted states (resubmitted, say) keeps its rows.
func reportZero(r crm.ReportRow) bool {
	return r == crm.ReportRow{Value: r.Value}
}

func scanReportRow(s scanner) (crm.ReportRow, error) {
	var r crm.ReportRow
	dest := []any{&r.Value, &r.Accepted, &r.Duplicate, &r.Rejected, &r.ValidationError, &r.Failed, &r.WithStatus, &r.FTD}
	for i := range r.FirstStatus {
		dest = append(dest, &r.FirstStatus[i])
	}
	err := s.Scan(dest...)
	r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
	return r, err
}
