package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Store maintenance, as store/sqlite's: Prune keeps the store bounded,
// Forget erases one person; Backup is pg_dump's job. Each keeps what dedup
// needs: the leads' external_id and the callbacks' dedup columns.

// pruneChunk is how many ids of a table one Prune transaction covers, so
// row locks are held briefly and the listener's commits slip in between.
const pruneChunk = 1000

// finalLead restricts attempts to those of leads in a final state.
const finalLead = `EXISTS (SELECT 1 FROM leads l WHERE l.id = attempts.lead_id
	AND l.state IN ('accepted', 'duplicate', 'validation_error', 'rejected', 'failed'))`

// pruneStep is what Prune does to one table, a chunk of ids at a time: one
// statement that drops the due rows of ($1, $2] older than $3 and returns
// how many rows and bytes it dropped. stat is the count it adds to.
type pruneStep struct {
	table, apply string
	stat         func(*store.PruneStats) *int64
}

// pruneSteps are Prune's steps, in order. The bytes are measured in the
// same statement, from the rows as they were before the change (a
// data-modifying CTE's RETURNING of the old values is not available for
// UPDATE, so the callbacks step reads them in a locking subquery).
var pruneSteps = []pruneStep{
	{"callbacks",
		`WITH d AS (SELECT id, length(raw_body) AS n FROM callbacks
				WHERE id > $1 AND id <= $2 AND received_at < $3 AND length(raw_body) > 0 FOR UPDATE),
			u AS (UPDATE callbacks c SET raw_body = '' FROM d WHERE c.id = d.id RETURNING d.n)
		SELECT count(*), COALESCE(sum(n), 0)::bigint FROM u`,
		func(st *store.PruneStats) *int64 { return &st.RawBodies }},
	{"attempts",
		`WITH u AS (DELETE FROM attempts WHERE id > $1 AND id <= $2 AND started_at < $3 AND ` + finalLead + `
			RETURNING COALESCE(length(response_body), 0) + COALESCE(length(prev_payload), 0) AS n)
		SELECT count(*), COALESCE(sum(n), 0)::bigint FROM u`,
		func(st *store.PruneStats) *int64 { return &st.Attempts }},
	{"refusals",
		`WITH u AS (DELETE FROM refusals WHERE id > $1 AND id <= $2 AND at < $3 RETURNING COALESCE(length(head), 0) AS n)
		SELECT count(*), COALESCE(sum(n), 0)::bigint FROM u`,
		func(st *store.PruneStats) *int64 { return &st.Refusals }},
	// A delivered forward keeps its last attempt: the timeline still says
	// when and with what answer it went through.
	{"forward_attempts",
		`WITH u AS (DELETE FROM forward_attempts a WHERE a.id > $1 AND a.id <= $2 AND a.at < $3
				AND EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id AND d.state = 'delivered')
				AND EXISTS (SELECT 1 FROM forward_attempts b WHERE b.delivery_id = a.delivery_id AND b.id > a.id)
			RETURNING COALESCE(length(a.head), 0) AS n)
		SELECT count(*), COALESCE(sum(n), 0)::bigint FROM u`,
		func(st *store.PruneStats) *int64 { return &st.ForwardAttempts }},
}

// Prune drops what only explains the past, older than before: callbacks'
// raw bodies (by arrival), the attempt rows of leads in a final state (by
// start) and refusals. Every lead and callback row stays, so counts do not
// move (the refusal count follows the deleted refusals) and dedup still
// recognises a replay. Work is done in statements of pruneChunk ids, each
// its own transaction, so Prune runs beside busy instances; on an error
// the chunks done stay done and the stats count them. The space is reused
// by PostgreSQL after (auto)vacuum; the database does not shrink.
func (db *DB) Prune(ctx context.Context, before time.Time) (store.PruneStats, error) {
	var st store.PruneStats
	if db.readOnly {
		return st, fmt.Errorf("prune: %w", errReadOnly())
	}
	b := ms(before)
	changed := false
	defer func() {
		if changed {
			db.watch.changed()
		}
	}()
	for _, step := range pruneSteps {
		var lo, top int64
		if err := db.pool.QueryRow(ctx, `SELECT COALESCE(min(id), 1) - 1, COALESCE(max(id), 0) FROM `+step.table).Scan(&lo, &top); err != nil {
			return st, fmt.Errorf("prune %s: %w", step.table, mapErr(ctx, err))
		}
		n := step.stat(&st)
		for ; lo < top; lo += pruneChunk {
			var rows, bytes int64
			if err := db.pool.QueryRow(ctx, step.apply, lo, lo+pruneChunk, b).Scan(&rows, &bytes); err != nil {
				err = mapErr(ctx, err)
				db.noteFailure(err)
				return st, fmt.Errorf("prune %s: %w", step.table, err)
			}
			*n += rows
			st.Bytes += bytes
			changed = changed || rows > 0
		}
	}
	return st, nil
}

// Backup is not done by leadwatch on PostgreSQL: the server's own tool
// makes a consistent copy while instances keep writing. The error wraps
// errors.ErrUnsupported and says what to run.
func (db *DB) Backup(_ context.Context, path string) error {
	return fmt.Errorf("backup to %s: %w: leadwatch does not copy a PostgreSQL database; "+
		"run pg_dump instead, e.g. pg_dump --format=custom --file=%s '%s' (it is consistent while leadwatch runs; restore with pg_restore)",
		path, errors.ErrUnsupported, path, db.location)
}

