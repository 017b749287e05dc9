package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The issue 11 reads against the big Filled store (bigStore; budget: ≤ 10
// ms each at 1,000,000 leads and callbacks, LEADWATCH_BIG=1).

// BenchmarkThroughputDay is the launch chart: 24 hours per minute, from
// the per-minute rollup.
func BenchmarkThroughputDay(b *testing.B) {
	ctx := context.Background()
	db := bigStore(b, bigStoreSize())
	for b.Loop() {
		tp, err := db.Throughput(ctx, db.now().Add(-24*time.Hour), time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(tp.Sent) < 1440 {
			b.Fatal(len(tp.Sent))
		}
	}
}

// BenchmarkPulse is the header's health line: the last hour of seconds,
// "after" summed in SQL (Pulse), "before" the hour's rows scanned in Go
// (pulseScan, Pulse before issue 11's dashboard pass), in the same run.
func BenchmarkPulse(b *testing.B) {
	ctx := context.Background()
	db := bigStore(b, bigStoreSize())
	for _, v := range []struct {
		name  string
		pulse func(context.Context, time.Time) (crm.Pulse, error)
	}{{"after", db.Pulse}, {"before", db.pulseScan}} {
		b.Run(v.name, func(b *testing.B) {
			want, err := db.pulseScan(ctx, db.now())
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				p, err := v.pulse(ctx, db.now())
				if err != nil {
					b.Fatal(err)
				}
				if p.LastAttempt.IsZero() || p != want {
					b.Fatalf("pulse %+v, want %+v", p, want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// pulseScan is Pulse as it was: the hour's rows read and summed in Go.
func (db *DB) pulseScan(ctx context.Context, now time.Time) (crm.Pulse, error) {
	var p crm.Pulse
	end := now.Unix()
	secs, err := queryAll(ctx, db.reader, scanPulseSec, `SELECT sec, sent, answered, accepted, callbacks, refused
		FROM throughput WHERE sec > ? AND sec <= ? ORDER BY sec`, end-3600, end)
	if err != nil {
		return p, err
	}
	var lastAnswered int64 = -1
	for _, s := range secs {
		if s.sent > 0 {
			p.LastAttempt = time.Unix(s.sec, 0)
		}
		if s.answered > 0 {
			p.LastAnswered, lastAnswered = time.Unix(s.sec, 0), s.sec
		}
		if s.callbacks > 0 {
			p.LastCallback = time.Unix(s.sec, 0)
		}
		if s.sec > end-60 {
			p.AttemptsMin += s.sent
			p.UnansweredMin += s.sent - s.answered
			p.AcceptedMin += s.accepted
			p.CallbacksMin += s.callbacks
			p.RefusedMin += s.refused
		}
	}
	for _, s := range secs {
		if s.sec > lastAnswered {
			p.Unanswered += s.sent - s.answered
		}
	}
	return p, nil
}

// pulseSec is one second's row as Pulse reads it.
type pulseSec struct {
	sec                                          int64
	sent, answered, accepted, callbacks, refused int
}

func scanPulseSec(s scanner) (pulseSec, error) {
	var r pulseSec
	err := s.Scan(&r.sec, &r.sent, &r.answered, &r.accepted, &r.callbacks, &r.refused)
	return r, err
}

// BenchmarkLeadsAllPage is a page of the All leads pane in the middle of
// the store (keyset paging by id), unfiltered and with a filter.
func BenchmarkLeadsAllPage(b *testing.B) {
	ctx := context.Background()
	n := bigStoreSize()
	db := bigStore(b, n)
	for _, c := range []struct {
		name string
		q    crm.LeadQuery
	}{
		{"Newest", crm.LeadQuery{Order: crm.OrderNewest, BeforeID: int64(n / 2), Limit: 40}},
		{"Oldest", crm.LeadQuery{Order: crm.OrderOldest, AfterID: int64(n / 2), Limit: 40}},
		{"NewestAccepted", crm.LeadQuery{Order: crm.OrderNewest, BeforeID: int64(n / 2), Limit: 40,
			States: []crm.State{crm.StateAccepted}}},
		{"NewestFilter", crm.LeadQuery{Order: crm.OrderNewest, BeforeID: int64(n / 2), Limit: 40, Filter: "blocked"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				ls, err := db.Leads(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(ls) != 40 {
					b.Fatal(len(ls))
				}
			}
		})
	}
}

// BenchmarkFindLead is the jump by id: an external_id, then a CRM id.
func BenchmarkFindLead(b *testing.B) {
	ctx := context.Background()
	n := bigStoreSize()
	db := bigStore(b, n)
	var crmID string
	if err := db.reader.QueryRow(`SELECT crm_id FROM leads WHERE crm_id <> '' AND id > ? ORDER BY id LIMIT 1`, n/2).Scan(&crmID); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, id string }{{"ExternalID", fillExternalID(int64(n / 3))}, {"CRMID", crmID}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.FindLead(ctx, c.id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClaimRecordCPU is BenchmarkClaimRecord measured in CPU time
// per lead (processCPU), the figure to compare before and after a change
// to the send path on a shared machine, where wall-clock rates swing
// with the neighbours' load. Each lead is accepted and learns a CRM id
// (the path the report's triggers and late linking add to).
func BenchmarkClaimRecordCPU(b *testing.B) {
	ctx := context.Background()
	db := MustOpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	made := 0
	var queue []crm.Lead
	body := []byte(`{"id":"crm-1","status":"accepted","reason":null}`)
	var cpu time.Duration
	for b.Loop() {
		if len(queue) == 0 {
			ps := make([][]byte, 1000)
			for i := range ps {
				ps[i] = sourcePayload(fmt.Sprintf("CR-%d", made+i), "fb", "quiz", "s1", "DE")
			}
			made += len(ps)
			if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		start := processCPU(b)
		if len(queue) == 0 {
			var err error
			if queue, err = db.Claim(ctx, "bench", time.Now(), time.Minute, 32); err != nil || len(queue) == 0 {
				b.Fatal(len(queue), err)
			}
		}
		l := queue[0]
		queue = queue[1:]
		if err := db.Record(ctx, "bench", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: l.ID, StartedAt: time.Now(), Duration: time.Millisecond,
				HTTPStatus: 200, ResponseBody: body, Outcome: crm.StateAccepted},
			CRMID: fmt.Sprintf("crm-%d", l.ID),
		}); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU(b) - start
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/lead")
}
