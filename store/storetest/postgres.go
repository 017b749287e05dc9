package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
)

// PostgresEnv names the environment variable holding the URL of a
// PostgreSQL server the tests may create databases on (a superuser, or a
// role with CREATEDB). tools/pgtest.sh start prints one.
const PostgresEnv = "LEADWATCH_TEST_POSTGRES"

// postgresSkip is the reason tests needing PostgreSQL skip when PostgresEnv
// is unset.
const postgresSkip = "set " + PostgresEnv + " to a PostgreSQL URL (tools/pgtest.sh start prints one) to run the PostgreSQL tests"

// SkipWithoutPostgres skips tb, with the reason, when
// LEADWATCH_TEST_POSTGRES is unset: for a test that needs PostgreSQL before
// it asks Postgres for a database (a suite skipped once, not per subtest).
func SkipWithoutPostgres(tb testing.TB) {
	tb.Helper()
	if os.Getenv(PostgresEnv) == "" {
		tb.Skip(postgresSkip)
	}
}

// Postgres creates a fresh, empty database (lw_<random hex>) on the server
// named by LEADWATCH_TEST_POSTGRES and returns its URL; the database is
// dropped (WITH (FORCE), so connections still open do not keep it) when
// the test ends. It skips tb when the variable is unset, and fails tb when
// the server cannot be reached or refuses the CREATE.
func Postgres(tb testing.TB) string {
	tb.Helper()
	SkipWithoutPostgres(tb)
	admin := os.Getenv(PostgresEnv)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("storetest: random database name: %v", err)
	}
	name := "lw_" + hex.EncodeToString(b[:])
	if err := adminExec(admin, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("storetest: create database %s on %s: %v (is the server in %s running?)",
			name, store.RedactLocation(admin), err, PostgresEnv)
	}
	tb.Cleanup(func() {
		if err := adminExec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("storetest: drop database %s on %s: %v", name, store.RedactLocation(admin), err)
		}
	})
	dsn, err := withDatabase(admin, name)
	if err != nil {
		tb.Fatalf("storetest: %s: %v", PostgresEnv, err)
	}
	return dsn
}

// adminExec runs one statement on the admin URL over a connection of its
// own (CREATE/DROP DATABASE cannot run inside a transaction).
func adminExec(admin, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase is the admin URL with its database (the path) replaced by
// name, keeping the user, host and query parameters.
func withDatabase(admin, name string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil || !strings.Contains(admin, "://") {
		return "", fmt.Errorf("%q is not a postgres:// URL", store.RedactLocation(admin))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
