package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The statements run once per lead attempt or per callback. They are
// prepared once, at Open, so SQLite parses each one once instead of on
// every call: parsing was about a quarter of the sender's CPU before.
const (
	sqlClaimDue = `SELECT id, next_attempt_at FROM leads WHERE state = ? AND next_attempt_at <= ?
			ORDER BY next_attempt_at, id LIMIT ?`
	// sqlClaimLease leases the leads whose ids are in the JSON array
	// parameter, each only if it is still due at the last parameter: the
	// WHERE repeats claimGuard, so a lead leased, finished or changed since
	// the candidates were read is not taken (Claim).
	sqlClaimLease = `UPDATE leads SET state = 'in_flight', lease_owner = ?,
		lease_expires_at = ?, next_attempt_at = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT value FROM json_each(?)) AND ` + claimGuard + `
		RETURNING ` + leadCols
	// claimGuard is what makes a lead due (its parameter is now, in ms):
	// queued whatever its time, retry_wait once its time came, in_flight
	// once its lease expired (next_attempt_at mirrors lease_expires_at).
	// It is sqlClaimDue's condition, for all live states at once. The
	// unary + keeps the planner from serving it with leads_state_due (a
	// walk of every queued lead) instead of looking the ids up by rowid.
	claimGuard    = `(+state = 'queued' OR (+state IN ('retry_wait', 'in_flight') AND +next_attempt_at <= ?))`
	sqlRecordLead = `UPDATE leads SET state = ?,
			accepted_at = CASE WHEN ? = 'accepted' THEN ? ELSE accepted_at END,
			crm_id = CASE WHEN ? <> '' THEN ? ELSE crm_id END,
			reason = ?, last_http_status = ?, last_error = ?, last_delay_ms = ?, last_delay_why = ?,
			next_attempt_at = ?, lease_owner = '', lease_expires_at = NULL, updated_at = ?
		WHERE id = ? AND lease_owner = ? AND state = 'in_flight'
		RETURNING attempts, idempotency_key`
	sqlRecordAttempt = `INSERT INTO attempts
		(lead_id, kind, number, idempotency_key, started_at, duration_us, http_status, response_body,
		 error, outcome, delay_ms, delay_why, note)
		VALUES (?, 'send', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// sqlLinkLate (lead id, CRM id, slack in ms) links the unlinked
	// callbacks that name the CRM id and arrived since the lead was
	// created, less the slack: a walk of callbacks_unlinked from that time
	// on (migration 012), not of every callback the CRM id ever had. The
	// planner, left alone, walks callbacks_lead's unlinked rows instead:
	// all of them, reading each row.
	sqlLinkLate = `UPDATE callbacks INDEXED BY callbacks_unlinked SET lead_id = ?1 WHERE lead_id IS NULL AND internal_id = ?2
		AND received_at >= (SELECT created_at FROM leads WHERE id = ?1) - ?3`
	// sqlLinkStatus makes the newest status among a lead's callbacks (by
	// event time, else arrival) the lead's CRM status, unless a newer one
	// is there: the read and the guarded write are one statement.
	sqlLinkStatus = `UPDATE leads SET crm_status = c.status, crm_status_at = c.t, updated_at = ?
		FROM (SELECT status, COALESCE(event_time, received_at) AS t FROM callbacks
			WHERE lead_id = ? AND status <> '' ORDER BY t DESC, id DESC LIMIT 1) AS c
		WHERE leads.id = ? AND (leads.crm_status_at IS NULL OR leads.crm_status_at <= c.t)`
	// sqlLinkStatusTimes sets a lead's first status and first ftd times
	// from its linked callbacks (their arrival), each only once.
	sqlLinkStatusTimes = `UPDATE leads SET
			first_status_at = COALESCE(first_status_at,
				(SELECT MIN(received_at) FROM callbacks WHERE lead_id = ? AND status <> '')),
			ftd_at = COALESCE(ftd_at,
				(SELECT MIN(received_at) FROM callbacks WHERE lead_id = ? AND lower(status) = 'ftd'))
		WHERE id = ? AND (first_status_at IS NULL OR ftd_at IS NULL)`
	// sqlSetCRMStatus takes a linked callback's status (status, event
	// time, now, lead id, arrival; numbered, each bound once): the
	// CRM status unless a newer event's is there, the first status time
	// and the first ftd time once each. The WHERE leaves the row alone,
	// firing nothing, when none of the three changes.
	sqlSetCRMStatus = `UPDATE leads SET
			crm_status = CASE WHEN crm_status_at IS NULL OR crm_status_at <= ?2 THEN ?1 ELSE crm_status END,
			crm_status_at = CASE WHEN crm_status_at IS NULL OR crm_status_at <= ?2 THEN ?2 ELSE crm_status_at END,
			updated_at = ?3,
			first_status_at = COALESCE(first_status_at, ?5),
			ftd_at = CASE WHEN ftd_at IS NULL AND lower(?1) = 'ftd' THEN ?5 ELSE ftd_at END
		WHERE id = ?4 AND (crm_status_at IS NULL OR crm_status_at <= ?2 OR first_status_at IS NULL
			OR (ftd_at IS NULL AND lower(?1) = 'ftd'))`
	// sqlHoldPaused holds a queued or retry_wait lead (now, id, id) whose
	// source or sub_id is paused (source first): a retry, a release or a
	// release by the operator of a lead a pause covers.
	sqlHoldPaused = `UPDATE leads SET state = 'held', hold = p.field, reason = 'paused: ' || p.field || ' ' || p.value,
			next_attempt_at = NULL, lease_owner = '', lease_expires_at = NULL, updated_at = ?
		FROM (SELECT pz.field, pz.value FROM pauses pz, leads l WHERE l.id = ?
			AND ((pz.field = 'source' AND pz.value = l.source) OR (pz.field = 'sub_id' AND pz.value = l.sub_id))
			ORDER BY pz.field = 'source' DESC LIMIT 1) AS p
		WHERE leads.id = ? AND leads.state IN ('queued', 'retry_wait')`
	sqlNextDue = `SELECT MIN(next_attempt_at) FROM leads WHERE state = ?`
)

// insertChunks are the row counts of the prepared multi-row callback
// inserts, largest first. A batch runs as the largest chunks that fit, so
// any batch up to 16 events (the listener's usual group commit at 32
// connections) is one statement, and a larger one a few.
var insertChunks = [...]int{64, 32, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}

// insertCallbackCols is how many parameters one row of sqlInsertCallbacks
// takes, in the order SaveCallbacks binds them.
const insertCallbackCols = 18

// sqlInsertCallbacks returns the statement inserting n verified events.
// Each row is inserted unless its triple (internal_id, event, timestamp)
// is stored already, or earlier in the statement (migration 004); its lead
// is found in the same statement (by external_id, else the newest lead
// with that CRM id). The caller picks the ids (the next free ones, in
// order, under the write lock), so the RETURNING rows say which event each
// one is without sending the strings back; an event without a row is a
// replay, and its id stays unused.
//
// The parameters are anonymous (?), a value used twice is bound twice:
// the driver looks up every parameter's name, and with numbered ones
// (?NNN) SQLite finds a name by a linear scan, which made binding a large
// chunk quadratic.
func sqlInsertCallbacks(n int) string {
	// Per row: id; internal_id, event, timestamp (the display key);
	// internal_id, external_id, event, status, reason, timestamp,
	// event_time, received_at, skew_ms, raw_body, secret_idx, ts_number;
	// external_id and internal_id (the lead lookups).
	const row = `(?, ? || ':' || ? || ':' || ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(
			(SELECT id FROM leads WHERE external_id = NULLIF(?, '')),
			(SELECT id FROM leads WHERE crm_id = ? ORDER BY id DESC LIMIT 1)))`
	var b strings.Builder
	b.WriteString(`INSERT INTO callbacks
		(id, dedup_key, internal_id, external_id, event, status, reason, timestamp, event_time,
		 received_at, skew_ms, raw_body, secret_idx, ts_number, lead_id) VALUES `)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(` ON CONFLICT (internal_id, event, timestamp) DO NOTHING RETURNING id, lead_id`)
	return b.String()
}

var (
	hotWrites = append([]string{sqlClaimDue, sqlClaimLease, sqlRecordLead, sqlRecordAttempt, sqlLinkLate,
		sqlLinkStatus, sqlLinkStatusTimes, sqlSetCRMStatus, sqlHoldPaused, sqlMaxLeadID, sqlGateClose, sqlCountBatch, sqlThroughputAdd},
		append(insertCallbackSQL[:], enqueueLeadSQL[:]...)...)
	hotReads = []string{sqlNextDue}
)

// SaveCallbacks' own statements besides the inserts (migration 004): it
// closes the trigger gate and learns the highest id (its rows are
// numbered after it) in one statement, and counts its batch and opens the
// gate again in another, before it commits.
const (
	sqlGateClose = `UPDATE counters SET n = 1 WHERE name = 'callbacks_batch'
		RETURNING (SELECT COALESCE(MAX(id), 0) FROM callbacks)`
	sqlCountBatch = `UPDATE counters SET n = CASE name
			WHEN 'callbacks' THEN n + ? WHEN 'callbacks_unmatched' THEN n + ? ELSE 0 END
		WHERE name IN ('callbacks', 'callbacks_unmatched', 'callbacks_batch')`
	sqlThroughputAdd = `INSERT INTO throughput (sec, callbacks) VALUES (?, ?)
		ON CONFLICT (sec) DO UPDATE SET callbacks = callbacks + excluded.callbacks`
)

// insertCallbackSQL[i] is sqlInsertCallbacks(insertChunks[i]), built once.
var insertCallbackSQL = func() (out [len(insertChunks)]string) {
	for i, n := range insertChunks {
		out[i] = sqlInsertCallbacks(n)
	}
	return out
}()

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
