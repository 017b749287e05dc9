package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// metricsConfig writes a config file that serves /metrics on addr.
func metricsConfig(t *testing.T, addr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "leadwatch.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("[metrics]\nlisten = %q\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loggedAddr waits for a log line of serve's that names an address after
// prefix (e.g. `metrics serving listen=`) and returns the address.
func loggedAddr(t *testing.T, log *logtest.Buffer, msg string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(msg) + `"? listen=(127\.0\.0\.1:\d+)`)
	var addr string
	poll.Until(t, msg+" in the log", func() bool {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return addr
}

// scrape GETs http://addr/metrics over loopback and parses it with the
// Prometheus text parser; it also returns the raw text.
func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d %v\n%s", resp.StatusCode, err, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parse the scrape: %v\n%s", err, raw)
	}
	return fams, string(raw)
}

// metricValue is the value of the series of family name whose labels
// include want; ok is false when there is no such series. A histogram's
// value is its sample count.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestServeMetrics: a real serve against the sandbox, a mixed run (leads
// accepted, rejected and invalid; the sandbox's verified callbacks; a
// replay, a bad signature, a stale timestamp and a bad payload sent by
// hand), then /metrics scraped over loopback and parsed: the store gauges
// equal Store.Counts, and the counters are what the run did.
func TestServeMetrics(t *testing.T) {
	listen := loopbackPort(t)
	cbURL := "http://" + listen + "/cartelcrm/callback"
	envVars, sb := cliEnv(t, sandbox.Config{
		CallbackURL:     cbURL,
		BlockCountries:  []string{"US"},
		StatusDelay:     20 * time.Millisecond,
		CallbackBackoff: 5 * time.Millisecond,
	})
	leads := strings.Join([]string{
		`{"external_id":"mx-1","phone":"+380501234567","country":"UA"}`,
		`{"external_id":"mx-2","phone":"+48512345678","country":"PL"}`,
		`{"external_id":"mx-3","phone":"+380501234599"}`,
		`{"external_id":"mx-4","phone":"+12025550123","country":"US"}`,
		`{"external_id":"mx-5","phone":"12"}`,
	}, "\n") + "\n"
	if code, out, errOut := runCLI(t, envVars, leads, "submit", "-"); code != 0 {
		t.Fatalf("submit: %d %s %s", code, out, errOut)
	}
	stderr, stop := startServe(t, envVars, "--listen", listen, "--config", metricsConfig(t, "127.0.0.1:0"))
	maddr := loggedAddr(t, stderr, "metrics serving")

	// Every accepted lead walks new → a middle status → a final one: three
	// callbacks each, all delivered once the sandbox is done.
	db := storetest.OpenPath(t, envVars["LEADWATCH_DB"], store.Options{})
	ctx := context.Background()
	poll.UntilWithin(t, 30*time.Second, "the leads to be final and their callbacks delivered", func() bool {
		c, err := db.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := sb.Sandbox.Stats()
		return c.States[crm.StateAccepted] == 3 && c.States[crm.StateRejected] == 1 &&
			c.States[crm.StateValidationError] == 1 && st.StatusChanges == 9 &&
			st.CallbacksDelivered == 9 && c.CallbacksVerified == 9
	})

	// By hand: a replay of a stored callback (fresh X-Timestamp), a bad
	// signature, a stale timestamp, and a signed body that is no callback.
	evs, err := db.CallbacksAfter(ctx, 0, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("stored callbacks: %v %v", evs, err)
	}
	secret := []byte(sandbox.TestCallbackSecret)
	post := func(body, secret []byte, at time.Time, want int) {
		t.Helper()
		req, err := crm.NewSignedCallback(cbURL, body, secret, at)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("posted %s: HTTP %d %s, want %d", body, resp.StatusCode, b, want)
		}
	}
	// The list leaves raw bodies out; the dedup key is the triple, so a
	// body with the same three parts is the same event.
	ts, err := strconv.ParseInt(evs[0].Timestamp, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(crm.CallbackBody{InternalID: evs[0].InternalID, Event: evs[0].Event, Timestamp: ts})
	post(again, secret, time.Now(), http.StatusOK)
	post([]byte(`{"internal_id":"x-1","event":"status_changed","timestamp":1}`), []byte("wrong"), time.Now(), http.StatusForbidden)
	post([]byte(`{"internal_id":"x-2","event":"status_changed","timestamp":2}`), secret, time.Now().Add(-time.Hour), http.StatusUnauthorized)
	post([]byte(`{"event":"status_changed"}`), secret, time.Now(), http.StatusBadRequest)
	// Refusals are stored off the request path: wait for the three.
	poll.Until(t, "the refusals to be stored", func() bool {
		c, err := db.Counts(ctx)
		return err == nil && c.Refusals == 3
	})

	fams, raw := scrape(t, maddr)
	counts, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]float64{
		"leadwatch_store_up":            1,
		"leadwatch_callbacks_stored":    float64(counts.CallbacksVerified),
		"leadwatch_callbacks_unmatched": float64(counts.CallbacksUnmatched),
		"leadwatch_refusals_stored":     float64(counts.Refusals),
	}
	for name, want := range gauges {
		if got, ok := metricValue(fams, name, nil); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, s := range crm.States {
		got, ok := metricValue(fams, "leadwatch_leads", map[string]string{"state": string(s)})
		if !ok || got != float64(counts.States[s]) {
			t.Errorf("leadwatch_leads{state=%q} = %v (present %v), want Counts' %d", s, got, ok, counts.States[s])
		}
	}
	// What the run did, counted by this process.
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"leadwatch_crm_attempts_total", map[string]string{"code": "2xx"}, 4}, // 3 accepted, 1 rejected
		{"leadwatch_crm_attempts_total", map[string]string{"code": "4xx"}, 1}, // 422 validation_error
		{"leadwatch_crm_attempts_total", map[string]string{"code": "5xx"}, 0},
		{"leadwatch_crm_attempts_total", map[string]string{"code": "none"}, 0},
		{"leadwatch_crm_attempt_duration_seconds", nil, 5},
		{"leadwatch_callbacks_verified_total", nil, 9},
		{"leadwatch_callbacks_replayed_total", nil, 1},
		{"leadwatch_callbacks_refused_total", map[string]string{"reason": "bad_signature"}, 1},
		{"leadwatch_callbacks_refused_total", map[string]string{"reason": "timestamp_out_of_range"}, 1},
		{"leadwatch_callbacks_refused_total", map[string]string{"reason": "invalid_payload"}, 1},
		{"leadwatch_callbacks_refused_total", map[string]string{"reason": "body_too_large"}, 0},
		{"leadwatch_callbacks_unavailable_total", nil, 0},
		{"leadwatch_callback_commit_failures_total", nil, 0},
	}
	for _, w := range want {
		if got, ok := metricValue(fams, w.name, w.labels); !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	// Every verified callback and the replay went through one group
	// commit each (the replay is the store's dedup hit): 10 events.
	if h := fams["leadwatch_callback_commit_events"].GetMetric()[0].GetHistogram(); h.GetSampleSum() != 10 || h.GetSampleCount() < 1 {
		t.Errorf("commit events: sum %v over %d commits, want 10", h.GetSampleSum(), h.GetSampleCount())
	}
	if n, _ := metricValue(fams, "leadwatch_callback_commit_duration_seconds", nil); n != float64(fams["leadwatch_callback_commit_events"].GetMetric()[0].GetHistogram().GetSampleCount()) {
		t.Errorf("commit duration has %v samples, commit events a different number", n)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("the scrape lacks %s (Go and process collectors)", name)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "leadwatch_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is not leadwatch_, go_ or process_", name)
		}
	}
	noSecrets(t, raw, stderr.String())
	if strings.Contains(raw, "mx-1") || strings.Contains(raw, "x-1") {
		t.Errorf("a lead or event id is in the scrape")
	}

	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
	// Stopped, serve has let go of the metrics port.
	ln, err := net.Listen("tcp", maddr)
	if err != nil {
		t.Fatalf("the metrics port is still held after serve stopped: %v", err)
	}
	ln.Close()
}

