package postgres

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// ownServer starts a PostgreSQL cluster of the test's own with
// tools/pgtest.sh (password auth for TCP when password is set), stopped
// and removed when the test ends. It returns the pgtest.sh path, the
// cluster's directory and its URL (without the password).
func ownServer(t *testing.T, password string) (tool, dir, url string) {
	t.Helper()
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip("set " + storetest.PostgresEnv + " (tools/pgtest.sh start prints it) to run the PostgreSQL tests")
	}
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; skipped with -short")
	}
	tool, err := filepath.Abs("../../tools/pgtest.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "start")
	cmd.Env = append(os.Environ(), "PGTEST_PASSWORD="+password)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("cannot start a PostgreSQL cluster with tools/pgtest.sh: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export PGTEST_DIR="); ok {
			dir = v
		}
		if v, ok := strings.CutPrefix(line, "export LEADWATCH_TEST_POSTGRES="); ok {
			url = v
		}
	}
	if dir == "" || url == "" {
		t.Fatalf("pgtest.sh start printed %q", out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(tool, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("pgtest.sh stop: %v: %s", err, out)
		}
	})
	return tool, dir, url
}

// TestCoreServerPasswordAndGone: a wrong password is one line naming the
// URL without the password; a server that goes away makes writes fail as
// unreachable (nothing half-stored), and the store works again when it is
// back.
func TestCoreServerPasswordAndGone(t *testing.T) {
	const right, wrong = "Right-horse-9", "Wr0ng-battery-7"
	tool, dir, base := ownServer(t, right)
	withPW := func(pw string) string {
		return strings.Replace(base, "postgres@", "postgres:"+pw+"@", 1)
	}
	ctx := context.Background()
	_, err := Open(ctx, withPW(wrong), store.Options{})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, wrong) || strings.Contains(msg, right) || strings.Contains(msg, "\n") {
		t.Fatalf("error is not one clean line: %q", msg)
	}
	if !strings.Contains(msg, store.RedactLocation(withPW(wrong))) || !strings.Contains(msg, "password authentication failed") {
		t.Fatalf("error %q does not name the redacted URL and the cause", msg)
	}

	db, err := Open(ctx, withPW(right), store.Options{})
	if err != nil {
		t.Fatalf("Open with the right password: %v", err)
	}
	defer db.Close()
	if strings.Contains(db.Location(), right) {
		t.Fatalf("Location shows the password: %s", db.Location())
	}
	if _, err := db.Enqueue(ctx, leadJSON("gone-0"), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "kill", dir).CombinedOutput(); err != nil {
		t.Fatalf("pgtest.sh kill: %v: %s", err, out)
	}
	_, err = db.Enqueue(ctx, leadJSON("gone-1"), store.EnqueueOptions{})
	if !isUnreachable(err) {
		t.Fatalf("Enqueue with the server gone: %v, want unreachable", err)
	}
	if _, err := db.Claim(ctx, "w", time.Now(), time.Minute, 1); !isUnreachable(err) {
		t.Fatalf("Claim with the server gone: %v, want unreachable", err)
	}
	if out, err := exec.Command(tool, "resume", dir).CombinedOutput(); err != nil {
		t.Fatalf("pgtest.sh resume: %v: %s", err, out)
	}
	if _, err := db.Lead(ctx, "gone-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lead enqueued while the server was gone: %v, want ErrNotFound", err)
	}
	if _, err := db.Enqueue(ctx, leadJSON("gone-1"), store.EnqueueOptions{}); err != nil {
		t.Fatalf("Enqueue after the server came back: %v", err)
	}
}
