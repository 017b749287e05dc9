package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// leadCols is the column list scanLead reads, in order.
const leadCols = `id, external_id, payload, idempotency_key, state, crm_id, crm_status, reason,
	phone_invalid, attempts, next_attempt_at, last_http_status, last_error, last_delay_ms,
	last_delay_why, lease_owner, lease_expires_at, created_at, updated_at,
	source, funnel, sub_id, country, hold, accepted_at, first_status_at`

func scanLead(s scanner) (crm.Lead, error) {
	var (
		l                       crm.Lead
		state                   string
		phoneInvalid            int
		next, leaseExp          sql.NullInt64
		acceptedAt, firstAt     sql.NullInt64
		delayMS, created, updat int64
	)
	err := s.Scan(&l.ID, &l.ExternalID, &l.Payload, &l.IdempotencyKey, &state, &l.CRMID, &l.CRMStatus,
		&l.Reason, &phoneInvalid, &l.Attempts, &next, &l.LastHTTPStatus, &l.LastError, &delayMS,
		&l.LastDelayWhy, &l.LeaseOwner, &leaseExp, &created, &updat,
		&l.Source, &l.Funnel, &l.SubID, &l.Country, &l.Hold, &acceptedAt, &firstAt)
	if err != nil {
		return l, err
	}
	l.State = crm.State(state)
	l.PhoneInvalid = phoneInvalid != 0
	l.NextAttemptAt = fromNullMS(next)
	l.LeaseExpiresAt = fromNullMS(leaseExp)
	l.LastDelay = time.Duration(delayMS) * time.Millisecond
	l.CreatedAt = fromMS(created)
	l.UpdatedAt = fromMS(updat)
	l.AcceptedAt = fromNullMS(acceptedAt)
	l.FirstStatusAt = fromNullMS(firstAt)
	return l, nil
}

// ms is the stored form of a time: unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMS stores the zero time as NULL.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Enqueue commits a lead to the outbox, queued and due now, with a fresh
// idempotency key committed alongside (docs/architecture.md durability rule 1).
// payload is stored byte for byte: it is what will be signed and sent.
// A lead whose source or sub_id is paused is stored held instead (Hold
// names the field), and the returned lead says so.
// Errors: ErrInvalid (with the reason), ErrDuplicate (naming the id and its
// state), or a store failure.
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

