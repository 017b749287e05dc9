package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// cliEnv starts a sandbox for sc and returns the environment that points
// leadwatch at it, with a fresh database.
func cliEnv(t *testing.T, sc sandbox.Config) (map[string]string, *sandbox.Server) {
	t.Helper()
	sb := sandbox.StartTest(t, sc)
	return map[string]string{
		"CARTELCRM_BASE_URL":    sb.URL,
		"CARTELCRM_API_KEY":     sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET": sandbox.TestHMACSecret,
		"CALLBACK_SECRET":       sandbox.TestCallbackSecret,
		"LEADWATCH_DB":          filepath.Join(t.TempDir(), "cli.db"),
	}, sb
}

func noSecrets(t *testing.T, outs ...string) {
	t.Helper()
	for _, o := range outs {
		for _, s := range []string{sandbox.TestAPIKey, sandbox.TestHMACSecret, sandbox.TestCallbackSecret} {
			if strings.Contains(o, s) {
				t.Fatalf("secret %q printed:\n%s", s, o)
			}
		}
	}
}

func TestSubmitWaitExportResubmitStatus(t *testing.T) {
	envVars, sb := cliEnv(t, sandbox.Config{BlockCountries: []string{"RU"}})
	dir := t.TempDir()
	file := filepath.Join(dir, "leads.jsonl")
	lines := []string{
		`{"external_id":"s-1","phone":"+380501234567","country":"UA"}`,
		`{"external_id":"s-2","phone":"+48512345678","country":"PL"}`,
		`{"external_id":"s-3","phone":"+380501234567"}`,
		`{"external_id":"s-4","phone":"+79121234567","country":"RU"}`,
		`{"external_id":"s-5","phone":"+99912345678"}`,
		`{"external_id":"s-6","phone":"+3805`,
		`{"phone":"+380501234568"}`,
		`[1,2,3]`,
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// One sender at a time, so which of s-1 and s-3 (same phone) is the
	// duplicate is fixed.
	cfg := filepath.Join(dir, "one.toml")
	if err := os.WriteFile(cfg, []byte("[crm]\nconcurrency = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, envVars, "", "submit", "--config", cfg, "--wait", file)
	noSecrets(t, out, errOut)
	if code != 1 {
		t.Fatalf("submit with bad lines: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"line 6: invalid lead", "line 7:", "external_id is required", "line 8:", "not a JSON object", "line 5: warning: phone is not valid E.164"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "enqueued 5 lead(s), refused 3") || !strings.Contains(out, "outcomes: accepted 3, duplicate 1, rejected 1") {
		t.Errorf("stdout:\n%s", out)
	}

	t.Run("SubmitAgainIsRefused", func(t *testing.T) {
		code, _, errOut := runCLI(t, envVars, `{"external_id":"s-1","phone":"+380501234567"}`+"\n", "submit", "-")
		if code != 1 || !strings.Contains(errOut, "s-1") {
			t.Fatalf("resubmitting via submit: %d %s", code, errOut)
		}
	})
	t.Run("Strict", func(t *testing.T) {
		code, _, errOut := runCLI(t, envVars, `{"external_id":"s-9","phone":"+99912345670"}`+"\n", "submit", "--strict", "-")
		if code != 1 || !strings.Contains(errOut, "E.164") {
			t.Fatalf("strict: %d %s", code, errOut)
		}
	})

	var leads []map[string]any
	t.Run("ExportJSONL", func(t *testing.T) {
		code, out, errOut := runCLI(t, envVars, "", "export", "leads")
		if code != 0 {
			t.Fatalf("export: %d %s", code, errOut)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			leads = append(leads, m)
		}
		if len(leads) != 5 {
			t.Fatalf("%d leads exported", len(leads))
		}
		for _, k := range []string{"external_id", "state", "crm_id", "reason", "attempts", "idempotency_key", "created_at", "updated_at"} {
			if _, ok := leads[0][k]; !ok {
				t.Errorf("export lacks %s: %v", k, leads[0])
			}
		}
		if leads[0]["external_id"] != "s-1" || leads[0]["state"] != "accepted" || leads[0]["crm_id"] == "" {
			t.Errorf("first lead %v", leads[0])
		}
	})
	t.Run("ExportCSV", func(t *testing.T) {
		code, out, _ := runCLI(t, envVars, "", "export", "--format", "csv", "leads")
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(rows) != 6 || !strings.HasPrefix(rows[0], "external_id,state,crm_id") {
			t.Fatalf("csv export %d:\n%s", code, out)
		}
	})
	t.Run("ResubmitEditedPayload", func(t *testing.T) {
		before, _ := leads[2]["idempotency_key"].(string) // s-3, a duplicate
		code, out, errOut := runCLI(t, envVars, `{"external_id":"s-3","phone":"+380509999999"}`, "resubmit", "--payload", "-", "s-3")
		if code != 0 || !strings.Contains(out, "with a new idempotency key") || strings.Contains(out, before) {
			t.Fatalf("resubmit: %d %s %s", code, out, errOut)
		}
		code, _, errOut = runCLI(t, envVars, "", "resubmit", "s-1")
		if code != 1 || !strings.Contains(errOut, "accepted") {
			t.Fatalf("resubmitting an accepted lead: %d %s", code, errOut)
		}
		code, _, errOut = runCLI(t, envVars, "", "resubmit", "nope")
		if code != 1 || !strings.Contains(errOut, "not found") {
			t.Fatalf("resubmitting an unknown lead: %d %s", code, errOut)
		}
	})
	t.Run("Status", func(t *testing.T) {
		code, out, errOut := runCLI(t, envVars, "", "status", "s-1")
		noSecrets(t, out, errOut)
		var sr crm.StatusResponse
		if code != 0 || json.Unmarshal([]byte(out), &sr) != nil || sr.ExternalID != "s-1" || sr.Status == "" {
			t.Fatalf("status: %d %s %s", code, out, errOut)
		}
		code, _, errOut = runCLI(t, envVars, "", "status", "never-sent")
		if code != 1 || !strings.Contains(errOut, "not found") {
			t.Fatalf("unknown status: %d %s", code, errOut)
		}
	})
	if st := sb.Sandbox.Stats(); st.LeadsCreatedPerExternalIDMax != 1 {
		t.Errorf("sandbox created a lead twice: %+v", st)
	}
}

func TestSubmitCSV(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	csvIn := "external_id,phone,country\nc-1,+380501234567,UA\nc-2,+48512345678\n"
	code, out, errOut := runCLI(t, envVars, csvIn, "submit", "-")
	if code != 1 || !strings.Contains(out, "enqueued 1 lead(s), refused 1") || !strings.Contains(errOut, "line 3: 2 fields, the header has 3") {
		t.Fatalf("csv submit: %d\n%s\n%s", code, out, errOut)
	}
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	l, err := db.Lead(context.Background(), "c-1")
	if err != nil || string(l.Payload) != `{"external_id":"c-1","phone":"+380501234567","country":"UA"}` || l.State != crm.StateQueued {
		t.Fatalf("stored %q %s %v", l.Payload, l.State, err)
	}
}

// TestSubmitReportsInLineOrder: whichever step refuses a line (framing
// the file, or the store's lead check), the report follows the file; a
// stray quote is reported on its own line and costs no other lead.
func TestSubmitReportsInLineOrder(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	csvIn := "external_id,phone,country\n" +
		"c-2,+380501234502,UA\n" +
		"c-3,+380501234503\n" + // framing: a missing column
		",+380501234504,UA\n" + // the lead check: no external_id
		"c-5,+380501234505,UA\n" +
		"c-6,+380501234506,UA\n" +
		"c-7,\"+380501234507,UA\n" + // a stray quote that never closes
		"c-8,+380501234508,UA\n"
	code, out, errOut := runCLI(t, envVars, csvIn, "submit", "-")
	if code != 1 || !strings.Contains(out, "enqueued 4 lead(s), refused 3") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	want := []string{
		"leadwatch submit: line 3: 2 fields, the header has 3",
		"leadwatch submit: line 4: invalid lead: external_id is required",
		`leadwatch submit: line 7: a quoted field is never closed (a stray "?)`,
		"leadwatch: 3 line(s) refused",
	}
	if got := strings.Split(strings.TrimSpace(errOut), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
	}
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	if _, err := db.Lead(context.Background(), "c-8"); err != nil {
		t.Errorf("the lead after the stray quote: %v", err)
	}
}

func TestTailJSON(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	var evs []crm.CallbackEvent
	for i := range 3 {
		ev, err := crm.ParseCallback([]byte(fmt.Sprintf(`{"internal_id":"crm-%d","event":"status_changed","status":"new","timestamp":%d}`, i, 1764200000+i)))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if _, err := db.SaveCallbacks(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw, _ := os.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", "--json", "-n", "2"}, env{stdout: pw, stderr: os.Stderr, getenv: func(k string) string { return envVars[k] }})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var got []string
	for len(got) < 3 && sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("tail line %q: %v", sc.Text(), err)
		}
		got = append(got, m["internal_id"].(string))
		if len(got) == 2 {
			// Followed live: stored after tail started.
			ev, _ := crm.ParseCallback([]byte(`{"internal_id":"crm-live","event":"status_changed","timestamp":1764200100}`))
			if _, err := db.SaveCallbacks(context.Background(), []crm.CallbackEvent{ev}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exit %d", code)
	}
	if strings.Join(got, ",") != "crm-1,crm-2,crm-live" {
		t.Fatalf("tail printed %v", got)
	}
}

// TestSubmitWaitExitCode: submit --wait succeeds only when the CRM took
// every lead (accepted, or a duplicate of one it has); any other final
// state exits 1, after the summary, so a script notices.
func TestSubmitWaitExitCode(t *testing.T) {
	tests := []struct {
		name    string
		apiKey  string // "" keeps the sandbox's
		leads   []string
		code    int
		outcome string
	}{
		{"AllTaken", "", []string{
			`{"external_id":"w-1","phone":"+380501234567","country":"UA"}`,
			`{"external_id":"w-2","phone":"+380501234567","country":"UA"}`,
		}, 0, "outcomes: accepted 1, duplicate 1"},
		{"Rejected", "", []string{
			`{"external_id":"w-1","phone":"+380501234567","country":"UA"}`,
			`{"external_id":"w-2","phone":"+79121234567","country":"RU"}`,
		}, 1, "outcomes: accepted 1, rejected 1"},
		{"FailedOnWrongKey", "not-the-key", []string{
			`{"external_id":"w-1","phone":"+380501234567","country":"UA"}`,
		}, 1, "outcomes: failed 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envVars, _ := cliEnv(t, sandbox.Config{BlockCountries: []string{"RU"}})
			if tt.apiKey != "" {
				envVars["CARTELCRM_API_KEY"] = tt.apiKey
			}
			// One sender at a time, so which lead is the duplicate is fixed.
			cfg := filepath.Join(t.TempDir(), "one.toml")
			if err := os.WriteFile(cfg, []byte("[crm]\nconcurrency = 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, envVars, strings.Join(tt.leads, "\n")+"\n", "submit", "--config", cfg, "--wait", "-")
			if code != tt.code || !strings.Contains(out, tt.outcome) {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if code == 0 {
				return
			}
			// The summary came first (stdout), then one line saying why.
			last := strings.Split(strings.TrimSpace(errOut), "\n")
			if l := last[len(last)-1]; !strings.HasPrefix(l, "leadwatch: ") || !strings.Contains(l, "1 lead(s) not taken by the CRM") {
				t.Errorf("last stderr line %q", l)
			}
		})
	}
}
