package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The due conditions of a lookup (migration 008). The MAX expressions are
// those of the partial indexes leads_lookup_new and leads_lookup_stale,
// written the same way so that the indexes serve the claims. INDEXED BY
// names them: without statistics the planner prefers leads_state_due
// (every accepted lead, then a sort), which is what they exist to avoid.
const (
	lookupNewAt   = `MAX(COALESCE(accepted_at, 0), COALESCE(last_lookup_at, 0))`
	lookupStaleAt = `MAX(COALESCE(crm_status_at, 0), COALESCE(last_lookup_at, 0))`

	// sqlLookupNew: accepted leads with no status whose last news is
	// before the cut (cut, accepted since, limit).
	sqlLookupNew = `SELECT id FROM leads INDEXED BY leads_lookup_new
		WHERE state = 'accepted' AND crm_status = '' AND ` + lookupNewAt + ` < ?
			AND COALESCE(accepted_at, 0) >= ?
		ORDER BY ` + lookupNewAt + `, id LIMIT ?`
	// sqlLookupStatuses lists the distinct statuses of accepted leads by
	// skipping from one to the next along leads_lookup_stale: a seek per
	// status, whatever the number of leads. Bounded, so a CRM inventing a
	// status per lead cannot make it a walk of the table.
	sqlLookupStatuses = `WITH RECURSIVE s(st) AS (
			SELECT MIN(crm_status) FROM leads INDEXED BY leads_lookup_stale
				WHERE state = 'accepted' AND crm_status <> ''
			UNION ALL
			SELECT (SELECT MIN(crm_status) FROM leads INDEXED BY leads_lookup_stale
				WHERE state = 'accepted' AND crm_status <> ''
				AND crm_status > s.st) FROM s WHERE s.st IS NOT NULL LIMIT 1000)
		SELECT st FROM s WHERE st IS NOT NULL`
	// sqlLookupStale: accepted leads with this status whose last news is
	// before the cut (status, cut, accepted since, limit).
	sqlLookupStale = `SELECT id FROM leads INDEXED BY leads_lookup_stale
		WHERE state = 'accepted' AND crm_status <> '' AND crm_status = ? AND ` + lookupStaleAt + ` < ?
			AND COALESCE(accepted_at, 0) >= ?
		ORDER BY ` + lookupStaleAt + `, id LIMIT ?`
	// sqlLookupMark hands the leads in the JSON array out (now, ids).
	sqlLookupMark = `UPDATE leads SET last_lookup_at = ?, lookups = lookups + 1
		WHERE id IN (SELECT value FROM json_each(?)) AND state = 'accepted'
		RETURNING ` + leadCols
	// sqlLookupNamed hands the named accepted leads out, due or not (now,
	// external ids).
	sqlLookupNamed = `UPDATE leads SET last_lookup_at = ?, lookups = lookups + 1
		WHERE external_id IN (SELECT value FROM json_each(?)) AND state = 'accepted'
		RETURNING ` + leadCols
)

// ClaimLookups implements crm.ReconcileStore: it marks up to q.Limit due
// leads as looked up at q.Now and returns them; the leads with no status
// come first, then those of each status not final. The reads and the mark
// are one write transaction, so under SQLite's single writer no two
// instances hand one lead out.
func (db *DB) ClaimLookups(ctx context.Context, q crm.ReconcileQuery) (_ []crm.Lead, err error) {
	defer func() { db.noteFailure(err) }()
	now := q.Now
	if now.IsZero() {
		now = db.now()
	}
	limit := store.ClampLimit(q.Limit)
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim lookups: %w", err)
	}
	defer tx.Rollback()
	var leads []crm.Lead
	if len(q.ExternalIDs) > 0 {
		names, _ := json.Marshal(q.ExternalIDs)
		leads, err = queryAll(ctx, tx, scanLead, sqlLookupNamed, ms(now), string(names))
	} else {
		var ids []int64
		ids, err = dueLookups(ctx, tx, q, now, limit)
		if err == nil && len(ids) > 0 {
			b, _ := json.Marshal(ids)
			leads, err = queryAll(ctx, tx, scanLead, sqlLookupMark, ms(now), string(b))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("claim lookups: %w", err)
	}
	if len(leads) == 0 {
		return nil, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("claim lookups: %w", err)
	}
	return leads, nil
}

