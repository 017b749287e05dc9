package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
)

// lockedBuffer is a bytes.Buffer safe to write from a command's goroutine
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// background runs one command line in-process until stop is called, which
// cancels it and returns its exit code, stdout and stderr.
func background(t *testing.T, envVars map[string]string, args ...string) (stdout, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr,
			getenv: func(k string) string { return envVars[k] }})
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%v did not stop within 30 s of its context ending", args)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// TestPostgresEveryCommand runs every command against a PostgreSQL store
// named by a URL with a password (LEADWATCH_DB), and checks each does its
// work there and that the password appears in no output.
func TestPostgresEveryCommand(t *testing.T) {
	dsn := pgURL(t)
	sb := sandbox.StartTest(t, sandbox.Config{BlockCountries: []string{"RU"}})
	listen := loopbackPort(t)
	envVars := map[string]string{
		"CARTELCRM_BASE_URL":    sb.URL,
		"CARTELCRM_API_KEY":     sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET": sandbox.TestHMACSecret,
		"CALLBACK_SECRET":       sandbox.TestCallbackSecret,
		"LEADWATCH_DB":          dsn,
	}
	var outs []string // every stdout and stderr, checked for the password at the end
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, envVars, stdin, args...)
		outs = append(outs, out, errOut)
		return code, out, errOut
	}
	defer func() { noPassword(t, "a command's output", outs...); noSecrets(t, outs...) }()

	leads := `{"external_id":"pg-1","phone":"+380501234567","country":"UA"}
{"external_id":"pg-2","phone":"+48512345678","country":"PL"}
{"external_id":"pg-3","phone":"+79121234567","country":"RU"}
`
	code, out, errOut := cli(leads, "submit", "--wait", "-")
	if code != 1 || !strings.Contains(out, "enqueued 3 lead(s), refused 0") || !strings.Contains(out, "outcomes: accepted 2, rejected 1") {
		t.Fatalf("submit --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = cli(`{"external_id":"pg-1","phone":"+380501234567"}`+"\n", "submit", "-")
	if code != 1 || !strings.Contains(errOut, "pg-1") {
		t.Errorf("submitting pg-1 again: exit %d %s", code, errOut)
	}

	// serve stores a signed callback before its 200.
	db, err := postgres.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lead, err := db.Lead(context.Background(), "pg-1")
	if err != nil || lead.CRMID == "" {
		t.Fatalf("pg-1 in the store: %+v %v", lead, err)
	}
	_, serveErr, stopServe := background(t, envVars, "serve", "--listen", listen)
	poll.UntilWithin(t, 20*time.Second, "serve's /healthz to answer 200", func() bool {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	body := fmt.Appendf(nil, `{"internal_id":%q,"external_id":"pg-1","event":"status_changed","status":"ftd","timestamp":%d}`, lead.CRMID, time.Now().Unix())
	req, err := crm.NewSignedCallback("http://"+listen+"/cartelcrm/callback", body, []byte(sandbox.TestCallbackSecret), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("callback answered %d", resp.StatusCode)
	}
	if code := stopServe(); code != 0 {
		t.Errorf("serve exit %d:\n%s", code, serveErr)
	}
	outs = append(outs, serveErr.String())
	if !strings.Contains(serveErr.String(), "leadwatch serving") {
		t.Errorf("serve did not log its start:\n%s", serveErr)
	}

	t.Run("Tail", func(t *testing.T) {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var errb lockedBuffer
		go func() {
			done <- run(ctx, []string{"tail", "--json"}, env{stdout: pw, stderr: &errb, getenv: func(k string) string { return envVars[k] }})
			pw.Close()
		}()
		type read struct {
			line string
			err  error
		}
		got := make(chan read, 1)
		go func() {
			line, err := bufio.NewReader(pr).ReadString('\n')
			got <- read{line, err}
		}()
		var line string
		var err error
		select {
		case r := <-got:
			line, err = r.line, r.err
		case <-time.After(20 * time.Second):
			cancel()
			t.Fatalf("tail printed nothing in 20 s (is a long write transaction open on the server? %s)", errb.String())
		}
		cancel()
		go io.Copy(io.Discard, pr)
		if code := <-done; code != 0 || err != nil {
			t.Fatalf("tail: exit %d, %v, %s", code, err, errb.String())
		}
		outs = append(outs, line, errb.String())
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["internal_id"] != lead.CRMID || m["external_id"] != "pg-1" {
			t.Fatalf("tail printed %q (%v)", line, err)
		}
	})
	t.Run("Export", func(t *testing.T) {
		code, out, errOut := cli("", "export", "leads")
		if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"external_id":"pg-3"`) {
			t.Fatalf("export leads: exit %d\n%s\n%s", code, out, errOut)
		}
		code, out, errOut = cli("", "export", "--format", "csv", "callbacks")
		if rows := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(rows) != 2 || !strings.Contains(rows[1], lead.CRMID) {
			t.Fatalf("export callbacks: exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("Resubmit", func(t *testing.T) {
		code, out, errOut := cli(`{"external_id":"pg-3","phone":"+380509999999","country":"UA"}`, "resubmit", "--payload", "-", "pg-3")
		if code != 0 || !strings.Contains(out, "re-queued pg-3 with a new idempotency key") {
			t.Fatalf("resubmit: exit %d %s %s", code, out, errOut)
		}
		if l, err := db.Lead(context.Background(), "pg-3"); err != nil || l.State != crm.StateQueued {
			t.Errorf("pg-3 after resubmit: %+v %v", l, err)
		}
		code, _, errOut = cli("", "resubmit", "nope")
		if code != 1 || !strings.Contains(errOut, "not found") {
			t.Errorf("resubmitting an unknown lead: exit %d %s", code, errOut)
		}
	})
	t.Run("Prune", func(t *testing.T) {
		code, out, errOut := cli("", "prune", "--older-than", "1d")
		if code != 0 || !strings.Contains(out, "pruned what is older than") {
			t.Fatalf("prune: exit %d %s %s", code, out, errOut)
		}
	})
	t.Run("Forget", func(t *testing.T) {
		code, out, errOut := cli("", "forget", "pg-2")
		if code != 0 || !strings.Contains(out, "forgot pg-2") {
			t.Fatalf("forget: exit %d %s %s", code, out, errOut)
		}
		d, err := db.LeadDetail(context.Background(), "pg-2")
		if err != nil || strings.Contains(string(d.Lead.Payload), "+48512345678") {
			t.Errorf("pg-2 after forget: %s %v", d.Lead.Payload, err)
		}
	})
	t.Run("BackupPointsAtPgDump", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "copy.db")
		code, out, errOut := cli("", "backup", target)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "pg_dump") {
			t.Fatalf("backup of a PostgreSQL store: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("backup left %s behind (%v)", target, err)
		}
	})
	t.Run("StatusVersionHelp", func(t *testing.T) {
		code, out, errOut := cli("", "status", "pg-1")
		if code != 0 || !strings.Contains(out, `"external_id": "pg-1"`) {
			t.Errorf("status: exit %d %s %s", code, out, errOut)
		}
		if code, out, _ := cli("", "version"); code != 0 || !strings.HasPrefix(out, "leadwatch ") {
			t.Errorf("version: exit %d %q", code, out)
		}
		for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"submit", "--help"}, {"export", "--help"}} {
			code, out, _ := cli("", args...)
			if code != 0 || !strings.Contains(out, "postgres://") {
				t.Errorf("%v: exit %d, no word of a postgres:// URL:\n%s", args, code, out)
			}
		}
	})
}
