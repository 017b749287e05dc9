package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/forward"
)

// ForwardSource is where the forward queue's gauges are read from; the
// store satisfies it.
type ForwardSource interface {
	ForwardStats(ctx context.Context) (crm.ForwardStats, error)
}

var _ forward.Observer = (*Metrics)(nil)

// forwardMetrics are the forwarder's: counters of this process's
// attempts, and the queue's depth read from the store at scrape time
// (every instance's, like the lead gauges).
type forwardMetrics struct {
	deliveries prometheus.Counter
	failures   prometheus.Counter
	latency    prometheus.Histogram
	src        atomic.Pointer[ForwardSource]
}

var (
	descForwardDepth = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "forward_queue_depth"),
		"Stored callbacks not yet delivered to the app nor failed (pending, in flight, or not yet moved into the queue), every instance's.", nil, nil)
	descForwardFailed = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "forward_failed"),
		"Deliveries that gave up after forward.max_attempts and wait for a replay.", nil, nil)
)

// register creates the forwarder's metrics in reg; the counters exist at
// 0 from the start, so rate() and alerts see them before the first
// delivery.
func (f *forwardMetrics) register(reg *prometheus.Registry) {
	f.deliveries = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "forward_deliveries_total",
		Help: "Deliveries this process forwarded to the app and had answered 2xx.",
	})
	f.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "forward_failures_total",
		Help: "Delivery attempts of this process not answered 2xx (an error status, a timeout, a refused connection).",
	})
	f.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "forward_attempt_duration_seconds",
		Help:    "Time from sending a delivery to having the app's answer (or giving up on it).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	reg.MustRegister(f.deliveries, f.failures, f.latency, (*forwardCollector)(f))
}

// Forwarded counts one delivery attempt (forward.Observer).
func (m *Metrics) Forwarded(_ int, took time.Duration, delivered bool) {
	if delivered {
		m.fwd.deliveries.Inc()
	} else {
		m.fwd.failures.Inc()
	}
	m.fwd.latency.Observe(took.Seconds())
}

// WatchForward makes each scrape read the forward queue's depth from src;
// nil stops it (no forwarding here: no gauge).
func (m *Metrics) WatchForward(src ForwardSource) {
	if src == nil {
		m.fwd.src.Store(nil)
		return
	}
	m.fwd.src.Store(&src)
}

// forwardCollector reads ForwardStats once per scrape.
type forwardCollector forwardMetrics

// Describe sends the descriptors.
func (c *forwardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descForwardDepth
	ch <- descForwardFailed
}

// Collect reads the queue once; without a source, or when the store does
// not answer, it sends nothing (leadwatch_store_up tells the latter).
func (c *forwardCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Load()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), countsTimeout)
	defer cancel()
	st, err := (*p).ForwardStats(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descForwardDepth, prometheus.GaugeValue, float64(st.Pending+st.InFlight+st.Lag))
	ch <- prometheus.MustNewConstMetric(descForwardFailed, prometheus.GaugeValue, float64(st.Failed))
}
