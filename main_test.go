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
		{"MistypedCommand", []string{"sumbit"}, 2, `unknown command "sumbit" (did you mean "submit"?)`},
		{"BadFlag", []string{"submit", "--nope", "x"}, 2, "unknown flag: --nope"},
		{"SingleDashLongFlag", []string{"submit", "-db", db, "x"}, 2, "unknown flag -db: long flags take two dashes, --db"},
		{"UnknownShorthand", []string{"tail", "-x"}, 2, "unknown shorthand flag: 'x' in -x"},
		{"FlagWithoutValue", []string{"tail", "--db"}, 2, "flag needs an argument: --db"},
		{"BadFlagValue", []string{"tail", "-n", "many"}, 2, `invalid argument "many" for "-n, --lines" flag`},
		{"SubmitNoFile", []string{"submit", "--db", db}, 2, "need one FILE"},
		{"SubmitTwoFiles", []string{"submit", "a.jsonl", "b.jsonl"}, 2, "need one FILE"},
		{"StatusNoID", []string{"status"}, 2, "need one EXTERNAL_ID"},
		{"ExportWhat", []string{"export", "--db", db, "things"}, 2, `export leads or callbacks, not "things"`},
		{"ExportNothing", []string{"export"}, 2, "export leads or callbacks"},
		{"ExportFormat", []string{"export", "leads", "--format", "xml", "--db", db}, 2, "--format is jsonl or csv"},
		{"ServeNeedsSecrets", []string{"serve", "--db", db}, 1,
			"crm.base_url (CARTELCRM_BASE_URL), crm.api_key (CARTELCRM_API_KEY), crm.hmac_secret (CARTELCRM_HMAC_SECRET) " +
				"and callbacks.secrets (CALLBACK_SECRET) are not set"},
		{"BareDashboardPointsToDemo", []string{"--db", db}, 1, "run 'leadwatch --demo'"},
		{"SubmitMissingFile", []string{"submit", "--db", db, filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{"StatusNeedsConfig", []string{"status", "x"}, 1, "CARTELCRM_BASE_URL"},
		{"ServeBadLogLevel", []string{"serve", "--log-level", "trace", "--db", db}, 2, `--log-level is debug, info or warn, not "trace"`},
		{"BadConfigFile", []string{"serve", "--config", filepath.Join(dir, "nope.toml")}, 1, "config:"},
		{"CompletionUnknownShell", []string{"completion", "nope"}, 2, `no completion for "nope"`},
		{"VersionExtraArg", []string{"version", "extra"}, 2, `unexpected argument "extra"`},
		{"SandboxBadFlagWithoutSecrets", []string{"sandbox", "--fail-rate", "2"}, 2, "fail-rate"},
		{"SandboxBadCountry", []string{"sandbox", "--block-countries", "US,ZZ"}, 2, `"ZZ" is not an ISO 3166-1 alpha-2 country code`},
		{"ExportMissingDB", []string{"export", "leads", "--db", filepath.Join(dir, "typo.db")}, 1, "no such file"},
		{"TailMissingDB", []string{"tail", "--db", filepath.Join(dir, "typo.db")}, 1, "no such file"},
		{"PruneNoAge", []string{"prune", "--db", db}, 2, "need --older-than D"},
		{"PruneBadAge", []string{"prune", "--older-than", "30", "--db", db}, 2, `--older-than: "30" is not a duration`},
		{"PruneZeroAge", []string{"prune", "--older-than", "0d", "--db", db}, 2, "not a positive duration"},
		{"PruneExtraArg", []string{"prune", "--older-than", "30d", "all"}, 2, `unexpected argument "all"`},
		{"PruneMissingDB", []string{"prune", "--older-than", "30d", "--db", filepath.Join(dir, "typo.db")}, 1, "no such file"},
		{"BackupNoFile", []string{"backup", "--db", db}, 2, "need one FILE"},
		{"BackupMissingDB", []string{"backup", "--db", filepath.Join(dir, "typo.db"), filepath.Join(dir, "copy.db")}, 1, "no such file"},
		{"ForgetNoID", []string{"forget", "--db", db}, 2, "need one EXTERNAL_ID"},
		{"ForgetMissingDB", []string{"forget", "--db", filepath.Join(dir, "typo.db"), "x"}, 1, "no such file"},
		{"ResubmitMissingDB", []string{"resubmit", "--db", filepath.Join(dir, "typo.db"), "x"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tt.code, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("a failure wrote to stdout:\n%s", stdout)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			switch {
			case code == 1 && len(lines) != 1:
				t.Errorf("a runtime failure should be one line, got:\n%s", stderr)
			case code == 2 && (len(lines) != 2 || !strings.HasPrefix(lines[1], "Run 'leadwatch") || !strings.HasSuffix(lines[1], " --help' for usage.")):
				t.Errorf("a usage error should be one line and a hint, got:\n%s", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
				t.Errorf("a read-only command created the database it was pointed at")
			}
		})
	}
}

// TestErrorsSayEachContextOnce: a store that is not a database is named
// once, by the layer that opened it.
func TestErrorsSayEachContextOnce(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte("not a database, at all: some text to fill a page"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"export", "leads", "--db", bad}, {"submit", "-", "--db", bad}} {
		code, _, errOut := runCLI(t, nil, `{"external_id":"x","phone":"+380501234567"}`, args...)
		if code != 1 || !strings.HasPrefix(errOut, "leadwatch: open store "+bad+": ") || strings.Count(errOut, "open store") != 1 {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
}

// TestFlagsAfterArguments: flags may come before or after arguments.
func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "after.db")
	file := filepath.Join(dir, "leads.jsonl")
	if err := os.WriteFile(file, []byte(`{"external_id":"fa-1","phone":"+380501234567"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "", "submit", file, "--db", db)
	if code != 0 || !strings.Contains(out, "enqueued 1 lead(s), refused 0") {
		t.Fatalf("submit FILE --db: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "", "export", "leads", "--db", db, "--format", "csv")
	if code != 0 || !strings.Contains(out, "fa-1,queued") {
		t.Fatalf("export leads --db --format: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "", "resubmit", "fa-1", "--db", db)
	if code != 1 || !strings.Contains(errOut, "queued") {
		t.Fatalf("resubmit ID --db of a queued lead: exit %d\n%s%s", code, out, errOut)
	}
}

// TestHelp: --help (and -h, and help COMMAND) goes to stdout and exits 0,
// lining up the commands, listing the environment a command reads, and
// pointing at no file a fresh clone lacks.
func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"Root", []string{"--help"}, []string{
			"Usage:\n  leadwatch [--config FILE] [--db FILE|URL] [--listen ADDR]",
			"\n  submit      enqueue JSONL or CSV leads", "\n  completion  ",
			"      --demo ", "Environment:\n  CARTELCRM_BASE_URL ", "  LEADWATCH_DB ", "  CALLBACK_SECRET ",
		}, nil},
		{"Tail", []string{"tail", "--help"}, []string{
			"Usage:\n  leadwatch tail [--json] [--all] [-n N]\n", "  -n, --lines N ", "(default 10)", "Environment:\n  LEADWATCH_DB ",
		}, []string{"CARTELCRM_API_KEY"}},
		{"TailShort", []string{"tail", "-h"}, []string{"leadwatch tail"}, nil},
		{"HelpCommand", []string{"help", "submit"}, []string{"leadwatch submit [--wait] [--strict] FILE|-", "  --strict ", "CARTELCRM_HMAC_SECRET"}, nil},
		{"Sandbox", []string{"sandbox", "--help"}, []string{"--fail-rate float", "--block-countries codes", "CALLBACK_SECRET"}, []string{"LEADWATCH_DB", "(default 0s)"}},
		{"Version", []string{"version", "--help"}, []string{"Flags:\n  -h, --help "}, []string{"Environment:"}},
		{"Prune", []string{"prune", "--help"}, []string{"leadwatch prune --older-than D", "--older-than D ", "30d", "Environment:\n  LEADWATCH_DB "}, []string{"CARTELCRM_API_KEY"}},
		{"Backup", []string{"backup", "-h"}, []string{"leadwatch backup FILE", "--db FILE"}, nil},
		{"Forget", []string{"help", "forget"}, []string{"leadwatch forget EXTERNAL_ID", "It does not ask"}, nil},
		{"StatusHidesDB", []string{"status", "--help"}, []string{"--config FILE"}, []string{"--db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "", tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			// Help names only files a fresh clone has: not the team's
			// reference folder beside the repo, nor its documents.
			for _, n := range append(tt.not, filepath.Join("..", "shared"), "PROTOCOL.md", "DESIGN.md") {
				if strings.Contains(out, n) {
					t.Errorf("help has %q:\n%s", n, out)
				}
			}
		})
	}
	t.Run("RootColumnsLineUp", func(t *testing.T) {
		_, out, _ := runCLI(t, nil, "", "--help")
		var cols []int
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "  leadwatch [") || strings.HasPrefix(l, "  leadwatch --demo") {
				cols = append(cols, strings.Index(l, "the dashboard"))
			}
		}
		if len(cols) != 2 || cols[0] != cols[1] || cols[0] < 0 {
			t.Errorf("the root's usage lines do not line up (%v):\n%s", cols, out)
		}
	})
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "", "completion", shell)
			if code != 0 || !strings.Contains(out, "leadwatch") || errOut != "" {
				t.Fatalf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), errOut)
			}
		})
	}
	// The scripts ask leadwatch itself; it answers with its commands.
	code, out, _ := runCLI(t, nil, "", "__complete", "sub")
	if code != 0 || !strings.Contains(out, "submit") {
		t.Fatalf("__complete sub: exit %d\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(out, "leadwatch ") {
		t.Fatalf("version: %d %q", code, out)
	}
}
