package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// issueSeries are the series issue 12 item 4 names, each with the label
// values it must carry: the store gauges, then this process's counters.
var issueSeries = []struct {
	name   string
	label  string
	values []string
}{
	{"leadwatch_leads", "state", statesOf(crm.States)},
	{"leadwatch_callbacks_stored", "", nil},
	{"leadwatch_forward_queue_depth", "", nil},
	{"leadwatch_crm_attempts_total", "code", []string{"2xx", "3xx", "4xx", "5xx", "none"}},
	{"leadwatch_crm_attempt_duration_seconds", "", nil},
	{"leadwatch_callbacks_verified_total", "", nil},
	{"leadwatch_callbacks_replayed_total", "", nil},
	{"leadwatch_callbacks_refused_total", "reason", []string{crm.CodeBodyTooLarge, crm.CodeTimestampRange, crm.CodeBadSignature, crm.CodeInvalidPayload}},
	{"leadwatch_callback_commit_duration_seconds", "", nil},
	{"leadwatch_forward_deliveries_total", "", nil},
	{"leadwatch_forward_failures_total", "", nil},
	{"leadwatch_reconcile_lookups_total", "outcome", statesOf(crm.LookupOutcomes)},
}

func statesOf[S ~string](ss []S) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TestMetricsMixedRunAllParts: a real serve with every part on — the
// sender, the listener, forwarding to an app that fails a third of the
// deliveries, reconcile looking leads up — and a bad signature sent by
// hand. Then /metrics, scraped and parsed: every series issue 12 names
// is there with all its labels; the store gauges equal Counts, and the
// forward queue depth ForwardStats, each read on both sides of a scrape
// that nothing changed in between; the forward counters add up to the
// requests the app got, and lookups were counted.
func TestMetricsMixedRunAllParts(t *testing.T) {
	skipWithoutForwarding(t)
	listen := loopbackPort(t)
	cbURL := "http://" + listen + "/cartelcrm/callback"
	envVars, sb := cliEnv(t, sandbox.Config{
		CallbackURL:     cbURL,
		BlockCountries:  []string{"US"},
		StatusDelay:     20 * time.Millisecond,
		CallbackBackoff: 5 * time.Millisecond,
		// The callbacks start before serve listens; eight attempts (the
		// default) span 0.6 s, less than serve's start under the race
		// detector, and a callback given up never comes.
		CallbackAttempts: 50,
	})
	app, appSrv := newWebhookApp(t, 0.33, uint64(time.Now().UnixNano()))
	cfg := filepath.Join(t.TempDir(), "leadwatch.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[metrics]
listen = "127.0.0.1:0"
[forward]
url = %q
secret = %q
base_delay = "5ms"
max_delay = "20ms"
max_attempts = 50
[reconcile]
enabled = true
after = "1ms"
stale = "1ms"
rate = 100.0
final = ["never"]
`, appSrv.URL, testForwardSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	leads := strings.Join([]string{
		`{"external_id":"ms-1","phone":"+380501234567","country":"UA"}`,
		`{"external_id":"ms-2","phone":"+48512345678","country":"PL"}`,
		`{"external_id":"ms-3","phone":"+12025550123","country":"US"}`,
		`{"external_id":"ms-4","phone":"12"}`,
	}, "\n") + "\n"
	// Sent before serve starts, so reconcile's first pass (at start) finds
	// accepted leads to look up; the sandbox redelivers the callbacks it
	// could not deliver meanwhile.
	if code, out, errOut := runCLI(t, envVars, leads, "submit", "--wait", "-"); code != 1 {
		t.Fatalf("submit: %d %s %s", code, out, errOut)
	}
	stderr, stop := startServe(t, envVars, "--listen", listen, "--config", cfg)
	maddr := loggedAddr(t, stderr, "metrics serving")
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	ctx := context.Background()
	poll.UntilWithin(t, 2*time.Minute, "the leads final, their callbacks stored and forwarded", func() bool {
		c, err := db.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := sb.Sandbox.Stats()
		return c.States[crm.StateAccepted] == 2 && st.CallbacksDelivered == st.StatusChanges && st.StatusChanges == 6 &&
			c.CallbacksVerified == 6 && app.acceptedCount() >= 6
	})
	post := func(body string, secret []byte) {
		t.Helper()
		req, err := crm.NewSignedCallback(cbURL, []byte(body), secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post(`{"internal_id":"x","event":"status_changed","timestamp":1}`, []byte("not the secret"))
	poll.Until(t, "the refusal stored", func() bool { c, err := db.Counts(ctx); return err == nil && c.Refusals == 1 })

	// The scrape, between two identical readings of the store.
	var fams map[string]*dto.MetricFamily
	var counts crm.Counts
	var fwd crm.ForwardStats
	poll.UntilWithin(t, 2*time.Minute, "a scrape the store did not change under", func() bool {
		c1, err1 := db.Counts(ctx)
		f1, err2 := db.ForwardStats(ctx)
		fams, _ = scrape(t, maddr)
		c2, err3 := db.Counts(ctx)
		f2, err4 := db.ForwardStats(ctx)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		counts, fwd = c2, f2
		// Drained (nothing queued, in flight or yet to be moved into the
		// queue), so every attempt the app answered is counted too.
		return reflect.DeepEqual(c1, c2) && f1 == f2 && f2.Pending+f2.InFlight+f2.Lag == 0
	})
	for _, s := range issueSeries {
		if s.label == "" {
			if _, ok := metricValue(fams, s.name, nil); !ok {
				t.Errorf("the scrape lacks %s", s.name)
			}
			continue
		}
		for _, v := range s.values {
			if _, ok := metricValue(fams, s.name, map[string]string{s.label: v}); !ok {
				t.Errorf("the scrape lacks %s{%s=%q}", s.name, s.label, v)
			}
		}
	}
	gauges := map[string]float64{
		"leadwatch_callbacks_stored":    float64(counts.CallbacksVerified),
		"leadwatch_callbacks_unmatched": float64(counts.CallbacksUnmatched),
		"leadwatch_refusals_stored":     float64(counts.Refusals),
		"leadwatch_forward_queue_depth": float64(fwd.Pending + fwd.InFlight + fwd.Lag),
		"leadwatch_forward_failed":      float64(fwd.Failed),
	}
	for name, want := range gauges {
		if got, _ := metricValue(fams, name, nil); got != want {
			t.Errorf("%s = %v, want the store's %v", name, got, want)
		}
	}
	for _, s := range crm.States {
		if got, _ := metricValue(fams, "leadwatch_leads", map[string]string{"state": string(s)}); got != float64(counts.States[s]) {
			t.Errorf("leadwatch_leads{state=%q} = %v, want Counts' %d", s, got, counts.States[s])
		}
	}
	delivered, _ := metricValue(fams, "leadwatch_forward_deliveries_total", nil)
	failures, _ := metricValue(fams, "leadwatch_forward_failures_total", nil)
	// Every request the app answered is one attempt counted: its 200s
	// deliveries, its 503s (and 401s, none expected) failures.
	app.mu.Lock()
	okAnswers, failAnswers := len(app.accepted)+app.dups, app.failed+int(app.badSig.Load())
	app.mu.Unlock()
	if delivered != float64(okAnswers) || failures != float64(failAnswers) || delivered < 6 {
		t.Errorf("forward deliveries %v, failures %v; the app answered %d 200s and %d errors (6 callbacks at least)",
			delivered, failures, okAnswers, failAnswers)
	}
	var lookups float64
	for _, o := range crm.LookupOutcomes {
		n, _ := metricValue(fams, "leadwatch_reconcile_lookups_total", map[string]string{"outcome": string(o)})
		lookups += n
	}
	t.Logf("forwarded %v, failed attempts %v, app requests %d; lookups %v; counts %+v", delivered, failures, app.requests.Load(), lookups, counts)
	if lookups < 1 {
		t.Errorf("no reconcile lookup counted (two accepted leads due at serve's start)")
	}
	if got, _ := metricValue(fams, "leadwatch_callbacks_refused_total", map[string]string{"reason": crm.CodeBadSignature}); got != 1 {
		t.Errorf("refused bad_signature = %v, want 1", got)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
}
