package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

func TestForwardCommandUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "x.db")
	for _, tt := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"Argument", []string{"forward", "--db", db, "12"}, `unexpected argument "12" (to replay callbacks: --replay ID…)`},
		{"SinceWithoutReplay", []string{"forward", "--db", db, "--since", "1h"}, "--since goes with --replay"},
		{"ReplayNothing", []string{"forward", "--db", db, "--replay"}, "--replay needs callback IDs or --since D"},
		{"ReplayBadID", []string{"forward", "--db", db, "--replay", "crm-9"}, `"crm-9" is not a callback id`},
		{"ReplayBadSince", []string{"forward", "--db", db, "--replay", "--since", "soon"}, "--since:"},
		{"ReplayJSON", []string{"forward", "--db", db, "--replay", "--json", "1"}, "--json goes without --replay"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, "", tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.stderr)
			}
		})
	}
}

func TestParseCallbackIDs(t *testing.T) {
	ids, err := parseCallbackIDs([]string{"12", "cb_7"})
	if err != nil || len(ids) != 2 || ids[0] != 12 || ids[1] != 7 {
		t.Fatalf("parseCallbackIDs = %v, %v", ids, err)
	}
	for _, bad := range []string{"0", "-3", "cb_", "cb_x", "1.5"} {
		if _, err := parseCallbackIDs([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestForwardToNeedsSecret: --forward-to without a secret is a clear
// error naming where to set it, and no secret is made up and printed; a
// malformed one is refused without being quoted.
func TestForwardToNeedsSecret(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	for _, tt := range []struct {
		name, secret, want string
	}{
		{"Missing", "", "forward.secret (LEADWATCH_FORWARD_SECRET) is not set"},
		{"NotWhsec", "hunter2hunter2hunter2", "forward.secret is not whsec_"},
	} {
		for _, args := range [][]string{
			{"serve", "--listen", "127.0.0.1:0", "--forward-to", "http://127.0.0.1:9/hook"},
			{"--no-listen", "--no-send", "--forward-to", "http://127.0.0.1:9/hook"},
		} {
			t.Run(tt.name+"/"+args[0], func(t *testing.T) {
				env := map[string]string{}
				for k, v := range envVars {
					env[k] = v
				}
				if tt.secret != "" {
					env["LEADWATCH_FORWARD_SECRET"] = tt.secret
				}
				code, stdout, stderr := runCLI(t, env, "", args...)
				if code != 1 || !strings.Contains(stderr, tt.want) {
					t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
				}
				if strings.Contains(stdout+stderr, "whsec_") && !strings.Contains(stderr, "not whsec_") {
					t.Fatalf("a secret was printed: %s%s", stdout, stderr)
				}
				if tt.secret != "" && strings.Contains(stdout+stderr, tt.secret) {
					t.Fatalf("the secret was quoted: %s", stderr)
				}
			})
		}
	}
	t.Run("BadURL", func(t *testing.T) {
		env := map[string]string{"LEADWATCH_FORWARD_SECRET": testForwardSecret}
		for k, v := range envVars {
			env[k] = v
		}
		code, _, stderr := runCLI(t, env, "", "serve", "--listen", "127.0.0.1:0", "--forward-to", "app.example/hook")
		if code != 1 || !strings.Contains(stderr, `forward.url must be an absolute http(s) URL, not "app.example/hook"`) {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestForwardCommandOnStore: `leadwatch forward` prints a real store's
// queue, `--replay` queues stored callbacks again, by id (as export shows
// it, or cb_ID) or by age, and --json is one object.
func TestForwardCommandOnStore(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "fwd.db")
	db := storetest.OpenPath(t, dbPath, store.Options{})
	ctx := context.Background()
	if err := db.StartForwarding(ctx); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the SQLite store has no delivery queue yet")
	} else if err != nil {
		t.Fatal(err)
	}
	var evs []crm.CallbackEvent
	for i := range 3 {
		ev, err := crm.ParseCallback([]byte(fmt.Sprintf(`{"internal_id":"crm-%d","event":"status_changed","status":"ftd","timestamp":%d}`, i, 1764200000+i)))
		if err != nil {
			t.Fatal(err)
		}
		ev.ReceivedAt = time.Now()
		evs = append(evs, ev)
	}
	if _, err := db.SaveCallbacks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	stored, err := db.CallbacksAfter(ctx, 0, 10)
	if err != nil || len(stored) != 3 {
		t.Fatalf("stored %v, %v", stored, err)
	}
	env := map[string]string{"LEADWATCH_DB": dbPath}

	code, stdout, stderr := runCLI(t, env, "", "forward")
	if code != 0 || !strings.Contains(stdout, "pending") || !strings.Contains(stdout, "(forward.url unset here)") {
		t.Fatalf("forward: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "", "forward", "--replay", fmt.Sprint(stored[0].ID), fmt.Sprintf("cb_%d", stored[1].ID))
	if code != 0 || !strings.Contains(stdout, "queued 2 callback(s)") {
		t.Fatalf("replay by id: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "", "forward", "--replay", "--since", "1h")
	if code != 0 || !strings.Contains(stdout, "queued 3 callback(s)") {
		t.Fatalf("replay --since: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "", "forward", "--json")
	var st struct {
		Enabled bool `json:"enabled"`
		Pending int  `json:"pending"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || !st.Enabled || st.Pending < 5 {
		t.Fatalf("forward --json: exit %d, %+v\n%s%s", code, st, stdout, stderr)
	}
}
