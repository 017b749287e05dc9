package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// dsns maps each Store the harness opened to its database's URL, for the
// hooks (Location() has lost the password, if there was one).
var dsns sync.Map // store.Store -> string

// TestStore runs the black-box store suite on PostgreSQL: every database
// is a fresh one on the server in LEADWATCH_TEST_POSTGRES (skipped when it
// is unset), dropped when its test ends.
func TestStore(t *testing.T) {
	storetest.SkipWithoutPostgres(t)
	storetest.Run(t, storetest.Harness{
		Name: "postgres",
		New: func(t *testing.T, opt store.Options) (store.Store, storetest.Opener) {
			dsn := storetest.Postgres(t)
			reopen := func(opt store.Options) (store.Store, error) {
				db, err := postgres.Open(context.Background(), dsn, opt)
				if err != nil {
					return nil, err
				}
				dsns.Store(store.Store(db), dsn)
				t.Cleanup(func() {
					dsns.Delete(store.Store(db))
					if err := db.Close(); err != nil {
						t.Errorf("close store on %s: %v", db.Location(), err)
					}
				})
				return db, nil
			}
			s, err := reopen(opt)
			if err != nil {
				t.Fatalf("open %s: %v", store.RedactLocation(dsn), err)
			}
			return s, reopen
		},
		MakeNewer: makeNewer,
		MakeReadOnly: func(t *testing.T, s store.Store) {
			// Sessions started from now on default to read-only
			// transactions: writes fail with SQLSTATE 25006.
			conn := connect(t, s)
			name := currentDatabase(t, conn)
			if _, err := conn.Exec(context.Background(),
				`ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` SET default_transaction_read_only = on`); err != nil {
				t.Fatalf("make the database read-only: %v", err)
			}
		},
		DiskFull: func(t *testing.T, s store.Store) func() {
			// A full disk simulated: every table's writes raise SQLSTATE
			// 53100 (disk_full) from a statement trigger.
			conn := connect(t, s)
			ctx := context.Background()
			tables := userTables(t, conn)
			stmts := []string{`CREATE FUNCTION lw_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (simulated)' USING ERRCODE = '53100'; END $$`}
			for _, tb := range tables {
				stmts = append(stmts, `CREATE TRIGGER lw_test_disk_full BEFORE INSERT OR UPDATE OR DELETE ON `+
					pgx.Identifier{tb}.Sanitize()+` FOR EACH STATEMENT EXECUTE FUNCTION lw_test_disk_full()`)
			}
			for _, q := range stmts {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("simulate a full disk: %s: %v", q, err)
				}
			}
			return func() {
				if _, err := conn.Exec(ctx, `DROP FUNCTION lw_test_disk_full() CASCADE`); err != nil {
					t.Fatalf("give the space back: %v", err)
				}
			}
		},
		HoldLock: func(t *testing.T, s store.Store) func() {
			// Another instance holds EXCLUSIVE locks on the tables writes
			// touch (plain reads still pass): the store's writes wait
			// lock_timeout (its BusyTimeout), then fail with 55P03, which
			// is ErrBusy.
			conn := connect(t, s)
			ctx := context.Background()
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE leads, callbacks, refusals IN EXCLUSIVE MODE`); err != nil {
				tx.Rollback(ctx)
				t.Fatalf("lock the tables: %v", err)
			}
			return func() {
				if err := tx.Rollback(ctx); err != nil {
					t.Fatalf("release the table locks: %v", err)
				}
			}
		},
		StallCallback: stallHook,
	})
}

// stallHook is the StallCallback hook.

func stallHook(t *testing.T, s store.Store, internalID string) (func() bool, func()) {
	// A deferred constraint trigger runs at COMMIT, after every
	// statement of the save (and any lock it holds only while its
	// INSERT runs): the transaction has its id and its row, and
	// waits there for an advisory lock this connection holds.
	conn := connect(t, s)
	ctx := context.Background()
	const key = 7242001
	for _, q := range []string{
		fmt.Sprintf(`CREATE FUNCTION lw_test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN PERFORM pg_advisory_xact_lock(%d); RETURN NULL; END $$`, key),
		`CREATE CONSTRAINT TRIGGER lw_test_stall AFTER INSERT ON callbacks
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.internal_id = ` + quote(internalID) + `) EXECUTE FUNCTION lw_test_stall()`,
		fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, key),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("stall callback %s: %s: %v", internalID, q, err)
		}
	}
	var once sync.Once
	resume := func() {
		once.Do(func() {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`SELECT pg_advisory_unlock(%d)`, key)); err != nil {
				t.Errorf("resume the stalled callback: %v", err)
			}
		})
	}
	t.Cleanup(resume)
	// A save stalled in the trigger waits for the advisory lock
	// (a one-int8 key: classid 0, objid the key, objsubid 1).
	watcher := connect(t, s)
	stalled := func() bool {
		var n int
		if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND NOT granted AND classid = 0 AND objid = $1 AND objsubid = 1`, key).Scan(&n); err != nil {
			t.Fatalf("look for the stalled save: %v", err)
		}
		return n > 0
	}
	return stalled, resume
}

// connect opens a connection of its own on s's database, as another
// process would, closed when t ends.
func connect(t *testing.T, s store.Store) *pgx.Conn {
	t.Helper()
	v, ok := dsns.Load(s)
	if !ok {
		t.Fatalf("no URL known for the store on %s", s.Location())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, v.(string))
	if err != nil {
		t.Fatalf("connect to %s: %v", s.Location(), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func currentDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// userTables lists the base tables in the current schema.
func userTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 {
		t.Fatal("the database has no tables (not migrated?)")
	}
	return tables
}

// makeNewer records a migration past this build's in schema_migrations,
// as a newer leadwatch would have.
func makeNewer(t *testing.T, s store.Store) {
	conn := connect(t, s)
	if _, err := conn.Exec(context.Background(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', 0)`,
		postgres.SchemaVersion()+1); err != nil {
		t.Fatalf("mark the database newer: %v", err)
	}
}

// quote is s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
