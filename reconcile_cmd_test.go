package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestReconcileCommand drives `leadwatch reconcile` against the real
// sandbox with no callback URL: the CRM walks every lead to a final
// status and tells nobody, so only the lookups can learn it.
func TestReconcileCommand(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testReconcileCommand(t, func(t *testing.T, location string) store.Store {
			return storetest.OpenPath(t, location, store.Options{})
		}, "")
	})
	t.Run("postgres", func(t *testing.T) {
		storetest.SkipWithoutPostgres(t)
		testReconcileCommand(t, func(t *testing.T, location string) store.Store {
			db, err := postgres.Open(context.Background(), location, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}, pgURL(t))
	})
}

// testReconcileCommand runs the scenario on the store at location ("" for
// cliEnv's SQLite file), opened by open for the test's own reads.
func testReconcileCommand(t *testing.T, open func(t *testing.T, location string) store.Store, location string) {
	envVars, sb := cliEnv(t, sandbox.Config{StatusDelay: time.Millisecond})
	if location != "" {
		envVars["LEADWATCH_DB"] = location
	}
	ctx := context.Background()
	leads := `{"external_id":"r-1","phone":"+380501234561"}
{"external_id":"r-2","phone":"+380501234562"}
{"external_id":"r-3","phone":"+380501234563"}
`
	if code, out, errOut := runCLI(t, envVars, leads, "submit", "--wait", "-"); code != 0 {
		t.Fatalf("submit --wait: exit %d\n%s%s", code, out, errOut)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sb.Sandbox.WaitIdle(waitCtx); err != nil {
		t.Fatal(err)
	}
	// A lead the store holds as accepted that the CRM does not know.
	db := open(t, envVars["LEADWATCH_DB"])
	if _, err := db.Enqueue(ctx, []byte(`{"external_id":"ghost","phone":"+380501234569"}`), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.Claim(ctx, "t", time.Now(), time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim ghost: %v %v", claimed, err)
	}
	if err := db.Record(ctx, "t", crm.AttemptResult{Attempt: crm.Attempt{LeadID: claimed[0].ID, Outcome: crm.StateAccepted, HTTPStatus: 200},
		CRMID: "crm_ghost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(ctx, []byte(`{"external_id":"waiting","phone":"+380501234570"}`), store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("NothingDueYet", func(t *testing.T) {
		code, out, errOut := runCLI(t, envVars, "", "reconcile")
		if code != 0 || !strings.Contains(out, "no lead is due") {
			t.Fatalf("exit %d\n%s%s; want 0 and nothing due (reconcile.after is 10 min)", code, out, errOut)
		}
	})
	t.Run("Since", func(t *testing.T) {
		code, out, errOut := runCLI(t, envVars, "", "reconcile", "--since", "0s")
		noSecrets(t, out, errOut)
		if strings.Contains(out+errOut, testPassword) {
			t.Fatal("the database password printed")
		}
		if code != 1 || !strings.Contains(out, "looked up 4: changed 3, not_found 1") ||
			!strings.Contains(errOut, "ghost: the CRM does not know this lead") || !strings.Contains(errOut, "progress: 4/4 looked up") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s; want 1, 3 changed, ghost not found, a progress line", code, out, errOut)
		}
		for _, id := range []string{"r-1", "r-2", "r-3"} {
			sr, ok := sb.Sandbox.Lookup(id)
			if !ok {
				t.Fatalf("the sandbox does not know %s", id)
			}
			l, err := db.Lead(ctx, id)
			if err != nil || l.CRMStatus != sr.Status {
				t.Errorf("%s: stored status %q, the CRM's %q (%v)", id, l.CRMStatus, sr.Status, err)
			}
		}
		c, err := db.Counts(ctx)
		if err != nil || c.Polled != 3 || c.CallbacksVerified != 0 {
			t.Fatalf("counts %+v %v; want 3 polled, no callback", c, err)
		}
	})
	t.Run("Named", func(t *testing.T) {
		code, out, errOut := runCLI(t, envVars, "", "reconcile", "r-1", "waiting", "nobody")
		if code != 1 || !strings.Contains(out, "r-1: ") || !strings.Contains(out, "(unchanged)") ||
			!strings.Contains(errOut, "waiting: not looked up: state queued") || !strings.Contains(errOut, "nobody: not in the store") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s; want r-1 unchanged, waiting and nobody refused, exit 1", code, out, errOut)
		}
	})
	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{{"reconcile", "--since", "1h", "r-1"}, {"reconcile", "--since", "soon"}} {
			if code, _, errOut := runCLI(t, envVars, "", args...); code != 2 {
				t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
			}
		}
	})
}
