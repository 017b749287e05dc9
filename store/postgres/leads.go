package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// forgottenPayload is what Forget leaves of a lead's payload: no field of
// the person is left, so it cannot be resubmitted as it is.
const forgottenPayload = "{}"

// Enqueue commits a lead to the outbox, queued and due now, with a fresh
// idempotency key committed alongside. payload is stored byte for byte: it
// is what will be signed and sent. Errors: ErrInvalid (with the reason),
// ErrDuplicate (naming the id and its state), or a store failure.
func (db *DB) Enqueue(ctx context.Context, payload []byte, opt store.EnqueueOptions) (crm.Lead, error) {
	leads, errs, err := db.EnqueueBatch(ctx, [][]byte{payload}, opt)
	if err != nil {
		return crm.Lead{}, err
	}
	if errs[0] != nil {
		return crm.Lead{}, errs[0]
	}
	return leads[0], nil
}

// EnqueueBatch enqueues many leads in one transaction and one INSERT.
// Per-item problems (invalid, duplicate — also within the batch, where the
// first one wins) are reported in errs at the item's index and do not stop
// the others; leads[i] is the stored lead when errs[i] is nil. err is only
// for a store failure, and then nothing of the batch is stored.
//
// A lead enqueued at the same moment by another instance is found by the
// unique key: ON CONFLICT DO NOTHING waits for that transaction, and the
// item is then a duplicate naming the other's state.
func (db *DB) EnqueueBatch(ctx context.Context, payloads [][]byte, opt store.EnqueueOptions) ([]crm.Lead, []error, error) {
	fields, errs, err := store.CheckBatch(payloads, opt, db.opt.MaxPayload)
	if err != nil {
		return nil, nil, err
	}
	leads := make([]crm.Lead, len(payloads))
	type item struct {
		i int
		f crm.LeadFields
	}
	var good []item
	for i, e := range errs {
		if e == nil {
			good = append(good, item{i, fields[i]})
		}
	}
	if len(good) == 0 {
		return leads, errs, nil
	}
	now := db.now()
	idx := make([]int, len(good))
	exts := make([]string, len(good))
	keys := make([]string, len(good))
	bodies := make([][]byte, len(good))
	badPhones := make([]bool, len(good))
	sources, funnels, subIDs, countries := make([]string, len(good)), make([]string, len(good)), make([]string, len(good)), make([]string, len(good))
	for j, it := range good {
		idx[j] = it.i
		exts[j] = it.f.ExternalID
		keys[j] = crm.NewIdempotencyKey(it.f.ExternalID, now)
		bodies[j] = payloads[it.i]
		badPhones[j] = it.f.PhoneInvalid
		sources[j], funnels[j], subIDs[j], countries[j] = it.f.Source, it.f.Funnel, it.f.SubID, crm.CutGroupValue(it.f.Country)
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	defer rollback(tx)
	// The pauses are read under the shared pause lock (see sqlPauseShared),
	// in a statement after it, so a Pause that committed while this waited
	// is seen, and one that starts later waits for this commit and then
	// holds these leads itself.
	if _, err := tx.Exec(ctx, sqlPauseShared); err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", mapErr(ctx, err))
	}
	// The ids are drawn in batch order (the inner SELECT numbers the rows
	// as unnest yields them; a volatile nextval keeps it from being merged
	// into the outer query), so leads claim in the order they came. The
	// rows then go in sorted by external_id: two batches sharing ids take
	// their unique-key locks in one order and never deadlock, and of two
	// equal ids within the batch the first is stored. A lead whose source
	// (first) or sub_id is paused goes in held.
	stored, err := queryAll(ctx, tx, scanLead, `INSERT INTO leads
			(id, external_id, payload, idempotency_key, state, phone_invalid, next_attempt_at, created_at, updated_at,
			 source, funnel, sub_id, country, hold, reason)
		SELECT id, e, p, k, CASE WHEN h = '' THEN 'queued' ELSE 'held' END, b,
			CASE WHEN h = '' THEN $5::bigint END, $5, $5, src, fun, sub, cty, h,
			CASE h WHEN 'source' THEN 'paused: source ' || src WHEN 'sub_id' THEN 'paused: sub_id ' || sub ELSE '' END
		FROM (
			SELECT u.*, nextval(pg_get_serial_sequence('leads', 'id')) AS id,
				CASE WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'source' AND value = u.src) THEN 'source'
					WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'sub_id' AND value = u.sub) THEN 'sub_id'
					ELSE '' END AS h
			FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bool[], $6::text[], $7::text[], $8::text[], $9::text[])
				WITH ORDINALITY AS u(e, p, k, b, src, fun, sub, cty, ord)
		) s
		ORDER BY e, ord
		ON CONFLICT (external_id) DO NOTHING
		RETURNING `+leadCols, exts, bodies, keys, badPhones, ms(now), sources, funnels, subIDs, countries)
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	byExt := make(map[string]crm.Lead, len(stored))
	for _, l := range stored {
		byExt[l.ExternalID] = l
	}
	var dups []string
	for j, i := range idx {
		l, ok := byExt[exts[j]]
		if ok {
			leads[i] = l
			delete(byExt, exts[j]) // a later equal id in the batch is a duplicate
			continue
		}
		dups = append(dups, exts[j])
	}
	if len(dups) > 0 {
		states, err := db.statesIn(ctx, tx, dups)
		if err != nil {
			return nil, nil, fmt.Errorf("enqueue: %w", err)
		}
		for j, i := range idx {
			if leads[i].ID != 0 && leads[i].ExternalID == exts[j] {
				continue
			}
			errs[i] = fmt.Errorf("%w: %s is already there (%s)", store.ErrDuplicate, exts[j], states[exts[j]])
		}
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	db.committed()
	return leads, errs, nil
}

// Lead returns the lead with that external id, or ErrNotFound.
func (db *DB) Lead(ctx context.Context, externalID string) (crm.Lead, error) {
	l, err := scanLead(db.pool.QueryRow(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = $1`, externalID))
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("lead %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("lead %s: %w", externalID, mapErr(ctx, err))
	}
	return l, nil
}

// States returns the state of each lead in externalIDs that exists, in
// chunks of a few thousand ids a query.
func (db *DB) States(ctx context.Context, externalIDs []string) (map[string]crm.State, error) {
	out := make(map[string]crm.State, len(externalIDs))
	const chunk = 5000
	for start := 0; start < len(externalIDs); start += chunk {
		m, err := db.statesIn(ctx, db.pool, externalIDs[start:min(start+chunk, len(externalIDs))])
		if err != nil {
			return nil, fmt.Errorf("states: %w", err)
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// statesIn reads the states of the leads named in ids, on q.
func (db *DB) statesIn(ctx context.Context, q querier, ids []string) (map[string]crm.State, error) {
	type idState struct {
		id    string
		state crm.State
	}
	pairs, err := queryAll(ctx, q, func(r pgx.Row) (idState, error) {
		var p idState
		var st string
		err := r.Scan(&p.id, &st)
		p.state = crm.State(st)
		return p, err
	}, `SELECT external_id, state FROM leads WHERE external_id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]crm.State, len(pairs))
	for _, p := range pairs {
		out[p.id] = p.state
	}
	return out, nil
}

// sqlClaim leases up to $4 due leads in one statement. The pick runs in
// the live-lead index's order (due time, then id) and locks its rows FOR
// UPDATE SKIP LOCKED: a row another claimer is leasing right now is passed
// over rather than waited for, and a row that claimer already leased is
// re-checked against the WHERE by PostgreSQL after the lock (READ
// COMMITTED re-evaluation), so it no longer qualifies. No lead is handed
// to two claimers. Queued leads are due whatever their time (a clock set
// back must not strand them); retry_wait leads at their retry time;
// in_flight leads when their lease expired (their key is kept, so the CRM
// answers the retry as a replay). The result is in due order.
var sqlClaim = `WITH picked AS (
		SELECT id, next_attempt_at AS due FROM leads
		WHERE state IN ('queued', 'retry_wait', 'in_flight')
			AND (state = 'queued' OR next_attempt_at <= $1)
		ORDER BY next_attempt_at, id
		LIMIT $4
		FOR UPDATE SKIP LOCKED
	), leased AS (
		UPDATE leads l SET state = 'in_flight', lease_owner = $2, lease_expires_at = $3,
			next_attempt_at = $3, attempts = l.attempts + 1, updated_at = $5
		FROM picked WHERE l.id = picked.id
		RETURNING picked.due, ` + leadColsOf("l") + `
	)
	SELECT ` + leadCols + ` FROM leased ORDER BY due, id`

// leadColsOf is leadCols qualified by a table alias.
func leadColsOf(alias string) string {
	cols := strings.Split(leadCols, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// Claim implements crm.Outbox: it leases up to limit due leads to owner
// until now+lease, oldest due first, in one statement (sqlClaim).
func (db *DB) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Lead, error) {
	if owner == "" {
		return nil, errors.New("claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %v must be positive", lease)
	}
	if limit <= 0 {
		return nil, nil
	}
	if db.readOnly {
		return nil, fmt.Errorf("claim: %w", errReadOnly())
	}
	exp := ms(now.Add(lease))
	out, err := queryAll(ctx, db.pool, scanLead, sqlClaim, ms(now), owner, exp, limit, ms(db.now()))
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(out) > 0 {
		db.committed()
	}
	return out, nil
}

// Release implements crm.Outbox: leads claimed but not sent go back, due
// now, to queued (no attempt made yet) or retry_wait, with Claim's count
// undone. Leads whose lease owner no longer holds are left alone and
// reported with crm.ErrLeaseLost; the others are released regardless.
func (db *DB) Release(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if db.readOnly {
		return fmt.Errorf("release: %w", errReadOnly())
	}
	now := ms(db.now())
	released, err := queryAll(ctx, db.pool, func(r pgx.Row) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `UPDATE leads SET
			state = CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retry_wait' END,
			attempts = GREATEST(attempts - 1, 0),
			lease_owner = '', lease_expires_at = NULL, next_attempt_at = $1, updated_at = $1
		WHERE id = ANY($2) AND lease_owner = $3 AND state = 'in_flight'
		RETURNING id`, now, ids, owner)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if len(released) > 0 {
		db.committed()
	}
	done := make(map[int64]bool, len(released))
	for _, id := range released {
		done[id] = true
	}
	var lost []string
	for _, id := range ids {
		if !done[id] {
			lost = append(lost, strconv.FormatInt(id, 10))
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("release leads %s for %s: %w", strings.Join(lost, ","), owner, crm.ErrLeaseLost)
	}
	return nil
}

// NextDue implements crm.Outbox: the earliest next_attempt_at over the live
// states (an in_flight lead's is its lease expiry; a queued lead's is in the
// past, so it is due now). One lookup at the start of the live-lead index.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	var v *int64
	err := db.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM leads
		WHERE state IN ('queued', 'retry_wait', 'in_flight')`).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", mapErr(ctx, err))
	}
	if v == nil {
		return time.Time{}, false, nil
	}
	return fromMS(*v), true, nil
}

// Resubmit puts a lead in a resubmittable state (failed, rejected,
// validation_error, duplicate) back in the queue, due now with its attempt
// count reset, optionally with an edited payload (nil keeps it). The key
// follows crm.KeepsKey: an unchanged failed lead keeps its key, anything
// else gets a new one. The edit must pass the enqueue gate and keep the
// external_id (ErrInvalid). A history row of kind resubmit records what
// changed, with the previous payload when edited. Other states give
// ErrNotResubmittable. The lead's row is locked (SELECT … FOR UPDATE) from
// the read to the commit, so two resubmits, or a resubmit and a sender,
// cannot both act on the state they read.
func (db *DB) Resubmit(ctx context.Context, externalID string, payload []byte) (crm.Resubmission, error) {
	var res crm.Resubmission
	var badPhone bool
	var fields crm.LeadFields
	if payload != nil {
		f, err := store.CheckPayload(payload, false, db.opt.MaxPayload)
		if err != nil {
			return res, fmt.Errorf("resubmit %s: %w", externalID, err)
		}
		if f.ExternalID != externalID {
			return res, fmt.Errorf("resubmit %s: %w: the edit changes external_id to %q; enqueue it as a new lead instead", externalID, store.ErrInvalid, f.ExternalID)
		}
		badPhone = f.PhoneInvalid
		fields = f
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, err)
	}
	defer rollback(tx)
	// The lead goes back in the queue: a pause on its source or sub_id
	// holds it as it would a new lead (sqlPauseShared).
	if _, err := tx.Exec(ctx, sqlPauseShared); err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
	}
	old, err := scanLead(tx.QueryRow(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = $1 FOR UPDATE`, externalID))
	if errors.Is(err, pgx.ErrNoRows) {
		return res, fmt.Errorf("resubmit %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
	}
	if !old.State.Resubmittable() {
		return res, fmt.Errorf("resubmit %s: %w: it is %s; only failed, rejected, validation_error or duplicate leads can be", externalID, store.ErrNotResubmittable, old.State)
	}
	if payload == nil && string(old.Payload) == forgottenPayload {
		return res, fmt.Errorf("resubmit %s: %w: its personal data was erased (forget); resubmit it with a new payload", externalID, store.ErrNotResubmittable)
	}
	edited := payload != nil && !bytes.Equal(payload, old.Payload)
	if payload == nil {
		payload = old.Payload
		badPhone = old.PhoneInvalid
		fields = crm.LeadFields{Source: old.Source, Funnel: old.Funnel, SubID: old.SubID, Country: old.Country}
	}
	now := db.now()
	res.OldKey = old.IdempotencyKey
	res.Edited = edited
	res.KeyKept = crm.KeepsKey(old.State, old.Payload, payload)
	key := old.IdempotencyKey
	notes := []string{"resubmitted from " + string(old.State)}
	if edited {
		notes = append(notes, "payload edited")
	} else {
		notes = append(notes, "payload unchanged")
	}
	if res.KeyKept {
		notes = append(notes, "same key kept")
	} else {
		key = crm.NewIdempotencyKey(externalID, now)
		notes = append(notes, "new key "+key)
	}
	// It starts over: the times of its acceptance, first status and ftd
	// are cleared (the report's triggers take its old outcome out).
	res.Lead, err = scanLead(tx.QueryRow(ctx, `WITH p AS (
			SELECT CASE WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'source' AND value = $6) THEN 'source'
				WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'sub_id' AND value = $8) THEN 'sub_id'
				ELSE '' END AS h
		)
		UPDATE leads SET payload = $1, idempotency_key = $2,
			state = CASE WHEN p.h = '' THEN 'queued' ELSE 'held' END, hold = p.h,
			phone_invalid = $3, attempts = 0, next_attempt_at = CASE WHEN p.h = '' THEN $4::bigint END,
			reason = CASE p.h WHEN 'source' THEN 'paused: source ' || $6 WHEN 'sub_id' THEN 'paused: sub_id ' || $8 ELSE '' END,
			last_http_status = 0, last_error = '', last_delay_ms = 0, last_delay_why = '',
			lease_owner = '', lease_expires_at = NULL, updated_at = $4,
			source = $6, funnel = $7, sub_id = $8, country = $9,
			accepted_at = NULL, first_status_at = NULL, ftd_at = NULL
		FROM p WHERE id = $5 RETURNING `+leadColsOf("leads"),
		payload, key, badPhone, ms(now), old.ID, fields.Source, fields.Funnel, fields.SubID, crm.CutGroupValue(fields.Country)))
	if err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
	}
	var prev []byte
	if edited {
		prev = old.Payload
	}
	if _, err := tx.Exec(ctx, `INSERT INTO attempts
		(lead_id, kind, number, idempotency_key, started_at, outcome, note, prev_payload)
		VALUES ($1, 'resubmit', 0, $2, $3, 'queued', $4, $5)`,
		old.ID, key, ms(now), strings.Join(notes, "; "), prev); err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
	}
	if err := db.commit(ctx, tx); err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, err)
	}
	db.committed()
	return res, nil
}
