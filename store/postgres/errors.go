package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/leadwatch/leadwatch/store"
)

// SQLSTATE codes the store maps (PostgreSQL's appendix A).
const (
	stateDiskFull        = "53100" // disk_full
	stateOutOfMemory     = "53200" // out_of_memory
	stateTooManyConns    = "53300" // too_many_connections
	stateReadOnlyTx      = "25006" // read_only_sql_transaction
	stateSerialization   = "40001" // serialization_failure
	stateDeadlock        = "40P01" // deadlock_detected
	stateLockNotAvail    = "55P03" // lock_not_available (lock_timeout)
	stateUniqueViolation = "23505" // unique_violation
	stateAdminShutdown   = "57P01" // admin_shutdown
	stateCrashShutdown   = "57P02" // crash_shutdown
	stateCannotConnect   = "57P03" // cannot_connect_now
	classConnection      = "08"    // connection_exception
)

// leadsExternalIDKey is the unique constraint on leads.external_id
// (migration 001): a violation of it is ErrDuplicate.
const leadsExternalIDKey = "leads_external_id_key"

// errUnreachable means the database server could not be reached or went
// away mid-statement. Whether the statement committed is unknown only for
// a COMMIT; anything else was rolled back by the server.
var errUnreachable = errors.New("cannot reach the database server")

// unreachableError is errUnreachable with the network cause in its
// message ("cannot reach the database server: dial tcp …: connection
// refused"), which is what an operator needs to act on.
type unreachableError struct{ cause error }

func (e *unreachableError) Error() string {
	return errUnreachable.Error() + ": " + oneLine(e.cause.Error())
}
func (e *unreachableError) Unwrap() []error { return []error{errUnreachable, e.cause} }

// isUnreachable reports whether err (as mapErr returned it) means the
// server could not be reached.
func isUnreachable(err error) bool { return errors.Is(err, errUnreachable) }

// mapErr turns a driver error into the store's sentinel errors. A context
// cancellation surfaces as the context's error (wrapping the driver's);
// pgx.ErrNoRows passes through unchanged so callers can test for it.
func mapErr(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return store.WrapErr(cerr, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == stateDiskFull:
			return store.WrapErr(store.ErrDiskFull, err)
		case pe.Code == stateReadOnlyTx:
			return store.WrapErr(store.ErrReadOnly, err)
		case pe.Code == stateOutOfMemory, pe.Code == stateTooManyConns,
			pe.Code == stateSerialization, pe.Code == stateDeadlock, pe.Code == stateLockNotAvail:
			return store.WrapErr(store.ErrBusy, err)
		case pe.Code == stateUniqueViolation && pe.ConstraintName == leadsExternalIDKey:
			return store.WrapErr(store.ErrDuplicate, err)
		case pe.Code == stateAdminShutdown, pe.Code == stateCrashShutdown, pe.Code == stateCannotConnect,
			strings.HasPrefix(pe.Code, classConnection):
			return &unreachableError{cause: err}
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ce), errors.As(err, &oe), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		pgconn.SafeToRetry(err):
		return &unreachableError{cause: err}
	}
	return err
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
