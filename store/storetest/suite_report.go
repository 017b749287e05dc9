package storetest

// suite_report.go: the Sources report. A small campaign is built by hand
// and mirrored in a model (what each lead is now); after every step
// Report, by each field, whole store and since a minute, must equal what
// the model computes. Fill is checked against its own rows.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

func testReport(t *testing.T, h Harness) {
	t.Run("campaign", func(t *testing.T) { testReportCampaign(t, h) })
	t.Run("fill_agrees_with_rows", func(t *testing.T) { testReportFill(t, h) })
	t.Run("bad_field", func(t *testing.T) {
		s, _, _ := open(t, h, store.Options{})
		for _, by := range []string{"", "phone", "Source", "status"} {
			if _, err := s.Report(context.Background(), crm.ReportQuery{By: by}); err == nil {
				t.Errorf("Report by %q accepted", by)
			}
		}
		if rows, err := s.Report(context.Background(), crm.ReportQuery{By: crm.GroupSource}); err != nil || len(rows) != 0 {
			t.Errorf("empty store: %v, %v; want no rows", rows, err)
		}
	})
}

// modelLead is what one lead is now, as the report must see it.
type modelLead struct {
	ext         string
	f           fields
	created     time.Time
	state       crm.State
	accepted    time.Time // zero: never accepted (or resubmitted since)
	firstStatus time.Time // zero: no status yet
	ftd         bool
}

// value is the lead's group value for the field by: a sub_id given as a
// JSON number is its text, a quoted one its string.
func (m *modelLead) value(by string) string {
	switch by {
	case crm.GroupSource:
		return m.f.source
	case crm.GroupFunnel:
		return m.f.funnel
	case crm.GroupSubID:
		return strings.Trim(m.f.subID, `"`)
	case crm.GroupCountry:
		return m.f.country
	}
	panic("no field " + by)
}

// reportRow is one lead's contribution to its row, as the spec counts it.
func reportRow(state crm.State, accepted, firstStatus time.Time, ftd bool) crm.ReportRow {
	var r crm.ReportRow
	switch state {
	case crm.StateAccepted:
		r.Accepted = 1
	case crm.StateDuplicate:
		r.Duplicate = 1
	case crm.StateRejected:
		r.Rejected = 1
	case crm.StateValidationError:
		r.ValidationError = 1
	case crm.StateFailed:
		r.Failed = 1
	}
	r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
	if !firstStatus.IsZero() {
		r.WithStatus = 1
		b := 0
		if !accepted.IsZero() {
			b = crm.LatencyBucket(firstStatus.Sub(accepted))
		}
		r.FirstStatus[b] = 1
	}
	if ftd {
		r.FTD = 1
	}
	return r
}

