package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/store"
)

// maxRecordBatch bounds how many Records share one transaction.
const maxRecordBatch = 256

// errClosed answers calls made after Close.
var errClosed = errors.New("store is closed")

// recordReq is one Record call waiting for the group commit.
type recordReq struct {
	owner string
	r     crm.AttemptResult
}

// newRecorder starts the group committer of Records. Its queue is
// unbuffered: a Record waits in Submit while a commit runs, and the
// committer takes every waiting one at once when it is free.
func (db *DB) newRecorder() *groupcommit.Batcher[recordReq, error] {
	return groupcommit.New(db.commitRecords, groupcommit.Options{MaxBatch: maxRecordBatch})
}

// Record implements crm.Outbox: the lead's new state and the attempt row in
// one transaction, the lease freed, and Record returns after that commit.
// If owner no longer holds the lease (it expired and another worker took
// it), nothing is written and the error wraps crm.ErrLeaseLost. A CRM id
// learned here also links the callbacks that named it before this commit
// (they can overtake it).
//
// Concurrent Records share a transaction (group commit): with
// synchronous=FULL a commit costs an fsync, and one fsync per lead would cap
// a sender at a few hundred leads a second per disk. Each caller still
// waits for the commit that holds its own row; a lease lost by one does not
// affect the others.
func (db *DB) Record(ctx context.Context, owner string, r crm.AttemptResult) error {
	a := r.Attempt
	switch {
	case a.Outcome == crm.StateRetryWait, a.Outcome.Final():
	default:
		return fmt.Errorf("record lead %d: outcome %q is not retry_wait or a final state", a.LeadID, a.Outcome)
	}
	if db.readOnly {
		return fmt.Errorf("record lead %d: %w: opened read-only", a.LeadID, store.ErrReadOnly)
	}
	call, err := db.records.Submit(ctx, recordReq{owner: owner, r: r})
	if errors.Is(err, groupcommit.ErrClosed) {
		err = errClosed
	}
	if err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	// Once taken, the request is answered within one transaction (bounded
	// by the busy timeout); waiting for it even if ctx ends means the
	// caller never mistakes a committed attempt for a lost one.
	res, err := call.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("record lead %d: %w", a.LeadID, err)
	}
	return res
}

// commitRecords is the group commit of a batch of Records: one
// transaction, and per request nil or a lease lost. When the transaction
// fails for a reason tied to one request rather than the database (busy,
// full, read-only, replaced or shutting down apply to all), each request is
// retried in its own transaction so one bad row does not fail its
// neighbours.
func (db *DB) commitRecords(batch []recordReq) ([]error, error) {
	results, err := db.runRecords(batch)
	if err == nil || len(batch) == 1 || errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrDiskFull) ||
		errors.Is(err, store.ErrReadOnly) || errors.Is(err, store.ErrReplaced) || db.bg.Err() != nil {
		return results, err
	}
	results = make([]error, len(batch))
	for i, req := range batch {
		one, err := db.runRecords(batch[i : i+1])
		if err != nil {
			results[i] = fmt.Errorf("record lead %d: %w", req.r.Attempt.LeadID, err)
			continue
		}
		results[i] = one[0]
	}
	return results, nil
}

// runRecords writes the batch in one transaction. results[i] is nil or a
// lease lost; err is a failure of the whole transaction, which then stored
// nothing.
func (db *DB) runRecords(batch []recordReq) (results []error, err error) {
	defer func() { db.noteFailure(err) }()
	ctx := db.bg
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := db.now()
	results = make([]error, len(batch))
	wrote := false
	for i, req := range batch {
		lost, err := db.recordOne(ctx, tx, req.owner, req.r, now)
		if err != nil {
			return nil, err
		}
		if lost {
			results[i] = fmt.Errorf("record lead %d for %s: %w", req.r.Attempt.LeadID, req.owner, crm.ErrLeaseLost)
			continue
		}
		wrote = true
	}
	if !wrote {
		return results, nil
	}
	if err := db.commit(ctx, tx); err != nil {
		return nil, err
	}
	return results, nil
}

// recordOne applies one attempt inside tx; lost when owner does not hold
// the lead's lease (then nothing was written). The lease is the guard of
// the lead's UPDATE (sqlRecordLead: WHERE lease_owner = ? AND state =
// 'in_flight'); no row returned is a lost lease, and the attempt row and
// the linking come only after a row matched.
func (db *DB) recordOne(ctx context.Context, tx *sql.Tx, owner string, r crm.AttemptResult, now time.Time) (lost bool, err error) {
	a := r.Attempt
	var next sql.NullInt64
	if a.Outcome == crm.StateRetryWait {
		at := r.NextAttemptAt
		if at.IsZero() {
			at = now
		}
		next = nullMS(at)
	}
	var (
		number int
		key    string
	)
	err = db.hotW.in(ctx, tx, sqlRecordLead).QueryRowContext(ctx,
		string(a.Outcome), string(a.Outcome), ms(now), r.CRMID, r.CRMID, r.Reason, a.HTTPStatus, a.Error, a.Delay.Milliseconds(), a.DelayWhy,
		next, ms(now), a.LeadID, owner).Scan(&number, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, mapErr(ctx, err)
	}
	if a.Number > 0 {
		number = a.Number
	}
	if a.IdempotencyKey != "" {
		key = a.IdempotencyKey
	}
	started := a.StartedAt
	if started.IsZero() {
		started = now
	}
	if _, err := db.hotW.in(ctx, tx, sqlRecordAttempt).ExecContext(ctx,
		a.LeadID, number, key, ms(started), a.Duration.Microseconds(), a.HTTPStatus, capBody(a.ResponseBody),
		a.Error, string(a.Outcome), a.Delay.Milliseconds(), a.DelayWhy, a.Note); err != nil {
		return false, mapErr(ctx, err)
	}
	if r.CRMID != "" {
		if err := db.linkLate(ctx, tx, a.LeadID, r.CRMID, now); err != nil {
			return false, err
		}
	}
	// A lead to retry whose source or sub_id is paused waits held instead
	// (the attempt row above keeps its real outcome). Pause runs in a write
	// transaction of its own, so it sees this lead either in flight (and
	// leaves it to this statement) or already retry_wait (and holds it).
	if a.Outcome == crm.StateRetryWait {
		if _, err := db.hotW.in(ctx, tx, sqlHoldPaused).ExecContext(ctx, ms(now), a.LeadID, a.LeadID); err != nil {
			return false, mapErr(ctx, err)
		}
	}
	return false, nil
}
