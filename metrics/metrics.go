// Package metrics serves leadwatch's Prometheus metrics, GET /metrics on
// an address of its own (metrics.listen), apart from the callback
// listener, which may face the internet. It is its own package because
// serve and the dashboard both start it, and because it is the one place
// that knows the metric names: crm and callbacks only declare the small
// observer interfaces they call (crm.AttemptObserver, callbacks.Observer),
// and Metrics implements both.
//
// What is read when, and why:
//   - The store's gauges (leads by state, callbacks and refusals stored)
//     come from one Store.Counts per scrape, read by a custom collector:
//     the store is the truth shared by every instance on one database, and
//     a counter kept in this process would only know its own share.
//   - The process's counters (attempts by HTTP code class, the CRM's
//     latency, callbacks verified, replayed and refused by reason, the
//     group commit's latency) count what this process did since it
//     started, as Prometheus counters do; rate() turns them into rates.
//   - Labels are fixed, small sets (states, code classes, refusal codes):
//     never an external_id, a URL, an address, a detail text or a secret.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// Namespace prefixes every metric of leadwatch's own.
const Namespace = "leadwatch"

// Path is where the metrics are served.
const Path = "/metrics"

// countsTimeout bounds the store read of one scrape: a store that does
// not answer must not hold scrapes (and their goroutines) forever.
const countsTimeout = 5 * time.Second

// Source is what the store gauges are read from; the store satisfies it.
type Source interface {
	Counts(ctx context.Context) (crm.Counts, error)
}

// The HTTP code classes of leadwatch_crm_attempts_total. "none" is an
// attempt that got no answer (refused, reset, timed out).
var codeClasses = []string{"2xx", "3xx", "4xx", "5xx", "none"}

// The refusal codes of leadwatch_callbacks_refused_total (docs/protocol.md
// §3, checks 0–3).
var refusalCodes = []string{crm.CodeBodyTooLarge, crm.CodeTimestampRange, crm.CodeBadSignature, crm.CodeInvalidPayload}

// Metrics is leadwatch's registry: the store's gauges, the process's
// counters, and the Go runtime's and the process's own collectors. Its
// observer methods are safe for concurrent use and cost an atomic add or
// two, so they sit on the request path.
type Metrics struct {
	reg *prometheus.Registry

	// attempts are leadwatch_crm_attempts_total by class, resolved once so
	// that an attempt costs no label lookup.
	attempts    map[string]prometheus.Counter
	attemptsVec *prometheus.CounterVec
	crmLatency  prometheus.Histogram

	refused        map[string]prometheus.Counter
	commitLatency  prometheus.Histogram
	commitEvents   prometheus.Histogram
	commitFailures prometheus.Counter

	// listener reads the callback handler's own counters at scrape time;
	// nil until WatchListener (no listener in this process).
	listener atomic.Pointer[func() callbacks.Stats]

	fwd forwardMetrics   // the forwarder's (forward.go)
	rec reconcileMetrics // the reconciler's (reconcile.go)
}

// The observer interfaces Metrics implements.
var (
	_ crm.AttemptObserver = (*Metrics)(nil)
	_ callbacks.Observer  = (*Metrics)(nil)
)

// New returns the registry with every collector registered; src gives the
// store gauges and log hears a failing store read (once per minute).
func New(src Source, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		attempts: map[string]prometheus.Counter{},
		refused:  map[string]prometheus.Counter{},
	}
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "crm_attempts_total",
		Help: "Lead submissions sent to the CRM by this process, by the HTTP code class answered (none: no answer).",
	}, []string{"code"})
	// Every class is there from the start, at 0, so that rate() and
	// alerts see a series before the first failure.
	for _, c := range codeClasses {
		m.attempts[c] = attempts.WithLabelValues(c)
	}
	m.attemptsVec = attempts
	m.crmLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "crm_attempt_duration_seconds",
		Help: "Time from sending a lead to having the CRM's answer (or giving up on it), per attempt.",
		// From a loopback sandbox to the 15 s default timeout and past it.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
	})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "callbacks_refused_total",
		Help: "Callbacks refused by this process's listener, by the error answered.",
	}, []string{"reason"})
	for _, c := range refusalCodes {
		m.refused[c] = refused.WithLabelValues(c)
	}
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "callback_commit_duration_seconds",
		Help:    "Time of one group commit of verified callbacks (one store transaction), failed ones included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.commitEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "callback_commit_events",
		Help:    "Callbacks carried by one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256, the batch cap
	})
	m.commitFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "callback_commit_failures_total",
		Help: "Group commits that failed: their callbacks were answered 503 and the CRM retries them.",
	})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		attempts, m.crmLatency, refused, m.commitLatency, m.commitEvents, m.commitFailures,
		newStoreCollector(src, ratelog.New(log.With("component", "metrics"), time.Minute)),
		&listenerCollector{stats: &m.listener},
	)
	m.fwd.register(m.reg)
	m.rec.register(m.reg)
	return m
}

// Attempted counts one attempt by its HTTP code class and observes its
// duration (crm.AttemptObserver).
func (m *Metrics) Attempted(statusCode int, took time.Duration) {
	class := codeClass(statusCode)
	c, ok := m.attempts[class]
	if !ok {
		// 1xx or out of range: rare enough for a lookup, and its series
		// exists only once one happened.
		c = m.attemptsVec.WithLabelValues(class)
	}
	c.Inc()
	m.crmLatency.Observe(took.Seconds())
}

