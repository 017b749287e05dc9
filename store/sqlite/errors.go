package sqlite

import (
	"context"
	"errors"
	"github.com/leadwatch/leadwatch/store"

	"modernc.org/sqlite"
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
			return &storeError{sentinel: store.ErrReplaced, cause: err}
		}
		switch se.Code() & 0xff {
		case codeBusy, codeLocked:
			return &storeError{sentinel: store.ErrBusy, cause: err}
		case codeReadOnly:
			return &storeError{sentinel: store.ErrReadOnly, cause: err}
		case codeFull:
			return &storeError{sentinel: store.ErrDiskFull, cause: err}
		}
	}
	return err
}
