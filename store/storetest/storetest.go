// Package storetest opens stores for tests of any package: a real SQLite
// file in the test's temporary directory (never ":memory:", which is one
// database per connection), closed when the test ends.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/leadwatch/leadwatch/store"
)

// Open opens a new store in tb.TempDir() with opt and closes it at the end
// of the test; a failure to open or to close fails tb.
func Open(tb testing.TB, opt store.Options) *store.DB {
	tb.Helper()
	return OpenPath(tb, filepath.Join(tb.TempDir(), "leadwatch.db"), opt)
}

// OpenPath opens the store at path with opt, as Open does: for a second
// handle on a database (db.Path()), as a second process would hold, or a
// database reopened after a crash.
func OpenPath(tb testing.TB, path string, opt store.Options) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), path, opt)
	if err != nil {
		tb.Fatal(err) // it names the path already
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close store %s: %v", path, err)
		}
	})
	return db
}
