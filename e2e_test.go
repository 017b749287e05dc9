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
// at a 160x48 terminal would. target is the tmux session its keys and
// captures go to ("lw" when empty); session gives another one on the same
// server, a second terminal.
type tmuxSession struct {
	t      *testing.T
	socket string
	target string
}

func (s *tmuxSession) name() string {
	if s.target == "" {
		return "lw"
	}
	return s.target
}

// session starts cmdline in a new tmux session called name on s's server,
// at 160x48, and returns it.
func (s *tmuxSession) session(name, cmdline string) *tmuxSession {
	s.t.Helper()
	if out, err := s.tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "48", "-e", "TERM=xterm-256color", cmdline); err != nil {
		s.t.Fatalf("tmux new-session %s: %v %s", name, err, out)
	}
	return &tmuxSession{t: s.t, socket: s.socket, target: name}
}

// resize makes the session's terminal w x h, as a user dragging the
// window would; the program gets SIGWINCH.
func (s *tmuxSession) resize(w, h int) {
	s.t.Helper()
	if out, err := s.tmux("resize-window", "-t", s.name(), "-x", strconv.Itoa(w), "-y", strconv.Itoa(h)); err != nil {
		s.t.Fatalf("tmux resize-window: %v %s", err, out)
	}
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.name()}, keys...)...); err != nil {
		s.t.Fatalf("send-keys %v: %v %s", keys, err, out)
	}
}

