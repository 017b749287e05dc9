// Package sqlite is leadwatch's SQLite store backend (modernc.org/sqlite, pure Go):
// the persistent outbox of leads with their attempt history, the verified
// callbacks, and the refused ones. *DB satisfies crm.Outbox,
// callbacks.EventSink and ui.Source.
//
// Layout of a database handle: one writer connection (every write is a
// BEGIN IMMEDIATE transaction on it, so writers queue in this process and
// take SQLite's write lock up front across processes) beside a pool of
// reader connections, which in WAL mode never wait for the writer.
//
// A handle also guards against its file vanishing: it records the file's
// identity at Open and checks the path against it after every commit and
// once a second (health.go), failing every write with ErrReplaced once the
// file was removed or replaced. Health reports whether the store can
// commit, for /healthz; Prune, Backup and Forget keep it bounded, copied
// and free of a person's data (maintain.go).
//
// It satisfies store.Store. Its SQL keeps to plain transactions, unique
// keys and integer timestamps, as store/postgres's does, so the two answer
// store/storetest alike. Its correctness does not rest on the write lock:
// every write that depends on what it read re-checks it in its own WHERE
// (guard.go lists them).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an open leadwatch database. It is safe for concurrent use, and
// several DBs (in one process or several) may share one file.
type DB struct {
	path     string
	writer   *sql.DB // one connection: the only writer of this handle
	reader   *sql.DB // a pool for reads, concurrent with the writer in WAL mode
	now      func() time.Time
	log      *slog.Logger
	opt      store.Options
	readOnly bool

	mu      sync.Mutex            // guards subs and nextSub
	subs    map[int]chan struct{} // Watch channels, signalled after each commit
	nextSub int
	closed  chan struct{}  // closed by Close: stops watchers
	watches sync.WaitGroup // Watch pollers (each holding a reader connection) and the file check
	once    sync.Once      // Close runs once

	file     os.FileInfo           // the database file as opened: checkFile compares the path with it
	replaced atomic.Pointer[error] // set once the file is found removed or replaced: every write fails with it
	health   *store.HealthTracker  // what Health reports from (health.go)

	hotW, hotR prepared // per-lead and per-callback statements, prepared once

	records *groupcommit.Batcher[recordReq, error] // Record's group commit
	bg      context.Context                        // the committer's context, ended by Close
	stop    context.CancelFunc                     // ends bg

	// afterRead is a test hook (nil in production): see hookAfterRead.
	afterRead func(ctx context.Context, op string, tx *sql.Tx)
}

// SchemaVersion is the schema version this build migrates databases to.
func SchemaVersion() int {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return 0
	}
	return len(ms)
}

// connRole is what a connection of a handle is for; dsn sets it up.
type connRole int

const (
	roleWriter connRole = iota // the one writer connection
	roleReader                 // the read pool
	roleBackup                 // Backup's own connection: read-only, but may VACUUM INTO another file
)

// dsn builds the connection string. A "file:" URI lets SQLite see mode=ro;
// busy_timeout comes first so that the pragmas after it (journal_mode
// takes a lock) wait instead of failing.
func dsn(p string, opt store.Options, role connRole) string {
	// Escape what a URI would read as syntax; SQLite decodes %XX.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
	q := []string{"_pragma=busy_timeout(" + strconv.FormatInt(opt.BusyTimeout.Milliseconds(), 10) + ")"}
	switch {
	case role == roleBackup:
		// mode=ro cannot write the store, and unlike query_only it lets
		// VACUUM INTO write the copy.
		return "file:" + esc + "?" + strings.Join(append(q, "mode=ro"), "&")
	case opt.ReadOnly:
		q = append(q, "mode=ro") // WAL is a persistent setting of the file; nothing to set
	default:
		q = append(q, "_pragma=journal_mode(WAL)")
	}
	q = append(q, "_pragma=synchronous(FULL)", "_pragma=foreign_keys(1)")
	if role == roleWriter {
		// Statements that fire the counter triggers keep a statement
		// journal; in memory it costs a page copy, on disk a write syscall
		// per page (a quarter of the time of a bulk insert).
		q = append(q, "_txlock=immediate", "_pragma=temp_store(MEMORY)")
		// FAST zeroes the space a rewritten or deleted row leaves in its
		// page (no extra I/O), so updating a lead does not leave old
		// copies of its payload in free space for Forget to miss.
		q = append(q, "_pragma=secure_delete(FAST)")
	} else {
		// Readers must never write; query_only turns a bug into an error.
		q = append(q, "_pragma=query_only(1)")
	}
	return "file:" + esc + "?" + strings.Join(q, "&")
}