// wantReport folds contributions into rows as Report returns them: all-
// zero rows dropped, by Sent descending, then Value.
func wantReport(rows map[string]*crm.ReportRow) []crm.ReportRow {
	var out []crm.ReportRow
	for v, r := range rows {
		r.Value = v
		if *r != (crm.ReportRow{Value: v}) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b crm.ReportRow) int {
		if a.Sent != b.Sent {
			return b.Sent - a.Sent
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// modelReport is the report the model says, for leads created at or after
// since truncated to the minute (all when since is zero).
func modelReport(ms []*modelLead, by string, since time.Time) []crm.ReportRow {
	rows := map[string]*crm.ReportRow{}
	for _, m := range ms {
		if !since.IsZero() && m.created.Before(since.Truncate(time.Minute)) {
			continue
		}
		r := rows[m.value(by)]
		if r == nil {
			r = &crm.ReportRow{}
			rows[m.value(by)] = r
		}
		r.Add(reportRow(m.state, m.accepted, m.firstStatus, m.ftd))
	}
	return wantReport(rows)
}

func rowsString(rows []crm.ReportRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "\n\t%q sent %d acc %d dup %d rej %d inv %d fail %d status %d ftd %d hist %v",
			r.Value, r.Sent, r.Accepted, r.Duplicate, r.Rejected, r.ValidationError, r.Failed, r.WithStatus, r.FTD, r.FirstStatus)
	}
	if len(rows) == 0 {
		return " (none)"
	}
	return b.String()
}

func testReportCampaign(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	// ftdAfter 0: no ftd. status 0: no status callback.
	type spec struct {
		ext      string
		f        fields
		outcome  crm.State
		status   time.Duration // acceptance to the first status
		ftdAfter time.Duration // the first status to "FTD"
	}
	alpha := func(funnel, sub, country string) fields { return fields{"alpha", funnel, sub, country} }
	beta := func(funnel, sub, country string) fields { return fields{"beta", funnel, sub, country} }
	junk := func(sub string) fields { return fields{"junk", "f2", sub, "FR"} }
	old := []spec{ // created two hours before the rest
		{"O-1", alpha("f1", "101", "DE"), crm.StateAccepted, 20 * time.Minute, time.Hour},
		{"O-2", beta("f1", "102", "DE"), crm.StateRejected, 0, 0},
		{"O-3", fields{"old-only", "", "", ""}, crm.StateAccepted, 0, 0},
	}
	recent := []spec{
		{"N-01", alpha("f1", "101", "DE"), crm.StateAccepted, 7 * time.Second, 0},
		{"N-02", alpha("f1", "101", "DE"), crm.StateAccepted, 45 * time.Second, 2 * time.Minute},
		{"N-03", alpha("f2", "102", "AT"), crm.StateAccepted, 3 * time.Minute, 0},
		{"N-04", alpha("f2", `"s-x"`, "DE"), crm.StateAccepted, 0, 0},
		{"N-05", alpha("f1", "101", ""), crm.StateDuplicate, 0, 0},
		{"N-06", beta("f1", "102", "DE"), crm.StateAccepted, 90 * time.Second, 10 * time.Minute},
		{"N-07", beta("f2", "102", "AT"), crm.StateFailed, 0, 0},
		{"N-08", beta("f1", `"s-x"`, "DE"), crm.StateAccepted, 25 * time.Hour, 0},
		{"N-09", beta("", "", "DE"), crm.StateAccepted, 0, 0},
		{"N-10", junk("9"), crm.StateRejected, 0, 0},
		{"N-11", junk("9"), crm.StateValidationError, 0, 0},
		{"N-12", junk("9"), crm.StateValidationError, 0, 0},
		{"N-13", junk(`"s-x"`), crm.StateRejected, 0, 0},
		{"N-14", junk("9"), crm.StateAccepted, 400 * time.Millisecond, 0},
		{"N-15", junk("9"), crm.StateDuplicate, 0, 0}, // gets a status anyway, below
		{"N-16", fields{"quiet", "f3", "500", "PL"}, crm.StateQueued, 0, 0},
		{"N-17", fields{"quiet", "f3", "500", "PL"}, crm.StateRetryWait, 0, 0},
		{"N-18", fields{"", "", "", ""}, crm.StateFailed, 0, 0},
		{"N-19", alpha("f1", "101", "DE"), crm.StateQueued, 0, 0},
		{"N-20", beta("f1", "102", "DE"), crm.StateFailed, 0, 0},
		{"N-21", beta("f2", "9", "AT"), crm.StateQueued, 0, 0}, // accepted late, below
	}
	model := map[string]*modelLead{}
	var all []*modelLead
	enqueue := func(sp spec) {
		l := mustEnqueueFields(t, s, sp.ext, sp.f)
		m := &modelLead{ext: sp.ext, f: sp.f, created: clk.Now(), state: crm.StateQueued}
		if l.Source != sp.f.source || l.Funnel != sp.f.funnel || l.SubID != m.value(crm.GroupSubID) || l.Country != sp.f.country {
			t.Fatalf("%s enqueued with fields %q %q %q %q, want %+v", sp.ext, l.Source, l.Funnel, l.SubID, l.Country, sp.f)
		}
		model[sp.ext] = m
		all = append(all, m)
		clk.Advance(time.Second)
	}
	for _, sp := range old {
		enqueue(sp)
	}
	clk.Advance(2 * time.Hour)
	clk.Advance(clk.Now().Truncate(time.Minute).Add(time.Minute).Sub(clk.Now())) // a minute's start
	recentStart := clk.Now()
	for _, sp := range recent {
		enqueue(sp)
	}
	// Outcomes, all at one instant, so every status below is in the
	// clock's future at its own delay.
	for _, sp := range append(slices.Clone(old), recent...) {
		m := model[sp.ext]
		switch sp.outcome {
		case crm.StateQueued:
			continue
		case crm.StateRetryWait:
			retryLater(t, s, clk, sp.ext, 24*time.Hour)
		default:
			setState(t, s, clk, sp.ext, sp.outcome, "crm-"+sp.ext)
		}
		m.state = sp.outcome
		if sp.outcome == crm.StateAccepted {
			m.accepted = clk.Now()
		}
	}
	// Callbacks, in time order, each received at its own clock time: the
	// first status at its delay after acceptance, "FTD" later, and a
	// second "ftd" that changes nothing.
	type cb struct {
		at     time.Time
		ext    string
		status string
	}
	var cbs []cb
	for _, sp := range append(slices.Clone(old), recent...) {
		m := model[sp.ext]
		if sp.status == 0 {
			continue
		}
		first := m.accepted.Add(sp.status)
		cbs = append(cbs, cb{first, sp.ext, "new"})
		if sp.ftdAfter > 0 {
			cbs = append(cbs, cb{first.Add(sp.ftdAfter), sp.ext, "FTD"}, cb{first.Add(sp.ftdAfter + time.Minute), sp.ext, "ftd"})
		}
	}
	// A duplicate gets a status (accepted_at NULL: bucket 0), linked by
	// its external_id.
	cbs = append(cbs, cb{clk.Now().Add(time.Second), "N-15", "callback"})
	slices.SortFunc(cbs, func(a, b cb) int { return a.at.Compare(b.at) })
	for i, c := range cbs {
		if d := c.at.Sub(clk.Now()); d > 0 {
			clk.Advance(d)
		}
		ev := callback("crm-"+c.ext, c.ext, "lead.status", c.status, c.at.Unix()+int64(i))
		ev.ReceivedAt = clk.Now()
		if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
			t.Fatal(err)
		}
		m := model[c.ext]
		if m.firstStatus.IsZero() {
			m.firstStatus = clk.Now()
		}
		if strings.EqualFold(c.status, "ftd") {
			m.ftd = true
		}
	}
	// The CRM's status overtakes the sender's Record: linked by its CRM
	// id when the acceptance is recorded a minute later, the status came
	// first (a negative latency: bucket 0).
	early := callback("crm-N-21", "", "lead.status", "new", clk.Now().Unix())
	if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{early}); err != nil {
		t.Fatal(err)
	}
	model["N-21"].firstStatus = clk.Now()
	clk.Advance(time.Minute)
	setState(t, s, clk, "N-21", crm.StateAccepted, "crm-N-21")
	model["N-21"].state, model["N-21"].accepted = crm.StateAccepted, clk.Now()
	clk.Advance(time.Minute)

	check := func(t *testing.T, step string) {
		t.Helper()
		for _, m := range all {
			l := mustLead(t, s, m.ext)
			if l.State != m.state || !l.AcceptedAt.Equal(m.accepted) || !l.FirstStatusAt.Equal(m.firstStatus) {
				t.Errorf("%s: lead %s = %s accepted %v first status %v; model %s %v %v", step, m.ext,
					l.State, l.AcceptedAt, l.FirstStatusAt, m.state, m.accepted, m.firstStatus)
			}
		}
		sinces := []struct {
			name string
			at   time.Time
		}{
			{"all", time.Time{}},
			{"since_before_all", recentStart.Add(-3 * time.Hour)},
			{"since_recent", recentStart},
			{"since_mid_minute", recentStart.Add(30 * time.Second)}, // truncated to the minute
			{"since_next_minute", recentStart.Add(time.Minute)},     // none created since
		}
		for _, by := range crm.GroupFields {
			for _, sc := range sinces {
				got, err := s.Report(ctx, crm.ReportQuery{By: by, Since: sc.at})
				if err != nil {
					t.Fatalf("%s: report by %s %s: %v", step, by, sc.name, err)
				}
				want := modelReport(all, by, sc.at)
				if rowsString(got) != rowsString(want) {
					t.Errorf("%s: report by %s, %s:%s\nwant%s", step, by, sc.name, rowsString(got), rowsString(want))
				}
			}
		}
	}
	t.Run("built", func(t *testing.T) {
		check(t, "built")
		rows, err := s.Report(ctx, crm.ReportQuery{By: crm.GroupSource, Since: recentStart})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rows, func(r crm.ReportRow) bool { return r.Value == "alpha" })
		if i < 0 {
			t.Fatalf("no alpha row:%s", rowsString(rows))
		}
		// alpha's recent statuses: 7 s, 45 s and 3 min, so the median is
		// in the 45 s bucket (30 s, 1 min].
		d, ok := rows[i].MedianFirstStatus()
		if b := crm.LatencyBucket(45 * time.Second); !ok || d <= crm.LatencyBounds[b-1] || d > crm.LatencyBounds[b] {
			t.Errorf("alpha median = %v, %v; want in (%v, %v]", d, ok, crm.LatencyBounds[b-1], crm.LatencyBounds[b])
		}
		if rows[i].FTD != 1 || rows[i].WithStatus != 3 || rows[i].Sent != 5 {
			t.Errorf("alpha = %+v, want sent 5, 3 with status, 1 ftd", rows[i])
		}
		if slices.ContainsFunc(rows, func(r crm.ReportRow) bool { return r.Value == "quiet" || r.Value == "old-only" }) {
			t.Errorf("rows with nothing to count, or created before Since:%s", rowsString(rows))
		}
	})
	t.Run("resubmit_moves", func(t *testing.T) {
		// The failed beta lead comes back edited to alpha, and is accepted
		// there: beta loses a failure, alpha gains an acceptance.
		edited := fieldPayload("N-20", alpha("f9", "777", "ES"))
		if _, err := s.Resubmit(ctx, "N-20", edited); err != nil {
			t.Fatal(err)
		}
		m := model["N-20"]
		m.state, m.f = crm.StateQueued, alpha("f9", "777", "ES")
		check(t, "resubmit N-20")
		clk.Advance(time.Second)
		setState(t, s, clk, "N-20", crm.StateAccepted, "crm-N-20b")
		m.state, m.accepted = crm.StateAccepted, clk.Now()
		check(t, "N-20 accepted")
		// The duplicate with a status starts over: its status goes too.
		if _, err := s.Resubmit(ctx, "N-15", nil); err != nil {
			t.Fatal(err)
		}
		m = model["N-15"]
		m.state, m.firstStatus = crm.StateQueued, time.Time{}
		check(t, "resubmit N-15")
	})
	t.Run("cancel_and_forget", func(t *testing.T) {
		act(t, s, crm.ActCancel, "N-19")
		model["N-19"].state = crm.StateFailed
		check(t, "cancel N-19")
		for _, ext := range []string{"N-02", "N-06", "O-2"} {
			if _, err := s.Forget(ctx, ext); err != nil {
				t.Fatal(err)
			}
		}
		check(t, "forget")
		// Forgetting a lead still queued withdraws it: failed, counted so.
		if st, err := s.Forget(ctx, "N-16"); err != nil || !st.Withdrawn {
			t.Fatalf("forget N-16: %+v, %v", st, err)
		}
		model["N-16"].state = crm.StateFailed
		check(t, "forget a queued lead")
	})
}

