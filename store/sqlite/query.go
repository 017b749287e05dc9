package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Counts implements ui.Source from the counter tables that every write
// keeps in its own transaction: a handful of primary-key reads, whatever
// the store's size.
func (db *DB) Counts(ctx context.Context) (crm.Counts, error) {
	c := crm.Counts{States: make(map[crm.State]int, len(crm.States))}
	tx, err := db.beginRead(ctx)
	if err != nil {
		return c, fmt.Errorf("counts: %w", err)
	}
	defer tx.Rollback()
	states, err := queryAll(ctx, tx, scanNamedCount, `SELECT state, n FROM lead_counts`)
	if err != nil {
		return c, fmt.Errorf("counts: %w", err)
	}
	for _, nc := range states {
		c.States[crm.State(nc.name)] = nc.n
	}
	counters, err := queryAll(ctx, tx, scanNamedCount, `SELECT name, n FROM counters`)
	if err != nil {
		return c, fmt.Errorf("counts: %w", err)
	}
	for _, nc := range counters {
		switch nc.name {
		case "callbacks":
			c.CallbacksVerified = nc.n
		case "callbacks_unmatched":
			c.CallbacksUnmatched = nc.n
		case "refusals":
			c.Refusals = nc.n
		case "polled":
			c.Polled = nc.n
		}
	}
	return c, nil
}

// namedCount is one row of a counter table.
type namedCount struct {
	name string
	n    int
}

func scanNamedCount(s scanner) (namedCount, error) {
	var nc namedCount
	err := s.Scan(&nc.name, &nc.n)
	return nc, err
}

