package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// callbackHeadCols is the column list scanCallbackHead reads, in order:
// every column but the raw body. Lists (panes, tail, export) read only
// these, so a page of callbacks costs its rows, not up to a megabyte of
// body each; the detail view asks for the one body it shows (Callback).
const callbackHeadCols = `id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
	event_time, received_at, skew_ms, secret_idx, lead_id, ts_number, kind`

// callbackCols is callbackHeadCols and the raw body, as scanCallback
// reads them.
const callbackCols = callbackHeadCols + `, raw_body`

// scanCallbackHead reads a row of callbackHeadCols; RawBody stays nil.
func scanCallbackHead(s scanner) (crm.CallbackEvent, error) {
	return scanCallbackRow(s, false)
}

// scanCallback reads a row of callbackCols.
func scanCallback(s scanner) (crm.CallbackEvent, error) {
	return scanCallbackRow(s, true)
}

func scanCallbackRow(s scanner, body bool) (crm.CallbackEvent, error) {
	var (
		ev                crm.CallbackEvent
		eventTime, leadID sql.NullInt64
		received, skew    int64
	)
	dest := []any{&ev.ID, &ev.DedupKey, &ev.InternalID, &ev.ExternalID, &ev.Event, &ev.Status, &ev.Reason,
		&ev.Timestamp, &eventTime, &received, &skew, &ev.SecretIdx, &leadID, &ev.TimestampNumber, &ev.Kind}
	if body {
		dest = append(dest, &ev.RawBody)
	}
	err := s.Scan(dest...)
	ev.EventTime = fromNullMS(eventTime)
	ev.ReceivedAt = fromMS(received)
	ev.Skew = time.Duration(skew) * time.Millisecond
	ev.LeadID = leadID.Int64
	if ev.Kind == crm.KindPolled && ev.Event == "" {
		// The row's event is '' (its identity, migration 008); the
		// event it stands for is status_polled.
		ev.Event = crm.EventStatusPolled
	}
	return ev, err
}

