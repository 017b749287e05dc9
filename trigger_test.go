package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestTrigger runs `leadwatch trigger` against a real serve on loopback:
// each mode exits 0 on the answer it expects, and the store holds the
// stored callback (signed) or the refusal (the bad modes).
func TestTrigger(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	stderr, stop := startServe(t, envVars)
	addr := loggedAddr(t, stderr, "leadwatch serving")
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	ctx := context.Background()
	url := "http://" + addr // a bare base: trigger adds callbacks.path

	t.Run("Signed", func(t *testing.T) {
		before := time.Now().UnixMilli()
		code, out, errOut := runCLI(t, envVars, "", "trigger", "status_changed", "--external-id", "tg-1", "--status", "ftd", "--url", url)
		after := time.Now().UnixMilli()
		if code != 0 || !strings.Contains(out, "\nHTTP 200 {\"ok\":true}\n") || !strings.Contains(out, "POST "+url+"/cartelcrm/callback (signed,") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		noSecrets(t, out, errOut)
		evs, err := db.Callbacks(ctx, crm.EventQuery{Filter: "tg-1", Limit: 10})
		if err != nil || len(evs) != 1 {
			t.Fatalf("stored %+v %v", evs, err)
		}
		ev := evs[0]
		if ev.ExternalID != "tg-1" || ev.InternalID != "trigger-tg-1" || ev.Event != "status_changed" || ev.Status != "ftd" || ev.SecretIdx != 0 {
			t.Errorf("stored %+v", ev)
		}
		// The event timestamp is in milliseconds, and the listener reads
		// it so (an event time of now, not of 50,000 years ahead).
		ms, err := strconv.ParseInt(ev.Timestamp, 10, 64)
		if err != nil || ms < before || ms > after {
			t.Errorf("timestamp %q is not unix ms within [%d, %d]", ev.Timestamp, before, after)
		}
		if got := ev.EventTime.UnixMilli(); got != ms {
			t.Errorf("event time %v read from %s, want that millisecond", ev.EventTime, ev.Timestamp)
		}
	})

	t.Run("DefaultURL", func(t *testing.T) {
		// No --url: the configured listener, on loopback.
		env := copyEnv(envVars)
		env["LEADWATCH_LISTEN"] = addr
		code, out, errOut := runCLI(t, env, "", "trigger", "status_changed", "--external-id", "tg-2")
		if code != 0 || !strings.Contains(out, "POST http://"+addr+"/cartelcrm/callback ") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		evs, err := db.Callbacks(ctx, crm.EventQuery{Filter: "tg-2", Limit: 10})
		if err != nil || len(evs) != 1 || evs[0].Status != "" {
			t.Fatalf("stored %+v %v", evs, err)
		}
	})

	refusals := []struct {
		name, flag, answer, code, detail string
	}{
		{"BadSignature", "--bad-signature", "HTTP 403 {\"error\":\"bad_signature\"}", crm.CodeBadSignature, "signature made with none of the 1 secrets"},
		{"Stale", "--stale", "HTTP 401 {\"error\":\"timestamp_out_of_range\"}", crm.CodeTimestampRange, "clock skew of 600 s (tolerance 300 s)"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			id := "tg-" + strings.ToLower(r.name)
			code, out, errOut := runCLI(t, envVars, "", "trigger", "status_changed", "--external-id", id, r.flag, "--url", url)
			if code != 0 || !strings.Contains(out, r.answer) {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			noSecrets(t, out, errOut)
			// Refusals are stored off the request path.
			var found *crm.Refusal
			poll.Until(t, "the refusal to be stored", func() bool {
				rs, err := db.Refusals(ctx, crm.EventQuery{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				for i := range rs {
					if strings.Contains(string(rs[i].Head), id) {
						found = &rs[i]
						return true
					}
				}
				return false
			})
			if found.Code != r.code || found.Detail != r.detail {
				t.Errorf("refusal %s %q, want %s %q", found.Code, found.Detail, r.code, r.detail)
			}
			if evs, _ := db.Callbacks(ctx, crm.EventQuery{Filter: id, Limit: 10}); len(evs) != 0 {
				t.Errorf("a refused trigger was stored: %+v", evs)
			}
		})
	}

	t.Run("WrongSecret", func(t *testing.T) {
		// The listener's secrets lack this one: a signed trigger is
		// refused, and trigger says so and exits 1.
		env := copyEnv(envVars)
		env["CALLBACK_SECRET"] = "another-secret"
		code, out, errOut := runCLI(t, env, "", "trigger", "status_changed", "--external-id", "tg-w", "--url", url)
		if code != 1 || !strings.Contains(out, "HTTP 403") || !strings.Contains(errOut, "answered 403, not the 200") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, "another-secret") {
			t.Errorf("the secret was printed")
		}
	})

	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
}

// TestTriggerNotAListener: a server that takes anything fails the bad
// modes (the refusal they expect did not come), and one that is not there
// is a one-line failure.
func TestTriggerNotAListener(t *testing.T) {
	yes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer yes.Close()
	env := map[string]string{"CALLBACK_SECRET": sandbox.TestCallbackSecret}
	for _, flag := range []string{"--bad-signature", "--stale"} {
		code, out, errOut := runCLI(t, env, "", "trigger", "e", "--external-id", "x", flag, "--url", yes.URL+"/cb")
		if code != 1 || !strings.Contains(out, "HTTP 200 ok") || !strings.Contains(errOut, "answered 200") {
			t.Errorf("%s against a yes-server: exit %d\n%s%s", flag, code, out, errOut)
		}
	}
	code, _, errOut := runCLI(t, env, "", "trigger", "e", "--external-id", "x", "--url", "http://"+loopbackPort(t))
	if code != 1 || !strings.Contains(errOut, "connection refused") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("nobody listening: exit %d %q", code, errOut)
	}
}

func TestTriggerUsage(t *testing.T) {
	env := map[string]string{"CALLBACK_SECRET": sandbox.TestCallbackSecret}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"NoEvent", env, []string{"trigger", "--external-id", "x"}, 2, "need one EVENT"},
		{"NoExternalID", env, []string{"trigger", "status_changed"}, 2, "need --external-id ID"},
		{"BothBadModes", env, []string{"trigger", "e", "--external-id", "x", "--bad-signature", "--stale"}, 2, "pick one"},
		{"BadURL", env, []string{"trigger", "e", "--external-id", "x", "--url", "ftp://u:p@h/x"}, 2, `--url must be an absolute http(s) URL, not "ftp://h/x"`},
		{"NoSecret", nil, []string{"trigger", "e", "--external-id", "x"}, 1, "callbacks.secrets (CALLBACK_SECRET) is not set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.env, "", c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errOut, c.code, c.want)
			}
		})
	}
}

func copyEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
