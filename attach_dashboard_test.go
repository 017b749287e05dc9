package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// startTmuxCmd runs cmdline (exit code into exitFile) in a private tmux
// server at 160x48 with the extra environment, skipping in -short or
// without tmux.
func startTmuxCmd(t *testing.T, name, exitFile string, envVars []string, cmdline string) *tmuxSession {
	t.Helper()
	needTmux(t)
	s := &tmuxSession{t: t, socket: fmt.Sprintf("leadwatch-%s-%d", name, os.Getpid())}
	t.Cleanup(func() { s.tmux("kill-server") })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", s.screen())
		}
	})
	args := []string{"new-session", "-d", "-s", "lw", "-x", "160", "-y", "48", "-e", "TERM=xterm-256color"}
	for _, e := range envVars {
		args = append(args, "-e", e)
	}
	args = append(args, cmdline+"; echo $? > "+exitFile)
	if out, err := s.tmux(args...); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	return s
}

// needTmux skips t in -short or without tmux.
func needTmux(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test in -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
}

// portBound says whether something accepts connections on addr.
func portBound(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestDashboardAttached runs the dashboard in tmux over a store holding
// queued leads: with --no-listen --no-send it binds no port and claims
// nothing, and says it is attached; each flag alone leaves the other half
// running (the controls that show the test can see a listener and a
// sender).
func TestDashboardAttached(t *testing.T) {
	needTmux(t)
	bin := leadwatchBinary(t)
	sb := sandbox.StartTest(t, sandbox.Config{})
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "attach.db")
	db := storetest.OpenPath(t, dbPath, store.Options{})
	for i := range 3 {
		if _, err := db.Enqueue(context.Background(), fmt.Appendf(nil, `{"external_id":"a-%d","phone":"+38050123456%d"}`, i, i), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	addr := loopbackPort(t)
	cfg := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[callbacks]\nlisten = %q\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		c, err := db.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c.States[crm.StateQueued]
	}
	// The dashboard shows the counts once it has read the store, which is
	// after the services it runs have started.
	threeQueued := regexp.MustCompile(`\b3 queued\b`)
	dash := func(t *testing.T, name string, envVars []string, flags string) (*tmuxSession, string) {
		exitFile := filepath.Join(dir, name+".exit")
		s := startTmuxCmd(t, name, exitFile, envVars, fmt.Sprintf("%s --config %s --db %s --log %s %s",
			bin, cfg, dbPath, filepath.Join(dir, name+".log"), flags))
		return s, exitFile
	}

	t.Run("NoListenNoSend", func(t *testing.T) {
		// No CRM settings and no callback secret: attached, none is needed.
		s, exitFile := dash(t, "attached", nil, "--no-listen --no-send")
		scr := s.waitFor("the counts and the attached wording", 20*time.Second, func(scr string) bool {
			return threeQueued.MatchString(scr) && strings.Contains(scr, "attached: not sending") &&
				strings.Contains(scr, "attached: no listener here")
		})
		if strings.Contains(scr, "listening") || strings.Contains(scr, "▶ sending") {
			t.Errorf("an attached dashboard claims a listener or a sender:\n%s", scr)
		}
		if portBound(addr) {
			t.Errorf("something listens on %s (callbacks.listen) with --no-listen", addr)
		}
		if n := queued(); n != 3 {
			t.Errorf("%d of 3 leads still queued with --no-send", n)
		}
		// Pausing has nothing to pause: the status bar says so. Keys typed
		// while the terminal still answers the program's start-up queries
		// can be lost, so press it until the answer shows.
		s.waitFor("the answer to p", 15*time.Second, func(scr string) bool {
			if strings.Contains(scr, "pausing is not available here") {
				return true
			}
			s.keys("p")
			return false
		})
		if exit := quit(t, s, exitFile); exit != "0" {
			t.Errorf("exit %s", exit)
		}
		if n := queued(); n != 3 || sb.Sandbox.Stats().Requests != 0 {
			t.Errorf("after an attached run: %d queued, the CRM saw %d requests", n, sb.Sandbox.Stats().Requests)
		}
	})
	t.Run("NoSendListens", func(t *testing.T) {
		s, exitFile := dash(t, "nosend", []string{"CALLBACK_SECRET=" + sandbox.TestCallbackSecret}, "--no-send")
		s.waitFor("the listener", 20*time.Second, func(scr string) bool {
			return threeQueued.MatchString(scr) && strings.Contains(scr, "● listening "+addr)
		})
		if !portBound(addr) {
			t.Errorf("nothing listens on %s without --no-listen", addr)
		}
		if exit := quit(t, s, exitFile); exit != "0" {
			t.Errorf("exit %s", exit)
		}
		if n := queued(); n != 3 {
			t.Errorf("%d of 3 leads still queued with --no-send", n)
		}
	})
	t.Run("NoListenSends", func(t *testing.T) {
		envVars := []string{"CARTELCRM_BASE_URL=" + sb.URL, "CARTELCRM_API_KEY=" + sandbox.TestAPIKey,
			"CARTELCRM_HMAC_SECRET=" + sandbox.TestHMACSecret}
		s, exitFile := dash(t, "nolisten", envVars, "--no-listen")
		s.waitFor("the leads sent", 20*time.Second, func(scr string) bool {
			return regexp.MustCompile(`\b3 accepted\b`).MatchString(scr) && strings.Contains(scr, "▶ sending")
		})
		if portBound(addr) {
			t.Errorf("something listens on %s with --no-listen", addr)
		}
		if exit := quit(t, s, exitFile); exit != "0" {
			t.Errorf("exit %s", exit)
		}
	})
}

// TestDashboardOnPostgres attaches the dashboard to a PostgreSQL store by a
// URL with a password: it shows the store's leads, its log goes to
// $XDG_STATE_HOME/leadwatch/leadwatch.log (0700 directory, 0600 file), and
// neither the screen nor the log shows the password.
func TestDashboardOnPostgres(t *testing.T) {
	needTmux(t)
	dsn := pgURL(t)
	bin := leadwatchBinary(t)
	db, err := postgres.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 3 {
		if _, err := db.Enqueue(context.Background(), fmt.Appendf(nil, `{"external_id":"pa-%d","phone":"+38050123456%d"}`, i, i), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	exitFile := filepath.Join(dir, "exit")
	s := startTmuxCmd(t, "pgattach", exitFile, []string{"XDG_STATE_HOME=" + state, "LEADWATCH_DB=" + dsn},
		bin+" --no-listen --no-send")
	scr := s.waitFor("the PostgreSQL store's counts", 20*time.Second, func(scr string) bool {
		return regexp.MustCompile(`\b3 queued\b`).MatchString(scr) && strings.Contains(scr, "attached")
	})
	noPassword(t, "the dashboard", scr)
	// Live: a lead enqueued elsewhere shows up (LISTEN/NOTIFY or polling).
	if _, err := db.Enqueue(context.Background(), []byte(`{"external_id":"pa-9","phone":"+380501234569"}`), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitFor("the fourth lead", 10*time.Second, func(scr string) bool { return regexp.MustCompile(`\b4 queued\b`).MatchString(scr) })
	if exit := quit(t, s, exitFile); exit != "0" {
		t.Errorf("exit %s", exit)
	}
	logPath := filepath.Join(state, "leadwatch", "leadwatch.log")
	for p, want := range map[string]os.FileMode{filepath.Dir(logPath): 0o700 | os.ModeDir, logPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("the dashboard's log: %v", err)
		}
		if fi.Mode() != want {
			t.Errorf("%s is %v, want %v", p, fi.Mode(), want)
		}
	}
	logb, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	noPassword(t, "the dashboard's log", string(logb))
	if !strings.Contains(string(logb), "leadwatch dashboard") || !strings.Contains(string(logb), db.Location()) {
		t.Errorf("the log lacks the start line with the redacted URL:\n%s", logb)
	}
}

// TestAttachFlagsRefusedWithDemo: the demo runs its own listener and
// sender, so --no-listen or --no-send with --demo is a usage error.
func TestAttachFlagsRefusedWithDemo(t *testing.T) {
	for _, flag := range []string{"--no-listen", "--no-send"} {
		code, _, errOut := runCLI(t, nil, "", "--demo", flag)
		if code != 2 || !strings.Contains(errOut, "--demo runs its own listener and sender") {
			t.Errorf("--demo %s: exit %d %q", flag, code, errOut)
		}
	}
}
