package store

import (
	"context"
	"errors"

	"modernc.org/sqlite"

	"github.com/leadwatch/leadwatch/crm"
)

// Sentinel errors callers branch on with errors.Is. Every error a DB method
// returns for one of these conditions wraps the sentinel; driver errors stay
// in the chain for logs.
var (
	// ErrNotFound is crm.ErrNotFound, so errors.Is works whether the caller
	// knows the store or only the crm contract.
	ErrNotFound = crm.ErrNotFound

	// ErrDuplicate means the external_id is already in the outbox.
	ErrDuplicate = errors.New("external_id already in the outbox")

	// ErrNotResubmittable means the lead's state does not allow a resubmit.
	ErrNotResubmittable = errors.New("lead cannot be resubmitted")

	// ErrInvalid means the payload was refused at enqueue or resubmit. The
	// error also wraps crm.ErrInvalidLead when crm.CheckLead gave the
	// reason, which is every case but an edit that changes external_id.
	ErrInvalid = errors.New("invalid lead")

	// ErrBusy means another connection held the database locked past the
	// busy timeout. Nothing of the operation was stored; retrying later is
	// safe.
	ErrBusy = errors.New("database is locked by another connection (busy timeout exceeded)")

	// ErrReadOnly means the database was opened read-only, or its file
	// cannot be written.
	ErrReadOnly = errors.New("database is read-only")

	// ErrDiskFull means the disk (or the database's page limit) is full.
	// Nothing of the operation was stored.
	ErrDiskFull = errors.New("database or disk is full")

	// ErrReplaced means the database file was removed or replaced (renamed
	// over) while this handle had it open: the path no longer names the
	// file being written, so a commit would land in a file nobody will open
	// again. Every write after it was noticed fails with ErrReplaced; only a
	// restart (a new Open) reaches the file now at the path.
	ErrReplaced = errors.New("database file was removed or replaced while open")

	// ErrTooNew means the database file was migrated by a newer leadwatch
	// than this one; opening it could corrupt data this version does not
	// understand.
	ErrTooNew = errors.New("database was written by a newer version of leadwatch")
)

// SQLite primary result codes the store maps (the low byte of an extended
// code).
const (
	codeBusy     = 5
	codeLocked   = 6
	codeReadOnly = 8
	codeFull     = 13

	// codeReadOnlyDBMoved is SQLITE_READONLY_DBMOVED, an extended code:
	// SQLite's own notice (rollback-journal writes only) that the file was
	// moved under the connection.
	codeReadOnlyDBMoved = codeReadOnly | 4<<8
)

// storeError carries a sentinel and the driver error behind it. Its message
// is the sentinel's, which is written for people; the driver's text is kept
// in the chain for logs and errors.As.
type storeError struct {
	sentinel error
	cause    error
}

func (e *storeError) Error() string   { return e.sentinel.Error() }
func (e *storeError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// causeError is the other way round: the cause's message (it already says
// what is wrong, e.g. crm's "invalid lead: phone is required") under a
// sentinel of the store's.
type causeError struct {
	sentinel error
	cause    error
}

func (e *causeError) Error() string   { return e.cause.Error() }
func (e *causeError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// mapErr turns a driver error into the store's sentinel errors. A context
// cancellation surfaces as the context's error (the driver reports it as
// an interrupt).
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return &storeError{sentinel: cerr, cause: err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if se.Code() == codeReadOnlyDBMoved {
			return &storeError{sentinel: ErrReplaced, cause: err}
		}
		switch se.Code() & 0xff {
		case codeBusy, codeLocked:
			return &storeError{sentinel: ErrBusy, cause: err}
		case codeReadOnly:
			return &storeError{sentinel: ErrReadOnly, cause: err}
		case codeFull:
			return &storeError{sentinel: ErrDiskFull, cause: err}
		}
	}
	return err
}
