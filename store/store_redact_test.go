package store

import "testing"

func TestRedact(t *testing.T) {
	if got := RedactSecret(`connect "postgres://u:pw@h/db" as u (pw)`, "pw"); got != `connect "postgres://u:REDACTED@h/db" as u (REDACTED)` {
		t.Errorf("RedactSecret: %q", got)
	}
	if got := RedactSecret("no secret here", ""); got != "no secret here" {
		t.Errorf("RedactSecret with no secret changed the text: %q", got)
	}
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:REDACTED@h:5432/db?sslmode=disable",
		"postgresql://h/db?password=pw&x=1":         "postgresql://h/db?password=REDACTED&x=1",
		"postgres://u@h/db":                         "postgres://u@h/db",
		"/var/lib/leadwatch.db":                     "/var/lib/leadwatch.db",
	} {
		if got := RedactLocation(in); got != want {
			t.Errorf("RedactLocation(%q) = %q, want %q", in, got, want)
		}
	}
}