func (s *tmuxSession) screen() string {
	out, _ := s.tmux("capture-pane", "-p", "-t", s.name())
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
		t.Skip("end-to-end test in -short: run it without -short (it needs tmux)")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: install it (.ci/run does) and run go test -run 'TestDashboard(EndToEnd|ShowsReplacedStore)' .")
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
	t.Parallel()
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

// TestDashboardEndToEnd runs `leadwatch --demo` in tmux at 160x48 and
// uses it as a person watching a launch would, one step per item of the
// launch dashboard, while a second terminal watches the same store
// attached (--no-listen --no-send): panes fill, focus by key and by mouse,
// a lead's detail, the editor asking before esc drops an edit, /REFUSED
// in the events, follow/freeze, 80x24 (status bar, header rate, help),
// the CRM outage red in both dashboards, the jump by external_id to a
// waiting lead and send now / hold / release on it, All leads and
// /accepted, the recovery, a bulk
// resubmit of what the outage failed, a single resubmit, pause, a filter,
// the junk source in Sources (paused and resumed from its row), the
// throughput charts, and q in both. The demo's timeline (demo.go) paces
// it: the steps before the CRM outage at 0:30 run first, the outage steps
// while it lasts, the rest after it recovers at 0:50.
func TestDashboardEndToEnd(t *testing.T) {
	t.Parallel()
	s, dir, dbPath, exitFile := startDemo(t, "e2e")
	start := time.Now()
	// Each step logs when it starts: with -v, or on a failure, the log
	// shows where the time went.
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	// Item 7, attach mode: once the demo has made its store, a second
	// terminal attaches to it, starting neither listener nor sender.
	s.waitText("● listening 127.0.0.1:", 30*time.Second)
	attachExit := filepath.Join(dir, "attach-exit")
	at := s.session("at", fmt.Sprintf("%s --no-listen --no-send --db %s --log %s; echo $? > %s",
		leadwatchBinary(t), dbPath, filepath.Join(dir, "attach.log"), attachExit))
	step("attached in a second terminal")
	scr := at.waitText("attached", 15*time.Second)
	if strings.Contains(scr, "● listening") || strings.Contains(scr, "▶ sending") {
		t.Errorf("the attached dashboard says it listens or sends:\n%s", scr)
	}

	// Within seconds every pane has rows (the retry pane empties and
	// fills again as retries go out, so it is seen at some moment).
	step("every pane fills")
	seen := map[string]bool{}
	s.waitFor("every pane to have rows", 45*time.Second, func(scr string) bool {
		for pane, n := range paneCounts(scr) {
			if n > 0 {
				seen[pane] = true
			}
		}
		return len(seen) == 4 && strings.Contains(scr, "accepted")
	})
	scr = s.screen()
	for _, want := range []string{"listening 127.0.0.1:", "▶ sending", "verified", "refused", "✓ CRM"} {
		if !strings.Contains(scr, want) {
			t.Errorf("header lacks %q:\n%s", want, scr)
		}
	}

	// Issue 12, forwarding: the demo forwards every stored callback to
	// its app, and the header's fourth line counts the deliveries.
	step("forwarding line")
	fwdLine := regexp.MustCompile(`forward → app[^\n]*? ([\d,]+) delivered`)
	s.waitFor("deliveries to the app in the header", 30*time.Second, func(scr string) bool {
		m := fwdLine.FindStringSubmatch(scr)
		return m != nil && m[1] != "0"
	})

	// tab moves the focus (the focused pane has the heavy border).
	step("focus")
	s.keys("1")
	s.waitText("┏━ Pending retries", 5*time.Second)
	s.keys("Tab")
	s.waitText("┏━ Duplicates", 5*time.Second)

	// Item 8, the mouse: a click on the Rejections pane's second row
	// focuses the pane and selects that row (SGR mouse reports, as a
	// terminal sends them: press and release at column 6, three lines
	// under the pane's title, which the forwarding line moves down one).
	step("mouse")
	scr = s.waitFor("two rejections", 20*time.Second, func(scr string) bool { return paneCounts(scr)["Rejections"] >= 2 })
	title := -1
	for i, l := range strings.Split(scr, "\n") {
		if strings.Contains(l, "─ Rejections (") {
			title = i
		}
	}
	if title < 0 {
		t.Fatalf("no Rejections title on screen:\n%s", scr)
	}
	click := fmt.Sprintf("\x1b[<0;6;%dM\x1b[<0;6;%dm", title+4, title+4) // 1-based: title, column names, first row, second
	s.keys("-l", click)
	s.waitFor("the click to focus Rejections and select its second row", 5*time.Second, func(scr string) bool {
		lines := strings.Split(scr, "\n")
		if !strings.Contains(scr, "┏━ Rejections") || len(lines) < title+4 {
			return false
		}
		// The first row is two lines under the title; the clicked one,
		// or below it when newer rows arrived above it, holds the marker.
		for i, l := range lines {
			if strings.HasPrefix(l, "┃▸") {
				return i >= title+3
			}
		}
		return false
	})

	// Rejections: enter opens the timeline, esc goes back.
	step("detail")
	s.keys("3")
	s.waitText("┏━ Rejections", 5*time.Second)
	s.keys("Enter")
	detail := s.waitText("Timeline", 5*time.Second)
	if !strings.Contains(detail, "idempotency key") || !strings.Contains(detail, "attempt 1") || !strings.Contains(detail, "Payload") {
		t.Fatalf("detail view:\n%s", detail)
	}
	s.keys("Escape")
	s.waitText("┏━ Rejections", 5*time.Second)

	// Item 8, the editor asks before esc drops an edit, showing the diff;
	// n goes back to the edit, y drops it.
	step("editor esc")
	s.keys("e")
	s.waitText("ctrl+s checks", 5*time.Second)
	s.keys("-l", "ZZTOP")
	s.waitText("ZZTOP", 5*time.Second)
	s.keys("Escape")
	ask := s.waitText("Drop your edits of ", 5*time.Second)
	if !regexp.MustCompile(`\+ .*ZZTOP`).MatchString(ask) {
		t.Errorf("the drop-edits dialog shows no diff of the edit:\n%s", ask)
	}
	s.keys("n")
	s.waitFor("the editor again", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "ctrl+s checks") && strings.Contains(scr, "ZZTOP") && !strings.Contains(scr, "Drop your edits")
	})
	s.keys("Escape")
	s.waitText("Drop your edits of ", 5*time.Second)
	s.keys("y")
	s.waitFor("the editor to close", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "┏━ Rejections") && !strings.Contains(scr, "ZZTOP")
	})

	// Item 3, the filter matches the words drawn: /REFUSED in Status
	// events keeps the refused callbacks (the sandbox signs a few with a
	// wrong secret), and the title counts shown/total.
	step("filter /REFUSED")
	s.keys("4")
	s.waitText("┏━ Status events", 5*time.Second)
	s.keys("/")
	s.waitText("/filter:", 5*time.Second)
	s.keys("-l", "REFUSED")
	s.keys("Enter")
	refusedTitle := regexp.MustCompile(`Status events \((\d+)\+?/\d+\)[^\n]* · /REFUSED`)
	refusedRow := regexp.MustCompile(`(?m)✗ \d\d:\d\d:\d\d\s+REFUSED`)
	s.waitFor("refused rows under /REFUSED, counted shown/total", 20*time.Second, func(scr string) bool {
		m := refusedTitle.FindStringSubmatch(scr)
		return m != nil && m[1] != "0" && refusedRow.MatchString(scr)
	})

	// Item 2, follow/freeze: f freezes the live tail and says so; f again
	// follows it.
	step("follow/freeze")
	s.keys("f")
	s.waitText("· frozen", 5*time.Second)
	s.keys("f")
	s.waitText("· following", 5*time.Second)
	s.keys("Escape")
	s.waitFor("the filter to clear", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "· /REFUSED") })

	// Item 8, small terminals: at 80x24 the status bar keeps ? help and
	// q quit, the header keeps the sending rate, and help shows every
	// key, none cut behind "…".
	step("80x24")
	s.resize(80, 24)
	// Item 6: the throughput stays in the header, compact; so does the
	// forwarding line, abbreviated when it must be. Both are waited for
	// with the status bar: tmux may deliver the new width and height as
	// two resizes, and the frame drawn between them (80 wide, still 48
	// tall) shows its status bar but has its header scrolled off.
	sparkline := regexp.MustCompile(`sent [▁▂▃▄▅▆▇█]+ \d+/m`)
	forwarding := regexp.MustCompile(`(?m)^. (forward → app|fwd) .*\d+ (delivered|ok)`)
	s.waitFor("the 80x24 layout: status bar with ? help and q quit, the sent sparkline and rate, the forwarding line", 10*time.Second, func(scr string) bool {
		lines := strings.Split(strings.TrimRight(scr, "\n"), "\n")
		last := lines[len(lines)-1]
		return len(lines) <= 24 && strings.Contains(last, "? help") && strings.Contains(last, "q quit") &&
			sparkline.MatchString(scr) && forwarding.MatchString(scr)
	})
	s.keys("?")
	help := s.waitText("Keys", 5*time.Second)
	for _, want := range []string{"resubmit", "copy as curl", "pause/resume", "filter", "follow/freeze", "quit now"} {
		if !strings.Contains(help, want) {
			t.Errorf("help at 80x24 lacks %q:\n%s", want, help)
		}
	}
	if box := helpBox(help); box == "" || strings.Contains(box, "…") {
		t.Errorf("help at 80x24 cuts a column:\n%s", help)
	}
	s.keys("Escape")
	s.waitFor("help to close", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "Keys ·") })
	s.resize(160, 48)
	s.waitText("┏━ Status events", 5*time.Second)

	// Item 1, health you cannot miss: the demo's outage turns the CRM
	// red in the header, with the age and the failures, in this
	// dashboard and, from what the store holds, in the attached one.
	step("the outage")
	scr = s.waitText("✗ CRM unreachable", 45*time.Second)
	if !regexp.MustCompile(`✗ CRM unreachable \d+ s · \d+ failures`).MatchString(scr) {
		t.Errorf("the outage's header:\n%s", scr)
	}

	scr = at.waitText("✗ CRM unreachable", 15*time.Second)
	if !strings.Contains(scr, "attached") {
		t.Errorf("the attached header during the outage:\n%s", scr)
	}

	// Item 4, act now, on a lead waiting out the outage, with sending
	// paused so that only the keys move it: s makes it due now with the
	// same key, h holds it, u releases it. The detail's title says the
	// state; the status bar has the outage's error.
	step("send now, hold, release")
	// Some seconds into the outage the leads have backed off for seconds.
	s.waitFor("the outage to last 5 s", 15*time.Second, func(scr string) bool {
		m := regexp.MustCompile(`✗ CRM unreachable (\d+) s`).FindStringSubmatch(scr)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n >= 5
	})
	s.keys("p")
	s.waitText("⏸ paused", 5*time.Second)
	s.keys("1")
	s.waitText("┏━ Pending retries", 5*time.Second)
	// Item 3's jump: a lead whose wait is seconds ahead, opened from
	// anywhere by its external_id with : (the panes' order moves under
	// live traffic, so the store picks it).
	db := storetest.OpenPath(t, dbPath, store.Options{})
	ctx := context.Background()
	var before crm.Lead
	poll.UntilWithin(t, 10*time.Second, "a lead waiting seconds more to retry", func() bool {
		ls, err := db.Leads(ctx, crm.LeadQuery{States: []crm.State{crm.StateRetryWait}, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.NextAttemptAt.After(time.Now().Add(3 * time.Second)) {
				before = l
				return true
			}
		}
		return false
	})
	held := before.ExternalID
	s.keys(":")
	s.waitText("go to lead:", 5*time.Second)
	s.keys("-l", held)
	s.keys("Enter")
	s.waitFor("the jump to open "+held, 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "┏━ Lead "+held) && strings.Contains(scr, "Timeline")
	})
	// Its wait is still ahead (the sender is paused, so nothing but s
	// can shorten it), unless the keys were slower than the backoff.
	ahead := before.NextAttemptAt.After(time.Now())
	s.keys("s")
	poll.UntilWithin(t, 5*time.Second, held+" to be due now", func() bool {
		l, err := db.Lead(ctx, held)
		if err != nil {
			t.Fatal(err)
		}
		if l.State != crm.StateRetryWait || l.IdempotencyKey != before.IdempotencyKey {
			t.Fatalf("after s: %s key %s, want retry_wait with the key %s", l.State, l.IdempotencyKey, before.IdempotencyKey)
		}
		return !l.NextAttemptAt.After(time.Now()) && (!ahead || l.NextAttemptAt.Before(before.NextAttemptAt))
	})
	if !ahead {
		t.Logf("%s was due already when s was pressed (%s ago): send now was not put to the test", held, time.Since(before.NextAttemptAt))
	}
	s.keys("h")
	s.waitText("Lead "+held+" · held", 5*time.Second)
	if l, err := db.Lead(ctx, held); err != nil || l.State != crm.StateHeld || l.Hold != crm.HoldOperator {
		t.Fatalf("after h: %s (hold %q) %v, want held by the operator", l.State, l.Hold, err)
	}
	s.keys("u")
	s.waitFor(held+" released", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "Lead "+held) && !strings.Contains(scr, "Lead "+held+" · held")
	})
	if l, err := db.Lead(ctx, held); err != nil || l.State != crm.StateQueued {
		t.Fatalf("after u: %s %v, want queued", l.State, err)
	}
	s.keys("Escape")
	s.waitText("┏━ Pending retries", 5*time.Second)
	s.keys("p")
	s.waitFor("sending to resume", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "⏸ paused") })

	// Item 3, every lead findable: All leads shows the waiting ones at the
	// top, newest first; /accepted finds the accepted ones.
	step("all leads")
	s.keys("5")
	s.waitFor("waiting leads in All leads", 10*time.Second, func(scr string) bool {
		return strings.Contains(scr, "┏━ All leads") && strings.Contains(scr, "retry wait")
	})
	s.keys("/")
	s.waitText("/filter:", 5*time.Second)
	s.keys("-l", "accepted")
	s.keys("Enter")
	s.waitFor("accepted rows under /accepted", 10*time.Second, func(scr string) bool {
		return strings.Contains(scr, "· /accepted") && regexp.MustCompile(`lp-[0-9a-f]{4}-\d{5}\s+accepted`).MatchString(scr)
	})
	s.keys("Escape")
	s.waitFor("the filter to clear", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "· /accepted") })

	// The outage ends: the header turns green again.
	step("recovery")
	s.waitText("✓ CRM answered", 40*time.Second)

	// Item 4, act in bulk: the leads the outage failed, found by the words
	// of their reason, resubmitted with one confirmation that says how
	// many and which key rule applies.
	step("bulk resubmit")
	outageFailed := crm.LeadQuery{States: []crm.State{crm.StateFailed}, Reason: "connection refused"}
	s.keys("3")
	s.waitText("┏━ Rejections", 5*time.Second)
	s.keys("/")
	s.waitText("/filter:", 5*time.Second)
	s.keys("-l", "connection refused")
	s.keys("Enter")
	failedTitle := regexp.MustCompile(`Rejections \((\d+)\+?/\d+\)[^\n]* · /connection refused`)
	s.waitFor("the outage's failed leads", 10*time.Second, func(scr string) bool {
		m := failedTitle.FindStringSubmatch(scr)
		return m != nil && m[1] != "0"
	})
	s.keys("R")
	dialog := s.waitText("keys ", 10*time.Second)
	m := regexp.MustCompile(`Resubmit (\d+) leads?\?`).FindStringSubmatch(dialog)
	if m == nil || !strings.Contains(dialog, "keep their key") {
		t.Fatalf("bulk confirm dialog:\n%s", dialog)
	}
	bulkN, _ := strconv.Atoi(m[1])
	if n, _, err := db.CountLeads(ctx, outageFailed, 10_000); err != nil || n != bulkN {
		t.Errorf("the dialog offers %d leads, the store has %d failed by the outage (%v)", bulkN, n, err)
	}
	s.keys("y")
	s.waitText(fmt.Sprintf("resubmitted %d of %d", bulkN, bulkN), 20*time.Second)
	if n, _, err := db.CountLeads(ctx, outageFailed, 10_000); err != nil || n != 0 {
		t.Errorf("after the bulk resubmit %d leads are still failed by the outage (%v)", n, err)
	}
	s.keys("Escape")
	s.waitFor("the filter to clear", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "· /connection refused") })

	// r asks, defaulting to No; y resubmits. The dialog names the lead.
	step("resubmit")
	s.keys("3")
	s.waitText("┏━ Rejections", 5*time.Second)
	s.keys("r")
	dialog = s.waitText("Resubmit ", 15*time.Second)
	step("resubmit dialog")
	m = regexp.MustCompile(`Resubmit (\S+)\?`).FindStringSubmatch(dialog)
	if m == nil || !strings.Contains(dialog, "[ No ]") {
		t.Fatalf("confirm dialog:\n%s", dialog)
	}
	id := m[1]
	resubmitted, err := db.LeadDetail(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	s.keys("y")
	s.waitText("resubmitted "+id, 5*time.Second)
	// p pauses and resumes sending.
	step("pause")
	s.keys("p")
	s.waitText("paused", 5*time.Second)
	s.keys("p")
	s.waitText("▶ sending", 5*time.Second)

	// / filters the focused pane.
	step("filter by id")
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

	// Item 5, which sources convert: the junk source stands out with most
	// of its leads rejected.
	step("sources")
	s.keys("6")
	var junkRej, worstGood int
	s.waitFor("the junk source in Sources", 10*time.Second, func(scr string) bool {
		junkRej, worstGood = -1, -1
		for _, m := range sourceRow.FindAllStringSubmatch(scr, -1) {
			rej, _ := strconv.Atoi(m[2])
			if m[1] == demoJunkSource {
				junkRej = rej
			} else {
				worstGood = max(worstGood, rej)
			}
		}
		return strings.Contains(scr, "┏━ Sources by source") && junkRej >= 0 && worstGood >= 0
	})
	if junkRej < 40 || junkRej <= worstGood {
		t.Errorf("the junk source rejects %d%%, the worst good one %d%%; want the junk source far ahead:\n%s", junkRej, worstGood, s.screen())
	}

	// Item 4, pause the junk source from its row, then resume it: the
	// store holds the rule while it is on.
	step("pause a source")
	s.keys("/")
	s.waitText("/filter:", 5*time.Second)
	s.keys("-l", demoJunkSource)
	s.keys("Enter")
	s.waitFor("the junk source's row alone", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "· /"+demoJunkSource) && len(sourceRow.FindAllString(scr, -1)) == 1
	})
	s.keys("P")
	s.waitFor("the source paused", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, demoJunkSource+" ⏸ paused")
	})
	if ps, err := db.Pauses(ctx); err != nil || len(ps) != 1 || ps[0].Field != "source" || ps[0].Value != demoJunkSource {
		t.Errorf("pauses in the store: %+v %v, want source %s", ps, err, demoJunkSource)
	}
	s.keys("P")
	s.waitFor("the source resumed", 5*time.Second, func(scr string) bool {
		return sourceRow.MatchString(scr) && !strings.Contains(scr, "⏸ paused")
	})
	if ps, err := db.Pauses(ctx); err != nil || len(ps) != 0 {
		t.Errorf("pauses in the store after resume: %+v %v, want none", ps, err)
	}
	s.keys("Escape")
	s.waitFor("the filter to clear", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "· /"+demoJunkSource) })

	// Item 6, throughput over time draws.
	step("throughput")
	s.keys("7")
	chartHead := regexp.MustCompile(`(sent|accepted|failed|callbacks)\s+total (\S+) · peak`)
	s.waitFor("the throughput view's four charts, with traffic", 10*time.Second, func(scr string) bool {
		totals := map[string]string{}
		for _, m := range chartHead.FindAllStringSubmatch(scr, -1) {
			totals[m[1]] = m[2]
		}
		return strings.Contains(scr, "┏━ Throughput") && len(totals) == 4 && totals["sent"] != "0" && totals["accepted"] != "0" && totals["callbacks"] != "0"
	})

	// Issue 12, replay: a lead whose status the app took already, opened
	// by the jump; its timeline has the app's answers, and a replays its
	// stored statuses after a yes: the app gets that one again, under the
	// same webhook-id (the store records one more delivered attempt).
	step("replay to the app")
	var replayLead, replayHook string
	delivered := func(d crm.LeadDetail, hook string) int {
		n := 0
		for _, a := range d.Forwards {
			if a.WebhookID == hook && a.Delivered {
				n++
			}
		}
		return n
	}
	poll.UntilWithin(t, 20*time.Second, "a lead whose status reached the app once", func() bool {
		as, err := db.ForwardAttemptsAfter(ctx, 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if !a.Delivered || a.ExternalID == "" {
				continue
			}
			if d, err := db.LeadDetail(ctx, a.ExternalID); err == nil && delivered(d, a.WebhookID) == 1 {
				replayLead, replayHook = a.ExternalID, a.WebhookID
				return true
			}
		}
		return false
	})
	s.keys(":")
	s.waitText("go to lead:", 5*time.Second)
	s.keys("-l", replayLead)
	s.keys("Enter")
	s.waitFor("the timeline of "+replayLead+" with the app's answer", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "┏━ Lead "+replayLead) && strings.Contains(scr, "→ app") && strings.Contains(scr, replayHook)
	})
	s.keys("a")
	s.waitText("to the app?", 5*time.Second)
	s.keys("y")
	s.waitText("queued for the app", 5*time.Second)
	poll.UntilWithin(t, 30*time.Second, "the replay of "+replayHook+" delivered", func() bool {
		d, err := db.LeadDetail(ctx, replayLead)
		if err != nil {
			t.Fatal(err)
		}
		return delivered(d, replayHook) >= 2
	})
	// Back to the dashboard before the next key: an esc the terminal
	// sends together with the next key reads as alt+that key.
	s.keys("Escape")
	s.waitFor("the dashboard again", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "┏━ Lead "+replayLead) })

	// Issue 12, reconciliation: the demo's sandbox loses a share of its
	// callbacks, and the status lookups fill the gap; such a status is
	// in its lead's timeline as polled, never as a callback.
	step("a polled status in a timeline")
	var polledLead string
	poll.UntilWithin(t, 60*time.Second, "a lead with a polled status", func() bool {
		cbs, err := db.Callbacks(ctx, crm.EventQuery{Limit: 2000})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cbs {
			if c.Kind == crm.KindPolled && c.LeadID != 0 && c.ExternalID != "" {
				polledLead = c.ExternalID
				return true
			}
		}
		return false
	})
	s.keys(":")
	s.waitText("go to lead:", 5*time.Second)
	s.keys("-l", polledLead)
	s.keys("Enter")
	s.waitFor("the polled status in "+polledLead+"'s timeline", 5*time.Second, func(scr string) bool {
		return strings.Contains(scr, "┏━ Lead "+polledLead) && strings.Contains(scr, "◇ polled status") && strings.Contains(scr, "status lookup, not a callback")
	})
	s.keys("Escape")
	s.waitFor("the dashboard again", 5*time.Second, func(scr string) bool { return !strings.Contains(scr, "┏━ Lead "+polledLead) })

	// The resubmitted lead has moved meanwhile: a resubmit row, then a
	// new attempt, then a final state again.
	beforeSends := 0
	for _, a := range resubmitted.Attempts {
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

	// q quits and the process exits 0; so does the attached dashboard.
	step("quit")
	if exit := quit(t, s, exitFile); exit != "0" {
		t.Fatalf("leadwatch exited %s", exit)
	}
	step("quit attached")
	if exit := quit(t, at, attachExit); exit != "0" {
		t.Errorf("the attached leadwatch exited %s", exit)
	}
	logb, _ := os.ReadFile(filepath.Join(dir, "leadwatch.log"))
	if !strings.Contains(string(logb), "dashboard closed") {
		t.Errorf("log lacks the clean shutdown line:\n%s", tail(string(logb), 2000))
	}
}

// helpBox is the help dialog's lines on screen, from its title to its
// bottom border ("" when it is not there); the header above it may cut
// its own text with "…".
func helpBox(screen string) string {
	var box []string
	for _, l := range strings.Split(screen, "\n") {
		if len(box) == 0 && !strings.Contains(l, "Keys ·") {
			continue
		}
		box = append(box, l)
		if strings.Contains(l, "┗") {
			return strings.Join(box, "\n")
		}
	}
	return ""
}

// sourceRow reads a Sources row: the source (after a warning mark, if
// any) and its REJ% (the fourth number after SENT's).
var sourceRow = regexp.MustCompile(`(?:⚠ )?([a-z]+)(?: ⏸ paused)?\s+[\d,]+\s+\d+%\s+\d+%\s+(\d+)%`)