// codeClass is the class of an HTTP status: "2xx" and the like, "none"
// for 0 (no answer), "other" outside 100–599.
func codeClass(status int) string {
	if status == 0 {
		return "none"
	}
	if status < 100 || status > 599 {
		return "other"
	}
	// Constants, not a string built per attempt.
	return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[status/100-1]
}

// Refused counts one refused callback by its code (callbacks.Observer). A
// code outside the protocol's four is not counted: a label value must
// come from a fixed set.
func (m *Metrics) Refused(code string) {
	if c, ok := m.refused[code]; ok {
		c.Inc()
	}
}

// Committed observes one group commit (callbacks.Observer).
func (m *Metrics) Committed(events int, took time.Duration, err error) {
	m.commitLatency.Observe(took.Seconds())
	m.commitEvents.Observe(float64(events))
	if err != nil {
		m.commitFailures.Inc()
	}
}

// WatchListener makes each scrape read the callback handler's counters
// (verified, replayed, answered 503, …) through stats; nil stops it.
func (m *Metrics) WatchListener(stats func() callbacks.Stats) {
	if stats == nil {
		m.listener.Store(nil)
		return
	}
	m.listener.Store(&stats)
}

// Handler serves the registry in Prometheus's exposition formats. A
// collector that fails (the store not answering) leaves its metrics out
// of the scrape and the rest is served: leadwatch_store_up says so.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape costs a store read: a few at once are plenty, and a
		// flood of them must not become a flood of queries.
		MaxRequestsInFlight: 4,
		Timeout:             2 * countsTimeout,
	})
}

// Gatherer is the registry, for tests and tools that read it in-process.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// storeCollector reads the store's counts once per scrape.
type storeCollector struct {
	src  Source
	rlog *ratelog.Logger

	up, leads, callbacks, unmatched, refusals *prometheus.Desc
}

func newStoreCollector(src Source, rlog *ratelog.Logger) *storeCollector {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "", n) }
	return &storeCollector{
		src:  src,
		rlog: rlog,
		up: prometheus.NewDesc(name("store_up"),
			"1 when this scrape could read the store's counts, else 0 (and the store gauges are left out).", nil, nil),
		leads: prometheus.NewDesc(name("leads"),
			"Leads in the store by state, every instance's.", []string{"state"}, nil),
		callbacks: prometheus.NewDesc(name("callbacks_stored"),
			"Verified callbacks stored, each event once.", nil, nil),
		unmatched: prometheus.NewDesc(name("callbacks_unmatched"),
			"Stored callbacks that name no known lead.", nil, nil),
		refusals: prometheus.NewDesc(name("refusals_stored"),
			"Refused callbacks kept in the store (the oldest are dropped past its bound; prune drops them).", nil, nil),
	}
}

// Describe sends the descriptors.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.leads, c.callbacks, c.unmatched, c.refusals} {
		ch <- d
	}
}

// Collect reads Counts once and sends every gauge from that one reading,
// so the states of one scrape add up.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), countsTimeout)
	defer cancel()
	counts, err := c.src.Counts(ctx)
	if err != nil {
		c.rlog.Warn("counts", "metrics: store counts unreadable; scrapes leave the store gauges out", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range crm.States {
		ch <- prometheus.MustNewConstMetric(c.leads, prometheus.GaugeValue, float64(counts.States[s]), string(s))
	}
	// A state this build does not know (a newer instance on the same
	// database) still counts: crm.States only fixes the order.
	for s, n := range counts.States {
		if !s.Valid() {
			ch <- prometheus.MustNewConstMetric(c.leads, prometheus.GaugeValue, float64(n), string(s))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.callbacks, prometheus.GaugeValue, float64(counts.CallbacksVerified))
	ch <- prometheus.MustNewConstMetric(c.unmatched, prometheus.GaugeValue, float64(counts.CallbacksUnmatched))
	ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.GaugeValue, float64(counts.Refusals))
}

// listenerCollector turns the callback handler's counters into metrics at
// scrape time: the handler counts them anyway, so the request path pays
// nothing more for them.
type listenerCollector struct {
	stats *atomic.Pointer[func() callbacks.Stats]
}

var (
	descVerified = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callbacks_verified_total"),
		"Callbacks this process's listener verified, stored and answered 200 (first seen).", nil, nil)
	descReplayed = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callbacks_replayed_total"),
		"Callbacks answered 200 with \"replay\": their event was stored already (a dedup hit).", nil, nil)
	descUnavailable = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callbacks_unavailable_total"),
		"Callbacks answered 503 because the store could not take them (the CRM retries).", nil, nil)
	descShed = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callbacks_shed_total"),
		"Requests answered 503 before their body was read: the body budget stayed full.", nil, nil)
	descRefusalsDropped = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callback_refusals_not_stored_total"),
		"Refusals answered and counted but not stored: the refusal queue was full.", nil, nil)
	descPending = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "callbacks_pending"),
		"Verified callbacks waiting for their group commit right now.", nil, nil)
)

// Describe sends the descriptors.
func (c *listenerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVerified, descReplayed, descUnavailable, descShed, descRefusalsDropped, descPending} {
		ch <- d
	}
}

// Collect reads the handler's Stats once; without a listener it sends
// nothing.
func (c *listenerCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.stats.Load()
	if f == nil {
		return
	}
	s := (*f)()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descVerified, s.Verified)
	counter(descReplayed, s.Replays)
	counter(descUnavailable, s.Unavailable)
	counter(descShed, s.Shed)
	counter(descRefusalsDropped, s.RefusalsDropped)
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.Pending))
}
