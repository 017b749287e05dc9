package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements run once per lead attempt or per callback. They are
// prepared once, at Open, so SQLite parses each one once instead of on
// every call: parsing was about a quarter of the sender's CPU before.
const (
	sqlClaimDue = `SELECT id, next_attempt_at FROM leads WHERE state = ? AND next_attempt_at <= ?
			ORDER BY next_attempt_at, id LIMIT ?`
	sqlClaimOne = `UPDATE leads SET state = 'in_flight', lease_owner = ?,
		lease_expires_at = ?, next_attempt_at = ?, attempts = attempts + 1, updated_at = ?
		WHERE id = ? RETURNING ` + leadCols
	sqlRecordLead = `UPDATE leads SET state = ?,
			crm_id = CASE WHEN ? <> '' THEN ? ELSE crm_id END,
			reason = ?, last_http_status = ?, last_error = ?, last_delay_ms = ?, last_delay_why = ?,
			next_attempt_at = ?, lease_owner = '', lease_expires_at = NULL, updated_at = ?
		WHERE id = ? AND lease_owner = ? AND state = 'in_flight'
		RETURNING attempts, idempotency_key`
	sqlRecordAttempt = `INSERT INTO attempts
		(lead_id, kind, number, idempotency_key, started_at, duration_us, http_status, response_body,
		 error, outcome, delay_ms, delay_why, note)
		VALUES (?, 'send', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlLinkLate     = `UPDATE callbacks SET lead_id = ? WHERE internal_id = ? AND lead_id IS NULL`
	sqlSetCRMStatus = `UPDATE leads SET crm_status = ?, crm_status_at = ?, updated_at = ?
		WHERE id = ? AND (crm_status_at IS NULL OR crm_status_at <= ?)`
	sqlLeadByExtID   = `SELECT id FROM leads WHERE external_id = ?`
	sqlLeadByCRMID   = `SELECT id FROM leads WHERE crm_id = ? ORDER BY id DESC LIMIT 1`
	sqlInsertCallbck = `INSERT INTO callbacks
		(dedup_key, internal_id, external_id, event, status, reason, timestamp, event_time,
		 received_at, skew_ms, raw_body, secret_idx, lead_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (dedup_key) DO NOTHING`
	sqlNextDue = `SELECT MIN(next_attempt_at) FROM leads WHERE state = ?`
)

var (
	hotWrites = []string{sqlClaimDue, sqlClaimOne, sqlRecordLead, sqlRecordAttempt, sqlLinkLate,
		sqlSetCRMStatus, sqlLeadByExtID, sqlLeadByCRMID, sqlInsertCallbck}
	hotReads = []string{sqlNextDue}
)

// prepared holds statements prepared on one *sql.DB.
type prepared map[string]*sql.Stmt

// prepareAll prepares queries on pool.
func prepareAll(ctx context.Context, pool *sql.DB, queries []string) (prepared, error) {
	p := make(prepared, len(queries))
	for _, q := range queries {
		s, err := pool.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("prepare: %w", mapErr(ctx, err))
		}
		p[q] = s
	}
	return p, nil
}

func (p prepared) close() error {
	var errs []error
	for _, s := range p {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// in returns query bound to tx, from the statements prepared at Open. The
// writer is a single connection, so the statement is already prepared on
// the transaction's connection and nothing is parsed again; on the reader
// pool database/sql prepares it once per connection.
func (p prepared) in(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	s, ok := p[query]
	if !ok {
		// A programming error caught by the tests, which run every hot
		// path: the statement list above is incomplete.
		panic("store: statement not prepared at Open: " + query)
	}
	return tx.StmtContext(ctx, s)
}