// Callback returns the stored callback with that id, raw body included, or
// ErrNotFound.
func (db *DB) Callback(ctx context.Context, id int64) (crm.CallbackEvent, error) {
	ev, err := scanCallback(db.reader.QueryRowContext(ctx, `SELECT `+callbackCols+` FROM callbacks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, mapErr(ctx, err))
	}
	return ev, nil
}

// SaveCallbacks implements callbacks.EventSink: the batch in one
// transaction (the listener's group commit), each event inserted unless an
// event with the same internal_id, event and timestamp is already stored
// (fresh[i] false: a replay). The three are compared part by part, byte for
// byte: ("a:b", "c") and ("a", "b:c") are two events although their joined
// DedupKey is the same; the joined form is only what is shown and exported.
// A fresh event is linked to its lead — by external_id, else by the lead's
// CRM id — and its status becomes the lead's CRM status unless a newer
// event's already is. Events matching no lead are kept unlinked (a later
// Record that learns the CRM id links them). On error nothing of the batch
// is stored.
func (db *DB) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) (_ []bool, err error) {
	// A failure before the commit (a full disk at an INSERT) is health
	// news too; commit itself notes its own result.
	defer func() { db.noteFailure(err) }()
	fresh := make([]bool, len(evs))
	if len(evs) == 0 {
		return fresh, nil
	}
	for i := range evs {
		if ev := &evs[i]; ev.InternalID == "" || ev.Event == "" || ev.Timestamp == "" {
			return nil, fmt.Errorf("save callbacks: event %d has no dedup key (internal_id, event and timestamp are required)", i)
		}
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("save callbacks: %w", err)
	}
	defer tx.Rollback()
	// The insert triggers stay off for this transaction's rows; they are
	// counted below, once for the batch (migration 004).
	var maxID int64
	if err := db.hotW.in(ctx, tx, sqlGateClose).QueryRowContext(ctx).Scan(&maxID); err != nil {
		return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
	}
	now := db.now()
	unmatched := 0
	args := make([]any, 0, min(len(evs), insertChunks[0])*insertCallbackCols)
	for done := 0; done < len(evs); {
		// The largest prepared chunk that fits what is left.
		c := 0
		for insertChunks[c] > len(evs)-done {
			c++
		}
		chunk := evs[done : done+insertChunks[c]]
		args = args[:0]
		for i := range chunk {
			ev := &chunk[i]
			received := ev.ReceivedAt
			if received.IsZero() {
				received = now
			}
			raw := ev.RawBody
			if raw == nil {
				raw = []byte{}
			}
			args = append(args, maxID+1+int64(done+i), ev.InternalID, ev.Event, ev.Timestamp,
				ev.InternalID, ev.ExternalID, ev.Event, ev.Status, ev.Reason, ev.Timestamp,
				nullMS(ev.EventTime), ms(received), ev.Skew.Milliseconds(), raw, ev.SecretIdx, ev.TimestampNumber,
				ev.ExternalID, ev.InternalID)
		}
		n, err := db.insertChunk(ctx, tx, insertCallbackSQL[c], args, maxID+1, evs, fresh, now)
		if err != nil {
			return nil, fmt.Errorf("save callbacks: %w", err)
		}
		unmatched += n
		done += len(chunk)
	}
	if err := db.countBatch(ctx, tx, evs, fresh, unmatched, now); err != nil {
		return nil, fmt.Errorf("save callbacks: %w", err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("save callbacks: %w", err)
	}
	return fresh, nil
}

// countBatch adds SaveCallbacks' fresh events to the counters and to the
// throughput of the seconds they were received in, and opens the trigger
// gate again (the same statement): what the per-row triggers do for other
// writers, once per batch.
func (db *DB) countBatch(ctx context.Context, tx *sql.Tx, evs []crm.CallbackEvent, fresh []bool, unmatched int, now time.Time) error {
	total := 0
	// A batch is received within a few milliseconds: one second, rarely
	// two, so a short list beats a map.
	type second struct{ sec, n int64 }
	var secs []second
	for i := range evs {
		if !fresh[i] {
			continue
		}
		total++
		received := evs[i].ReceivedAt
		if received.IsZero() {
			received = now
		}
		sec := ms(received) / 1000
		j := slices.IndexFunc(secs, func(s second) bool { return s.sec == sec })
		if j < 0 {
			secs = append(secs, second{sec, 0})
			j = len(secs) - 1
		}
		secs[j].n++
	}
	if _, err := db.hotW.in(ctx, tx, sqlCountBatch).ExecContext(ctx, total, unmatched); err != nil {
		return mapErr(ctx, err)
	}
	for _, s := range secs {
		if _, err := db.hotW.in(ctx, tx, sqlThroughputAdd).ExecContext(ctx, s.sec, s.n); err != nil {
			return mapErr(ctx, err)
		}
	}
	return nil
}

// insertChunk runs one multi-row insert of SaveCallbacks and, for each
// row it inserted (the others are replays), marks the event fresh and
// makes its status the lead's CRM status unless a newer event's already
// is. Event i of evs was given id firstID+i. It returns how many of the
// rows it inserted match no lead.
func (db *DB) insertChunk(ctx context.Context, tx *sql.Tx, query string, args []any, firstID int64,
	evs []crm.CallbackEvent, fresh []bool, now time.Time) (unmatched int, err error) {
	rows, err := db.hotW.in(ctx, tx, query).QueryContext(ctx, args...)
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	defer rows.Close()
	type link struct {
		i    int
		lead int64
	}
	var links []link
	for rows.Next() {
		var (
			id   int64
			lead sql.NullInt64
		)
		if err := rows.Scan(&id, &lead); err != nil {
			return 0, mapErr(ctx, err)
		}
		i := int(id - firstID)
		if i < 0 || i >= len(evs) {
			return 0, fmt.Errorf("insert returned id %d outside the batch", id)
		}
		fresh[i] = true
		if !lead.Valid {
			unmatched++
		}
		if lead.Valid && evs[i].Status != "" {
			links = append(links, link{i, lead.Int64})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, mapErr(ctx, err)
	}
	// The RETURNING rows are all read (the statement has finished) before
	// the leads are updated, in event order, so that among events of one
	// lead with the same time the later one wins, as it would one by one.
	slices.SortFunc(links, func(a, b link) int { return a.i - b.i })
	if len(links) == 0 {
		return unmatched, nil
	}
	// One statement bound to tx for the chunk, not one per event. It also
	// sets the lead's first status and first ftd times (the report's
	// WithStatus and FTD), once each.
	set := db.hotW.in(ctx, tx, sqlSetCRMStatus)
	for _, l := range links {
		ev := &evs[l.i]
		// An unreadable event time orders by arrival instead.
		at := ms(ev.ReceivedAt)
		if ev.ReceivedAt.IsZero() {
			at = ms(now)
		}
		if !ev.EventTime.IsZero() {
			at = ms(ev.EventTime)
		}
		received := ms(ev.ReceivedAt)
		if ev.ReceivedAt.IsZero() {
			received = ms(now)
		}
		if _, err := set.ExecContext(ctx, ev.Status, at, ms(now), l.lead, received); err != nil {
			return 0, mapErr(ctx, err)
		}
	}
	return unmatched, nil
}

// SaveRefusal implements callbacks.EventSink: it stores a refused callback
// and drops the oldest beyond Options.MaxRefusals, in one transaction.
func (db *DB) SaveRefusal(ctx context.Context, r crm.Refusal) (err error) {
	defer func() { db.noteFailure(err) }()
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("save refusal: %w", err)
	}
	defer tx.Rollback()
	at := r.At
	if at.IsZero() {
		at = db.now()
	}
	head := r.Head
	if head == nil {
		head = []byte{}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO refusals (at, remote_addr, http_status, code, detail, head)
		VALUES (?, ?, ?, ?, ?, ?)`, ms(at), r.RemoteAddr, r.HTTPStatus, r.Code, r.Detail, head); err != nil {
		return fmt.Errorf("save refusal: %w", mapErr(ctx, err))
	}
	// The newest MaxRefusals rows stay; the bound row is found by the
	// primary key, so this is cheap whatever the table's size.
	if _, err := tx.ExecContext(ctx, `DELETE FROM refusals WHERE id <=
		(SELECT id FROM refusals ORDER BY id DESC LIMIT 1 OFFSET ?)`, db.opt.MaxRefusals); err != nil {
		return fmt.Errorf("save refusal: %w", mapErr(ctx, err))
	}
	return db.commit(ctx, tx)
}

// Callbacks implements ui.Source: stored callbacks newest first (by id),
// only those after q.AfterID, filtered by a case-insensitive substring of
// external_id, internal_id, event or status, without their raw bodies
// (Callback has them). Without a filter it is a walk down the primary key;
// a filter scans until the page fills (a rare match may read the whole
// table).
func (db *DB) Callbacks(ctx context.Context, q crm.EventQuery) ([]crm.CallbackEvent, error) {
	query := `SELECT ` + callbackHeadCols + ` FROM callbacks WHERE id > ?`
	args := []any{q.AfterID}
	if q.Filter != "" {
		// One lower bound, the larger of the two: with two the planner
		// walks the primary key from AfterID and tests the window's bound
		// row by row, a scan of the whole table.
		p := store.LikePattern(q.Filter)
		query = `SELECT ` + callbackHeadCols + ` FROM callbacks
			WHERE id > max(?, (SELECT COALESCE(max(id), 0) FROM callbacks) - ?)
			AND (lower(external_id) LIKE ? ESCAPE '\' OR lower(internal_id) LIKE ? ESCAPE '\'
			OR lower(event) LIKE ? ESCAPE '\' OR lower(status) LIKE ? ESCAPE '\')`
		args = append(args, store.EventScanWindow, p, p, p, p)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, store.ClampLimit(q.Limit))
	return db.queryCallbacks(ctx, "callbacks", query, args...)
}

// CallbacksAfter returns up to limit callbacks with an id above afterID,
// oldest first, without their raw bodies: what `leadwatch tail` prints
// next.
func (db *DB) CallbacksAfter(ctx context.Context, afterID int64, limit int) ([]crm.CallbackEvent, error) {
	return db.queryCallbacks(ctx, "callbacks after", `SELECT `+callbackHeadCols+` FROM callbacks WHERE id > ? ORDER BY id LIMIT ?`,
		afterID, store.ClampLimit(limit))
}

// queryCallbacks runs a list query of callbackHeadCols.
func (db *DB) queryCallbacks(ctx context.Context, op, query string, args ...any) ([]crm.CallbackEvent, error) {
	out, err := queryAll(ctx, db.reader, scanCallbackHead, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// Refusals implements ui.Source: refused callbacks newest first, filtered
// by a case-insensitive substring of detail, code or remote address. The
// table is bounded (Options.MaxRefusals), so a filter scan is cheap.
func (db *DB) Refusals(ctx context.Context, q crm.EventQuery) ([]crm.Refusal, error) {
	query := `SELECT id, at, remote_addr, http_status, code, detail, head FROM refusals WHERE id > ?`
	args := []any{q.AfterID}
	if q.Filter != "" {
		p := store.LikePattern(q.Filter)
		query += ` AND (lower(detail) LIKE ? ESCAPE '\' OR lower(code) LIKE ? ESCAPE '\' OR lower(remote_addr) LIKE ? ESCAPE '\')`
		args = append(args, p, p, p)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, store.ClampLimit(q.Limit))
	out, err := queryAll(ctx, db.reader, scanRefusal, query, args...)
	if err != nil {
		return nil, fmt.Errorf("refusals: %w", err)
	}
	return out, nil
}

func scanRefusal(s scanner) (crm.Refusal, error) {
	var (
		r  crm.Refusal
		at int64
	)
	err := s.Scan(&r.ID, &at, &r.RemoteAddr, &r.HTTPStatus, &r.Code, &r.Detail, &r.Head)
	r.At = fromMS(at)
	return r, err
}
