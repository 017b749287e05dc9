package storetest

// suite_traffic.go: throughput over a long range (sent, accepted,
// failed, callbacks per minute) and the pulse (recent traffic from the
// per-second counts), both at a clock the test moves.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

func testTraffic(t *testing.T, h Harness) {
	t.Run("throughput_by_minute", func(t *testing.T) { testThroughputByMinute(t, h) })
	t.Run("pulse", func(t *testing.T) { testPulse(t, h) })
	t.Run("pulse_never_answered", func(t *testing.T) { testPulseNeverAnswered(t, h) })
}

// event is one thing that happens at a time: an attempt with its HTTP
// status and outcome, a verified callback, or a refusal.
type event struct {
	at      time.Duration // from the scenario's start
	kind    string        // "attempt", "callback", "refusal"
	status  int           // attempt: the HTTP status, 0 for no answer
	outcome crm.State     // attempt
}

// play runs evs (in time order) on s, moving clk to each event's time so
// that the store's clock and the rows' own times agree. Each attempt is a
// lead of its own, enqueued, claimed and recorded at that time.
func play(t *testing.T, s store.Store, clk *clock, start time.Time, evs []event) {
	t.Helper()
	ctx := context.Background()
	for i, ev := range evs {
		at := start.Add(ev.at)
		if d := at.Sub(clk.Now()); d < 0 {
			t.Fatalf("event %d at %v is before the clock %v: list them in time order", i, at, clk.Now())
		} else {
			clk.Advance(d)
		}
		switch ev.kind {
		case "attempt":
			ext := fmt.Sprintf("T-%03d", i)
			mustEnqueue(t, s, ext)
			r := crm.AttemptResult{Attempt: crm.Attempt{HTTPStatus: ev.status, Outcome: ev.outcome, StartedAt: at}}
			if ev.status == 0 {
				r.Attempt.Error = "dial tcp 127.0.0.1:9: connect: connection refused"
			}
			if ev.outcome == crm.StateRetryWait {
				r.NextAttemptAt = at.Add(48 * time.Hour) // out of the way of later claims
			}
			sendAttempt(t, s, clk, ext, r)
		case "callback":
			ev := callback(fmt.Sprintf("cb-%d", i), "", "lead.status", "new", at.Unix())
			if _, err := s.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
				t.Fatal(err)
			}
		case "refusal":
			if err := s.SaveRefusal(ctx, crm.Refusal{Code: crm.CodeBadSignature, HTTPStatus: 401, Detail: "test"}); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("event kind %q", ev.kind)
		}
	}
}

func accepted(at time.Duration) event {
	return event{at: at, kind: "attempt", status: 200, outcome: crm.StateAccepted}
}

func failedNoAnswer(at time.Duration) event {
	return event{at: at, kind: "attempt", outcome: crm.StateFailed}
}

func retryNoAnswer(at time.Duration) event {
	return event{at: at, kind: "attempt", outcome: crm.StateRetryWait}
}

