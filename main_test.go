package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// binDir holds the leadwatch binary that process-level tests run.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// leadwatchBinary builds the binary once per test run (CGO off, as
// shipped) and returns its path.
func leadwatchBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "leadwatch-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "leadwatch")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("build leadwatch: %v", binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// runCLI runs one command line in-process.
func runCLI(t *testing.T, envVars map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, env{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return envVars[k] },
	})
	return code, out.String(), errb.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"UnknownCommand", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"BadFlag", []string{"submit", "--nope", "x"}, 2, "flag provided but not defined: -nope"},
		{"SubmitNoFile", []string{"submit", "--db", db}, 2, "need one FILE"},
		{"StatusNoID", []string{"status"}, 2, "need one EXTERNAL_ID"},
		{"ExportWhat", []string{"export", "--db", db, "things"}, 2, `export leads or callbacks, not "things"`},
		{"ExportFormat", []string{"export", "leads", "--format", "xml", "--db", db}, 2, "--format is jsonl or csv"},
		{"Help", []string{"tail", "--help"}, 0, "Usage: leadwatch tail"},
		{"ServeNeedsSecrets", []string{"serve", "--db", db}, 1, "crm.base_url is not set"},
		{"SubmitMissingFile", []string{"submit", "--db", db, filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{"StatusNeedsConfig", []string{"status", "x"}, 1, "CARTELCRM_BASE_URL"},
		{"BadConfigFile", []string{"serve", "--config", filepath.Join(dir, "nope.toml")}, 1, "config:"},
		{"VersionExtraArg", []string{"version", "extra"}, 2, `unexpected argument "extra"`},
		{"RootHelpListsCommands", []string{"--help"}, 0, "leadwatch submit"},
		{"SandboxBadFlagWithoutSecrets", []string{"sandbox", "--fail-rate", "2"}, 2, "fail-rate"},
		{"ExportMissingDB", []string{"export", "leads", "--db", filepath.Join(dir, "typo.db")}, 1, "no such file"},
		{"TailMissingDB", []string{"tail", "--db", filepath.Join(dir, "typo.db")}, 1, "no such file"},
		{"ResubmitMissingDB", []string{"resubmit", "--db", filepath.Join(dir, "typo.db"), "x"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tt.code, tt.stderr)
			}
			if code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("a runtime failure should be one line, got:\n%s", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
				t.Errorf("a read-only command created the database it was pointed at")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(out, "leadwatch ") {
		t.Fatalf("version: %d %q", code, out)
	}
}
