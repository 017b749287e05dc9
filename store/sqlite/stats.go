package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The Sources report's aggregates (migrations 006 and 007): source_stats
// holds, per group field, minute of creation (and -1 for all time) and
// value, the sums of what the leads contribute by their current columns.
// Triggers on leads append one row to stats_deltas per change (the
// contribution a lead had and the one it has, packed: statsDecode), in the
// transaction of the change; foldStats merges them into source_stats, and
// Report adds the ones not yet folded. Fill and the migration of existing
// leads add many leads at once to source_stats with statsAcc instead.
// source_stats_coarse (migration 011) holds the minutes' sums per 10
// minutes, hour and day, written with them by the fold and Fill, so a
// window reads a few rows per value instead of every minute of it.

// statsCounters are source_stats' counter columns, in the order Report
// scans them.
const statsCounters = `accepted, duplicate, rejected, validation_error, failed, with_status, ftd,
	h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17`

// statsAcc adds up lead contributions in memory for Fill, the migration
// of existing leads and the fold of the triggers' deltas (foldStats),
// which add many leads at once: each source_stats row is upserted once
// with its sum (a grouped statement in SQL took seconds per 50,000
// leads).
type statsAcc map[statsKey]*[statsColumns]int64

// statsKey is a source_stats row's key, or with a span (migration 011)
// a source_stats_coarse row's.
type statsKey struct {
	field, value string
	bucket       int64
	span         int64 // 0: source_stats' minute or all time
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

// add adds l's contribution, as the leads triggers pack it (migration 007).
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
	a.addGroup(l.created/60000*60000, l.source, l.funnel, l.subID, l.country, &c)
}

