package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// tmuxSession drives the real binary in a private tmux server, as a person
// at a 160x48 terminal would.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", "lw"}, keys...)...); err != nil {
		s.t.Fatalf("send-keys %v: %v %s", keys, err, out)
	}
}

func (s *tmuxSession) screen() string {
	out, _ := s.tmux("capture-pane", "-p", "-t", "lw")
	return out
}

// waitFor polls the screen until ok says yes, or fails with the last
// screen after the deadline. It is not poll.Until: each look runs a tmux
// process, so it looks every 100 ms rather than at poll's pace, which
// would keep a core busy beside the dashboard under test.
func (s *tmuxSession) waitFor(what string, within time.Duration, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		scr := s.screen()
		if ok(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; screen:\n%s", what, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *tmuxSession) waitText(text string, within time.Duration) string {
	s.t.Helper()
	return s.waitFor(strconv.Quote(text), within, func(scr string) bool { return strings.Contains(scr, text) })
}

var paneCount = regexp.MustCompile(`(Pending retries|Duplicates|Rejections|Status events) \((\d+)\)`)

// paneCounts reads the row counts in the panes' titles.
func paneCounts(screen string) map[string]int {
	out := map[string]int{}
	for _, m := range paneCount.FindAllStringSubmatch(screen, -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

// quit presses q and returns the exit code the dashboard's process left
// in exitFile.
func quit(t *testing.T, s *tmuxSession, exitFile string) string {
	t.Helper()
	s.keys("q")
	var exit []byte
	poll.UntilWithin(t, 15*time.Second, "leadwatch to exit after q", func() bool {
		exit, _ = os.ReadFile(exitFile)
		return len(exit) > 0
	})
	return strings.TrimSpace(string(exit))
}

// startDemo runs `leadwatch --demo` with its database and log in a fresh
// directory, in a private tmux server at 160x48, skipping the test in
// -short or without tmux. The exit code lands in exitFile.
func startDemo(t *testing.T, name string) (s *tmuxSession, dir, dbPath, exitFile string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test in -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	bin := leadwatchBinary(t)
	dir = t.TempDir()
	dbPath = filepath.Join(dir, "demo.db")
	exitFile = filepath.Join(dir, "exit")
	s = &tmuxSession{t: t, socket: fmt.Sprintf("leadwatch-%s-%d", name, os.Getpid())}
	t.Cleanup(func() { s.tmux("kill-server") })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", s.screen())
		}
	})
	cmdline := fmt.Sprintf("%s --demo --db %s --log %s; echo $? > %s",
		bin, dbPath, filepath.Join(dir, "leadwatch.log"), exitFile)
	if out, err := s.tmux("new-session", "-d", "-s", "lw", "-x", "160", "-y", "48", "-e", "TERM=xterm-256color", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	return s, dir, dbPath, exitFile
}

// TestDashboardShowsReplacedStore: the database file removed under a
// running dashboard (a cleanup job, a wrong rm) turns the header's
// listener indicator red within seconds, the status bar says why, the log
// has one clear error, and q still quits cleanly.
func TestDashboardShowsReplacedStore(t *testing.T) {
	s, dir, dbPath, exitFile := startDemo(t, "replaced")
	s.waitText("● listening 127.0.0.1:", 30*time.Second)
	if err := os.Remove(dbPath); err != nil {
		t.Fatal(err)
	}
	// The store notices within a second or so; the header reads its
	// health at least every 2 s.
	scr := s.waitText("✗ store replaced — not acknowledging", 10*time.Second)
	if strings.Contains(scr, "● listening") {
		t.Errorf("the header still says listening:\n%s", scr)
	}
	if last := strings.Split(strings.TrimRight(scr, "\n"), "\n"); !strings.Contains(last[len(last)-1], "database file was removed or replaced") {
		t.Errorf("the status bar lacks the store's error:\n%s", scr)
	}
	// Quitting is clean even so: nothing was left unsaved that a restart
	// would not find (the commits after the removal failed and were not
	// acknowledged).
	if exit := quit(t, s, exitFile); exit != "0" {
		t.Errorf("leadwatch exited %s after q", exit)
	}
	logb, _ := os.ReadFile(filepath.Join(dir, "leadwatch.log"))
	if n := strings.Count(string(logb), "store file removed or replaced while open"); n != 1 {
		t.Errorf("%d lines report the removed file, want 1:\n%s", n, tail(string(logb), 2000))
	}
}

// TestDashboardEndToEnd runs `leadwatch --demo` in tmux at 160x48 and uses
// it: every pane fills, focus moves, the detail view opens and closes, a
// rejected lead is resubmitted and moves, sending pauses and resumes, a
// filter narrows a pane, help opens, and q quits cleanly.
func TestDashboardEndToEnd(t *testing.T) {
	s, dir, dbPath, exitFile := startDemo(t, "e2e")

	// Within seconds every pane has rows (the retry pane empties and
	// fills again as retries go out, so it is seen at some moment).
	seen := map[string]bool{}
	s.waitFor("every pane to have rows", 45*time.Second, func(scr string) bool {
		for pane, n := range paneCounts(scr) {
			if n > 0 {
				seen[pane] = true
			}
		}
		return len(seen) == 4 && strings.Contains(scr, "accepted")
	})
	scr := s.screen()
	for _, want := range []string{"listening 127.0.0.1:", "▶ sending", "verified", "refused"} {
		if !strings.Contains(scr, want) {
			t.Errorf("header lacks %q:\n%s", want, scr)
		}
	}

	// tab moves the focus (the focused pane has the heavy border).
	s.keys("1")
	s.waitText("┏━ Pending retries", 5*time.Second)
	s.keys("Tab")
	s.waitText("┏━ Duplicates", 5*time.Second)

	// Rejections: enter opens the timeline, esc goes back.
	s.keys("3")
	s.waitText("┏━ Rejections", 5*time.Second)
	s.keys("Enter")
	detail := s.waitText("Timeline", 5*time.Second)
	if !strings.Contains(detail, "idempotency key") || !strings.Contains(detail, "attempt 1") || !strings.Contains(detail, "Payload") {
		t.Fatalf("detail view:\n%s", detail)
	}
	s.keys("Escape")
	s.waitText("┏━ Rejections", 5*time.Second)

	// r asks, defaulting to No; y resubmits. The dialog names the lead.
	s.keys("r")
	dialog := s.waitText("Resubmit ", 5*time.Second)
	m := regexp.MustCompile(`Resubmit (\S+)\?`).FindStringSubmatch(dialog)
	if m == nil || !strings.Contains(dialog, "[ No ]") {
		t.Fatalf("confirm dialog:\n%s", dialog)
	}
	id := m[1]
	db := storetest.OpenPath(t, dbPath, store.Options{})
	before, err := db.LeadDetail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	s.keys("y")
	s.waitText("resubmitted "+id, 5*time.Second)
	// The lead moves: a resubmit row, then a new attempt, then a final
	// state again.
	beforeSends := 0
	for _, a := range before.Attempts {
		if a.Kind == crm.KindSend {
			beforeSends++
		}
	}
	poll.UntilWithin(t, 30*time.Second, "resubmitted "+id+" to be sent again and end final", func() bool {
		d, err := db.LeadDetail(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		resubmits, sends := 0, 0
		for _, a := range d.Attempts {
			switch a.Kind {
			case crm.KindResubmit:
				resubmits++
			case crm.KindSend:
				sends++
			}
		}
		return resubmits >= 1 && sends > beforeSends && d.Lead.State.Final()
	})

	// p pauses and resumes sending.
	s.keys("p")
	s.waitText("paused", 5*time.Second)
	s.keys("p")
	s.waitText("▶ sending", 5*time.Second)

	// / filters the focused pane.
	s.keys("/")
	s.waitText("/filter:", 5*time.Second)
	s.keys("-l", id)
	s.waitText("/"+id, 5*time.Second)
	s.keys("Enter")
	filtered := s.waitText("· /"+id, 5*time.Second)
	if !strings.Contains(filtered, id) {
		t.Fatalf("filter:\n%s", filtered)
	}
	s.keys("/")
	s.waitText("enter keep filter", 5*time.Second)
	s.keys("Escape")
	s.waitFor("the filter to clear", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "· /"+id) })

	// ? opens the full keymap; esc closes it.
	s.keys("?")
	help := s.waitText("Keys", 5*time.Second)
	for _, want := range []string{"resubmit", "copy as curl", "pause/resume", "filter"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	s.keys("Escape")

	// q quits and the process exits 0.
	if exit := quit(t, s, exitFile); exit != "0" {
		t.Fatalf("leadwatch exited %s", exit)
	}
	logb, _ := os.ReadFile(filepath.Join(dir, "leadwatch.log"))
	if !strings.Contains(string(logb), "dashboard closed") {
		t.Errorf("log lacks the clean shutdown line:\n%s", tail(string(logb), 2000))
	}
}