// TestMetricsPortTaken: a metrics port already taken stops serve and the
// dashboard at start with one line naming it, exit 1, before the
// listener binds; a malformed metrics.listen is a configuration error.
func TestMetricsPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"Serve", []string{"serve"}},
		{"Dashboard", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			envVars, _ := cliEnv(t, sandbox.Config{})
			listen := loopbackPort(t)
			args := append(c.args, "--config", metricsConfig(t, addr), "--listen", listen)
			code, out, errOut := runCLI(t, envVars, "", args...)
			want := "leadwatch: metrics listener: listen tcp " + addr + ": bind: address already in use\n"
			if code != 1 || !strings.HasSuffix(errOut, want) {
				t.Fatalf("exit %d, stderr %q, want it to end %q", code, errOut, want)
			}
			if c.args == nil && (errOut != want || out != "") {
				// The dashboard logs to its file: the terminal has the one line.
				t.Errorf("dashboard printed more than the error: stdout %q stderr %q", out, errOut)
			}
			// The callback listener was never bound.
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				t.Fatalf("the callback port is held after the failed start: %v", err)
			}
			ln.Close()
			noSecrets(t, out, errOut)
		})
	}
	t.Run("Malformed", func(t *testing.T) {
		envVars, _ := cliEnv(t, sandbox.Config{})
		code, _, errOut := runCLI(t, envVars, "", "serve", "--config", metricsConfig(t, "9464"))
		if code != 1 || !strings.Contains(errOut, `metrics.listen: "9464" is not HOST:PORT`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
