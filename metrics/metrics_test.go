package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
)

// countsSource is a Source whose answer a test sets; it counts the reads.
// The store's own Counts is tested with the store; here what matters is
// what the collector makes of an answer.
type countsSource struct {
	counts crm.Counts
	err    error
	reads  atomic.Int64
}

func (s *countsSource) Counts(context.Context) (crm.Counts, error) {
	s.reads.Add(1)
	return s.counts, s.err
}

// serve starts m on a loopback port for the test's life.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv.Addr()
}

// scrape GETs /metrics and parses the text format.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d\n%s", resp.StatusCode, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, raw)
	}
	return fams
}

// value is the series of name with the label pair (or none), as a float;
// a histogram gives its count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name, label, v string) float64 {
	t.Helper()
	for _, m := range fams[name].GetMetric() {
		ok := label == ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == v {
				ok = true
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, v)
	return 0
}

func TestStoreGauges(t *testing.T) {
	src := &countsSource{counts: crm.Counts{
		States: map[crm.State]int{
			crm.StateQueued: 7, crm.StateAccepted: 3, crm.StateFailed: 1,
			"parked": 2, // a state a newer build knows
		},
		CallbacksVerified: 12, CallbacksUnmatched: 2, Refusals: 5,
	}}
	addr := serve(t, New(src, nil))
	before := src.reads.Load()
	fams := scrape(t, addr)
	if n := src.reads.Load() - before; n != 1 {
		t.Errorf("one scrape read Counts %d times, want once", n)
	}
	for _, s := range crm.States {
		if got := value(t, fams, "leadwatch_leads", "state", string(s)); got != float64(src.counts.States[s]) {
			t.Errorf("leads{state=%s} = %v, want %d", s, got, src.counts.States[s])
		}
	}
	for name, want := range map[string]float64{
		"leadwatch_store_up": 1, "leadwatch_callbacks_stored": 12,
		"leadwatch_callbacks_unmatched": 2, "leadwatch_refusals_stored": 5,
	} {
		if got := value(t, fams, name, "", ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "leadwatch_leads", "state", "parked"); got != 2 {
		t.Errorf("an unknown state is left out or wrong: %v", got)
	}
	// No listener in this process: its counters are absent, not zero.
	if _, ok := fams["leadwatch_callbacks_verified_total"]; ok {
		t.Errorf("listener counters without a listener")
	}
}

// TestStoreDown: a store that cannot answer leaves its gauges out, says
// so in leadwatch_store_up, and the rest of the scrape is served.
func TestStoreDown(t *testing.T) {
	m := New(&countsSource{err: errors.New("database is locked")}, nil)
	m.Attempted(200, time.Millisecond)
	fams := scrape(t, serve(t, m))
	if got := value(t, fams, "leadwatch_store_up", "", ""); got != 0 {
		t.Errorf("store_up = %v with a failing store", got)
	}
	if _, ok := fams["leadwatch_leads"]; ok {
		t.Errorf("lead gauges served from a failed read")
	}
	if got := value(t, fams, "leadwatch_crm_attempts_total", "code", "2xx"); got != 1 {
		t.Errorf("the counters went with the store: 2xx = %v", got)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("the Go collector went with the store")
	}
}

func TestObservers(t *testing.T) {
	m := New(&countsSource{}, nil)
	for _, c := range []int{200, 200, 302, 404, 422, 503, 0, 0, 0, 101} {
		m.Attempted(c, 40*time.Millisecond)
	}
	for _, c := range []string{crm.CodeBadSignature, crm.CodeBadSignature, crm.CodeTimestampRange, "made_up"} {
		m.Refused(c)
	}
	m.Committed(3, 2*time.Millisecond, nil)
	m.Committed(256, 5*time.Second, errors.New("disk full"))
	var stats atomic.Pointer[callbacks.Stats]
	stats.Store(&callbacks.Stats{Verified: 9, Replays: 2, Unavailable: 256, Pending: 4})
	m.WatchListener(func() callbacks.Stats { return *stats.Load() })
	addr := serve(t, m)
	fams := scrape(t, addr)

	for class, want := range map[string]float64{"2xx": 2, "3xx": 1, "4xx": 2, "5xx": 1, "none": 3, "1xx": 1} {
		if got := value(t, fams, "leadwatch_crm_attempts_total", "code", class); got != want {
			t.Errorf("attempts{code=%s} = %v, want %v", class, got, want)
		}
	}
	if got := value(t, fams, "leadwatch_crm_attempt_duration_seconds", "", ""); got != 10 {
		t.Errorf("latency samples = %v, want 10", got)
	}
	for reason, want := range map[string]float64{"bad_signature": 2, "timestamp_out_of_range": 1, "invalid_payload": 0, "body_too_large": 0} {
		if got := value(t, fams, "leadwatch_callbacks_refused_total", "reason", reason); got != want {
			t.Errorf("refused{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if n := len(fams["leadwatch_callbacks_refused_total"].GetMetric()); n != 4 {
		t.Errorf("%d refusal reasons, want the protocol's 4 (an unknown code is no label)", n)
	}
	h := fams["leadwatch_callback_commit_events"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 259 {
		t.Errorf("commit events: %d commits, %v events; want 2, 259", h.GetSampleCount(), h.GetSampleSum())
	}
	if got := value(t, fams, "leadwatch_callback_commit_failures_total", "", ""); got != 1 {
		t.Errorf("commit failures = %v", got)
	}
	if got := value(t, fams, "leadwatch_callback_commit_duration_seconds", "", ""); got != 2 {
		t.Errorf("commit latency samples = %v", got)
	}
	for name, want := range map[string]float64{
		"leadwatch_callbacks_verified_total": 9, "leadwatch_callbacks_replayed_total": 2,
		"leadwatch_callbacks_unavailable_total": 256, "leadwatch_callbacks_pending": 4,
	} {
		if got := value(t, fams, name, "", ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Read at scrape time, not copied at WatchListener.
	stats.Store(&callbacks.Stats{Verified: 10})
	if got := value(t, scrape(t, addr), "leadwatch_callbacks_verified_total", "", ""); got != 10 {
		t.Errorf("verified after one more = %v, want 10", got)
	}
}

// TestListenPortTaken: the error names the address and the cause on one
// line.
func TestListenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), New(&countsSource{}, nil), nil)
	want := "metrics listener: listen tcp " + ln.Addr().String() + ": bind: address already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
}

// TestOnlyMetrics: the metrics port serves GET /metrics and nothing else.
func TestOnlyMetrics(t *testing.T) {
	addr := serve(t, New(&countsSource{}, nil))
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
		{http.MethodPost, Path, http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{0: "none", 100: "1xx", 200: "2xx", 299: "2xx", 302: "3xx", 429: "4xx", 599: "5xx", 600: "other", -1: "other"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", code, got, want)
		}
	}
}
