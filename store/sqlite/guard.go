package sqlite

import (
	"context"
	"database/sql"
)

// Writes that read before they write (docs/architecture.md, "Correct
// without a global write lock") do not rely on SQLite serializing write
// transactions, although it does (one writer per file, across processes;
// BEGIN IMMEDIATE takes the lock up front). Each one either is a single
// statement whose WHERE carries its own condition, or ends in an UPDATE
// whose WHERE re-checks what the transaction read, with the rows it
// changed checked:
//
//   - Claim: candidates read, then one UPDATE repeating the due guard
//     (claimGuard); a candidate no longer due is skipped.
//   - Record, Release: WHERE lease_owner = ? AND state = 'in_flight'; no
//     row means crm.ErrLeaseLost and nothing written (Record's attempt row
//     is inserted only after its lead row matched).
//   - Record's late linking: UPDATE callbacks … WHERE lead_id IS NULL,
//     then the lead's CRM status in one UPDATE … FROM the newest linked
//     callback, guarded by crm_status_at.
//   - SaveCallbacks: the lead lookup is a subquery of the INSERT; the CRM
//     status update is guarded by crm_status_at. Its row ids are the next
//     free ones read in the same transaction: a writer that took them
//     first would fail the batch on the primary key (nothing stored, the
//     listener answers 503 and the CRM retries), never mislink an event.
//   - Resubmit, Forget: the final UPDATE re-checks state, payload,
//     idempotency key (Resubmit) or crm_id (Forget); no row means the lead
//     changed, and the transaction reads it again (maxGuardRetries).
//   - Prune: each step is one statement whose WHERE holds the whole
//     condition (the final-state check of attempts included); its row
//     count comes from the statement, its byte count from the read before
//     it in the same transaction.
//   - Act: each id is read, then written by an UPDATE whose WHERE repeats
//     the state read (WHERE id = ? AND state = ?); no row means the lead
//     changed (a claim took it) and it is read again (maxGuardRetries), so
//     an action never lands on a state it does not apply to.
//   - Pause, Resume, RetryAllNow: single statements whose WHERE holds the
//     whole condition (state IN ('queued', 'retry_wait') and the field;
//     state = 'held' and the hold); Pause's rule insert is ON CONFLICT DO
//     NOTHING, and a second Pause holds nothing. Enqueue, Resubmit, Record
//     and Release read the pauses in their own write transaction
//     (sqlHoldPaused is guarded by state IN ('queued', 'retry_wait')).
//   - The report's aggregates: triggers in the writing statement's own
//     transaction, never a read-then-write.
//   - ClaimDeliveries: the cursor's UPDATE repeats the value read (WHERE
//     last_callback_id = ?) before any delivery is queued; the lease
//     UPDATE repeats the due and per-lead order guards. RecordDeliveries
//     and ReleaseDeliveries: WHERE lease_owner = ? AND state =
//     'in_flight', the attempt row inserted only after its delivery row
//     matched (forward.go).
//   - migrate: the version is re-read inside the migration's transaction,
//     and schema_migrations' primary key refuses a second apply.

// maxGuardRetries is how often Resubmit and Forget read a lead again after
// their guarded UPDATE found it changed.
const maxGuardRetries = 3

// hookAfterRead runs the test hook, if one is set, inside a read-then-write
// transaction between its read and its guarded write: tests change what
// was read there and check that the write notices. op names the caller
// ("claim", "resubmit", "forget", "act").
func (db *DB) hookAfterRead(ctx context.Context, op string, tx *sql.Tx) {
	if db.afterRead != nil {
		db.afterRead(ctx, op, tx)
	}
}
