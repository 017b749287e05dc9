package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadwatch/leadwatch/intake"
)

// WatchIntake makes each scrape read the intake's counters (leads by
// answer, refused requests by code, commits) through stats. Call it once,
// when this process serves the intake; the intake's Stats need no
// observer on the request path, as they are counted anyway.
func (m *Metrics) WatchIntake(stats func() intake.Stats) error {
	return m.reg.Register(intakeCollector{stats})
}

// intakeCollector reads intake.Stats once per scrape.
type intakeCollector struct{ stats func() intake.Stats }

var (
	descIntakeLeads = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "intake_leads_total"),
		"Leads offered on POST /v1/leads by answer: accepted (202, committed), duplicate (409), invalid (422), unavailable (503).",
		[]string{"answer"}, nil)
	descIntakeRefused = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "intake_refused_total"),
		"Intake requests refused before their leads were read, by code: unauthorized (401), body_too_large (413), bad_request (400, 405).",
		[]string{"code"}, nil)
	descIntakeCommits = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "intake_commits_total"),
		"Group commits of intake leads attempted (leads / commits is the sharing).", nil, nil)
)

// Describe sends the descriptors.
func (intakeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descIntakeLeads
	ch <- descIntakeRefused
	ch <- descIntakeCommits
}

// Collect sends the counters of one Stats snapshot.
func (c intakeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	counter(descIntakeLeads, s.Accepted, "accepted")
	counter(descIntakeLeads, s.Duplicates, "duplicate")
	counter(descIntakeLeads, s.Invalid, "invalid")
	counter(descIntakeLeads, s.Unavailable, "unavailable")
	counter(descIntakeRefused, s.Unauthorized, "unauthorized")
	counter(descIntakeRefused, s.TooLarge, "body_too_large")
	counter(descIntakeRefused, s.BadRequests, "bad_request")
	counter(descIntakeCommits, s.Commits)
}
