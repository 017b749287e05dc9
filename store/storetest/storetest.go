// Package storetest opens stores for tests of any package and holds the
// black-box suite (suite.go) that every store backend passes. SQLite stores
// are real files in the test's temporary directory (never ":memory:", which
// is one database per connection), closed when the test ends.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
)

// Open opens a new SQLite store in tb.TempDir() with opt and closes it at
// the end of the test; a failure to open or to close fails tb.
func Open(tb testing.TB, opt store.Options) *sqlite.DB {
	tb.Helper()
	return OpenPath(tb, filepath.Join(tb.TempDir(), "leadwatch.db"), opt)
}

// OpenPath opens the SQLite store at path with opt, as Open does: for a
// second handle on a database (db.Path()), as a second process would hold,
// or a database reopened after a crash.
func OpenPath(tb testing.TB, path string, opt store.Options) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path, opt)
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
