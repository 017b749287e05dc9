package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

type forwardSource struct {
	st  crm.ForwardStats
	err error
}

func (s *forwardSource) ForwardStats(context.Context) (crm.ForwardStats, error) { return s.st, s.err }

// TestForwardMetrics: the counters count this process's attempts over
// real HTTP scrapes; the depth gauge is read from the store per scrape and
// left out while forwarding is not watched or the store fails.
func TestForwardMetrics(t *testing.T) {
	m := New(&countsSource{}, nil)
	addr := serve(t, m)
	fams := scrape(t, addr)
	if v := fams["leadwatch_forward_deliveries_total"].GetMetric()[0].GetCounter().GetValue(); v != 0 {
		t.Fatalf("deliveries before any = %v", v)
	}
	if _, ok := fams["leadwatch_forward_queue_depth"]; ok {
		t.Fatal("a queue depth without forwarding")
	}
	m.Forwarded(200, time.Millisecond, true)
	m.Forwarded(204, time.Millisecond, true)
	m.Forwarded(500, time.Millisecond, false)
	m.Forwarded(0, time.Second, false)
	m.Forwarded(0, time.Second, false)
	src := &forwardSource{st: crm.ForwardStats{Pending: 7, InFlight: 3, Lag: 5, Failed: 2}}
	m.WatchForward(src)
	fams = scrape(t, addr)
	for name, want := range map[string]float64{
		"leadwatch_forward_deliveries_total": 2,
		"leadwatch_forward_failures_total":   3,
	} {
		if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := fams["leadwatch_forward_queue_depth"].GetMetric()[0].GetGauge().GetValue(); got != 15 {
		t.Errorf("queue depth = %v, want 15", got)
	}
	if got := fams["leadwatch_forward_failed"].GetMetric()[0].GetGauge().GetValue(); got != 2 {
		t.Errorf("failed = %v, want 2", got)
	}
	if got := fams["leadwatch_forward_attempt_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); got != 5 {
		t.Errorf("latency samples = %v, want 5", got)
	}
	src.err = errors.New("store gone")
	if _, ok := scrape(t, addr)["leadwatch_forward_queue_depth"]; ok {
		t.Error("a queue depth from a failing store")
	}
}
