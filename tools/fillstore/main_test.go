package main

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

const wantLeads, wantCallbacks = 300, 200

// checkCounts fails t unless the store's counters hold the filled rows.
func checkCounts(t *testing.T, leads, callbacks int) {
	t.Helper()
	if leads != wantLeads || callbacks != wantCallbacks {
		t.Fatalf("store counts %d leads and %d callbacks, want %d and %d", leads, callbacks, wantLeads, wantCallbacks)
	}
}

func TestFillSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fill.db")
	if err := fill(ctx, path, wantLeads, wantCallbacks); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leads := 0
	for _, n := range c.States {
		leads += n
	}
	checkCounts(t, leads, c.CallbacksVerified) // every stored callback is verified; unmatched ones are a subset

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var stats int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'leads'`).Scan(&stats); err != nil || stats == 0 {
		t.Fatalf("no planner statistics for leads after the fill (ANALYZE): %d rows, %v", stats, err)
	}
}

func TestFillPostgres(t *testing.T) {
	storetest.SkipWithoutPostgres(t)
	ctx := context.Background()
	url := storetest.Postgres(t)
	if err := fill(ctx, url, wantLeads, wantCallbacks); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leads := 0
	for _, n := range c.States {
		leads += n
	}
	checkCounts(t, leads, c.CallbacksVerified) // every stored callback is verified; unmatched ones are a subset

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// reltuples is -1 until the table is first analyzed (or vacuumed).
	var tuples float64
	if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'leads'::regclass`).Scan(&tuples); err != nil || tuples != wantLeads {
		t.Fatalf("leads' reltuples %v after the fill, want %d (ANALYZE): %v", tuples, wantLeads, err)
	}
}

func TestFillUnknownScheme(t *testing.T) {
	err := fill(context.Background(), "mysql://root:hunter2@127.0.0.1/x", 1, 1)
	if !errors.Is(err, store.ErrUnknownScheme) {
		t.Fatalf("fill of a mysql URL: %v, want ErrUnknownScheme", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the password: %v", err)
	}
}
