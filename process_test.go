package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// startProcess runs the binary with env and returns it with a reader of
// the stream (stdout or stderr) that announces readiness.
func startProcess(t *testing.T, env []string, fromStderr bool, args ...string) (*exec.Cmd, *bufio.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(leadwatchBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var other strings.Builder
	var pipe io.ReadCloser
	var err error
	if fromStderr {
		pipe, err = cmd.StderrPipe()
		cmd.Stdout = &other
	} else {
		pipe, err = cmd.StdoutPipe()
		cmd.Stderr = &other
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, bufio.NewReader(pipe), &other
}

// readUntil reads lines until one matches re, within a deadline.
func readUntil(t *testing.T, r *bufio.Reader, re *regexp.Regexp, within time.Duration) ([]string, []string) {
	t.Helper()
	type line struct {
		s   string
		err error
	}
	lines := make(chan line)
	var seen []string
	go func() {
		for {
			s, err := r.ReadString('\n')
			lines <- line{s, err}
			if err != nil {
				return
			}
		}
	}()
	timeout := time.After(within)
	for {
		select {
		case l := <-lines:
			seen = append(seen, l.s)
			if m := re.FindStringSubmatch(l.s); m != nil {
				go func() { // keep draining so the child never blocks on a full pipe
					for l := range lines {
						if l.err != nil {
							return
						}
					}
				}()
				return m, seen
			}
			if l.err != nil {
				t.Fatalf("stream ended before %s: %v\n%s", re, l.err, strings.Join(seen, ""))
			}
		case <-timeout:
			t.Fatalf("no line matching %s within %s:\n%s", re, within, strings.Join(seen, ""))
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		cmd.Process.Kill()
		t.Fatalf("process did not exit within %s", within)
		return nil
	}
}

func TestSandboxCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("process test in -short")
	}
	env := []string{"CARTELCRM_API_KEY=" + sandbox.TestAPIKey, "CARTELCRM_HMAC_SECRET=" + sandbox.TestHMACSecret}
	cmd, out, stderr := startProcess(t, env, false, "sandbox", "--addr", "127.0.0.1:0", "--fail-rate", "0.5", "--seed", "3")
	m, _ := readUntil(t, out, regexp.MustCompile(`sandbox listening on (http://127\.0\.0\.1:\d+)`), 10*time.Second)
	base := m[1]
	resp, err := http.Get(base + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st sandbox.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// The same environment configures the client: a lead goes through
	// (after the injected 503s).
	c, err := crm.NewClient(crm.ClientConfig{BaseURL: base, APIKey: sandbox.TestAPIKey, HMACSecret: []byte(sandbox.TestHMACSecret)})
	if err != nil {
		t.Fatal(err)
	}
	var res crm.Result
	for i := 0; i < 20; i++ {
		if res = c.Submit(context.Background(), []byte(`{"external_id":"sb-1","phone":"+380501234567"}`), "sb-1-k"); !res.Outcome.Retryable() {
			break
		}
	}
	if res.Outcome.State != crm.StateAccepted {
		t.Fatalf("lead through the sandbox command: %+v", res)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 10*time.Second); err != nil {
		t.Fatalf("sandbox did not stop cleanly on SIGTERM: %v\n%s", err, stderr)
	}
	noSecrets(t, stderr.String())
	if strings.Contains(stderr.String(), "listening") {
		t.Errorf("the sandbox announced itself twice; stderr:\n%s", stderr)
	}

	t.Run("BadFlags", func(t *testing.T) {
		code, _, errOut := runCLI(t, map[string]string{"CARTELCRM_API_KEY": "k", "CARTELCRM_HMAC_SECRET": "h"}, "", "sandbox", "--fail-rate", "2")
		if code != 2 || !strings.Contains(errOut, "fail-rate") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("PortTaken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, _, errOut := runCLI(t, map[string]string{"CARTELCRM_API_KEY": "k", "CARTELCRM_HMAC_SECRET": "h"}, "", "sandbox", "--addr", ln.Addr().String())
		want := "leadwatch: sandbox: listen tcp " + ln.Addr().String() + ": bind: address already in use\n"
		if code != 1 || errOut != want {
			t.Fatalf("exit %d: %q, want %q", code, errOut, want)
		}
	})
	t.Run("NoSecrets", func(t *testing.T) {
		code, _, errOut := runCLI(t, nil, "", "sandbox", "--addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(errOut, "CARTELCRM_API_KEY") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// TestServeCommand runs `leadwatch serve`: it logs where it listens,
// stores a signed callback before answering 200, reports health, and stops
// cleanly on SIGTERM without printing a secret.
func TestServeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("process test in -short")
	}
	sb := sandbox.StartTest(t, sandbox.Config{})
	dbPath := filepath.Join(t.TempDir(), "serve.db")
	env := []string{"CARTELCRM_BASE_URL=" + sb.URL, "CARTELCRM_API_KEY=" + sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET=" + sandbox.TestHMACSecret, "CALLBACK_SECRET=old-secret," + sandbox.TestCallbackSecret}
	// No drain window: this test stops at SIGTERM (TestServeDrainsOnSIGTERM
	// covers the drain).
	cfgPath := filepath.Join(t.TempDir(), "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte("[callbacks]\ndrain = \"0s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, errStream, _ := startProcess(t, env, true, "serve", "--config", cfgPath, "--db", dbPath, "--listen", "127.0.0.1:0")
	m, logged := readUntil(t, errStream, regexp.MustCompile(`leadwatch serving"? listen=(127\.0\.0\.1:\d+)`), 15*time.Second)
	addr := m[1]

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	body := []byte(`{"internal_id":"crm-9","event":"status_changed","status":"ftd","timestamp":1764200000}`)
	req, _ := crm.NewSignedCallback("http://"+addr+"/cartelcrm/callback", body, []byte(sandbox.TestCallbackSecret), time.Now())
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("callback: %v %v", resp, err)
	}
	resp.Body.Close()
	// Answered 200, so it is already committed: a second process sees it.
	db := storetest.OpenPath(t, dbPath, store.Options{})
	evs, err := db.CallbacksAfter(context.Background(), 0, 10)
	if err != nil || len(evs) != 1 || evs[0].InternalID != "crm-9" || evs[0].SecretIdx != 1 {
		t.Fatalf("stored callbacks %+v %v", evs, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 15*time.Second); err != nil {
		t.Fatalf("serve did not stop cleanly: %v", err)
	}
	noSecrets(t, strings.Join(logged, ""))
}
