package sqlite

import (
	"context"
	"errors"

	"modernc.org/sqlite"

	"github.com/leadwatch/leadwatch/store"
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

// mapErr turns a driver error into the store's sentinel errors. A context
// cancellation surfaces as the context's error (the driver reports it as
// an interrupt).
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return store.WrapErr(cerr, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if se.Code() == codeReadOnlyDBMoved {
			return store.WrapErr(store.ErrReplaced, err)
		}
		switch se.Code() & 0xff {
		case codeBusy, codeLocked:
			return store.WrapErr(store.ErrBusy, err)
		case codeReadOnly:
			return store.WrapErr(store.ErrReadOnly, err)
		case codeFull:
			return store.WrapErr(store.ErrDiskFull, err)
		}
	}
	return err
}
