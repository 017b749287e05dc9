package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// storeCommands are command lines that each open the configured store
// first, the dashboard and serve included: a store that cannot be opened
// stops each the same way.
var storeCommands = [][]string{
	{"export", "leads"},
	{"tail"},
	{"prune", "--older-than", "1d"},
	{"forget", "x-1"},
	{"resubmit", "x-1"},
	{"submit", "-"},
	{"serve", "--listen", "127.0.0.1:0"},
	{"--listen", "127.0.0.1:0"}, // the dashboard
}

// servicesEnv is enough configuration for serve and the dashboard to get
// as far as opening the store.
func servicesEnv(db string) map[string]string {
	return map[string]string{
		"CARTELCRM_BASE_URL":    "http://127.0.0.1:1",
		"CARTELCRM_API_KEY":     sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET": sandbox.TestHMACSecret,
		"CALLBACK_SECRET":       sandbox.TestCallbackSecret,
		"LEADWATCH_DB":          db,
	}
}

// refusedOnce runs each store command with envVars and checks it exits 1
// with one line on stderr that holds every want and not the password.
func refusedOnce(t *testing.T, envVars map[string]string, want ...string) {
	t.Helper()
	for _, args := range storeCommands {
		start := time.Now()
		code, out, errOut := runCLI(t, envVars, `{"external_id":"x-1","phone":"+380501234567"}`+"\n", args...)
		noPassword(t, strings.Join(args, " "), out, errOut)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "leadwatch: ") {
			t.Errorf("%v: exit %d, want 1 and one line; stdout %q, stderr %q", args, code, out, errOut)
			continue
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: %q lacks %q", args, errOut, w)
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%v took %s to give up", args, d)
		}
	}
}

// TestDBUnknownScheme: a --db that is neither a path nor a postgres URL is
// one clear line naming the accepted forms, its password not shown.
func TestDBUnknownScheme(t *testing.T) {
	refusedOnce(t, servicesEnv("mysql://root:"+testPassword+"@db.example/leads"),
		"unknown database URL scheme", "file path", "postgres://", "mysql://root:REDACTED@db.example/leads")
	code, _, errOut := runCLI(t, nil, "", "export", "leads", "--db", "mysql://x")
	if code != 1 || !strings.Contains(errOut, `"mysql://x"`) {
		t.Errorf("--db mysql://x: exit %d %q", code, errOut)
	}
}

// TestPostgresUnreachable: a server that is not there is one line naming
// the URL without its password, quickly.
func TestPostgresUnreachable(t *testing.T) {
	needPostgresBackend(t, storetest.Postgres(t))
	dsn := "postgres://postgres:" + testPassword + "@" + loopbackPort(t) + "/leadwatch?sslmode=disable&connect_timeout=5"
	refusedOnce(t, servicesEnv(dsn), "postgres://postgres:REDACTED@127.0.0.1:")
}

// TestPostgresWrongPassword: a cluster that checks passwords, given the
// wrong one: one line that says so, without either password.
func TestPostgresWrongPassword(t *testing.T) {
	const right = "the-right-pw"
	c := startCluster(t, right)
	dsn := c.database("lw", right)
	needPostgresBackend(t, withPassword(t, dsn, right))
	envVars := servicesEnv(withPassword(t, dsn, testPassword))
	refusedOnce(t, envVars, "password authentication failed", "postgres://postgres:REDACTED@"+c.addr()+"/lw")
	for _, args := range storeCommands {
		_, out, errOut := runCLI(t, envVars, "", args...)
		if strings.Contains(out+errOut, right) {
			t.Fatalf("%v printed the cluster's password", args)
		}
	}
}

// TestTooNewSQLite: a SQLite database migrated by a newer leadwatch is
// refused by every command with a line that says to upgrade.
func TestTooNewSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db := storetest.OpenPath(t, path, store.Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at)
		SELECT MAX(version) + 1, 'from the future', applied_at FROM schema_migrations`); err != nil {
		t.Fatalf("bump the schema version: %v", err)
	}
	raw.Close()
	refusedOnce(t, servicesEnv(path), "newer version of leadwatch", "upgrade leadwatch")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// TestTooNewPostgres: the same for a PostgreSQL database whose schema
// table names a version this build does not know.
func TestTooNewPostgres(t *testing.T) {
	dsn := pgURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The migrations table is the backend's: add the next version as a
	// newer build would, copying the other columns of the last row.
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE next_m AS SELECT * FROM schema_migrations ORDER BY version DESC LIMIT 1;
		UPDATE next_m SET version = version + 1;
		INSERT INTO schema_migrations SELECT * FROM next_m`); err != nil {
		t.Fatalf("bump the schema version: %v", err)
	}
	refusedOnce(t, servicesEnv(dsn), "newer version of leadwatch", "upgrade leadwatch")
}
