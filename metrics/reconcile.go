package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadwatch/leadwatch/crm"
)

var _ crm.LookupObserver = (*Metrics)(nil)

// reconcileMetrics are the reconciler's: this process's status lookups
// (docs/protocol.md §6) by outcome, apart from the callbacks' counters.
type reconcileMetrics struct {
	lookups map[crm.LookupOutcome]prometheus.Counter
}

// register creates the lookup counters in reg, every outcome at 0 from
// the start so that rate() and alerts see a series before the first
// lookup that fails.
func (r *reconcileMetrics) register(reg *prometheus.Registry) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "reconcile_lookups_total",
		Help: "Status lookups this process made for leads without news, by outcome: changed (stored as a polled status), " +
			"unchanged, not_found (the CRM does not know a lead it accepted), invalid (an unusable answer), failed.",
	}, []string{"outcome"})
	r.lookups = make(map[crm.LookupOutcome]prometheus.Counter, len(crm.LookupOutcomes))
	for _, o := range crm.LookupOutcomes {
		r.lookups[o] = vec.WithLabelValues(string(o))
	}
	reg.MustRegister(vec)
}

// Looked counts one status lookup by its outcome (crm.LookupObserver). An
// outcome outside crm.LookupOutcomes is not counted: label values come
// from a fixed set.
func (m *Metrics) Looked(o crm.LookupOutcome) {
	if c, ok := m.rec.lookups[o]; ok {
		c.Inc()
	}
}
