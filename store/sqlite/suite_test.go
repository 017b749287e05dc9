package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestStore runs the black-box store suite on SQLite files in the test's
// temporary directory.
func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Name: "sqlite",
		New: func(t *testing.T, opt store.Options) (store.Store, storetest.Opener) {
			path := filepath.Join(t.TempDir(), "leadwatch.db")
			s := storetest.OpenPath(t, path, opt)
			return s, func(opt store.Options) (store.Store, error) {
				db, err := sqlite.Open(context.Background(), path, opt)
				if err != nil {
					return nil, err
				}
				t.Cleanup(func() {
					if err := db.Close(); err != nil {
						t.Errorf("close the second store on %s: %v", path, err)
					}
				})
				return db, nil
			}
		},
		MakeNewer: func(t *testing.T, s store.Store) {
			raw := rawDB(t, s)
			if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`,
				sqlite.SchemaVersion()+1); err != nil {
				t.Fatalf("mark the database newer: %v", err)
			}
		},
		MakeReadOnly: func(t *testing.T, s store.Store) {
			if os.Geteuid() == 0 {
				t.Skip("running as root: file modes do not stop root from writing; Options.ReadOnly is tested in read_only_option")
			}
			path := s.(*sqlite.DB).Path()
			dir := filepath.Dir(path)
			// The file and its directory (SQLite creates -wal and -shm
			// files there) lose their write bits; the modes come back at
			// cleanup so t.TempDir can be removed.
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Chmod(p, 0o400); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
		},
		DiskFull: func(t *testing.T, s store.Store) func() {
			undo, err := sqlite.LimitPages(s.(*sqlite.DB))
			if err != nil {
				t.Fatalf("limit the database's pages: %v", err)
			}
			return func() {
				if err := undo(); err != nil {
					t.Fatalf("lift the page limit: %v", err)
				}
			}
		},
		HoldLock: func(t *testing.T, s store.Store) func() {
			// Another process's connection in BEGIN IMMEDIATE holds the
			// write lock; the store's writes wait its busy timeout, then
			// fail with ErrBusy.
			raw := rawDB(t, s)
			ctx := context.Background()
			conn, err := raw.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
				t.Fatalf("take the write lock: %v", err)
			}
			return func() {
				if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
					t.Fatalf("give the write lock back: %v", err)
				}
			}
		},
		// No StallCallback: one writer at a time, so callback ids commit in
		// order on SQLite.
	})
}

// rawDB opens s's file on a database/sql handle of its own, as another
// process would, closed when t ends.
func rawDB(t *testing.T, s store.Store) *sql.DB {
	t.Helper()
	path := s.(*sqlite.DB).Path()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}
