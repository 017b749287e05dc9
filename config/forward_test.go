package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	goodForwardSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherForwardSecret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
)

func TestForwardValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(f *Forward)
		want string // "" = valid
	}{
		{"Off", func(f *Forward) { f.URL, f.Secret = "", "" }, ""},
		{"Good", func(*Forward) {}, ""},
		{"Rotation", func(f *Forward) { f.Secret = Secret(goodForwardSecret + "," + otherForwardSecret) }, ""},
		{"NoSecret", func(f *Forward) { f.Secret = "" }, "forward.secret (LEADWATCH_FORWARD_SECRET) is not set"},
		{"NotWhsec", func(f *Forward) { f.Secret = "hunter2plainpassword" }, "forward.secret is not whsec_"},
		{"BadRotationItem", func(f *Forward) { f.Secret = Secret(goodForwardSecret + ",whsec_hunter2!!") }, "forward.secret (item 2 of 2) is not whsec_"},
		{"OnlyCommas", func(f *Forward) { f.Secret = " , " }, "forward.secret holds no secret"},
		{"NotHTTP", func(f *Forward) { f.URL = "ftp://u:hunter2pw@app.example/hook?t=hunter2tok" }, `forward.url must be an absolute http(s) URL, not "ftp://app.example/hook"`},
		{"Relative", func(f *Forward) { f.URL = "/hook" }, "forward.url must be an absolute"},
		{"Timeout", func(f *Forward) { f.Timeout = 0 }, "forward.timeout must be positive"},
		{"MaxAttempts", func(f *Forward) { f.MaxAttempts = 0 }, "forward.max_attempts must be at least 1"},
		{"Concurrency", func(f *Forward) { f.Concurrency = 0 }, "forward.concurrency must be at least 1"},
		{"Delays", func(f *Forward) { f.MaxDelay = f.BaseDelay / 2 }, "max_delay ≥ base_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Forward.URL, c.Forward.Secret = "https://app.example/hooks/leadwatch", goodForwardSecret
			tt.mod(&c.Forward)
			err := c.Validate(NeedForward)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes a secret: %v", err)
			}
		})
	}
	// Without NeedForward (export, report …) a bad [forward] is no
	// concern of the command.
	c := Default()
	c.Forward.URL = "ftp://nope"
	if err := c.Validate(0); err != nil {
		t.Fatalf("Validate(0) = %v", err)
	}
}

func TestForwardSecretFromEnvAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lw.toml")
	body := "[forward]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"" + otherForwardSecret + "\"\nmax_attempts = 3\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(path, func(k string) string {
		if k == "LEADWATCH_FORWARD_SECRET" {
			return goodForwardSecret
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Forward.Secrets(); len(got) != 1 || got[0] != goodForwardSecret {
		t.Fatal("the environment's secret did not win over the file's")
	}
	if c.Forward.MaxAttempts != 3 || c.Forward.Timeout != Default().Forward.Timeout {
		t.Fatalf("forward = %+v", c.Forward)
	}
	if s := c.Forward.Secret.String(); strings.Contains(s, "whsec") {
		t.Fatalf("the secret prints as %q", s)
	}
}

// TestForwardSecretParseErrorHidden: a malformed secret line in the file
// is reported by line, never quoted.
func TestForwardSecretParseErrorHidden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lw.toml")
	if err := os.WriteFile(path, []byte("[forward]\nsecret = whsec_hunter2unquoted\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path, func(string) string { return "" })
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Load = %v", err)
	}
}
