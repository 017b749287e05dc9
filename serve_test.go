package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// startServe runs `leadwatch serve` in-process with args until the test
// ends, returning its stderr and a stop that waits for the exit code.
func startServe(t *testing.T, envVars map[string]string, args ...string) (*logtest.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), env{
			stdin:  strings.NewReader(""),
			stdout: stderr,
			stderr: stderr,
			getenv: func(k string) string { return envVars[k] },
		})
	}()
	var once sync.Once
	code := 0
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stderr, stop
}

// TestServeLogLevel: at --log-level warn, serve logs a lead that ended
// failed (with its external_id and why) and nothing at info.
func TestServeLogLevel(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	envVars["CARTELCRM_API_KEY"] = "not-the-key"
	if code, out, errOut := runCLI(t, envVars, `{"external_id":"lv-1","phone":"+380501234567"}`+"\n", "submit", "-"); code != 0 {
		t.Fatalf("submit: %d %s %s", code, out, errOut)
	}
	stderr, stop := startServe(t, envVars, "--log-level", "warn", "--log-json")
	var failed map[string]any
	poll.Until(t, "the failed lead to be logged", func() bool {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "lead failed" {
				failed = m
				return true
			}
		}
		return false
	})
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
	if failed["level"] != "WARN" || failed["external_id"] != "lv-1" || !strings.Contains(failed["reason"].(string), "401") {
		t.Errorf("logged %v", failed)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("not a JSON log line: %q", l)
		} else if m["level"] == "INFO" || m["level"] == "DEBUG" {
			t.Errorf("below --log-level warn: %s", l)
		}
	}
	noSecrets(t, stderr.String())
}