// EnqueueBatch enqueues many leads in one transaction (one fsync). Per-item
// problems (invalid, duplicate — also within the batch) are reported in errs
// at the item's index and do not stop the others; leads[i] is the stored
// lead when errs[i] is nil. err is only for a store failure, and then
// nothing of the batch is stored.
//
// The rows go in a few multi-row statements (enqueueChunks), not one per
// lead, and the stored leads are made from what was inserted instead of
// read back: a statement per lead RETURNING the whole row cost the single
// writer about 70 µs of CPU a lead (30 leads a commit, the check aside),
// these about 35.
func (db *DB) EnqueueBatch(ctx context.Context, payloads [][]byte, opt store.EnqueueOptions) (leads []crm.Lead, errs []error, err error) {
	defer func() { db.noteFailure(err) }()
	fields, errs, err := store.CheckBatch(payloads, opt, db.opt.MaxPayload)
	if err != nil {
		return nil, nil, err
	}
	leads = make([]crm.Lead, len(payloads))
	var good []int // the indexes of the leads that passed the check
	for i, e := range errs {
		if e == nil {
			good = append(good, i)
		}
	}
	if len(good) == 0 {
		return leads, errs, nil
	}

	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	defer tx.Rollback()
	// The pauses in force, read in this write transaction: a Pause that
	// committed before it holds this batch's leads of its source or sub_id;
	// one that commits after it holds them itself.
	pauses, err := readPauses(ctx, tx)
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	// The rows are numbered after the highest id, in batch order, under
	// the write lock: a returned id says which lead it is, and a lead
	// without one was a duplicate (its id stays unused).
	var maxID int64
	if err := db.hotW.in(ctx, tx, sqlMaxLeadID).QueryRowContext(ctx).Scan(&maxID); err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", mapErr(ctx, err))
	}
	now := db.now()
	for j, i := range good {
		leads[i] = newLead(maxID+1+int64(j), payloads[i], fields[i], pauses, now)
	}
	inserted := make([]bool, len(good))
	args := make([]any, 0, min(len(good), enqueueChunks[0])*enqueueLeadCols)
	for done := 0; done < len(good); {
		// The largest prepared chunk that fits what is left.
		c := 0
		for enqueueChunks[c] > len(good)-done {
			c++
		}
		args = args[:0]
		for _, i := range good[done : done+enqueueChunks[c]] {
			l := &leads[i]
			args = append(args, l.ID, l.ExternalID, l.Payload, l.IdempotencyKey, string(l.State), l.Hold, l.Reason,
				boolInt(l.PhoneInvalid), nullMS(l.NextAttemptAt), l.Source, l.Funnel, l.SubID, l.Country,
				ms(l.CreatedAt), ms(l.UpdatedAt))
		}
		rows, err := db.hotW.in(ctx, tx, enqueueLeadSQL[c]).QueryContext(ctx, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("enqueue: %w", mapErr(ctx, err))
		}
		ids, err := collect(rows, scanID)
		if err != nil {
			return nil, nil, fmt.Errorf("enqueue: %w", mapErr(ctx, err))
		}
		for _, id := range ids {
			inserted[id-maxID-1] = true
		}
		done += enqueueChunks[c]
	}
	for j, i := range good {
		if inserted[j] {
			continue
		}
		ext := leads[i].ExternalID
		leads[i] = crm.Lead{}
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM leads WHERE external_id = ?`, ext).Scan(&state); err != nil {
			return nil, nil, fmt.Errorf("enqueue %s: %w", ext, mapErr(ctx, err))
		}
		errs[i] = fmt.Errorf("%w: %s is already there (%s)", store.ErrDuplicate, ext, state)
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, nil, fmt.Errorf("enqueue: %w", err)
	}
	return leads, errs, nil
}

// newLead is the lead as EnqueueBatch stores it: queued and due now, or
// held when a pause covers its source or sub_id, with a fresh idempotency
// key. Its times are what the columns keep (milliseconds, UTC), so it is
// the row as Lead would read it back.
func newLead(id int64, payload []byte, f crm.LeadFields, pauses pauseSet, now time.Time) crm.Lead {
	at := fromMS(ms(now))
	l := crm.Lead{ID: id, ExternalID: f.ExternalID, Payload: bytes.Clone(payload),
		IdempotencyKey: crm.NewIdempotencyKey(f.ExternalID, now), State: crm.StateQueued,
		PhoneInvalid: f.PhoneInvalid, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at,
		Source: f.Source, Funnel: f.Funnel, SubID: f.SubID, Country: crm.CutGroupValue(f.Country)}
	if p, ok := pauses.covering(l.Source, l.SubID); ok {
		l.State, l.Hold, l.Reason, l.NextAttemptAt = crm.StateHeld, p.Field, pausedReason(p), time.Time{}
	}
	return l
}

func scanID(s scanner) (int64, error) {
	var id int64
	err := s.Scan(&id)
	return id, err
}

// enqueueChunks are the row counts of the prepared multi-row lead
// inserts, largest first. A batch runs as the largest chunks that fit: the
// intake's usual batch at 32 connections (about 30 leads) is four
// statements, a file's thousand leads sixteen.
var enqueueChunks = [...]int{64, 32, 16, 8, 4, 2, 1}

// enqueueLeadCols is how many parameters one row of sqlEnqueueLeads takes,
// in the order EnqueueBatch binds them.
const enqueueLeadCols = 15

// sqlEnqueueLeads returns the statement inserting n leads, each unless its
// external_id is there already (or earlier in the statement), returning
// the ids of those it inserted. Prepared once per handle (hotWrites):
// compiling it means compiling every trigger on leads, which cost more
// than the insert itself when it was prepared per batch.
func sqlEnqueueLeads(n int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	var b strings.Builder
	b.WriteString(`INSERT INTO leads
		(id, external_id, payload, idempotency_key, state, hold, reason, phone_invalid, next_attempt_at,
		 source, funnel, sub_id, country, created_at, updated_at) VALUES `)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(` ON CONFLICT (external_id) DO NOTHING RETURNING id`)
	return b.String()
}

// enqueueLeadSQL[i] is sqlEnqueueLeads(enqueueChunks[i]), built once.
var enqueueLeadSQL = func() (out [len(enqueueChunks)]string) {
	for i, n := range enqueueChunks {
		out[i] = sqlEnqueueLeads(n)
	}
	return out
}()

// sqlMaxLeadID is the highest lead id, 0 with none.
const sqlMaxLeadID = `SELECT COALESCE(MAX(id), 0) FROM leads`

// Lead returns the lead with that external id, or ErrNotFound.
func (db *DB) Lead(ctx context.Context, externalID string) (crm.Lead, error) {
	l, err := scanLead(db.reader.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = ?`, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("lead %s: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("lead %s: %w", externalID, mapErr(ctx, err))
	}
	return l, nil
}

