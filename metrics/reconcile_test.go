package metrics

import (
	"testing"

	"github.com/leadwatch/leadwatch/crm"
)

// TestReconcileMetrics: every lookup outcome has its series from the
// start, at 0, and counts this process's lookups over a real scrape; an
// outcome outside the fixed set makes no series.
func TestReconcileMetrics(t *testing.T) {
	m := New(&countsSource{}, nil)
	addr := serve(t, m)
	byOutcome := func() map[string]float64 {
		out := map[string]float64{}
		for _, mt := range scrape(t, addr)["leadwatch_reconcile_lookups_total"].GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	got := byOutcome()
	if len(got) != len(crm.LookupOutcomes) {
		t.Fatalf("series before any lookup: %v, want one per outcome", got)
	}
	m.Looked(crm.LookupChanged)
	m.Looked(crm.LookupChanged)
	m.Looked(crm.LookupNotFound)
	m.Looked("made-up")
	got = byOutcome()
	want := map[string]float64{"changed": 2, "unchanged": 0, "not_found": 1, "invalid": 0, "failed": 0}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for o, n := range want {
		if got[o] != n {
			t.Errorf("%s = %v, want %v", o, got[o], n)
		}
	}
}
