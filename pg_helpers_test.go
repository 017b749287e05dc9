package main

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// testPassword is the password the PostgreSQL tests put in their URLs. The
// shared test server trusts every connection, so any password works; what
// the tests check is that it is printed, logged and stored nowhere.
const testPassword = "s3cr3t-pw"

// pgURL is a fresh database on the test server (storetest.Postgres; the
// test skips without LEADWATCH_TEST_POSTGRES) as a URL carrying
// testPassword, migrated.
func pgURL(t *testing.T) string {
	t.Helper()
	u := withPassword(t, storetest.Postgres(t), testPassword)
	needPostgresBackend(t, u)
	return u
}

// needPostgresBackend fails t when store/postgres cannot open dsn (the
// server refuses, or the database cannot be migrated).
func needPostgresBackend(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", store.RedactLocation(dsn), err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// withPassword is dsn with its user's password set to pw.
func withPassword(t *testing.T, dsn, pw string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse the test database URL: %v", err)
	}
	user := "postgres"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String()
}

// noPassword fails t when any of outs holds testPassword.
func noPassword(t *testing.T, what string, outs ...string) {
	t.Helper()
	for _, o := range outs {
		if strings.Contains(o, testPassword) {
			t.Fatalf("%s shows the database password:\n%s", what, o)
		}
	}
}

// pgCluster is a PostgreSQL server of the test's own (tools/pgtest.sh), for
// the tests that stop it or need password authentication: the shared
// server must keep running for the other tests.
type pgCluster struct {
	t   *testing.T
	dir string
	url string // the postgres database, without a password
}

// startCluster starts a throwaway cluster; password, when not empty, is
// the postgres user's and TCP connections need it. It skips t without
// LEADWATCH_TEST_POSTGRES (the sign that PostgreSQL tests should run) or
// without PostgreSQL's server binaries, and in -short.
func startCluster(t *testing.T, password string) *pgCluster {
	t.Helper()
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip("set " + storetest.PostgresEnv + " to a PostgreSQL URL (tools/pgtest.sh start prints one) to run the PostgreSQL tests")
	}
	if testing.Short() {
		t.Skip("own PostgreSQL cluster in -short")
	}
	script, err := filepath.Abs(filepath.Join("tools", "pgtest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "start")
	cmd.Env = append(os.Environ(), "PGTEST_PASSWORD="+password)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "no PostgreSQL server binaries") {
			t.Skip("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
		}
		t.Fatalf("tools/pgtest.sh start: %v\n%s", err, stderr.String())
	}
	c := &pgCluster{t: t}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "export ")
		if v, ok := strings.CutPrefix(line, "PGTEST_DIR="); ok {
			c.dir = v
		}
		if v, ok := strings.CutPrefix(line, storetest.PostgresEnv+"="); ok {
			c.url = v
		}
	}
	if c.dir == "" || c.url == "" {
		t.Fatalf("tools/pgtest.sh start printed no cluster:\n%s", out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", c.dir).CombinedOutput(); err != nil {
			t.Errorf("tools/pgtest.sh stop: %v %s", err, out)
		}
	})
	return c
}

func (c *pgCluster) script(args ...string) {
	c.t.Helper()
	out, err := exec.Command("bash", append([]string{filepath.Join("tools", "pgtest.sh")}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("tools/pgtest.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// kill stops the server at once (pg_ctl stop -m immediate), as a crash or
// a lost network would: connections break, nothing is flushed.
func (c *pgCluster) kill() { c.script("kill", c.dir) }

// resume starts the killed server again on the same port.
func (c *pgCluster) resume() { c.script("resume", c.dir) }

// addr is the server's host:port.
func (c *pgCluster) addr() string {
	u, err := url.Parse(c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Host
}

// database creates a database on the cluster and returns its URL (no
// password); it is dropped with the cluster.
func (c *pgCluster) database(name, password string) string {
	c.t.Helper()
	admin := c.url
	if password != "" {
		admin = withPassword(c.t, admin, password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		c.t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		c.t.Fatalf("create database %s: %v", name, err)
	}
	u, _ := url.Parse(c.url)
	u.Path = "/" + name
	return u.String()
}

// loopbackPort is a loopback port nothing listens on (just now).
func loopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
