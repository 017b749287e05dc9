package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Counts implements ui.Source by summing the counter deltas (migration
// 001): a few rows per name once folded. When many deltas piled up since
// the last fold it folds first (best effort: a failed fold only makes this
// read a little longer).
func (db *DB) Counts(ctx context.Context) (crm.Counts, error) {
	c := crm.Counts{States: make(map[crm.State]int, len(crm.States))}
	if err := db.foldIfLarge(ctx); err != nil {
		if ctx.Err() != nil {
			return c, fmt.Errorf("counts: %w", err)
		}
		db.log.Warn("store: fold counter deltas", "db", db.location, "err", err)
	}
	for _, s := range crm.States {
		c.States[s] = 0
	}
	type named struct {
		name string
		n    int
	}
	rows, err := queryAll(ctx, db.pool, func(r pgx.Row) (named, error) {
		var nc named
		return nc, r.Scan(&nc.name, &nc.n)
	}, `SELECT name, sum(n)::bigint FROM count_deltas GROUP BY name`)
	if err != nil {
		return c, fmt.Errorf("counts: %w", err)
	}
	for _, nc := range rows {
		switch {
		case strings.HasPrefix(nc.name, "state:"):
			c.States[crm.State(strings.TrimPrefix(nc.name, "state:"))] = nc.n
		case nc.name == "callbacks":
			c.CallbacksVerified = nc.n
		case nc.name == "callbacks_unmatched":
			c.CallbacksUnmatched = nc.n
		case nc.name == "refusals":
			c.Refusals = nc.n
		case nc.name == "polled":
			c.Polled = nc.n
		}
	}
	return c, nil
}

// leadKey orders a pane: the sort column's value and the id.
type leadKey struct{ at, id int64 }

// Leads implements ui.Source: one page of a pane. A pane of only
// retry_wait is ordered by next_attempt_at (soonest first); any other by
// updated_at, newest first. Each state is read by its own index-ordered
// query of at most Offset+Limit keys and the keys merged here, which
// avoids sorting every row of the states; then only the page's rows are
// fetched by primary key. A Filter (case-insensitive ASCII substring of
// external_id, crm_id or reason) and a Reason are checked row by row along
// that walk. OrderNewest and OrderOldest page by id instead (leadsByID).
func (db *DB) Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error) {
	limit := store.ClampLimit(q.Limit)
	offset := max(q.Offset, 0)
	states, byDue, err := store.PaneStates(q.States)
	if err != nil {
		return nil, err
	}
	keyCol, order := "updated_at", ` ORDER BY updated_at DESC, id DESC`
	if byDue {
		keyCol, order = "next_attempt_at", ` ORDER BY next_attempt_at, id`
	}
	if q.Order == crm.OrderNewest || q.Order == crm.OrderOldest {
		return db.leadsByID(ctx, q, states, limit, offset)
	}
	filter, fargs := leadMatch(q, 2)

	tx, err := db.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("leads: %w", err)
	}
	defer rollback(tx)
	var keys []leadKey
	for _, s := range states {
		args := append([]any{string(s)}, fargs...)
		n := len(args)
		query := `SELECT COALESCE(` + keyCol + `, 0), id FROM leads WHERE state = $1` + filter + order
		if len(states) == 1 {
			query += fmt.Sprintf(` LIMIT $%d OFFSET $%d`, n+1, n+2)
			args = append(args, limit, offset)
		} else {
			query += fmt.Sprintf(` LIMIT $%d`, n+1)
			args = append(args, offset+limit)
		}
		ks, err := queryAll(ctx, tx, func(r pgx.Row) (leadKey, error) {
			var k leadKey
			return k, r.Scan(&k.at, &k.id)
		}, query, args...)
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
	ids := make([]int64, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	page, err := queryAll(ctx, tx, scanLead, `SELECT `+leadCols+` FROM leads WHERE id = ANY($1)`, ids)
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

// maxScan bounds how many leads past the keyset bound one OrderNewest or
// OrderOldest page examines when rows must be checked one by one (a
// Filter, a Reason, or only some states): a rare match then costs at most
// this many rows per call, not a scan of the table. The page may come
// back short with more matches further on; the caller pages on from the
// last id it got (the UI says "searched the newest N").
const maxScan = 100000

// leadsByID is a page of leads in id order (newest or oldest first), from
// the primary key: after the keyset bound (BeforeID / AfterID, which
// replace Offset when set), only the page is read when every lead
// matches; otherwise at most maxScan leads past the bound are examined.
func (db *DB) leadsByID(ctx context.Context, q crm.LeadQuery, states []crm.State, limit, offset int) ([]crm.Lead, error) {
	dir, bound := "DESC", ""
	args := []any{}
	if q.Order == crm.OrderNewest && q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		bound, offset = ` WHERE id < $1`, 0
	}
	if q.Order == crm.OrderOldest {
		dir = "ASC"
		if q.AfterID > 0 {
			args = append(args, q.AfterID)
			bound, offset = ` WHERE id > $1`, 0
		}
	}
	where, margs := leadMatch(q, len(args)+1)
	args = append(args, margs...)
	if len(states) < len(crm.States) {
		plain := make([]string, len(states))
		for i, s := range states {
			plain[i] = string(s)
		}
		args = append(args, plain)
		where += fmt.Sprintf(` AND state = ANY($%d)`, len(args))
	}
	var query string
	if where == "" {
		query = `SELECT ` + leadCols + ` FROM leads` + bound + ` ORDER BY id ` + dir
	} else {
		args = append(args, maxScan)
		query = `SELECT ` + leadCols + ` FROM (SELECT * FROM leads` + bound + ` ORDER BY id ` + dir +
			fmt.Sprintf(` LIMIT $%d) w WHERE true`, len(args)) + where + ` ORDER BY id ` + dir
	}
	args = append(args, limit, offset)
	query += fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	out, err := queryAll(ctx, db.pool, scanLead, query, args...)
	if err != nil {
		return nil, fmt.Errorf("leads: %w", err)
	}
	return out, nil
}

// leadCallbackCols is the column list scanLeadCallback reads: a callback
// with its raw body.
const leadCallbackCols = `id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
	event_time, received_at, skew_ms, secret_idx, lead_id, raw_body, kind`

// scanLeadCallback reads one row of leadCallbackCols.
func scanLeadCallback(s pgx.Row) (crm.CallbackEvent, error) {
	var (
		ev                crm.CallbackEvent
		eventTime, leadID *int64
		received, skew    int64
	)
	err := s.Scan(&ev.ID, &ev.DedupKey, &ev.InternalID, &ev.ExternalID, &ev.Event, &ev.Status, &ev.Reason,
		&ev.Timestamp, &eventTime, &received, &skew, &ev.SecretIdx, &leadID, &ev.RawBody, &ev.Kind)
	ev.EventTime = fromNullMS(eventTime)
	ev.ReceivedAt = fromMS(received)
	ev.Skew = time.Duration(skew) * time.Millisecond
	if leadID != nil {
		ev.LeadID = *leadID
	}
	if ev.Kind == crm.KindPolled && ev.Event == "" {
		// The row's event is '' (its identity, migration 008); the
		// event it stands for is status_polled.
		ev.Event = crm.EventStatusPolled
	}
	return ev, err
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
	defer rollback(tx)
	d.Lead, err = scanLead(tx.QueryRow(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = $1`, externalID))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("lead detail %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, mapErr(ctx, err))
	}
	d.Attempts, err = queryAll(ctx, tx, scanAttempt, `SELECT `+attemptCols+` FROM attempts WHERE lead_id = $1 ORDER BY id`, d.Lead.ID)
	if err != nil {
		return d, fmt.Errorf("lead detail %s: %w", externalID, err)
	}
	d.Callbacks, err = queryAll(ctx, tx, scanLeadCallback, `SELECT `+leadCallbackCols+` FROM callbacks WHERE lead_id = $1 ORDER BY id`, d.Lead.ID)
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
// start), callbacks (by arrival), and attempts ending accepted or failed,
// per bucket from since to now, oldest bucket first, from the per-second
// deltas (migrations 001 and 003): about one row per second of the window
// once folded, whatever the traffic. since is truncated to a whole second
// and bucket rounded up to whole seconds.
//
// A bucket of whole minutes reads the per-minute rows instead (1,440 for
// a day), at minute resolution: each minute counts in the bucket its first
// second falls in, except the minute since falls inside, whose seconds
// from since on are read one by one (they count in the first bucket).
func (db *DB) Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error) {
	t, from, width := store.NewThroughput(since, bucket, db.now())
	n := len(t.Sent)
	t.Accepted, t.Failed = make([]int, n), make([]int, n)
	end := store.ThroughputEnd(t, from, width)
	type row struct {
		i                                 int64
		sent, callbacks, accepted, failed int
	}
	scan := func(r pgx.Row) (row, error) {
		var b row
		return b, r.Scan(&b.i, &b.sent, &b.callbacks, &b.accepted, &b.failed)
	}
	// A second's or a minute's counts fit an int; summed as int the
	// server adds in bigint, not in numeric as it does BIGINT.
	const sums = `COALESCE(sum(sent::int), 0), COALESCE(sum(callbacks::int), 0),
		COALESCE(sum(accepted::int), 0), COALESCE(sum(failed::int), 0)`
	var rows []row
	var err error
	// One statement, so one snapshot: a fold moving deltas into the
	// folded tables meanwhile is seen whole or not at all.
	if width%60 != 0 {
		// floor division: sec - from is never negative here (sec >= from).
		rows, err = queryAll(ctx, db.pool, scan, `SELECT (sec - $1) / $2, `+sums+` FROM (
				SELECT sec, sent, callbacks, accepted, failed FROM throughput_seconds WHERE sec >= $1 AND sec < $3
				UNION ALL
				SELECT sec, sent, callbacks, accepted, failed FROM throughput_deltas WHERE sec >= $1 AND sec < $3
			) s GROUP BY (sec - $1) / $2`, from, width, end)
	} else {
		firstMinute := (from + 59) / 60 // the first minute wholly in the window
		rows, err = queryAll(ctx, db.pool, scan, `SELECT (GREATEST(minute * 60, $1) - $1) / $2, `+sums+` FROM (
				SELECT minute, sent, callbacks, accepted, failed FROM throughput_minutes
					WHERE minute >= $4 AND minute * 60 < $3
				UNION ALL
				SELECT sec / 60, sent, callbacks, accepted, failed FROM throughput_deltas
					WHERE sec >= $4 * 60 AND sec < $3
				UNION ALL
				SELECT 0, sent, callbacks, accepted, failed FROM throughput_seconds
					WHERE sec >= $1 AND sec < LEAST($4 * 60, $3)
				UNION ALL
				SELECT 0, sent, callbacks, accepted, failed FROM throughput_deltas
					WHERE sec >= $1 AND sec < LEAST($4 * 60, $3)
			) s GROUP BY 1`,
			from, width, end, firstMinute)
	}
	if err != nil {
		return t, fmt.Errorf("throughput: %w", err)
	}
	for _, b := range rows {
		if b.i < 0 || b.i >= int64(n) {
			continue
		}
		t.Sent[b.i] += b.sent
		t.Callbacks[b.i] += b.callbacks
		t.Accepted[b.i] += b.accepted
		t.Failed[b.i] += b.failed
	}
	return t, nil
}

// exportBatch is how many rows an export reads per query. Exports page by
// primary key instead of holding one transaction open, so a slow consumer
// never pins an old snapshot (which would hold back vacuum).
const exportBatch = 1000

// ExportLeads calls fn for every lead in id order, streaming: memory stays
// at one batch. An error from fn stops the export and is returned as is.
func (db *DB) ExportLeads(ctx context.Context, fn func(crm.Lead) error) error {
	var after int64
	for {
		batch, err := queryAll(ctx, db.pool, scanLead, `SELECT `+leadCols+` FROM leads WHERE id > $1 ORDER BY id LIMIT $2`, after, exportBatch)
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
