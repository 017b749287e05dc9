package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"modernc.org/sqlite"

	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/store"
)

// newHealth is Health's state for a newly opened DB: the shared rules
// (store.HealthTracker) over this backend's write probe and error codes.
func (db *DB) newHealth() *store.HealthTracker {
	return store.NewHealthTracker(store.HealthConfig{
		Probe:  db.probeWrite,
		Code:   healthCode,
		MaxAge: db.opt.ProbeMaxAge,
		Closed: errClosed,
	})
}

// Health reports whether the store can commit: "" when it can, else one of
// the Health codes, with the error behind it for the log. It is based on
// the last real write's result and on a write probe (a one-row write
// transaction, committed) no older than Options.ProbeMaxAge. A write that
// failed because of the store decides until a later commit succeeds, or,
// when no write comes, for five probe ages; then the probe decides again.
// Results are cached, so a flood of /healthz requests costs one probe
// every ProbeMaxAge, and concurrent callers share one probe
// (store.HealthTracker). A file found removed or replaced is reported
// (HealthReplaced) for the rest of the handle's life.
func (db *DB) Health(ctx context.Context) (code string, err error) {
	if err := db.replacedErr(); err != nil {
		return store.HealthReplaced, err
	}
	code, err = db.health.Health(ctx)
	if rerr := db.replacedErr(); rerr != nil {
		return store.HealthReplaced, rerr
	}
	return code, err
}

// probeWrite commits a one-row write: the probe row in counters holds the
// time of the last probe. It goes through the same writer connection,
// BEGIN IMMEDIATE and fsync as every real write, so its success proves the
// handle can take the lock, write the WAL and sync it; on a read-only
// handle the driver refuses it (ErrReadOnly). It does not signal watchers
// (nothing they show changed) and does not clear a real write's failure:
// a small update can succeed where an insert that needs a new page fails.
func (db *DB) probeWrite(ctx context.Context) error {
	if err := db.replacedErr(); err != nil {
		return err
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, n) VALUES ('health_probe', ?)
		ON CONFLICT (name) DO UPDATE SET n = excluded.n`, time.Now().UnixMilli()); err != nil {
		return mapErr(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return mapErr(ctx, err)
	}
	return db.checkFile()
}

// noteWrite records a write's outcome for Health: nil (a commit succeeded)
// clears a failure; an error the store is to blame for (full, read-only,
// replaced, locked, I/O) sets one; any other error (a refused lead, a lost
// lease, the caller's canceled context) says nothing about the store.
func (db *DB) noteWrite(err error) {
	if err == nil {
		db.health.NoteCommit()
		return
	}
	db.health.NoteFailure(err)
}

// noteFailure is noteWrite for a write method's result, deferred: only a
// failure is news there (commit records the successes), and a method that
// returns nil without committing proves nothing.
func (db *DB) noteFailure(err error) { db.health.NoteFailure(err) }

// closeHealth stops new probes and waits for a running one; Close calls it.
func (db *DB) closeHealth() { db.health.Close() }

// SQLite primary result codes that mean the file cannot be used at all.
const (
	codeIOErr    = 10
	codeCorrupt  = 11
	codeCantOpen = 14
	codeProtocol = 15
	codeNotADB   = 26
)

// healthCode is the Health code of a write's error: "" for success and
// for errors that are not the store's fault.
func healthCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrReplaced):
		return store.HealthReplaced
	case errors.Is(err, store.ErrDiskFull):
		return store.HealthDiskFull
	case errors.Is(err, store.ErrReadOnly):
		return store.HealthReadOnly
	case errors.Is(err, store.ErrBusy), errors.Is(err, errClosed), errors.Is(err, groupcommit.ErrClosed),
		errors.Is(err, sql.ErrConnDone):
		return store.HealthUnreachable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ""
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case codeIOErr, codeCorrupt, codeCantOpen, codeProtocol, codeNotADB:
			return store.HealthUnreachable
		}
	}
	return ""
}

// statFile records the identity (device and inode) of the file at db.path,
// once SQLite has it open, for checkFile to compare against.
func (db *DB) statFile() error {
	st, err := os.Stat(db.path)
	if err != nil {
		return err
	}
	db.file = st
	return nil
}

// checkFile compares the file the path names now with the one opened
// (os.SameFile: device and inode on Unix). A path that names nothing, or
// another file, marks the handle replaced; a stat that fails otherwise
// (a permission on a directory) proves nothing and is ignored. It costs one
// stat, so it runs per commit (a group commit's batch), not per row.
func (db *DB) checkFile() error {
	if err := db.replacedErr(); err != nil {
		return err
	}
	st, err := os.Stat(db.path)
	switch {
	case err == nil && os.SameFile(st, db.file):
		return nil
	case err == nil:
		return db.markReplaced(errors.New("the path now names another file"))
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return db.markReplaced(errors.New("the path names no file"))
	}
	return nil
}

// markReplaced fails the handle for good with ErrReplaced and logs it,
// once.
func (db *DB) markReplaced(detail error) error {
	err := fmt.Errorf("%w: %s: %v; restart leadwatch to open the file now at the path", store.ErrReplaced, db.path, detail)
	if db.replaced.CompareAndSwap(nil, &err) {
		db.log.Error("store file removed or replaced while open: every write fails from now on; restart to open the file at the path",
			"path", db.path, "detail", detail.Error())
		db.notify() // a dashboard redraws and shows it
	}
	return *db.replaced.Load()
}

// replacedErr is the handle's ErrReplaced failure, or nil.
func (db *DB) replacedErr() error {
	if p := db.replaced.Load(); p != nil {
		return *p
	}
	return nil
}

// watchFile checks the file every interval until Close, so an idle handle
// (no commits to check on) notices a removed or replaced file too.
func (db *DB) watchFile(interval time.Duration) {
	defer db.watches.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.closed:
			return
		case <-t.C:
		}
		if db.checkFile() != nil {
			return // failed for good: nothing more to learn
		}
	}
}
