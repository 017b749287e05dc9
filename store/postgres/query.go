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
// external_id, crm_id or reason) is checked row by row along that walk.
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
	filter := ""
	var fargs []any
	if q.Filter != "" {
		// lower() and LIKE, not ILIKE: the filter is ASCII-case-insensitive
		// as store/sqlite's is.
		filter = ` AND (lower(external_id) LIKE $2 OR lower(crm_id) LIKE $2 OR lower(reason) LIKE $2)`
		fargs = []any{store.LikePattern(q.Filter)}
	}

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

// leadCallbackCols is the column list scanLeadCallback reads: a callback
// with its raw body.
const leadCallbackCols = `id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
	event_time, received_at, skew_ms, secret_idx, lead_id, raw_body`

// scanLeadCallback reads one row of leadCallbackCols.
func scanLeadCallback(s pgx.Row) (crm.CallbackEvent, error) {
	var (
		ev                crm.CallbackEvent
		eventTime, leadID *int64
		received, skew    int64
	)
	err := s.Scan(&ev.ID, &ev.DedupKey, &ev.InternalID, &ev.ExternalID, &ev.Event, &ev.Status, &ev.Reason,
		&ev.Timestamp, &eventTime, &received, &skew, &ev.SecretIdx, &leadID, &ev.RawBody)
	ev.EventTime = fromNullMS(eventTime)
	ev.ReceivedAt = fromMS(received)
	ev.Skew = time.Duration(skew) * time.Millisecond
	if leadID != nil {
		ev.LeadID = *leadID
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
	return d, nil
}

// Throughput implements ui.Source: sends (attempts of kind send, by start)
// and callbacks (by arrival) per bucket from since to now, oldest bucket
// first, from the per-second deltas (migration 001): the cost is about
// one row per second of the window once folded, whatever the traffic.
// The resolution is one second: since is truncated to a whole second and
// bucket rounded up to whole seconds.
func (db *DB) Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error) {
	t, from, width := store.NewThroughput(since, bucket, db.now())
	type row struct {
		i               int64
		sent, callbacks int
	}
	// floor division: sec - from is never negative here (sec >= from).
	rows, err := queryAll(ctx, db.pool, func(r pgx.Row) (row, error) {
		var b row
		return b, r.Scan(&b.i, &b.sent, &b.callbacks)
	}, `SELECT (sec - $1) / $2, sum(sent)::bigint, sum(callbacks)::bigint FROM throughput_deltas
		WHERE sec >= $1 AND sec < $3 GROUP BY (sec - $1) / $2`,
		from, width, store.ThroughputEnd(t, from, width))
	if err != nil {
		return t, fmt.Errorf("throughput: %w", err)
	}
	for _, b := range rows {
		store.AddThroughput(t, b.i, b.sent, b.callbacks)
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
