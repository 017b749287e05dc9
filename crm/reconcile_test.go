package crm_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// outcomeCounter is a LookupObserver that counts.
type outcomeCounter struct {
	mu sync.Mutex
	n  map[crm.LookupOutcome]int
}

func (c *outcomeCounter) Looked(o crm.LookupOutcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[crm.LookupOutcome]int{}
	}
	c.n[o]++
}

func (c *outcomeCounter) get(o crm.LookupOutcome) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[o]
}

// TestReconcileHealsLostCallbacks is the test: the real sandbox
// drops 30% of its callbacks (never delivered, not retried) to a real
// listener over loopback; after the run every lead's stored CRM status is
// the sandbox's, healed by status lookups, and the polled statuses are
// counted apart from the callbacks.
func TestReconcileHealsLostCallbacks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testHealsLostCallbacks(t, storetest.Open(t, store.Options{})) })
	t.Run("postgres", func(t *testing.T) {
		storetest.SkipWithoutPostgres(t)
		db, err := postgres.Open(context.Background(), storetest.Postgres(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		testHealsLostCallbacks(t, db)
	})
}

func testHealsLostCallbacks(t *testing.T, db store.Store) {
	const n = 60
	ctx := context.Background()
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: [][]byte{[]byte(sandbox.TestCallbackSecret)}}, db)
	if err != nil {
		t.Fatal(err)
	}
	listener := httptest.NewServer(h)
	t.Cleanup(func() {
		listener.Close()
		h.Close()
	})
	sb := sandbox.StartTest(t, sandbox.Config{
		CallbackURL:      listener.URL + callbacks.DefaultPath,
		CallbackLossRate: 0.3,
		StatusDelay:      2 * time.Millisecond,
		CallbackBackoff:  time.Millisecond,
		Seed:             12,
	})
	client := newClient(t, sb.URL)
	for i := range n {
		p := fmt.Appendf(nil, `{"external_id":"h-%02d","phone":"+3805012%05d"}`, i, i)
		if _, err := db.Enqueue(ctx, p, store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, stop := run(t, db, client, crm.DispatcherConfig{Concurrency: 8, IdleCheck: 10 * time.Millisecond})
	poll.Until(t, "every lead accepted", func() bool {
		c, err := db.Counts(ctx)
		return err == nil && c.States[crm.StateAccepted] == n
	})
	stop()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sb.Sandbox.WaitIdle(waitCtx); err != nil {
		t.Fatalf("sandbox lifecycles: %v", err)
	}
	st := sb.Sandbox.Stats()
	if st.CallbacksLost == 0 {
		t.Fatal("the sandbox lost no callback at 30% loss: the test would prove nothing")
	}

	// The truth is the sandbox's; before reconciling some leads must be
	// wrong, or the healing below proves nothing.
	truth := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("h-%02d", i)
		sr, err := client.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		truth[id] = sr.Status
	}
	wrong := func() []string {
		var out []string
		for id, want := range truth {
			l, err := db.Lead(ctx, id)
			if err != nil || l.CRMStatus != want {
				out = append(out, id)
			}
		}
		return out
	}
	before := wrong()
	if len(before) == 0 {
		t.Fatalf("no lead lacks its final status after %d lost callbacks", st.CallbacksLost)
	}
	t.Logf("sandbox lost %d of %d callbacks; %d of %d leads without their status before reconciling",
		st.CallbacksLost, st.StatusChanges, len(before), n)
	verifiedBefore, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}

	obs := &outcomeCounter{}
	rec := crm.NewReconciler(db, client, crm.ReconcilerConfig{
		After: time.Millisecond, Stale: time.Millisecond, Rate: 1000, Concurrency: 4,
		IdleCheck: 10 * time.Millisecond,
	})
	rec.SetObserver(obs)
	recCtx, recStop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rec.Run(recCtx) }()
	// Healed, and every polled status stored was reported as a change: the
	// lookups still running then find nothing to change. (Stopping while a
	// change is being stored could leave its outcome unreported.)
	poll.Until(t, "every lead's status healed and each polled status counted", func() bool {
		if len(wrong()) != 0 {
			return false
		}
		c, err := db.Counts(ctx)
		return err == nil && c.Polled == obs.get(crm.LookupChanged)
	})
	recStop()
	if err := <-done; err != nil {
		t.Fatalf("reconciler: %v", err)
	}

	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Polled < len(before) || c.Polled != obs.get(crm.LookupChanged) {
		t.Fatalf("polled %d, changed lookups %d; want at least the %d leads that were wrong", c.Polled, obs.get(crm.LookupChanged), len(before))
	}
	if c.CallbacksVerified != verifiedBefore.CallbacksVerified {
		t.Fatalf("callbacks verified went from %d to %d: polled statuses counted as callbacks", verifiedBefore.CallbacksVerified, c.CallbacksVerified)
	}
	for _, o := range []crm.LookupOutcome{crm.LookupNotFound, crm.LookupInvalid, crm.LookupFailed} {
		if got := obs.get(o); got != 0 {
			t.Errorf("%d lookups %s against the sandbox", got, o)
		}
	}
	// A healed lead's timeline has the polled status, marked.
	d, err := db.LeadDetail(ctx, before[0])
	if err != nil {
		t.Fatal(err)
	}
	last := d.Callbacks[len(d.Callbacks)-1]
	if last.Kind != crm.KindPolled || last.Status != truth[before[0]] || !strings.Contains(string(last.RawBody), `"event":"status_polled"`) {
		t.Fatalf("healed lead %s: last timeline entry %+v, want the polled %s", before[0], last, truth[before[0]])
	}
}

