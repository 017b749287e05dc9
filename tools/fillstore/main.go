// Command fillstore writes a synthetic campaign into a leadwatch store, so
// the dashboard's budget (issue #5: 1,000,000 leads and 1,000,000
// callbacks) can be measured on a store of that size by anyone, on either
// backend:
//
//	go run ./tools/fillstore -db /tmp/big.db -leads 1000000 -callbacks 1000000
//	go run ./tools/fillstore -db postgres://user@host/bigdb -leads 1000000 -callbacks 1000000
//
// -db is a store location as `leadwatch --db` takes it: a file path for
// SQLite, a postgres:// (or postgresql://) URL for PostgreSQL (the
// database must exist; it is migrated on open). It calls the backend's
// Fill (same rows as the stores' benchmarks) and then ANALYZE, so the
// query planner sees the real distribution. A million of each takes about
// a minute and 700 MB on disk with SQLite, a few minutes with PostgreSQL.
// Repeated runs append. The URL's password is never printed.
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

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/sqlite"
	_ "modernc.org/sqlite" // the driver store/sqlite uses, for ANALYZE
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fillstore:", err)
		os.Exit(1)
	}
}

// filler is what both backends' DB offer that fillstore needs.
type filler interface {
	Fill(ctx context.Context, leads, callbacks int) error
	Close() error
}

func run() error {
	location := flag.String("db", "", "store to create or append to: a SQLite file or a postgres:// URL (required)")
	leads := flag.Int("leads", 1_000_000, "leads to add")
	callbacks := flag.Int("callbacks", 1_000_000, "callbacks to add")
	flag.Parse()
	if *location == "" || flag.NArg() > 0 || *leads < 0 || *callbacks < 0 {
		flag.Usage()
		return errors.New("need -db FILE|URL and non-negative -leads and -callbacks")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if err := fill(ctx, *location, *leads, *callbacks); err != nil {
		return err
	}
	fmt.Printf("added %d leads and %d callbacks to %s in %v\n", *leads, *callbacks,
		store.RedactLocation(*location), time.Since(start).Round(time.Millisecond))
	return nil
}

// fill opens the store at location with its backend, adds the campaign
// and gathers the planner's statistics.
func fill(ctx context.Context, location string, leads, callbacks int) error {
	kind, err := store.Backend(location)
	if err != nil {
		return err
	}
	var db filler
	switch kind {
	case store.Postgres:
		db, err = postgres.Open(ctx, location, store.Options{})
	default:
		db, err = sqlite.Open(ctx, location, store.Options{})
	}
	if err != nil {
		return err
	}
	if err := db.Fill(ctx, leads, callbacks); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if kind == store.Postgres {
		return analyzePostgres(ctx, location)
	}
	return analyzeSQLite(ctx, location)
}

// analyzeSQLite gathers the planner's statistics, as the store benchmark's
// cached file has them. It opens the file directly: the store has no
// method for a one-off maintenance statement.
func analyzeSQLite(ctx context.Context, path string) error {
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

// analyzePostgres runs ANALYZE on the database at url: autovacuum would
// get to it eventually, but a benchmark right after the fill needs the
// statistics now. Errors name the database without its password.
func analyzePostgres(ctx context.Context, url string) error {
	loc := store.RedactLocation(url)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("analyze %s: %w", loc, err) // pgx redacts the password in parse errors
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		msg := store.RedactSecret(err.Error(), cfg.Password)
		return fmt.Errorf("analyze %s: connect: %s (check the URL and that the server is up)", loc, msg)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze %s: %w", loc, err)
	}
	return nil
}