// testReportFill: after Fill, the report equals what the rows say: each
// lead by the source its payload names and its state, its acceptance and
// first status times, and the ftd callbacks linked to it.
func testReportFill(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	leads, callbacks := 3000, 2500
	if testing.Short() {
		leads, callbacks = 400, 300
	}
	if err := s.Fill(ctx, leads, callbacks); err != nil {
		t.Fatal(err)
	}
	ftd := map[int64]bool{}
	if err := s.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
		if ev.LeadID != 0 && strings.EqualFold(ev.Status, "ftd") {
			ftd[ev.LeadID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	since := clk.Now().Add(-time.Hour)
	type lead struct {
		f       crm.LeadFields
		created time.Time
		row     crm.ReportRow
	}
	var ls []lead
	if err := s.ExportLeads(ctx, func(l crm.Lead) error {
		f, err := crm.CheckLead(l.Payload, crm.LeadCheck{MaxBytes: 1 << 30})
		if err != nil {
			return fmt.Errorf("lead %s: %w", l.ExternalID, err)
		}
		if f.Source != l.Source || f.Funnel != l.Funnel || f.SubID != l.SubID || crm.CutGroupValue(f.Country) != l.Country {
			return fmt.Errorf("lead %s: columns %q %q %q %q, payload says %+v", l.ExternalID, l.Source, l.Funnel, l.SubID, l.Country, f)
		}
		ls = append(ls, lead{f, l.CreatedAt, reportRow(l.State, l.AcceptedAt, l.FirstStatusAt, ftd[l.ID])})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, by := range crm.GroupFields {
		for _, at := range []time.Time{{}, since} {
			rows := map[string]*crm.ReportRow{}
			for _, l := range ls {
				if !at.IsZero() && l.created.Before(at.Truncate(time.Minute)) {
					continue
				}
				v := map[string]string{crm.GroupSource: l.f.Source, crm.GroupFunnel: l.f.Funnel,
					crm.GroupSubID: l.f.SubID, crm.GroupCountry: crm.CutGroupValue(l.f.Country)}[by]
				if rows[v] == nil {
					rows[v] = &crm.ReportRow{}
				}
				rows[v].Add(l.row)
			}
			want := wantReport(rows)
			got, err := s.Report(ctx, crm.ReportQuery{By: by, Since: at})
			if err != nil {
				t.Fatal(err)
			}
			if rowsString(got) != rowsString(want) {
				t.Errorf("report by %s since %v:%s\nthe rows say%s", by, at, rowsString(got), rowsString(want))
			}
		}
	}
	// What the Sources view needs to show something: several sources,
	// statuses and ftds.
	rows, err := s.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
	if err != nil {
		t.Fatal(err)
	}
	var total crm.ReportRow
	for _, r := range rows {
		total.Add(r)
	}
	if len(rows) < 5 || total.WithStatus == 0 || total.FTD == 0 || total.Accepted == 0 {
		t.Errorf("Fill gave %d sources, %d with status, %d ftd, %d accepted: too little for the Sources view",
			len(rows), total.WithStatus, total.FTD, total.Accepted)
	}
}