// acceptedLeads stores leads ids as accepted by the CRM, as the
// dispatcher would have.
func acceptedLeads(t *testing.T, db *sqlite.DB, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for i, id := range ids {
		p := fmt.Appendf(nil, `{"external_id":%q,"phone":"+3805013%05d"}`, id, i)
		if _, err := db.Enqueue(ctx, p, store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	leads, err := db.Claim(ctx, "t", time.Now(), time.Minute, len(ids))
	if err != nil || len(leads) != len(ids) {
		t.Fatalf("claim: %d, %v", len(leads), err)
	}
	for _, l := range leads {
		r := crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, HTTPStatus: 200, StartedAt: time.Now()},
			CRMID: "crm-" + l.ExternalID}
		if err := db.Record(ctx, "t", r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReconcileBadAnswers: a status lookup that answers garbage, 404, an
// empty or oversized status, another lead's status or a 500 for a lead the
// CRM accepted stores nothing, changes no status, is counted by its
// outcome, and does not stop the other lookups; the lead is not asked
// again before its interval.
func TestReconcileBadAnswers(t *testing.T) {
	ctx := context.Background()
	updated := time.Now().UTC().Format(time.RFC3339)
	answers := map[string]struct {
		code int
		body string
		want crm.LookupOutcome
	}{
		"garbage":   {200, `{{{ not json`, crm.LookupInvalid},
		"wrongtype": {200, `{"external_id":"wrongtype","status":42}`, crm.LookupInvalid},
		"gone":      {404, `{"error":"not_found"}`, crm.LookupNotFound},
		"empty":     {200, `{"external_id":"empty","id":"x","status":"","updated_at":"` + updated + `"}`, crm.LookupInvalid},
		"control":   {200, `{"external_id":"control","status":"ftd\u0000\n","updated_at":"` + updated + `"}`, crm.LookupInvalid},
		"long":      {200, `{"external_id":"long","status":"` + strings.Repeat("s", crm.MaxPolledStatusBytes+1) + `"}`, crm.LookupInvalid},
		"huge":      {200, `{"external_id":"huge","status":"` + strings.Repeat("x", crm.DefaultMaxResponseBytes) + `"}`, crm.LookupInvalid},
		"other":     {200, `{"external_id":"someone-else","status":"ftd","updated_at":"` + updated + `"}`, crm.LookupInvalid},
		"down":      {500, `{"error":"internal"}`, crm.LookupFailed},
		"fine":      {200, `{"external_id":"fine","id":"crm-fine","status":"interested","reason":null,"updated_at":"` + updated + `"}`, crm.LookupChanged},
	}
	crmSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, crm.PathLeads+"/"), "/status")
		a, ok := answers[id]
		if !ok || r.Method != http.MethodGet || r.Header.Get(crm.HeaderSignature) == "" {
			http.Error(w, `{"error":"unexpected"}`, http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.code)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(crmSrv.Close)
	db := storetest.Open(t, store.Options{})
	var ids []string
	for id := range answers {
		ids = append(ids, id)
	}
	acceptedLeads(t, db, ids...)

	obs := &outcomeCounter{}
	rec := crm.NewReconciler(db, newClient(t, crmSrv.URL), crm.ReconcilerConfig{Rate: 1000})
	rec.SetObserver(obs)
	q := rec.Query(time.Now().Add(time.Hour))
	leads, err := rec.Claim(ctx, q, 0)
	if err != nil || len(leads) != len(answers) {
		t.Fatalf("claim: %d leads, %v; want %d", len(leads), err, len(answers))
	}
	got := map[string]crm.LookupOutcome{}
	sum := rec.LookUp(ctx, leads, func(r crm.LookupResult) {
		got[r.Lead.ExternalID] = r.Outcome
		if (r.Outcome == crm.LookupChanged) != (r.Err == nil) {
			t.Errorf("%s: outcome %s with error %v", r.Lead.ExternalID, r.Outcome, r.Err)
		}
	})
	for id, a := range answers {
		if got[id] != a.want {
			t.Errorf("%s: outcome %q, want %q", id, got[id], a.want)
		}
		l, err := db.LeadDetail(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus, wantRows := "", 0
		if a.want == crm.LookupChanged {
			wantStatus, wantRows = "interested", 1
		}
		if l.Lead.CRMStatus != wantStatus || len(l.Callbacks) != wantRows {
			t.Errorf("%s: crm status %q with %d timeline rows, want %q and %d", id, l.Lead.CRMStatus, len(l.Callbacks), wantStatus, wantRows)
		}
	}
	if sum.Total() != len(answers) || sum[crm.LookupInvalid] != 7 || obs.get(crm.LookupInvalid) != 7 || obs.get(crm.LookupNotFound) != 1 {
		t.Fatalf("summary %v, observer %v", sum, obs.n)
	}
	c, err := db.Counts(ctx)
	if err != nil || c.Polled != 1 || c.CallbacksVerified != 0 {
		t.Fatalf("counts %+v, %v; want polled 1, no callback", c, err)
	}
	// Not asked again at once: the next lookup waits for reconcile.after.
	if again, err := rec.Claim(ctx, rec.Query(q.Now.Add(time.Minute)), 0); err != nil || len(again) != 0 {
		t.Fatalf("claim a minute later: %d leads, %v; want none", len(again), err)
	}
	if again, err := rec.Claim(ctx, rec.Query(q.Now.Add(11*time.Minute)), 0); err != nil || len(again) != len(answers)-1 {
		t.Fatalf("claim 11 minutes later: %d leads, %v; want the %d without a status", len(again), err, len(answers)-1)
	}
}