// Open opens (creating when missing, mode 0600) the database at path and
// brings its schema up to date. A database migrated by a newer leadwatch is
// refused with ErrTooNew.
func Open(ctx context.Context, path string, opt store.Options) (*DB, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.BusyTimeout <= 0 {
		opt.BusyTimeout = store.DefaultBusyTimeout
	}
	if opt.MaxRefusals <= 0 {
		opt.MaxRefusals = store.DefaultMaxRefusals
	}
	if opt.MaxPayload <= 0 {
		opt.MaxPayload = store.DefaultMaxPayload
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.FileCheckInterval <= 0 {
		opt.FileCheckInterval = store.DefaultFileCheckInterval
	}
	if opt.ProbeMaxAge <= 0 {
		opt.ProbeMaxAge = store.DefaultProbeMaxAge
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open store: %q: need a plain file path", path)
	}
	if err := prepareFile(path, opt); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{
		path:     path,
		now:      opt.Now,
		log:      opt.Logger,
		opt:      opt,
		readOnly: opt.ReadOnly,
		subs:     map[int]chan struct{}{},
		closed:   make(chan struct{}),
	}
	db.health = db.newHealth()
	var err error
	if db.writer, err = sql.Open("sqlite", dsn(path, opt, roleWriter)); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection: writes of this handle queue here instead of fighting
	// for SQLite's lock, and BEGIN IMMEDIATE makes a cross-process writer
	// wait (busy_timeout) at the start rather than fail at the first write.
	db.writer.SetMaxOpenConns(1)
	db.writer.SetConnMaxIdleTime(0)
	if db.reader, err = sql.Open("sqlite", dsn(path, opt, roleReader)); err != nil {
		db.writer.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	n := max(4, runtime.NumCPU())
	db.reader.SetMaxOpenConns(n)
	db.reader.SetMaxIdleConns(n)

	if err := db.migrate(ctx); err != nil {
		db.writer.Close()
		db.reader.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !db.readOnly {
		if db.hotW, err = prepareAll(ctx, db.writer, hotWrites); err != nil {
			db.writer.Close()
			db.reader.Close()
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	if db.hotR, err = prepareAll(ctx, db.reader, hotReads); err != nil {
		db.hotW.close()
		db.writer.Close()
		db.reader.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// SQLite holds the file open by now (migrate and prepare used both
	// pools), so this is the identity of the file being written.
	if err := db.statFile(); err != nil {
		db.hotW.close()
		db.hotR.close()
		db.writer.Close()
		db.reader.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.bg, db.stop = context.WithCancel(context.Background())
	db.records = db.newRecorder()
	db.watches.Add(1)
	go db.watchFile(opt.FileCheckInterval)
	if !db.readOnly {
		db.watches.Add(1)
		go db.foldLoop(statsFoldInterval) // stats_fold.go
	}
	return db, nil
}

// prepareFile creates a missing database file with mode 0600 before SQLite
// does (SQLite would use 0644, and a lead's payload is personal data; the
// -wal and -shm files inherit the database file's mode). An existing file
// readable by others draws a warning.
func prepareFile(path string, opt store.Options) error {
	st, err := os.Stat(path)
	switch {
	case err == nil:
		if st.Mode().Perm()&0o077 != 0 {
			opt.Logger.Warn("database file is readable by group or others", "path", path, "mode", st.Mode().Perm().String())
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case opt.ReadOnly:
		return fmt.Errorf("%w: the file does not exist", store.ErrReadOnly)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process created it first
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// migrate applies the embedded migrations not yet applied, each in its own
// write transaction, re-reading the version inside the transaction so two
// processes opening one new file do not both apply a migration. A
// read-only handle only checks the version.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if db.readOnly {
		v, err := db.version(ctx, db.reader)
		if err != nil {
			return mapErr(ctx, err)
		}
		return store.CheckVersion(v, len(ms), true)
	}
	err = db.retryBusy(ctx, func() error {
		_, err := db.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		)`)
		return mapErr(ctx, err)
	})
	if err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	for {
		var done bool
		err := db.retryBusy(ctx, func() (err error) {
			done, err = db.migrateOne(ctx, ms)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

// retryBusy runs fn again while it fails with ErrBusy, for up to the busy
// timeout. SQLite's busy handler covers most waits, but not all: while
// several handles open one fresh file at once, the one switching it to WAL
// holds a lock that others meet as an immediate SQLITE_BUSY, without the
// handler being called. A migration is one transaction, so running it
// again is safe.
func (db *DB) retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(db.opt.BusyTimeout)
	wait := time.Millisecond
	for {
		err := fn()
		if !errors.Is(err, store.ErrBusy) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// migrateOne applies the next migration; done when none is left. It runs
// on the writer's one connection pinned, with foreign keys off: a
// migration that rebuilds a table others reference (005 rebuilds leads)
// must not cascade the old table's drop into them. SQLite ignores that
// pragma inside a transaction, so it is set around it, and
// foreign_key_check runs before the commit instead. A migration's Go
// fixup (migrationFixups) runs after its SQL, in the same transaction.
func (db *DB) migrateOne(ctx context.Context, ms []store.Migration) (done bool, err error) {
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return false, mapErr(ctx, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return false, mapErr(ctx, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, mapErr(ctx, err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return false, mapErr(ctx, err)
	}
	if err := store.CheckVersion(v, len(ms), false); err != nil {
		return false, err
	}
	if v == len(ms) {
		return true, nil
	}
	m := ms[v]
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
	}
	if fix := migrationFixups[m.Version]; fix != nil {
		if err := fix(ctx, tx); err != nil {
			return false, fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
		}
	}
	var bad int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&bad); err != nil {
		return false, fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
	}
	if bad > 0 {
		return false, fmt.Errorf("migration %03d_%s: %d rows break a foreign key", m.Version, m.Name, bad)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, db.now().UnixMilli()); err != nil {
		return false, mapErr(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return false, mapErr(ctx, err)
	}
	db.log.Info("store migrated", "path", db.path, "version", m.Version, "name", m.Name)
	return false, nil
}

// version reads the applied schema version; 0 for a database without one.
func (db *DB) version(ctx context.Context, q *sql.DB) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Close stops the watchers and closes the connections.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		close(db.closed)
		db.records.Close() // Records already taken are committed first
		db.stop()
		db.closeHealth()
		db.watches.Wait()
		err = errors.Join(db.hotW.close(), db.hotR.close(), db.reader.Close(), db.writer.Close())
	})
	return err
}

// Path returns the database file's path, as given to Open.
func (db *DB) Path() string { return db.path }

// Location implements store.Store: the database file's path.
func (db *DB) Location() string { return db.path }

// beginWrite starts a write transaction on the writer connection. A handle
// whose file was removed or replaced refuses at once (ErrReplaced).
func (db *DB) beginWrite(ctx context.Context) (*sql.Tx, error) {
	if db.readOnly {
		return nil, fmt.Errorf("%w: opened read-only", store.ErrReadOnly)
	}
	if err := db.replacedErr(); err != nil {
		return nil, err
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		err = mapErr(ctx, err)
		db.noteWrite(err)
		return nil, err
	}
	return tx, nil
}

// commit commits a write transaction, checks that the path still names
// the file it went to, records the outcome for Health and, when it
// succeeded, tells the watchers. A commit that landed in a file removed or
// replaced meanwhile fails with ErrReplaced: nobody will read it again, so
// it must not be acknowledged.
func (db *DB) commit(ctx context.Context, tx *sql.Tx) error {
	err := tx.Commit()
	if err != nil {
		err = mapErr(ctx, err)
	} else {
		err = db.checkFile()
	}
	db.noteWrite(err)
	if err != nil {
		return err
	}
	db.notify()
	return nil
}

// beginRead starts a read transaction on the reader pool, so multi-query
// reads see one snapshot.
func (db *DB) beginRead(ctx context.Context) (*sql.Tx, error) {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return tx, nil
}

// Ping reports whether the store can take events: the writer answers and
// the handle is not read-only.
func (db *DB) Ping(ctx context.Context) error {
	if db.readOnly {
		return fmt.Errorf("ping store: %w: opened read-only", store.ErrReadOnly)
	}
	if err := db.replacedErr(); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	if err := db.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", mapErr(ctx, err))
	}
	return nil
}

// watchInterval is how often Watch reads SQLite's data_version to learn of
// commits by other processes: short enough that a dashboard beside a serve
// looks live, long enough that the pinned read costs nothing (one PRAGMA
// is a few microseconds).
const watchInterval = 200 * time.Millisecond

// Watch implements store.Store: a channel that receives a value when
// something in the database may have changed: right after every commit
// made through this DB, and, by polling SQLite's data_version on one pinned
// connection every watchInterval, after commits by other processes. Sends
// never block: signals coalesce in a buffer of one, and a reader re-reads
// what it shows, so a dropped signal costs only latency. The channel is
// closed when ctx ends or the DB closes.
func (db *DB) Watch(ctx context.Context) <-chan struct{} { return db.watch(ctx, watchInterval) }

// watch is Watch polling every interval; tests choose it.
func (db *DB) watch(ctx context.Context, interval time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	db.mu.Lock()
	id := db.nextSub
	db.nextSub++
	db.subs[id] = ch
	db.mu.Unlock()

	db.watches.Add(1)
	go func() {
		defer db.watches.Done()
		defer func() {
			db.mu.Lock()
			delete(db.subs, id)
			close(ch)
			db.mu.Unlock()
		}()
		db.pollDataVersion(ctx, interval, ch)
	}()
	return ch
}

// pollDataVersion signals ch whenever PRAGMA data_version changes on one
// pinned connection: SQLite bumps it when any other connection commits.
// Without a connection it still waits, so own-commit signals keep flowing.
func (db *DB) pollDataVersion(ctx context.Context, interval time.Duration, ch chan struct{}) {
	conn, err := db.reader.Conn(ctx)
	if err != nil {
		db.log.Warn("store watch: no connection to poll; only this process's commits will signal", "err", err)
		select {
		case <-ctx.Done():
		case <-db.closed:
		}
		return
	}
	defer conn.Close()
	read := func() (int64, bool) {
		var v int64
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
			if ctx.Err() == nil {
				db.log.Warn("store watch: read data_version", "err", err)
			}
			return 0, false
		}
		return v, true
	}
	last, _ := read()
	// A commit between the caller's last read and this first reading
	// would otherwise go unnoticed: signal once so the caller looks again.
	select {
	case ch <- struct{}{}:
	default:
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.closed:
			return
		case <-t.C:
		}
		if v, ok := read(); ok && v != last {
			last = v
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// notify signals every watcher without blocking.
func (db *DB) notify() {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, ch := range db.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
