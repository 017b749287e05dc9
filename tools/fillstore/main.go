// Command fillstore writes a synthetic campaign into a leadwatch store, so
// the dashboard's budget (issue #5: 1,000,000 leads and 1,000,000
// callbacks) can be measured on a store of that size by anyone:
//
//	go run ./tools/fillstore -db /tmp/big.db -leads 1000000 -callbacks 1000000
//
// It calls store.Fill (same rows as store's benchmarks) and then ANALYZE,
// so the query planner sees the real distribution. A million of each takes
// about a minute and 700 MB on disk. Repeated runs append.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
	_ "modernc.org/sqlite" // the driver store uses, for ANALYZE
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fillstore:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("db", "", "store file to create or append to (required)")
	leads := flag.Int("leads", 1_000_000, "leads to add")
	callbacks := flag.Int("callbacks", 1_000_000, "callbacks to add")
	flag.Parse()
	if *path == "" || flag.NArg() > 0 || *leads < 0 || *callbacks < 0 {
		flag.Usage()
		return errors.New("need -db FILE and non-negative -leads and -callbacks")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	start := time.Now()
	db, err := sqlite.Open(ctx, *path, store.Options{})
	if err != nil {
		return err
	}
	if err := db.Fill(ctx, *leads, *callbacks); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := analyze(ctx, *path); err != nil {
		return err
	}
	fmt.Printf("added %d leads and %d callbacks to %s in %v\n", *leads, *callbacks, *path, time.Since(start).Round(time.Millisecond))
	return nil
}

// analyze gathers the planner's statistics, as the store benchmark's
// cached file has them. It opens the file directly: the store has no
// method for a one-off maintenance statement.
func analyze(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return db.Close()
}