// Leads implements ui.Source: one page of a pane. OrderNewest and
// OrderOldest walk the primary key from the keyset bound (leadsByID).
// With OrderDefault, a pane of only retry_wait is ordered by
// next_attempt_at (soonest first); any other by updated_at, newest first. Each state is read by its own index-ordered
// query of at most Offset+Limit keys (the index covers them, so no table
// row is read) and the keys merged here, which avoids sorting a
// million-row IN (...) result; then only the page's rows are fetched by
// primary key. A Filter (case-insensitive ASCII substring of external_id,
// crm_id or reason) and a Reason (substring of reason) are checked row by
// row along that index walk: cheap when matches are common, a scan of the
// states' rows when they are rare.
func (db *DB) Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error) {
	limit := store.ClampLimit(q.Limit)
	offset := max(q.Offset, 0)
	states, byDue, err := store.PaneStates(q.States)
	if err != nil {
		return nil, err
	}
	if q.Order == crm.OrderNewest || q.Order == crm.OrderOldest {
		return db.leadsByID(ctx, states, q, limit, offset)
	}
	keyCol, order := "updated_at", ` ORDER BY updated_at DESC, id DESC`
	if byDue {
		keyCol, order = "next_attempt_at", ` ORDER BY next_attempt_at, id`
	}
	filter, fargs := leadsFilter(q)
	tx, err := db.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("leads: %w", err)
	}
	defer tx.Rollback()
	var keys []leadKey
	for _, s := range states {
		args := append([]any{string(s)}, fargs...)
		query := `SELECT COALESCE(` + keyCol + `, 0), id FROM leads WHERE state = ?` + filter + order + ` LIMIT ?`
		if len(states) == 1 {
			query += ` OFFSET ?`
			args = append(args, limit, offset)
		} else {
			args = append(args, offset+limit)
		}
		ks, err := queryAll(ctx, tx, scanLeadKey, query, args...)
		if err != nil {
			return nil, fmt.Errorf("leads: %w", err)
		}
		keys = append(keys, ks...)
	}
	if len(states) > 1 {
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].at != keys[j].at {
				return keys[i].at > keys[j].at
			}
			return keys[i].id > keys[j].id
		})
		if offset >= len(keys) {
			return nil, nil
		}
		keys = keys[offset:min(offset+limit, len(keys))]
	}
	if len(keys) == 0 {
		return nil, nil
	}
	// Fetch the page's rows by primary key, then put them in key order.
	args := make([]any, len(keys))
	marks := make([]byte, 0, 2*len(keys))
	for i, k := range keys {
		args[i] = k.id
		if i > 0 {
			marks = append(marks, ',')
		}
		marks = append(marks, '?')
	}
	page, err := queryAll(ctx, tx, scanLead, `SELECT `+leadCols+` FROM leads WHERE id IN (`+string(marks)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("leads: %w", err)
	}
	byID := make(map[int64]crm.Lead, len(page))
	for _, l := range page {
		byID[l.ID] = l
	}
	out := make([]crm.Lead, 0, len(keys))
	for _, k := range keys {
		if l, ok := byID[k.id]; ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// leadsFilter is the SQL (starting with AND, or empty) and arguments of
// q's Filter and Reason.
func leadsFilter(q crm.LeadQuery) (string, []any) {
	var (
		sql  string
		args []any
	)
	if q.Filter != "" {
		p := store.LikePattern(q.Filter)
		sql += ` AND (lower(external_id) LIKE ? ESCAPE '\' OR lower(crm_id) LIKE ? ESCAPE '\' OR lower(reason) LIKE ? ESCAPE '\')`
		args = append(args, p, p, p)
	}
	if q.Reason != "" {
		sql += ` AND lower(reason) LIKE ? ESCAPE '\'`
		args = append(args, store.LikePattern(q.Reason))
	}
	return sql, args
}

// leadsWhere is a WHERE condition (without the keyword) for the leads in
// states matching q's Filter and Reason. The state test is written +state
// so that the planner walks the primary key (the order asked for) instead
// of a state index it would then have to sort.
func leadsWhere(states []crm.State, q crm.LeadQuery) (string, []any) {
	where := "true"
	var args []any
	if len(states) < len(crm.States) {
		where = "+state IN (?" + strings.Repeat(", ?", len(states)-1) + ")"
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	filter, fargs := leadsFilter(q)
	return where + filter, append(args, fargs...)
}

// LeadScanWindow bounds how far a filtered OrderNewest or OrderOldest
// page looks: the 100,000 ids past its bound (BeforeID, else the newest;
// AfterID, else the oldest). Ids are never reused and leads never
// deleted, so that is at most 100,000 rows, about 50 ms at worst; a rare
// match further on is found by paging on from the window's end
// (the UI says "searched the newest N").
const LeadScanWindow = 100_000

// leadsByID is Leads for OrderNewest and OrderOldest: a walk of the
// primary key from the bound, reading only the page's rows (and, with a
// filter, those it skips, at most LeadScanWindow). Offset applies only
// without a bound.
func (db *DB) leadsByID(ctx context.Context, states []crm.State, q crm.LeadQuery, limit, offset int) ([]crm.Lead, error) {
	where, args := leadsWhere(states, q)
	filtered := q.Filter != "" || q.Reason != ""
	var bound string
	var bargs []any
	newest := q.Order == crm.OrderNewest
	switch {
	case newest && q.BeforeID > 0:
		bound, bargs = ` AND id < ?`, []any{q.BeforeID}
		if filtered {
			bound, bargs = ` AND id < ? AND id >= ?`, []any{q.BeforeID, q.BeforeID - LeadScanWindow}
		}
	case newest && filtered:
		bound = ` AND id >= (SELECT COALESCE(MAX(id), 0) FROM leads) - ?`
		bargs = []any{LeadScanWindow - 1}
	case !newest && q.AfterID > 0:
		bound, bargs = ` AND id > ?`, []any{q.AfterID}
		if filtered {
			bound, bargs = ` AND id > ? AND id <= ?`, []any{q.AfterID, q.AfterID + LeadScanWindow}
		}
	case !newest && filtered:
		bound, bargs = ` AND id <= ?`, []any{int64(LeadScanWindow)}
	}
	query := `SELECT ` + leadCols + ` FROM leads WHERE ` + where + bound
	if newest {
		query += ` ORDER BY id DESC LIMIT ?`
	} else {
		query += ` ORDER BY id LIMIT ?`
	}
	args = append(append(args, bargs...), limit)
	if (newest && q.BeforeID <= 0) || (!newest && q.AfterID <= 0) {
		query += ` OFFSET ?`
		args = append(args, offset)
	}
	out, err := queryAll(ctx, db.reader, scanLead, query, args...)
	if err != nil {
		return nil, fmt.Errorf("leads: %w", err)
	}
	return out, nil
}

// leadKey orders a pane: the sort column's value and the id.
type leadKey struct{ at, id int64 }

func scanLeadKey(s scanner) (leadKey, error) {
	var k leadKey
	err := s.Scan(&k.at, &k.id)
	return k, err
}

// attemptCols is the column list scanAttempt reads, in order.
const attemptCols = `id, lead_id, kind, number, idempotency_key, started_at, duration_us, http_status,
	response_body, error, outcome, delay_ms, delay_why, note, prev_payload`

func scanAttempt(s scanner) (crm.Attempt, error) {
	var (
		a                       crm.Attempt
		kind, outcome           string
		started, durUS, delayMS int64
	)
	err := s.Scan(&a.ID, &a.LeadID, &kind, &a.Number, &a.IdempotencyKey, &started, &durUS, &a.HTTPStatus,
		&a.ResponseBody, &a.Error, &outcome, &delayMS, &a.DelayWhy, &a.Note, &a.PrevPayload)
	a.Kind = crm.AttemptKind(kind)
	a.Outcome = crm.State(outcome)
	a.StartedAt = fromMS(started)
	a.Duration = time.Duration(durUS) * time.Microsecond
	a.Delay = time.Duration(delayMS) * time.Millisecond
	return a, err
}

// LeadDetail implements ui.Source: the lead, its history (attempts and
// resubmissions) and the callbacks linked to it, each oldest first, read
// from one snapshot.
func (db *DB) LeadDetail(ctx context.Context, externalID string) (crm.LeadDetail, error) {
	var d crm.LeadDetail
	tx, err := db.beginRead(ctx)
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, err)
	}
	defer tx.Rollback()
	d.Lead, err = scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = ?`, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("lead detail %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, mapErr(ctx, err))
	}
	d.Attempts, err = queryAll(ctx, tx, scanAttempt, `SELECT `+attemptCols+` FROM attempts WHERE lead_id = ? ORDER BY id`, d.Lead.ID)
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, err)
	}
	d.Callbacks, err = queryAll(ctx, tx, scanCallback, `SELECT `+callbackCols+` FROM callbacks WHERE lead_id = ? ORDER BY id`, d.Lead.ID)
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, err)
	}
	d.Forwards, err = queryAll(ctx, tx, scanForwardAttempt, sqlLeadForwards, d.Lead.ID)
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, err)
	}
	return d, nil
}

// Throughput implements ui.Source: sends (attempts of kind send, by
// start), callbacks (by arrival), accepted and failed attempts (by start)
// per bucket from since to now, oldest bucket first. It reads the
// per-second rollup (migration 002), so the cost is one row per second of
// the window, whatever the traffic. The resolution is one second: since
// is truncated to a whole second and bucket rounded up to whole seconds.
//
// A window longer than throughputMinuteAfter with buckets of whole
// minutes reads the per-minute rollup instead (migration 005), one row a
// minute: since is then truncated to the minute (Start says so), so
// every bucket is whole minutes.
func (db *DB) Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error) {
	now := db.now()
	t, from, width := store.NewThroughput(since, bucket, now)
	table, col := "throughput", "sec"
	if width%60 == 0 && store.ThroughputEnd(t, from, width)-from > int64(throughputMinuteAfter/time.Second) {
		if m, mfrom, mwidth := store.NewThroughput(since.Truncate(time.Minute), bucket, now); mfrom%60 == 0 {
			t, from, width = m, mfrom, mwidth
			table, col = "throughput_min", "min"
		}
	}
	t.Accepted, t.Failed = make([]int, len(t.Sent)), make([]int, len(t.Sent))
	buckets, err := queryAll(ctx, db.reader, scanBucket, `SELECT (`+col+` - ?) / ?, SUM(sent), SUM(callbacks),
			SUM(accepted), SUM(failed) FROM `+table+`
		WHERE `+col+` >= ? AND `+col+` < ? GROUP BY (`+col+` - ?) / ?`,
		from, width, from, store.ThroughputEnd(t, from, width), from, width)
	if err != nil {
		return t, fmt.Errorf("throughput: %w", err)
	}
	for _, b := range buckets {
		store.AddThroughput(t, b.i, b.sent, b.callbacks)
		if b.i >= 0 && b.i < int64(len(t.Sent)) {
			t.Accepted[b.i], t.Failed[b.i] = b.accepted, b.failed
		}
	}
	return t, nil
}

// throughputMinuteAfter is the window beyond which Throughput reads
// minutes (with minute buckets): up to it, a second's resolution costs
// at most 10,800 rows, a few milliseconds.
const throughputMinuteAfter = 3 * time.Hour

// bucket is one row of Throughput's query: the bucket's index and its sums.
type bucket struct {
	i                                 int64
	sent, callbacks, accepted, failed int
}

func scanBucket(s scanner) (bucket, error) {
	var b bucket
	err := s.Scan(&b.i, &b.sent, &b.callbacks, &b.accepted, &b.failed)
	return b, err
}

// exportBatch is how many rows an export reads per query. Exports page by
// primary key instead of holding one read transaction open, so a slow
// consumer never pins an old snapshot (which would stop WAL checkpoints
// and let the -wal file grow).
const exportBatch = 1000

// ExportLeads calls fn for every lead in id order, streaming: memory stays
// at one batch. An error from fn stops the export and is returned as is.
func (db *DB) ExportLeads(ctx context.Context, fn func(crm.Lead) error) error {
	var after int64
	for {
		batch, err := queryAll(ctx, db.reader, scanLead, `SELECT `+leadCols+` FROM leads WHERE id > ? ORDER BY id LIMIT ?`, after, exportBatch)
		if err != nil {
			return fmt.Errorf("export leads: %w", err)
		}
		for _, l := range batch {
			if err := fn(l); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			return nil
		}
		after = batch[len(batch)-1].ID
	}
}

// ExportCallbacks calls fn for every stored callback in id order,
// streaming like ExportLeads, without the raw bodies (an export lists the
// fields; Callback has the body).
func (db *DB) ExportCallbacks(ctx context.Context, fn func(crm.CallbackEvent) error) error {
	var after int64
	for {
		batch, err := db.queryCallbacks(ctx, "export callbacks",
			`SELECT `+callbackHeadCols+` FROM callbacks WHERE id > ? ORDER BY id LIMIT ?`, after, exportBatch)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			return nil
		}
		after = batch[len(batch)-1].ID
	}
}
