package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// callbackHeadCols is the column list scanCallbackHead reads, in order:
// every column but the raw body. Lists (panes, tail, export) read only
// these, so a page of callbacks costs its rows, not up to a megabyte of
// body each; the detail view asks for the one body it shows (Callback).
const callbackHeadCols = `id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
	event_time, received_at, skew_ms, secret_idx, lead_id`

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
		&ev.Timestamp, &eventTime, &received, &skew, &ev.SecretIdx, &leadID}
	if body {
		dest = append(dest, &ev.RawBody)
	}
	err := s.Scan(dest...)
	ev.EventTime = fromNullMS(eventTime)
	ev.ReceivedAt = fromMS(received)
	ev.Skew = time.Duration(skew) * time.Millisecond
	ev.LeadID = leadID.Int64
	return ev, err
}

// Callback returns the stored callback with that id, raw body included, or
// ErrNotFound.
func (db *DB) Callback(ctx context.Context, id int64) (crm.CallbackEvent, error) {
	ev, err := scanCallback(db.reader.QueryRowContext(ctx, `SELECT `+callbackCols+` FROM callbacks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return crm.CallbackEvent{}, fmt.Errorf("callback %d: %w", id, mapErr(ctx, err))
	}
	return ev, nil
}

// SaveCallbacks implements callbacks.EventSink: the batch in one
// transaction (the listener's group commit), each event inserted unless its
// dedup key is already stored (fresh[i] false: a replay). A fresh event is
// linked to its lead — by external_id, else by the lead's CRM id — and its
// status becomes the lead's CRM status unless a newer event's already is.
// Events matching no lead are kept unlinked (a later Record that learns the
// CRM id links them). On error nothing of the batch is stored.
func (db *DB) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	fresh := make([]bool, len(evs))
	if len(evs) == 0 {
		return fresh, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("save callbacks: %w", err)
	}
	defer tx.Rollback()
	byExt := db.hotW.in(ctx, tx, sqlLeadByExtID)
	byCRM := db.hotW.in(ctx, tx, sqlLeadByCRMID)
	ins := db.hotW.in(ctx, tx, sqlInsertCallbck)

	now := db.now()
	for i, ev := range evs {
		if ev.DedupKey == "" {
			return nil, fmt.Errorf("save callbacks: event %d has no dedup key", i)
		}
		var lead sql.NullInt64
		if ev.ExternalID != "" {
			if err := byExt.QueryRowContext(ctx, ev.ExternalID).Scan(&lead); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
			}
		}
		if !lead.Valid && ev.InternalID != "" {
			if err := byCRM.QueryRowContext(ctx, ev.InternalID).Scan(&lead); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
			}
		}
		received := ev.ReceivedAt
		if received.IsZero() {
			received = now
		}
		raw := ev.RawBody
		if raw == nil {
			raw = []byte{}
		}
		res, err := ins.ExecContext(ctx, ev.DedupKey, ev.InternalID, ev.ExternalID, ev.Event, ev.Status, ev.Reason,
			ev.Timestamp, nullMS(ev.EventTime), ms(received), ev.Skew.Milliseconds(), raw, ev.SecretIdx, lead)
		if err != nil {
			return nil, fmt.Errorf("save callbacks: %w", mapErr(ctx, err))
		}
		n, _ := res.RowsAffected()
		fresh[i] = n == 1
		if fresh[i] && lead.Valid && ev.Status != "" {
			// An unreadable event time orders by arrival instead.
			at := ms(received)
			if !ev.EventTime.IsZero() {
				at = ms(ev.EventTime)
			}
			if err := db.setCRMStatus(ctx, tx, lead.Int64, ev.Status, at, now); err != nil {
				return nil, fmt.Errorf("save callbacks: %w", err)
			}
		}
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("save callbacks: %w", err)
	}
	return fresh, nil
}

// SaveRefusal implements callbacks.EventSink: it stores a refused callback
// and drops the oldest beyond Options.MaxRefusals, in one transaction.
func (db *DB) SaveRefusal(ctx context.Context, r crm.Refusal) error {
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

// likePattern makes a case-insensitive substring pattern for
// `lower(col) LIKE ? ESCAPE '\'`. Case folding is ASCII (SQLite's lower()).
func likePattern(filter string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(filter))
	return "%" + esc + "%"
}

// clampLimit bounds a page size: 50 when unset, at most 10,000.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 10000:
		return 10000
	}
	return n
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
		p := likePattern(q.Filter)
		query += ` AND (lower(external_id) LIKE ? ESCAPE '\' OR lower(internal_id) LIKE ? ESCAPE '\'
			OR lower(event) LIKE ? ESCAPE '\' OR lower(status) LIKE ? ESCAPE '\')`
		args = append(args, p, p, p, p)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, clampLimit(q.Limit))
	return db.queryCallbacks(ctx, "callbacks", query, args...)
}

// CallbacksAfter returns up to limit callbacks with an id above afterID,
// oldest first, without their raw bodies: what `leadwatch tail` prints
// next.
func (db *DB) CallbacksAfter(ctx context.Context, afterID int64, limit int) ([]crm.CallbackEvent, error) {
	return db.queryCallbacks(ctx, "callbacks after", `SELECT `+callbackHeadCols+` FROM callbacks WHERE id > ? ORDER BY id LIMIT ?`,
		afterID, clampLimit(limit))
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
		p := likePattern(q.Filter)
		query += ` AND (lower(detail) LIKE ? ESCAPE '\' OR lower(code) LIKE ? ESCAPE '\' OR lower(remote_addr) LIKE ? ESCAPE '\')`
		args = append(args, p, p, p)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, clampLimit(q.Limit))
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
