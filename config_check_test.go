package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/crm/sandbox"
)

// TestBadConfigCreatesNothing: a command that would create the database
// or the log file checks the whole configuration first, and its error
// quotes a bad URL without the userinfo or query that may carry a
// credential.
func TestBadConfigCreatesNothing(t *testing.T) {
	urls := []struct {
		name, url, quoted string
	}{
		{"Unparsable", "http://lw-user:lw-pass@[::1", ""},
		{"WrongScheme", "ftp://lw-user:lw-pass@crm.example.test/api?token=lw-token#frag", `"ftp://crm.example.test/api"`},
	}
	commands := []struct {
		name string
		args []string
	}{
		{"Serve", []string{"serve"}},
		{"Dashboard", nil},
		{"SubmitWait", []string{"submit", "--wait", "-"}},
	}
	for _, u := range urls {
		for _, c := range commands {
			t.Run(u.name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				envVars := map[string]string{
					"CARTELCRM_BASE_URL":    u.url,
					"CARTELCRM_API_KEY":     sandbox.TestAPIKey,
					"CARTELCRM_HMAC_SECRET": sandbox.TestHMACSecret,
					"CALLBACK_SECRET":       sandbox.TestCallbackSecret,
					"LEADWATCH_DB":          filepath.Join(dir, "lw.db"),
				}
				code, out, errOut := runCLI(t, envVars, `{"external_id":"bc-1","phone":"+380501234567"}`+"\n", c.args...)
				if code != 1 || !strings.Contains(errOut, "crm.base_url must be an absolute http(s) URL") {
					t.Fatalf("exit %d, want 1 and the bad crm.base_url named; stderr:\n%s", code, errOut)
				}
				if u.quoted != "" && !strings.Contains(errOut, u.quoted) {
					t.Errorf("stderr does not quote the URL as %s:\n%s", u.quoted, errOut)
				}
				for _, s := range []string{"lw-user", "lw-pass", "lw-token", "frag"} {
					if strings.Contains(out+errOut, s) {
						t.Errorf("output has %q:\n%s%s", s, out, errOut)
					}
				}
				noSecrets(t, out, errOut)
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					t.Errorf("a bad configuration created %s", e.Name())
				}
			})
		}
	}
}