// dueLookups returns the ids of up to limit leads due for a lookup at now.
func dueLookups(ctx context.Context, tx *sql.Tx, q crm.ReconcileQuery, now time.Time, limit int) ([]int64, error) {
	since := int64(0)
	if !q.AcceptedSince.IsZero() {
		since = ms(q.AcceptedSince)
	}
	scanID := func(s scanner) (int64, error) {
		var id int64
		return id, s.Scan(&id)
	}
	ids, err := queryAll(ctx, tx, scanID, sqlLookupNew, ms(now.Add(-q.After)), since, limit)
	if err != nil || len(ids) >= limit {
		return ids, err
	}
	statuses, err := queryAll(ctx, tx, func(s scanner) (string, error) {
		var st string
		return st, s.Scan(&st)
	}, sqlLookupStatuses)
	if err != nil {
		return nil, err
	}
	for _, st := range statuses {
		if q.IsFinal(st) {
			continue
		}
		more, err := queryAll(ctx, tx, scanID, sqlLookupStale, st, ms(now.Add(-q.Stale)), since, limit-len(ids))
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
		if len(ids) >= limit {
			break
		}
	}
	return ids, nil
}

// SavePolled implements crm.ReconcileStore: in one transaction, when p's
// status is not the lead's CRM status and no newer status is known
// (crm_status_at after p.UpdatedAt), it stores p as a callbacks row of kind
// polled and makes p's status the lead's CRM status (its first status
// time and first ftd time too, if it had none). changed is false when it
// stored nothing.
func (db *DB) SavePolled(ctx context.Context, p crm.PolledStatus) (changed bool, err error) {
	defer func() { db.noteFailure(err) }()
	if p.Status == "" {
		return false, fmt.Errorf("save polled status of %q: no status", p.ExternalID)
	}
	polled := p.PolledAt
	if polled.IsZero() {
		polled = db.now()
	}
	at := polled
	if !p.UpdatedAt.IsZero() {
		at = p.UpdatedAt
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", err)
	}
	defer tx.Rollback()
	var (
		cur   string
		curAt sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `SELECT crm_status, crm_status_at FROM leads WHERE id = ?`, p.LeadID).Scan(&cur, &curAt)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("save polled status of %q: %w", p.ExternalID, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if cur == p.Status || (!p.UpdatedAt.IsZero() && curAt.Valid && curAt.Int64 > ms(at)) {
		return false, nil
	}
	// The status's time orders it against callbacks (sqlSetCRMStatus).
	// Without the CRM's updated_at the lead keeps the time it had: a
	// time from this host's clock could hold back a newer callback
	// whose CRM clock is behind.
	statusAt := sql.NullInt64{Int64: ms(at), Valid: true}
	if p.UpdatedAt.IsZero() {
		statusAt = curAt
	}
	ts := strconv.FormatInt(ms(polled), 10)
	raw := p.RawBody
	if raw == nil {
		raw = []byte{}
	}
	// event '' keeps the row's identity out of every callback's reach
	// (migration 008); no conflict target, so any unique index counts.
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO callbacks (dedup_key, internal_id, external_id, event, status,
			reason, timestamp, event_time, received_at, skew_ms, raw_body, secret_idx, lead_id, kind)
		VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, 0, ?, 0, ?, 'polled')
		ON CONFLICT DO NOTHING RETURNING id`,
		p.InternalID+":"+crm.EventStatusPolled+":"+ts, p.InternalID, p.ExternalID, p.Status, p.Reason, ts, ms(at), ms(polled),
		raw, p.LeadID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// A polled row of this CRM id in the same millisecond: the
		// next lookup tells again.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE leads SET crm_status = ?1, crm_status_at = ?2, updated_at = ?3,
			first_status_at = COALESCE(first_status_at, ?4),
			ftd_at = CASE WHEN ftd_at IS NULL AND lower(?1) = 'ftd' THEN ?4 ELSE ftd_at END
		WHERE id = ?5`, p.Status, statusAt, ms(db.now()), ms(polled), p.LeadID); err != nil {
		return false, fmt.Errorf("save polled status: %w", mapErr(ctx, err))
	}
	if err := db.commit(ctx, tx); err != nil {
		return false, fmt.Errorf("save polled status: %w", err)
	}
	return true, nil
}
