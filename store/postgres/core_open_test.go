package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// openTest opens a fresh database for t and closes it at the end.
func openTest(t testing.TB, opt store.Options) (*DB, string) {
	t.Helper()
	u := storetest.Postgres(t)
	db, err := Open(context.Background(), u, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, u
}

// execURL runs sql on the database at u over a connection of its own.
func execURL(t testing.TB, u, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestCoreOpenMigratesOnceConcurrently(t *testing.T) {
	u := storetest.Postgres(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	dbs := make([]*DB, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(ctx, u, store.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	var rows, max int
	if err := dbs[0].pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion() || max != SchemaVersion() {
		t.Fatalf("schema_migrations: %d rows, max version %d; want %d of each (one row per migration)", rows, max, SchemaVersion())
	}
}

func TestCoreOpenTooNew(t *testing.T) {
	db, u := openTest(t, store.Options{})
	db.Close()
	execURL(t, u, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`, SchemaVersion()+1)
	_, err := Open(context.Background(), u, store.Options{})
	if !errors.Is(err, store.ErrTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrTooNew", err)
	}
	if !strings.Contains(err.Error(), "upgrade leadwatch") {
		t.Errorf("error %q does not say to upgrade leadwatch", err)
	}
	_, err = Open(context.Background(), u, store.Options{ReadOnly: true})
	if !errors.Is(err, store.ErrTooNew) {
		t.Fatalf("read-only Open of a newer database: %v, want ErrTooNew", err)
	}
}

func TestCoreOpenReadOnly(t *testing.T) {
	u := storetest.Postgres(t)
	_, err := Open(context.Background(), u, store.Options{ReadOnly: true})
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("read-only Open of an unmigrated database: %v, want ErrReadOnly", err)
	}
	db, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := Open(context.Background(), u, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open: %v", err)
	}
	defer ro.Close()
	if _, err := ro.Enqueue(context.Background(), leadJSON("ro-1"), store.EnqueueOptions{}); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Enqueue on a read-only handle: %v, want ErrReadOnly", err)
	}
	// The server refuses a write that bypasses the methods too.
	_, err = ro.pool.Exec(context.Background(), `INSERT INTO count_deltas (name, n) VALUES ('x', 1)`)
	if !errors.Is(mapErr(context.Background(), err), store.ErrReadOnly) {
		t.Fatalf("raw insert on a read-only handle: %v, want ErrReadOnly", err)
	}
}

// TestCoreOpenUnreachableRedacted connects to a closed port with a
// password in the URL: the error is one line naming the URL without the
// password.
func TestCoreOpenUnreachableRedacted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	const secret = "s3cr3t-Pa55word"
	for _, u := range []string{
		"postgres://lw:" + secret + "@" + addr + "/lw?sslmode=disable&connect_timeout=5",
		"postgres://lw@" + addr + "/lw?sslmode=disable&connect_timeout=5&password=" + url.QueryEscape(secret),
	} {
		_, err = Open(context.Background(), u, store.Options{})
		if err == nil {
			t.Fatal("Open of a closed port succeeded")
		}
		msg := err.Error()
		if strings.Contains(msg, secret) {
			t.Fatalf("error shows the password: %s", msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		if !strings.Contains(msg, store.RedactLocation(u)) {
			t.Errorf("error %q does not name the redacted URL %s", msg, store.RedactLocation(u))
		}
		if !isUnreachable(err) {
			t.Errorf("error %q is not marked unreachable", msg)
		}
	}
}

// TestCoreDiskFullFromTrigger raises SQLSTATE 53100 from a trigger: the
// store reports ErrDiskFull and stores nothing.
func TestCoreDiskFullFromTrigger(t *testing.T) {
	db, u := openTest(t, store.Options{})
	execURL(t, u, `CREATE FUNCTION lw_test_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;
		CREATE TRIGGER lw_test_full BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION lw_test_full()`)
	_, err := db.Enqueue(context.Background(), leadJSON("full-1"), store.EnqueueOptions{})
	if !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("Enqueue with a full disk: %v, want ErrDiskFull", err)
	}
	execURL(t, u, `DROP TRIGGER lw_test_full ON leads`)
	if _, err := db.Lead(context.Background(), "full-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lead after a disk-full enqueue: %v, want ErrNotFound", err)
	}
}

// leadJSON is a valid lead payload.
func leadJSON(ext string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":"DE"}`, ext))
}