// forgottenReason replaces a forgotten lead's reason (the CRM's text may
// quote the lead's fields).
const forgottenReason = "personal data erased"

// Forget erases one person's data while keeping counts and dedup keys, as
// store/sqlite's Forget: the lead's payload becomes "{}", its reason and
// last error are replaced, a lead still to be sent is withdrawn (failed),
// its attempts lose their response bodies and previous payloads, the
// callbacks that name it (linked, or unmatched with its external_id or
// CRM id) lose their raw bodies and reasons, and refusals whose first
// bytes name it (its external_id, phone or email) lose them. One
// transaction, with the lead's row locked first (FOR UPDATE), so a
// concurrent Record or Resubmit waits or loses its lease. An unknown id is
// ErrNotFound.
//
// ForgetStats.Checkpointed is always false: PostgreSQL has no WAL
// checkpoint for leadwatch to run. The old row versions stay in the table
// files until vacuum reclaims them, and in the WAL (and its archive or
// backups) until those are recycled; run VACUUM on the tables to drop the
// dead versions sooner.
func (db *DB) Forget(ctx context.Context, externalID string) (st store.ForgetStats, err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return st, fmt.Errorf("forget %s: %w", externalID, errReadOnly())
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	defer rollback(tx)
	var (
		id           int64
		state, crmID string
		payload      []byte
	)
	err = tx.QueryRow(ctx, `SELECT id, state, crm_id, payload FROM leads WHERE external_id = $1 FOR UPDATE`, externalID).
		Scan(&id, &state, &crmID, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("forget %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, mapErr(ctx, err))
	}
	prev, err := queryAll(ctx, tx, func(r pgx.Row) ([]byte, error) {
		var b []byte
		return b, r.Scan(&b)
	}, `SELECT prev_payload FROM attempts WHERE lead_id = $1 AND prev_payload IS NOT NULL`, id)
	if err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	needles := personalStrings(externalID, append(prev, payload)...)
	st.Withdrawn = !crm.State(state).Final()
	exec := func(q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return 0, mapErr(ctx, err)
		}
		return tag.RowsAffected(), nil
	}
	const live = `'queued', 'retry_wait', 'in_flight', 'held'`
	if _, err := exec(`UPDATE leads SET payload = $1, reason = $2, last_error = '', hold = '',
			state = CASE WHEN state IN (`+live+`) THEN 'failed' ELSE state END,
			next_attempt_at = CASE WHEN state IN (`+live+`) THEN NULL ELSE next_attempt_at END,
			lease_owner = '', lease_expires_at = NULL, updated_at = $3
		WHERE id = $4`, []byte(forgottenPayload), forgottenReason, ms(db.now()), id); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	if st.Attempts, err = exec(`UPDATE attempts SET response_body = NULL, prev_payload = NULL
		WHERE lead_id = $1 AND (response_body IS NOT NULL OR prev_payload IS NOT NULL)`, id); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	if st.Callbacks, err = exec(`UPDATE callbacks SET raw_body = '', reason = ''
		WHERE (lead_id = $1 OR (lead_id IS NULL AND (external_id = $2 OR ($3 <> '' AND internal_id = $3))))
		AND (length(raw_body) > 0 OR reason <> '')`, id, externalID, crmID); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	// The app's answers to the lead's forwarded callbacks may echo them;
	// its deliveries not yet made would send an erased body, so they end
	// failed (a replay can still send what is left).
	const leadDeliveries = `SELECT d.id FROM deliveries d JOIN callbacks c ON c.id = d.callback_id
		WHERE c.lead_id = $1 OR (c.lead_id IS NULL AND (c.external_id = $2 OR ($3 <> '' AND c.internal_id = $3)))`
	if _, err := exec(`UPDATE forward_attempts SET head = '' WHERE length(head) > 0
		AND delivery_id IN (`+leadDeliveries+`)`, id, externalID, crmID); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	if _, err := exec(`UPDATE deliveries SET state = 'failed', last_error = $4, lease_owner = '', lease_until = NULL,
			updated_at = $5
		WHERE state IN ('pending', 'in_flight') AND id IN (`+leadDeliveries+`)`,
		id, externalID, crmID, forgottenReason, ms(db.now())); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	// position() on bytea: a refusal's head is raw bytes.
	bs := make([][]byte, len(needles))
	for i, s := range needles {
		bs[i] = []byte(s)
	}
	if st.Refusals, err = exec(`UPDATE refusals SET head = '' WHERE length(head) > 0
		AND EXISTS (SELECT 1 FROM unnest($1::bytea[]) AS n WHERE position(n IN head) > 0)`, bs); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	if err := db.commit(ctx, tx); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	db.noteCommit()
	db.watch.changed()
	return st, nil
}

// personalStrings are the lead's identifiers that other rows may quote:
// its external_id and each payload's phone and email, once each.
func personalStrings(externalID string, payloads ...[]byte) []string {
	out := []string{externalID}
	seen := map[string]bool{externalID: true}
	for _, p := range payloads {
		var f map[string]json.RawMessage
		if json.Unmarshal(p, &f) != nil {
			continue
		}
		for _, k := range []string{"phone", "email"} {
			var s string
			if json.Unmarshal(f[k], &s) == nil && s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
