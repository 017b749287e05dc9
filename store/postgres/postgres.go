// Package postgres is leadwatch's PostgreSQL store backend (jackc/pgx v5,
// native, over a pgxpool): several leadwatch instances on one database.
// *DB satisfies store.Store and answers store/storetest as store/sqlite
// does.
//
// Correctness does not rest on a global lock: Claim leases in one UPDATE
// over a FOR UPDATE SKIP LOCKED pick, Record and Release write only WHERE
// the caller still holds the lease, Resubmit locks its row, and late
// linking of callbacks takes an advisory lock per CRM id shared with
// SaveCallbacks. Counters, and the Sources report's aggregates, are
// append-only deltas (migrations 001 and 003), so no writer waits on a
// counter row. Pauses are made race-free by one advisory lock that Pause
// and Resume take exclusively and the writers that queue leads take
// shared (ops.go). Keyset pages of the All leads pane that must check rows
// one by one examine at most maxScan (100,000) rows per call (query.go).
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadwatch/leadwatch/store"
)

// DB is an open PostgreSQL store. It is safe for concurrent use, and any
// number of DBs, in any number of processes, may share one database.
type DB struct {
	pool     *pgxpool.Pool
	location string // the URL without its password: safe to print
	now      func() time.Time
	log      *slog.Logger
	opt      store.Options
	readOnly bool

	watch  *watcher             // LISTEN/NOTIFY change signal (watch.go)
	health *store.HealthTracker // Health's cached probe (health.go)

	bg     context.Context    // background work (the fold ticker); ended by Close
	stop   context.CancelFunc // ends bg
	bgDone sync.WaitGroup     // the fold ticker
	once   sync.Once          // Close runs once
}

// defaultMaxConns is the pool size when the URL sets no pool_max_conns:
// the listener's group commits, the sender's Records and the dashboard's
// reads each hold a connection briefly, so a few per CPU keep them from
// queueing without crowding the server's max_connections (100 by default)
// when several instances share it.
func defaultMaxConns() int32 { return int32(max(8, 2*runtime.NumCPU())) }

// defaultConnectTimeout bounds a new connection when the URL sets no
// connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// Open connects to the database at url (postgres:// or postgresql://),
// migrates it under an advisory lock unless opt.ReadOnly, and starts the
// change listener. Errors name the database by its URL without the
// password, on one line.
func Open(ctx context.Context, url string, opt store.Options) (*DB, error) {
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
	loc := store.RedactLocation(url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors; the message is
		// still ours to keep on one line and to scrub, whatever pgx does.
		return nil, fmt.Errorf("open store %s: %w", loc, scrub(err, passwordOf(url)))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns()
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without connect_timeout a dial to a host that drops packets
		// waits for the kernel (minutes); Record, which finishes what it
		// started whatever its caller's context, must not hang on it.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	// A statement that waits longer than the busy timeout for a row or
	// table lock fails with lock_not_available, which is ErrBusy.
	rp["lock_timeout"] = strconv.FormatInt(opt.BusyTimeout.Milliseconds(), 10)
	if rp["application_name"] == "" {
		rp["application_name"] = "leadwatch"
	}
	if opt.ReadOnly {
		// Belt and braces: the methods refuse writes themselves, and the
		// server refuses any that slip through (25006, ErrReadOnly).
		rp["default_transaction_read_only"] = "on"
	}
	pw := cfg.ConnConfig.Password
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", loc, scrub(mapErr(ctx, err), pw))
	}
	db := &DB{
		pool:     pool,
		location: loc,
		now:      opt.Now,
		log:      opt.Logger,
		opt:      opt,
		readOnly: opt.ReadOnly,
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", loc, scrub(mapErr(ctx, err), pw))
	}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", loc, scrub(err, pw))
	}
	db.bg, db.stop = context.WithCancel(context.Background())
	db.health = db.newHealth()
	db.watch = newWatcher(db)
	if !db.readOnly {
		db.bgDone.Add(1)
		go db.foldLoop()
	}
	return db, nil
}

// passwordOf is the password in a URL's userinfo or password= parameter,
// "" when there is none or the URL does not parse.
func passwordOf(url string) string {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return ""
	}
	return cfg.ConnConfig.Password
}

// scrubbedError keeps err in the chain (errors.Is still works) but prints
// its message on one line with the password, if it appears, replaced.
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }

// scrub returns err printing on one line and without password.
func scrub(err error, password string) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: store.RedactSecret(oneLine(err.Error()), password), cause: err}
}

// Location implements store.Store: the URL without its password.
func (db *DB) Location() string { return db.location }

// Close stops the background work and the change listener, then closes
// the pool (waiting for connections in use to be returned).
func (db *DB) Close() error {
	db.once.Do(func() {
		db.stop()
		db.bgDone.Wait()
		db.health.Close() // a running probe ends before the pool closes under it
		if db.watch != nil {
			db.watch.close()
		}
		db.pool.Close()
	})
	return nil
}

// errReadOnly is the refusal of a write on a handle opened read-only.
func errReadOnly() error { return fmt.Errorf("%w: opened read-only", store.ErrReadOnly) }

// beginWrite starts a read-write transaction; a read-only handle refuses
// at once.
func (db *DB) beginWrite(ctx context.Context) (pgx.Tx, error) {
	if db.readOnly {
		return nil, errReadOnly()
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return tx, nil
}

// commit commits tx; its error is mapped.
func (db *DB) commit(ctx context.Context, tx pgx.Tx) error {
	return mapErr(ctx, tx.Commit(ctx))
}

// rollback ends tx when it was not committed. It runs on a context of its
// own: a cancelled caller must still give the connection back clean.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// After a commit this is pgx.ErrTxClosed; a failed rollback makes pgx
	// close the connection, so nothing is left to do either way.
	_ = tx.Rollback(ctx)
}

// beginRead starts a read-only transaction, so multi-query reads see one
// snapshot (REPEATABLE READ).
func (db *DB) beginRead(ctx context.Context) (pgx.Tx, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return tx, nil
}

// committed runs after every commit of this DB that changed something:
// it clears a failed write's hold on Health and signals this process's
// watchers at once (health.go, watch.go).
func (db *DB) committed() {
	db.noteCommit()
	db.watch.changed()
}