// addGroup adds c to the 8 rows of a group: the 4 fields' values, each in
// its minute and for all time. Nothing is added when c is all zeros.
func (a statsAcc) addGroup(minute int64, source, funnel, subID, country string, c *[statsColumns]int64) {
	if *c == ([statsColumns]int64{}) {
		return
	}
	for _, fv := range [...][2]string{{crm.GroupSource, source}, {crm.GroupFunnel, funnel},
		{crm.GroupSubID, subID}, {crm.GroupCountry, country}} {
		for _, b := range [...]int64{-1, minute} {
			k := statsKey{fv[0], fv[1], b, 0}
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

// flush upserts the sums into source_stats, and the minutes' sums into
// source_stats_coarse's spans, and empties a.
func (a statsAcc) flush(ctx context.Context, tx *sql.Tx) error {
	a.addCoarse()
	return a.upsert(ctx, tx)
}

// addCoarse adds every minute row of a to its rows of each span.
func (a statsAcc) addCoarse() {
	var coarse []statsKey
	for k := range a {
		if k.span == 0 && k.bucket >= 0 {
			coarse = append(coarse, k)
		}
	}
	for _, k := range coarse {
		c := a[k]
		for _, span := range store.ReportSpans {
			ck := statsKey{k.field, k.value, k.bucket / span * span, span}
			sums := a[ck]
			if sums == nil {
				sums = new([statsColumns]int64)
				a[ck] = sums
			}
			for i, n := range c {
				sums[i] += n
			}
		}
	}
}

// upsert upserts the sums into their tables and empties a. A row whose
// sums are all zero (deltas that cancelled out, a lead accepted and
// resubmitted between two folds) is left alone.
func (a statsAcc) upsert(ctx context.Context, tx *sql.Tx) error {
	if len(a) == 0 {
		return nil
	}
	cols := strings.Split(statsCounters, ",")
	var set []string
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
		set = append(set, cols[i]+" = "+cols[i]+" + excluded."+cols[i])
	}
	// Prepared when first needed: migration 006's leads (addStoredStats)
	// come before source_stats_coarse exists.
	stmts := map[bool]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	prepare := func(coarse bool) (*sql.Stmt, error) {
		if st := stmts[coarse]; st != nil {
			return st, nil
		}
		table, key, params := "source_stats (field, value, bucket, ", "field, bucket, value", "?, ?, ?"
		if coarse {
			table, key, params = "source_stats_coarse (field, value, bucket, span, ", "field, span, bucket, value", "?, ?, ?, ?"
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO `+table+strings.Join(cols, ", ")+`)
			VALUES (`+params+strings.Repeat(", ?", len(cols))+`)
			ON CONFLICT (`+key+`) DO UPDATE SET `+strings.Join(set, ", "))
		if err != nil {
			return nil, err
		}
		stmts[coarse] = st
		return st, nil
	}
	args := make([]any, 0, 4+statsColumns)
	for k, sums := range a {
		if *sums == ([statsColumns]int64{}) {
			delete(a, k)
			continue
		}
		up, err := prepare(k.span != 0)
		if err != nil {
			return err
		}
		args = append(args[:0], k.field, k.value, k.bucket)
		if k.span != 0 {
			args = append(args, k.span)
		}
		for _, n := range sums {
			args = append(args, n)
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
			// Minutes only: migration 011 sums source_stats into its spans.
			return acc.upsert(ctx, tx)
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
// source_stats and source_stats_coarse (a field's all-time rows, or for
// q.Since truncated to the minute the few ranges of store.ReportRanges, each
// one range of a primary key) plus the deltas
// not yet folded (stats_deltas, a few seconds of changes at most), both
// read in one snapshot so the answer is exact whenever it is asked; never
// from the leads. Rows whose counters are all zero are left out; the
// order is Sent descending, then Value.
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
	// The deltas' minutes are all >= 0: from -1 is all time.
	from := int64(-1)
	if !q.Since.IsZero() {
		from = max(ms(q.Since.Truncate(time.Minute)), 0)
		var parts []string
		args = args[:0]
		for _, r := range store.ReportRanges(from, ms(db.now())) {
			var part string
			if r.Span == 0 {
				part = `SELECT value, ` + statsCounters + ` FROM source_stats WHERE field = ? AND bucket >= ?`
				args = append(args, q.By, r.Lo)
			} else {
				part = `SELECT value, ` + statsCounters + ` FROM source_stats_coarse
					WHERE field = ? AND span = ? AND bucket >= ?`
				args = append(args, q.By, r.Span, r.Lo)
			}
			if r.Hi >= 0 {
				part += ` AND bucket < ?`
				args = append(args, r.Hi)
			}
			parts = append(parts, part)
		}
		query = `SELECT value, ` + strings.Join(sums, ", ") + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) GROUP BY value`
	}
	tx, err := db.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer tx.Rollback()
	rows, err := queryAll(ctx, tx, scanReportRow, query, args...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	// The deltas in the same snapshot (a fold between the two reads would
	// count its rows twice or not at all), grouped by their packed
	// contributions and unpacked here: a few distinct pairs per value,
	// where unpacking 25 counters per row in SQL cost about 4 ms per 1,280
	// rows (BenchmarkReportUnfolded). q.By is one of crm.GroupFields, which are stats_deltas' column
	// names.
	pairs, err := queryAll(ctx, tx, scanStatsPair, `SELECT `+q.By+`, was, now, COUNT(*) FROM stats_deltas
		WHERE minute >= ? GROUP BY `+q.By+`, was, now`, from)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if len(pairs) > 0 {
		rows = addReportRows(rows, statsPairRows(pairs))
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

// addReportRows adds the rows of more to those of rows with the same
// value, appending the values rows lacks.
func addReportRows(rows, more []crm.ReportRow) []crm.ReportRow {
	at := make(map[string]int, len(rows))
	for i, r := range rows {
		at[r.Value] = i
	}
	for _, m := range more {
		i, ok := at[m.Value]
		if !ok {
			at[m.Value] = len(rows)
			rows = append(rows, m)
			continue
		}
		r := &rows[i]
		r.Accepted += m.Accepted
		r.Duplicate += m.Duplicate
		r.Rejected += m.Rejected
		r.ValidationError += m.ValidationError
		r.Failed += m.Failed
		r.Sent += m.Sent
		r.WithStatus += m.WithStatus
		r.FTD += m.FTD
		for b, n := range m.FirstStatus {
			r.FirstStatus[b] += n
		}
	}
	return rows
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