func testThroughputByMinute(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	start := clk.Now()                   // 12:00:00
	since := start.Add(10 * time.Minute) // the range: 12:10:00 to 14:10:00
	evs := []event{
		accepted(time.Minute), // before the range
		{at: 2 * time.Minute, kind: "callback"},
		accepted(10*time.Minute + 5*time.Second),
		accepted(10*time.Minute + 59*time.Second),
		{at: 10*time.Minute + 59*time.Second, kind: "callback"},
		{at: 11 * time.Minute, kind: "attempt", status: 422, outcome: crm.StateRejected},
		failedNoAnswer(11*time.Minute + 30*time.Second),
		retryNoAnswer(69*time.Minute + 59*time.Second),
		accepted(70 * time.Minute),
		{at: 70 * time.Minute, kind: "callback"},
		{at: 70 * time.Minute, kind: "callback"},
		{at: 70*time.Minute + 1*time.Second, kind: "refusal"},
		{at: 100 * time.Minute, kind: "attempt", status: 500, outcome: crm.StateFailed},
		accepted(130 * time.Minute), // now: the last bucket
		{at: 130 * time.Minute, kind: "callback"},
	}
	play(t, s, clk, start, evs)
	tp, err := s.Throughput(ctx, since, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const n = 121 // two hours of minutes and the minute holding now
	want := struct{ sent, acc, failed, cbs [n]int }{}
	for _, ev := range evs {
		i := int((ev.at - 10*time.Minute) / time.Minute)
		if ev.at < 10*time.Minute {
			continue
		}
		switch {
		case ev.kind == "callback":
			want.cbs[i]++
		case ev.kind == "attempt":
			want.sent[i]++
			if ev.outcome == crm.StateAccepted {
				want.acc[i]++
			}
			if ev.outcome == crm.StateFailed {
				want.failed[i]++
			}
		}
	}
	if !tp.Start.Equal(since) || tp.Bucket != time.Minute {
		t.Fatalf("start %v bucket %v, want %v by a minute", tp.Start, tp.Bucket, since)
	}
	for name, got := range map[string][]int{"sent": tp.Sent, "accepted": tp.Accepted, "failed": tp.Failed, "callbacks": tp.Callbacks} {
		w := map[string][n]int{"sent": want.sent, "accepted": want.acc, "failed": want.failed, "callbacks": want.cbs}[name]
		if len(got) != n {
			t.Errorf("%s: %d buckets, want %d", name, len(got), n)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(w[:]) {
			t.Errorf("%s =\n\t%v\nwant\n\t%v", name, got, w[:])
		}
	}
	sum := func(v []int) int {
		n := 0
		for _, x := range v {
			n += x
		}
		return n
	}
	if sum(tp.Sent) != 8 || sum(tp.Accepted) != 4 || sum(tp.Failed) != 2 || sum(tp.Callbacks) != 4 {
		t.Errorf("sums sent %d accepted %d failed %d callbacks %d, want 8 4 2 4",
			sum(tp.Sent), sum(tp.Accepted), sum(tp.Failed), sum(tp.Callbacks))
	}
	// By the second, the same counts land in the same places.
	fine, err := s.Throughput(ctx, since.Add(70*time.Minute-10*time.Minute-2*time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fine.Accepted[2] != 1 || fine.Sent[1] != 1 || fine.Sent[2] != 1 || fine.Callbacks[2] != 2 || fine.Failed[1] != 0 {
		t.Errorf("by the second around 13:10:00: sent %v accepted %v callbacks %v",
			fine.Sent[:4], fine.Accepted[:4], fine.Callbacks[:4])
	}
}

// wantPulse compares two pulses field by field (times with Equal).
func wantPulse(t *testing.T, what string, got, want crm.Pulse) {
	t.Helper()
	ok := got.LastAttempt.Equal(want.LastAttempt) && got.LastAnswered.Equal(want.LastAnswered) &&
		got.LastCallback.Equal(want.LastCallback) && got.Unanswered == want.Unanswered &&
		got.AttemptsMin == want.AttemptsMin && got.UnansweredMin == want.UnansweredMin &&
		got.AcceptedMin == want.AcceptedMin && got.CallbacksMin == want.CallbacksMin && got.RefusedMin == want.RefusedMin
	if !ok {
		t.Errorf("%s: pulse\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

func testPulse(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	start := clk.Now()
	now := start.Add(2 * time.Hour) // 14:00:00
	before := func(d time.Duration) time.Duration { return 2*time.Hour - d }
	play(t, s, clk, start, []event{
		// More than an hour ago: out of the pulse.
		accepted(0), {at: 0, kind: "callback"}, {at: 0, kind: "refusal"},
		accepted(before(50 * time.Minute)),
		{at: before(100 * time.Second), kind: "attempt", status: 422, outcome: crm.StateRejected},
		{at: before(90 * time.Second), kind: "callback"},
		{at: before(70 * time.Second), kind: "refusal"},
		accepted(before(60 * time.Second)), // exactly a minute ago: not in the last minute
		accepted(before(40 * time.Second)),
		accepted(before(40 * time.Second)),
		retryNoAnswer(before(30 * time.Second)),
		retryNoAnswer(before(20 * time.Second)),
		{at: before(15 * time.Second), kind: "callback"},
		{at: before(15 * time.Second), kind: "callback"},
		failedNoAnswer(before(10 * time.Second)),
		{at: before(5 * time.Second), kind: "refusal"},
		{at: before(5 * time.Second), kind: "refusal"},
		{at: before(0), kind: "refusal"},
	})
	if !clk.Now().Equal(now) {
		t.Fatalf("clock at %v, want %v", clk.Now(), now)
	}
	p, err := s.Pulse(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "now", p, crm.Pulse{
		LastAttempt:   now.Add(-10 * time.Second),
		LastAnswered:  now.Add(-40 * time.Second),
		Unanswered:    3,
		AttemptsMin:   5,
		UnansweredMin: 3,
		AcceptedMin:   2,
		LastCallback:  now.Add(-15 * time.Second),
		CallbacksMin:  2,
		RefusedMin:    3,
	})
	// A resubmission is history, not an attempt: the pulse stays.
	if _, err := s.Resubmit(ctx, "T-004", nil); err != nil {
		t.Fatalf("resubmit the rejected lead: %v", err)
	}
	p2, err := s.Pulse(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "after a resubmit", p2, p)
	// Half an hour on, nothing new: the last minute is empty, the hour
	// still holds the rest.
	later := now.Add(30 * time.Minute)
	clk.Advance(30 * time.Minute)
	p, err = s.Pulse(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "half an hour on", p, crm.Pulse{
		LastAttempt:  now.Add(-10 * time.Second),
		LastAnswered: now.Add(-40 * time.Second),
		Unanswered:   3,
		LastCallback: now.Add(-15 * time.Second),
	})
	// Two hours on, the hour holds nothing.
	clk.Advance(90 * time.Minute)
	p, err = s.Pulse(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "two hours on", p, crm.Pulse{})
}

// testPulseNeverAnswered: with no answer in the hour, every attempt in it
// is unanswered.
func testPulseNeverAnswered(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	p, err := s.Pulse(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "empty store", p, crm.Pulse{})
	start := clk.Now()
	play(t, s, clk, start, []event{
		retryNoAnswer(0),
		retryNoAnswer(20 * time.Minute),
		failedNoAnswer(30*time.Minute - 20*time.Second),
		retryNoAnswer(30 * time.Minute),
	})
	now := clk.Now()
	p, err = s.Pulse(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	wantPulse(t, "never answered", p, crm.Pulse{
		LastAttempt:   now,
		Unanswered:    4,
		AttemptsMin:   2,
		UnansweredMin: 2,
	})
}