// States returns the state of each lead in externalIDs that exists, in
// chunks of a few hundred ids a query, so following a large submission
// costs a handful of queries, not one per lead.
func (db *DB) States(ctx context.Context, externalIDs []string) (map[string]crm.State, error) {
	const chunk = 500
	out := make(map[string]crm.State, len(externalIDs))
	for start := 0; start < len(externalIDs); start += chunk {
		ids := externalIDs[start:min(start+chunk, len(externalIDs))]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		q := `SELECT external_id, state FROM leads WHERE external_id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
		pairs, err := queryAll(ctx, db.reader, scanIDState, q, args...)
		if err != nil {
			return nil, fmt.Errorf("states: %w", err)
		}
		for _, p := range pairs {
			out[p.id] = p.state
		}
	}
	return out, nil
}

// idState is one row of States.
type idState struct {
	id    string
	state crm.State
}

func scanIDState(s scanner) (idState, error) {
	var p idState
	var st string
	err := s.Scan(&p.id, &st)
	p.state = crm.State(st)
	return p, err
}

// liveStates are the states Claim takes leads from (a function, so no
// package-level variable can be changed by accident).
func liveStates() [3]crm.State {
	return [...]crm.State{crm.StateQueued, crm.StateRetryWait, crm.StateInFlight}
}

// due is a lead Claim may take: its id and due time.
type due struct{ id, at int64 }

func scanDue(s scanner) (due, error) {
	var d due
	err := s.Scan(&d.id, &d.at)
	return d, err
}

// Claim implements crm.Outbox. In one write transaction it picks the due
// leads with one indexed query per live state (merged by due time, oldest
// first: the order Claim returns them in) and leases them with one UPDATE
// (sqlClaimLease) whose WHERE repeats the due guard. An in_flight lead
// whose lease expired is retaken with its key unchanged, so the CRM
// answers the retry as a replay.
//
// Correctness rests on that guard, not on SQLite serializing writers: a
// candidate that stopped being due between the read and the UPDATE
// (another handle leased it, a Record finished it, a Resubmit or Forget
// changed it) fails the guard and is left alone, so one lead is never
// handed to two workers; the batch then only comes back shorter. Under
// SQLite's write lock (BEGIN IMMEDIATE) that cannot happen, and the
// guard costs nothing; TestClaimGuard changes a candidate between the two
// steps to show it holds.
func (db *DB) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) (_ []crm.Lead, err error) {
	defer func() { db.noteFailure(err) }()
	if owner == "" {
		return nil, errors.New("claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %v must be positive", lease)
	}
	if limit <= 0 {
		return nil, nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer tx.Rollback()

	cands, err := db.claimCandidates(ctx, tx, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	db.hookAfterRead(ctx, "claim", tx)
	out, err := db.leaseCandidates(ctx, tx, cands, owner, now, lease)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return out, nil
}

// claimCandidates returns up to limit due leads, oldest due first (ties by
// id): one indexed query per live state, merged.
func (db *DB) claimCandidates(ctx context.Context, tx *sql.Tx, now time.Time, limit int) ([]due, error) {
	var cands []due
	for _, st := range liveStates() {
		bound := ms(now)
		if st == crm.StateQueued {
			// Queued is due whatever its time (a clock set back must not
			// strand it); its time only orders it.
			bound = 1<<63 - 1
		}
		rows, err := db.hotW.in(ctx, tx, sqlClaimDue).QueryContext(ctx, string(st), bound, limit)
		if err != nil {
			return nil, mapErr(ctx, err)
		}
		ds, err := collect(rows, scanDue)
		if err != nil {
			return nil, mapErr(ctx, err)
		}
		cands = append(cands, ds...)
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].at != cands[j].at {
			return cands[i].at < cands[j].at
		}
		return cands[i].id < cands[j].id
	})
	if len(cands) > limit {
		cands = cands[:limit]
	}
	return cands, nil
}

// leaseCandidates leases to owner those of cands that are still due at
// now, in one guarded UPDATE, and returns them in cands' order (RETURNING's
// order is unspecified). A candidate that is no longer due is skipped.
func (db *DB) leaseCandidates(ctx context.Context, tx *sql.Tx, cands []due, owner string, now time.Time, lease time.Duration) ([]crm.Lead, error) {
	rank := make(map[int64]int, len(cands))
	var ids strings.Builder
	ids.WriteByte('[')
	for i, c := range cands {
		rank[c.id] = i
		if i > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(strconv.FormatInt(c.id, 10))
	}
	ids.WriteByte(']')
	exp := ms(now.Add(lease))
	rows, err := db.hotW.in(ctx, tx, sqlClaimLease).QueryContext(ctx,
		owner, exp, exp, ms(db.now()), ids.String(), ms(now))
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	out, err := collect(rows, scanLead)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	sort.Slice(out, func(i, j int) bool { return rank[out[i].ID] < rank[out[j].ID] })
	return out, nil
}

// capBody keeps at most MaxResponseBody bytes of a response.
func capBody(b []byte) []byte {
	if len(b) > store.MaxResponseBody {
		return b[:store.MaxResponseBody]
	}
	return b
}

// linkLate attaches unmatched callbacks that name crmID and arrived since
// the lead was created (less store.LateLinkSlack) to the lead, and takes
// the newest status among the lead's callbacks, and its first status and
// first ftd times when it has none yet. Both are single guarded
// statements: the link takes only callbacks still unlinked, and the status
// is set from the newest linked callback in the UPDATE itself, only if no
// newer event's status is there already.
func (db *DB) linkLate(ctx context.Context, tx *sql.Tx, leadID int64, crmID string, now time.Time) error {
	res, err := db.hotW.in(ctx, tx, sqlLinkLate).ExecContext(ctx, leadID, crmID, store.LateLinkSlack.Milliseconds())
	if err != nil {
		return mapErr(ctx, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if _, err = db.hotW.in(ctx, tx, sqlLinkStatus).ExecContext(ctx, ms(now), leadID, leadID); err != nil {
		return mapErr(ctx, err)
	}
	_, err = db.hotW.in(ctx, tx, sqlLinkStatusTimes).ExecContext(ctx, leadID, leadID, leadID)
	return mapErr(ctx, err)
}

// Release implements crm.Outbox: leads claimed but not sent go back,
// due now, to queued (no attempt made yet) or retry_wait, with Claim's count
// undone. Leads whose lease owner no longer holds are left alone and
// reported with crm.ErrLeaseLost; the others are released regardless.
func (db *DB) Release(ctx context.Context, owner string, ids []int64) (err error) {
	defer func() { db.noteFailure(err) }()
	if len(ids) == 0 {
		return nil
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer tx.Rollback()
	now := ms(db.now())
	var lost []string
	for _, id := range ids {
		res, err := tx.ExecContext(ctx, `UPDATE leads SET
				state = CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retry_wait' END,
				attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
				lease_owner = '', lease_expires_at = NULL, next_attempt_at = ?, updated_at = ?
			WHERE id = ? AND lease_owner = ? AND state = 'in_flight'`, now, now, id, owner)
		if err != nil {
			return fmt.Errorf("release: %w", mapErr(ctx, err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost = append(lost, fmt.Sprint(id))
			continue
		}
		// Not sent, so not to be sent while its source is paused.
		if _, err := db.hotW.in(ctx, tx, sqlHoldPaused).ExecContext(ctx, now, id, id); err != nil {
			return fmt.Errorf("release: %w", mapErr(ctx, err))
		}
	}
	if err := db.commit(ctx, tx); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if len(lost) > 0 {
		return fmt.Errorf("release leads %s for %s: %w", strings.Join(lost, ","), owner, crm.ErrLeaseLost)
	}
	return nil
}

// NextDue implements crm.Outbox: the earliest next_attempt_at over the live
// states (an in_flight lead's is its lease expiry; a queued lead's is in the
// past, so it is due now). One index lookup per state.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	tx, err := db.beginRead(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	defer tx.Rollback()
	var (
		best  int64
		found bool
	)
	for _, st := range liveStates() {
		var v sql.NullInt64
		if err := db.hotR.in(ctx, tx, sqlNextDue).QueryRowContext(ctx, string(st)).Scan(&v); err != nil {
			return time.Time{}, false, fmt.Errorf("next due: %w", mapErr(ctx, err))
		}
		if v.Valid && (!found || v.Int64 < best) {
			best, found = v.Int64, true
		}
	}
	if !found {
		return time.Time{}, false, nil
	}
	return fromMS(best), true, nil
}

// Resubmit puts a lead in a resubmittable state (failed, rejected,
// validation_error, duplicate) back in the queue, due now with its attempt
// count reset, optionally with an edited payload (nil keeps it). The key
// follows docs/protocol.md §1 (crm.KeepsKey): an unchanged failed lead keeps its
// key, anything else gets a new one. The edit must pass the enqueue gate
// and keep the external_id (ErrInvalid). A history row of kind resubmit
// records what changed, with the previous payload when edited. Other
// states give ErrNotResubmittable.
func (db *DB) Resubmit(ctx context.Context, externalID string, payload []byte) (_ crm.Resubmission, err error) {
	defer func() { db.noteFailure(err) }()
	var res crm.Resubmission
	var (
		badPhone bool
		fields   crm.LeadFields
	)
	if payload != nil {
		f, err := store.CheckPayload(payload, false, db.opt.MaxPayload)
		if err != nil {
			return res, fmt.Errorf("resubmit %s: %w", externalID, err)
		}
		if f.ExternalID != externalID {
			return res, fmt.Errorf("resubmit %s: %w: the edit changes external_id to %q; enqueue it as a new lead instead", externalID, store.ErrInvalid, f.ExternalID)
		}
		badPhone, fields = f.PhoneInvalid, f
		fields.Country = crm.CutGroupValue(f.Country)
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, err)
	}
	defer tx.Rollback()
	var (
		old    crm.Lead
		edited bool
		key    string
		notes  []string
		now    = db.now()
	)
	pauses, err := readPauses(ctx, tx)
	if err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, err)
	}
	for try := 0; ; try++ {
		if try == maxGuardRetries {
			return res, fmt.Errorf("resubmit %s: %w: the lead kept changing while it was being resubmitted; try again", externalID, store.ErrBusy)
		}
		res = crm.Resubmission{}
		old, err = scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE external_id = ?`, externalID))
		if errors.Is(err, sql.ErrNoRows) {
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
		send, phone := payload, badPhone
		edited = payload != nil && !bytes.Equal(payload, old.Payload)
		source, funnel, subID, country := fields.Source, fields.Funnel, fields.SubID, fields.Country
		if payload == nil {
			send, phone = old.Payload, old.PhoneInvalid
			source, funnel, subID, country = old.Source, old.Funnel, old.SubID, old.Country
		}
		// A resubmitted lead of a paused source or sub_id is held like a
		// new one: a pause stops sending, whatever brings a lead back.
		state, hold, reason, next := crm.StateQueued, "", "", nullMS(now)
		if p, ok := pauses.covering(source, subID); ok {
			state, hold, reason, next = crm.StateHeld, p.Field, pausedReason(p), sql.NullInt64{}
		}
		res.OldKey = old.IdempotencyKey
		res.Edited = edited
		res.KeyKept = crm.KeepsKey(old.State, old.Payload, send)
		key = old.IdempotencyKey
		notes = []string{"resubmitted from " + string(old.State)}
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
		db.hookAfterRead(ctx, "resubmit", tx)
		// The WHERE re-checks everything the new row was computed from
		// (state, payload, key): a lead changed since the read (resubmitted
		// by another handle, forgotten) matches no row and is read again.
		// The lead starts over: its acceptance and status times go (and
		// with them its numbers in the report, by the triggers).
		res.Lead, err = scanLead(tx.QueryRowContext(ctx, `UPDATE leads SET payload = ?, idempotency_key = ?,
				state = ?, hold = ?, reason = ?, phone_invalid = ?, attempts = 0, next_attempt_at = ?,
				last_http_status = 0, last_error = '', last_delay_ms = 0, last_delay_why = '',
				lease_owner = '', lease_expires_at = NULL, updated_at = ?,
				source = ?, funnel = ?, sub_id = ?, country = ?,
				accepted_at = NULL, first_status_at = NULL, ftd_at = NULL
			WHERE id = ? AND state = ? AND payload = ? AND idempotency_key = ? RETURNING `+leadCols,
			send, key, string(state), hold, reason, boolInt(phone), next, ms(now),
			source, funnel, subID, country, old.ID, string(old.State), old.Payload, old.IdempotencyKey))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
		}
		break
	}
	var prev []byte
	if edited {
		prev = old.Payload
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO attempts
		(lead_id, kind, number, idempotency_key, started_at, outcome, note, prev_payload)
		VALUES (?, 'resubmit', 0, ?, ?, 'queued', ?, ?)`,
		old.ID, key, ms(now), strings.Join(notes, "; "), prev); err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, mapErr(ctx, err))
	}
	if err := db.commit(ctx, tx); err != nil {
		return res, fmt.Errorf("resubmit %s: %w", externalID, err)
	}
	return res, nil
}
