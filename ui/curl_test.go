package ui

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
)

func TestShellQuote(t *testing.T) {
	cases := map[string]string{
		"":           "''",
		"plain":      "'plain'",
		"O'Brien":    `'O'\''Brien'`,
		`$HOME "x"`:  `'$HOME "x"'`,
		"''":         `''\'''\'''`,
		"a\nb\\c`d`": "'a\nb\\c`d`'",
	}
	for in, want := range cases {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCurlCommandInSh runs the snippet under sh with curl replaced by a
// function that prints its arguments, and checks that the body sent is
// byte for byte the stored payload, signed with the secret from the
// environment.
func TestCurlCommandInSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	const secret, apiKey = "s3cr3t from env", "key-from-env"
	payloads := map[string]string{
		"Simple":  `{"external_id":"ext-1","phone":"+4915112345678"}`,
		"Quotes":  `{"external_id":"ext-2","phone":"+49","first_name":"O'Brien","x":"'';$(rm -rf /)` + "`id`" + `"}`,
		"Unicode": `{"external_id":"ext-3","phone":"+49","city":"Zürich ✓ 東京","pad":"` + strings.Repeat("ü", 70) + `"}`,
		"Newline": "{\"external_id\":\"ext-4\",\n\"phone\":\"+49\"}\n",
		"Escapes": `{"external_id":"ext-5","phone":"+49","note":"back\\slash \"dq\" %s %%"}`,
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			lead := crm.Lead{ExternalID: "ext'; echo pwned #", Payload: []byte(payload), IdempotencyKey: "k'ey-1"}
			snippet := curlCommand(lead, "https://u:p@crm.example.test/api/?token=t")
			if strings.Contains(snippet, secret) || strings.Contains(snippet, apiKey) || strings.Contains(snippet, "u:p@") {
				t.Fatalf("snippet embeds a secret:\n%s", snippet)
			}
			script := "curl() { for a in \"$@\"; do printf '%s\\n--\\n' \"$a\"; done; }\n" + snippet
			cmd := exec.Command(sh, "-c", script)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "CARTELCRM_HMAC_SECRET=" + secret, "CARTELCRM_API_KEY=" + apiKey}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("sh: %v\n%s\n--- snippet:\n%s", err, out, snippet)
			}
			args := strings.Split(strings.TrimSuffix(string(out), "\n--\n"), "\n--\n")
			want := []string{
				"-sS", "-X", "POST", "https://crm.example.test/api/v1/inbound/leads",
				"-H", "Authorization: Bearer " + apiKey,
				"-H", "X-Signature: " + crm.Sign([]byte(secret), []byte(payload)),
			}
			for i, w := range want {
				if i >= len(args) || args[i] != w {
					t.Fatalf("arg %d = %q, want %q\nall: %q", i, at(args, i), w, args)
				}
			}
			if got := args[len(args)-1]; got != payload {
				t.Fatalf("body sent = %q, want %q", got, payload)
			}
			if !contains(args, "Idempotency-Key: k'ey-1") || !contains(args, "Content-Type: application/json") {
				t.Fatalf("headers: %q", args)
			}
			if strings.Contains(string(out), "pwned") {
				t.Fatal("the external id escaped its comment")
			}
		})
	}
	t.Run("BaseURLFromEnv", func(t *testing.T) {
		snippet := curlCommand(crm.Lead{Payload: []byte(`{}`), IdempotencyKey: "k"}, "https://crm.example.test")
		cmd := exec.Command(sh, "-c", "curl() { printf '%s\\n' \"$4\"; }\n"+snippet)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "CARTELCRM_BASE_URL=http://127.0.0.1:9999"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sh: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "http://127.0.0.1:9999/v1/inbound/leads" {
			t.Fatalf("url = %q", got)
		}
	})
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<missing>"
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
