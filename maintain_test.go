package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

func TestParseAge(t *testing.T) {
	const day = 24 * time.Hour
	good := map[string]time.Duration{
		"30d":   30 * day,
		"1d":    day,
		"72h":   72 * time.Hour,
		"90m":   90 * time.Minute,
		"1d12h": day + 12*time.Hour,
		"0d1s":  time.Second,
	}
	for in, want := range good {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0d", "-1h", "d", "30", "30days", "1.5d", "-3d", "1d-1h", "99999d", "x1d"} {
		if got, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) = %s, want an error", in, got)
		}
	}
}

// saveEvent stores a callback received at at, and returns its id.
func saveEvent(t *testing.T, db store.Store, internalID string, at time.Time) int64 {
	t.Helper()
	ev, err := crm.ParseCallback([]byte(fmt.Sprintf(`{"internal_id":%q,"event":"status_changed","status":"new","timestamp":1764200000}`, internalID)))
	if err != nil {
		t.Fatal(err)
	}
	ev.ReceivedAt = at
	if _, err := db.SaveCallbacks(context.Background(), []crm.CallbackEvent{ev}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Callbacks(context.Background(), crm.EventQuery{Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("stored callback: %v %v", evs, err)
	}
	return evs[0].ID
}

// TestPruneCommand: prune --older-than takes days, drops only what is
// older, says what it dropped, and keeps the events themselves.
func TestPruneCommand(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	ctx := context.Background()
	old := time.Now().Add(-40 * 24 * time.Hour)
	oldID := saveEvent(t, db, "crm-old", old)
	newID := saveEvent(t, db, "crm-new", time.Now())
	if err := db.SaveRefusal(ctx, crm.Refusal{At: old, Code: crm.ErrCodeBadSignature, Head: []byte(`{"internal_id":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{Code: crm.ErrCodeBadSignature, Head: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, envVars, "", "prune", "--older-than", "30d")
	if code != 0 || !strings.Contains(out, "1 raw callback bodies, 0 attempts, 1 refusals") {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
	}
	for id, wantBody := range map[int64]bool{oldID: false, newID: true} {
		ev, err := db.Callback(ctx, id)
		if err != nil {
			t.Fatalf("callback %d after prune: %v", id, err)
		}
		if got := len(ev.RawBody) > 0; got != wantBody {
			t.Errorf("callback %s keeps its raw body: %v, want %v", ev.InternalID, got, wantBody)
		}
	}
	refs, err := db.Refusals(ctx, crm.EventQuery{Limit: 10})
	if err != nil || len(refs) != 1 {
		t.Errorf("refusals after prune: %d %v, want the recent one", len(refs), err)
	}
	// Nothing older than a year: nothing to drop, and it says so.
	code, out, _ = runCLI(t, envVars, "", "prune", "--older-than", "365d")
	if code != 0 || !strings.Contains(out, "0 raw callback bodies, 0 attempts, 0 refusals (0 B)") {
		t.Fatalf("second prune: exit %d\n%s", code, out)
	}
}

// TestBackupCommand: backup writes a copy that opens as a store with the
// same data, says where and how big, and never overwrites.
func TestBackupCommand(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	if code, _, errOut := runCLI(t, envVars, `{"external_id":"bk-1","phone":"+380501234567"}`+"\n", "submit", "-"); code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	target := filepath.Join(t.TempDir(), "copy.db")
	code, out, errOut := runCLI(t, envVars, "", "backup", target)
	fi, err := os.Stat(target)
	if code != 0 || err != nil || out != fmt.Sprintf("backed up to %s (%s)\n", target, byteSize(fi.Size())) {
		t.Fatalf("backup: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the copy is %v, want 0600: it holds the same personal data", fi.Mode().Perm())
	}
	cp := storetest.OpenPath(t, target, store.Options{ReadOnly: true})
	if l, err := cp.Lead(context.Background(), "bk-1"); err != nil || l.State != crm.StateQueued {
		t.Fatalf("the copy's lead: %+v %v", l, err)
	}
	code, out, errOut = runCLI(t, envVars, "", "backup", target)
	if code != 1 || out != "" || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing file: exit %d\n%s%s", code, out, errOut)
	}
}

// TestForgetCommand: forget erases the lead's payload without asking,
// keeps the lead, and refuses an unknown id.
func TestForgetCommand(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	payload := `{"external_id":"fg-1","phone":"+380501234567","email":"someone@example.test"}`
	if code, _, errOut := runCLI(t, envVars, payload+"\n", "submit", "-"); code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	code, out, errOut := runCLI(t, envVars, "", "forget", "fg-1")
	if code != 0 || !strings.HasPrefix(out, "forgot fg-1: payload erased") || !strings.Contains(out, "still to be sent") {
		t.Fatalf("forget: exit %d\n%s%s", code, out, errOut)
	}
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{ReadOnly: true})
	l, err := db.Lead(context.Background(), "fg-1")
	if err != nil || strings.Contains(string(l.Payload), "380501234567") || strings.Contains(string(l.Payload), "someone@") {
		t.Fatalf("after forget: %q %v", l.Payload, err)
	}
	code, out, errOut = runCLI(t, envVars, "", "forget", "nobody")
	if code != 1 || out != "" || !strings.Contains(errOut, "not found") {
		t.Fatalf("forget of an unknown lead: exit %d\n%s%s", code, out, errOut)
	}
}
