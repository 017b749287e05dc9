package storetest

// suite_ops.go: the operator actions (Act for every action in every
// state, held leads, cancel, retry-now, RetryAllNow) and the pauses, with
// the races they must win against Claim and EnqueueBatch.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The reason a lead held by an operator keeps.
const heldReason = "held by operator"

// fields are the traffic source fields of a test lead's payload; subID is
// raw JSON (a number such as 77 or a quoted string), "" leaves it out.
type fields struct {
	source, funnel, subID, country string
}

// fieldPayload is a valid lead ext carrying f.
func fieldPayload(ext string, f fields) []byte {
	p := fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678"`, ext)
	if f.source != "" {
		p += fmt.Sprintf(`,"source":%q`, f.source)
	}
	if f.funnel != "" {
		p += fmt.Sprintf(`,"funnel":%q`, f.funnel)
	}
	if f.subID != "" {
		p += `,"sub_id":` + f.subID
	}
	if f.country != "" {
		p += fmt.Sprintf(`,"country":%q`, f.country)
	}
	return []byte(p + "}")
}

func mustEnqueueFields(tb testing.TB, s store.Store, ext string, f fields) crm.Lead {
	tb.Helper()
	l, err := s.Enqueue(context.Background(), fieldPayload(ext, f), store.EnqueueOptions{})
	if err != nil {
		tb.Fatalf("enqueue %s: %v", ext, err)
	}
	return l
}

// act runs Act and fails tb on an error or a result count that is not one
// per id.
func act(tb testing.TB, s store.Store, a crm.Action, exts ...string) []crm.ActionResult {
	tb.Helper()
	res, err := s.Act(context.Background(), a, exts)
	if err != nil {
		tb.Fatalf("act %s %v: %v", a, exts, err)
	}
	if len(res) != len(exts) {
		tb.Fatalf("act %s: %d results for %d ids", a, len(res), len(exts))
	}
	return res
}

// retryLater records a retry_wait attempt (no answer) for ext, due after d.
func retryLater(tb testing.TB, s store.Store, clk *clock, ext string, d time.Duration) {
	tb.Helper()
	sendAttempt(tb, s, clk, ext, crm.AttemptResult{
		Attempt:       crm.Attempt{HTTPStatus: 503, Outcome: crm.StateRetryWait, StartedAt: clk.Now()},
		Reason:        "HTTP 503",
		NextAttemptAt: clk.Now().Add(d),
	})
}

// startState is a state a lead is put in before an action, with what
// holds it when it is held.
type startState struct {
	name  string
	state crm.State
	hold  string
}

var startStates = []startState{
	{"queued", crm.StateQueued, ""},
	{"in_flight", crm.StateInFlight, ""},
	{"retry_wait", crm.StateRetryWait, ""},
	{"held_operator", crm.StateHeld, crm.HoldOperator},
	{"held_source", crm.StateHeld, crm.HoldSource},
	{"accepted", crm.StateAccepted, ""},
	{"duplicate", crm.StateDuplicate, ""},
	{"validation_error", crm.StateValidationError, ""},
	{"rejected", crm.StateRejected, ""},
	{"failed", crm.StateFailed, ""},
}

// putIn makes the lead ext in st on s, as the dispatcher and an operator
// would: held_source pauses a source of its own, so no other lead is
// touched; in_flight is claimed by "holder" for a minute.
func putIn(tb testing.TB, s store.Store, clk *clock, ext string, st startState) crm.Lead {
	tb.Helper()
	ctx := context.Background()
	f := fields{source: "plain"}
	if st.hold == crm.HoldSource {
		f.source = "paused-" + ext
	}
	mustEnqueueFields(tb, s, ext, f)
	switch {
	case st.state == crm.StateQueued:
	case st.state == crm.StateInFlight:
		claimOne(tb, s, clk, "holder", ext)
	case st.state == crm.StateRetryWait:
		retryLater(tb, s, clk, ext, time.Hour)
	case st.hold == crm.HoldOperator:
		if r := act(tb, s, crm.ActHold, ext)[0]; r.Err != nil {
			tb.Fatalf("hold %s: %v", ext, r.Err)
		}
	case st.hold == crm.HoldSource:
		if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: f.source}); err != nil || n != 1 {
			tb.Fatalf("pause %s: held %d, %v; want 1", f.source, n, err)
		}
	default:
		setState(tb, s, clk, ext, st.state, "crm-"+ext)
	}
	l := mustLead(tb, s, ext)
	if l.State != st.state || l.Hold != st.hold {
		tb.Fatalf("lead %s is %s (hold %q), want %s (hold %q)", ext, l.State, l.Hold, st.state, st.hold)
	}
	return l
}

func testAct(t *testing.T, h Harness) {
	for _, a := range []crm.Action{crm.ActRetryNow, crm.ActHold, crm.ActRelease, crm.ActCancel} {
		t.Run(string(a), func(t *testing.T) { testActEachState(t, h, a) })
	}
	t.Run("order_unknown_duplicates", func(t *testing.T) { testActOrder(t, h) })
	t.Run("held", func(t *testing.T) { testHeld(t, h) })
	t.Run("cancel_then_resubmit", func(t *testing.T) { testCancelResubmit(t, h) })
	t.Run("retry_now_then_claim", func(t *testing.T) { testRetryNow(t, h) })
	t.Run("retry_all_now", func(t *testing.T) { testRetryAllNow(t, h) })
	t.Run("hold_races_claim", func(t *testing.T) { testHoldRacesClaim(t, h) })
}

// testActEachState applies a to a lead in every state at once (one Act
// call, one result per id in order) and checks each result and each
// lead's columns afterwards against the spec's table.
func testActEachState(t *testing.T, h Harness, a crm.Action) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	var exts []string
	before := map[string]crm.Lead{}
	attempts := map[string]int{}
	for _, st := range startStates {
		ext := "A-" + st.name
		putIn(t, s, clk, ext, st)
		exts = append(exts, ext)
		clk.Advance(time.Second)
	}
	// The leads as they are just before the action (driving one lead
	// through Claim may have claimed and released the queued ones).
	for _, ext := range exts {
		before[ext] = mustLead(t, s, ext)
		attempts[ext] = len(mustDetail(t, s, ext).Attempts)
	}
	clk.Advance(5 * time.Second) // "now" is after every lead's own times
	now := clk.Now()
	res := act(t, s, a, exts...)
	for i, st := range startStates {
		ext, r, old := exts[i], res[i], before[exts[i]]
		t.Run(st.name, func(t *testing.T) {
			if r.ExternalID != ext {
				t.Fatalf("result %d names %q, want %q (results in the order given)", i, r.ExternalID, ext)
			}
			l := mustLead(t, s, ext)
			if n := len(mustDetail(t, s, ext).Attempts); n != attempts[ext] {
				t.Errorf("%d attempt rows, want %d: an action writes no attempt", n, attempts[ext])
			}
			if l.ID != old.ID || l.IdempotencyKey != old.IdempotencyKey || l.Attempts != old.Attempts || string(l.Payload) != string(old.Payload) {
				t.Errorf("id/key/attempts/payload changed: %d %q %d, want %d %q %d",
					l.ID, l.IdempotencyKey, l.Attempts, old.ID, old.IdempotencyKey, old.Attempts)
			}
			if !a.Applies(st.state) {
				if !errors.Is(r.Err, crm.ErrWrongState) || r.Before != st.state || r.After != st.state {
					t.Fatalf("result = %+v, want ErrWrongState with before = after = %s", r, st.state)
				}
				if l.State != old.State || l.Hold != old.Hold || l.Reason != old.Reason ||
					!l.NextAttemptAt.Equal(old.NextAttemptAt) || l.LeaseOwner != old.LeaseOwner {
					t.Fatalf("a refused action changed the lead:\n got  %+v\n want %+v", l, old)
				}
				return
			}
			if r.Err != nil || r.Before != st.state {
				t.Fatalf("result = %+v, want applied from %s", r, st.state)
			}
			// What the lead must be now: state, hold, reason ("" = as
			// before) and next_attempt_at (zero = NULL).
			var (
				state  crm.State
				hold   string
				reason = old.Reason
				next   time.Time
			)
			switch {
			case a == crm.ActRetryNow:
				state, next = crm.StateRetryWait, now
			case a == crm.ActHold:
				state, hold, reason = crm.StateHeld, crm.HoldOperator, heldReason
			case a == crm.ActRelease && st.hold == crm.HoldSource:
				// The pause still covers it: held again, by the pause.
				state, hold = crm.StateHeld, crm.HoldSource
			case a == crm.ActRelease:
				state, next, reason = crm.StateQueued, now, l.Reason
			case a == crm.ActCancel:
				state, reason = crm.StateFailed, crm.CanceledReason
			}
			if r.After != state {
				t.Errorf("result after = %s, want %s", r.After, state)
			}
			if l.State != state || l.Hold != hold || l.Reason != reason || !l.NextAttemptAt.Equal(next) || l.LeaseOwner != "" {
				t.Errorf("lead = state %s hold %q reason %q next %v lease %q; want %s %q %q %v no lease",
					l.State, l.Hold, l.Reason, l.NextAttemptAt, l.LeaseOwner, state, hold, reason, next)
			}
		})
	}
	assertCounts(t, s, string(a))
	// Held leads are never claimed, whatever time it is: two hours on,
	// the retry and the lease are long due.
	states, err := s.States(ctx, exts)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	got, err := s.Claim(ctx, "late", clk.Now(), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		if states[l.ExternalID] == crm.StateHeld {
			t.Errorf("claimed %s, a held lead", l.ExternalID)
		}
	}
}

func testActOrder(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "A")
	mustEnqueue(t, s, "B")
	setState(t, s, clk, "A", crm.StateAccepted, "")
	res := act(t, s, crm.ActHold, "B", "nope", "A", "B")
	if r := res[0]; r.ExternalID != "B" || r.Err != nil || r.Before != crm.StateQueued || r.After != crm.StateHeld {
		t.Errorf("B: %+v, want queued → held", r)
	}
	if r := res[1]; r.ExternalID != "nope" || !errors.Is(r.Err, crm.ErrNotFound) || r.Before != "" || r.After != "" {
		t.Errorf("unknown id: %+v, want ErrNotFound with no states", r)
	}
	if r := res[2]; r.ExternalID != "A" || !errors.Is(r.Err, crm.ErrWrongState) || r.Before != crm.StateAccepted || r.After != crm.StateAccepted {
		t.Errorf("A: %+v, want ErrWrongState (accepted)", r)
	}
	// The repeated id: a no-op, either refused as held or the same
	// result again, never an error of the call.
	if r := res[3]; r.ExternalID != "B" || r.After != crm.StateHeld ||
		!(r.Err == nil || (errors.Is(r.Err, crm.ErrWrongState) && r.Before == crm.StateHeld)) {
		t.Errorf("B again: %+v, want a no-op leaving it held", r)
	}
	if l := mustLead(t, s, "B"); l.State != crm.StateHeld || l.Hold != crm.HoldOperator {
		t.Errorf("B = %s hold %q", l.State, l.Hold)
	}
	if res, err := s.Act(context.Background(), crm.ActCancel, nil); err != nil || len(res) != 0 {
		t.Errorf("no ids: %v, %v", res, err)
	}
}

// testHeld: a held lead is not due (NextDue, Claim), not resubmittable,
// counted as held, and release makes it due now.
func testHeld(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "A")
	mustEnqueue(t, s, "B")
	retryLater(t, s, clk, "B", 10*time.Minute)
	for _, r := range act(t, s, crm.ActHold, "A", "B") {
		if r.Err != nil || r.After != crm.StateHeld {
			t.Fatalf("hold: %+v", r)
		}
	}
	if due, ok, err := s.NextDue(ctx); ok || err != nil {
		t.Fatalf("only held leads: NextDue = %v, %v, %v; want nothing waiting", due, ok, err)
	}
	if c := assertCounts(t, s, "hold"); c.States[crm.StateHeld] != 2 {
		t.Fatalf("Counts held = %d, want 2", c.States[crm.StateHeld])
	}
	if got, err := s.Leads(ctx, crm.LeadQuery{States: []crm.State{crm.StateHeld}}); err != nil || names(got) != "[B A]" && names(got) != "[A B]" {
		t.Fatalf("held pane = %s, %v", names(got), err)
	}
	clk.Advance(time.Hour)
	if got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed held leads: %s, %v", names(got), err)
	}
	_, err := s.Resubmit(ctx, "A", nil)
	wantErr(t, "resubmit a held lead", err, store.ErrNotResubmittable)

	mustEnqueue(t, s, "C")
	clk.Advance(time.Second)
	if r := act(t, s, crm.ActRelease, "B")[0]; r.Err != nil || r.Before != crm.StateHeld || r.After != crm.StateQueued {
		t.Fatalf("release B: %+v", r)
	}
	b := mustLead(t, s, "B")
	if b.State != crm.StateQueued || b.Hold != "" || !b.NextAttemptAt.Equal(clk.Now()) || b.Attempts != 1 {
		t.Fatalf("released B = %s hold %q next %v attempts %d; want queued, due now, 1 attempt kept",
			b.State, b.Hold, b.NextAttemptAt, b.Attempts)
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 10)
	if err != nil || len(got) != 2 || slices.ContainsFunc(got, func(l crm.Lead) bool { return l.ExternalID == "A" }) {
		t.Fatalf("claim after release = %s, %v; want B and C, not A", names(got), err)
	}
	assertCounts(t, s, "release")
}

// testCancelResubmit: cancel ends a lead failed without an attempt row; a
// resubmit of the unchanged payload keeps its key.
func testCancelResubmit(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "A")
	retryLater(t, s, clk, "A", time.Hour)
	mustEnqueue(t, s, "H")
	act(t, s, crm.ActHold, "H")
	a := mustLead(t, s, "A")
	for _, r := range act(t, s, crm.ActCancel, "A", "H") {
		if r.Err != nil || r.After != crm.StateFailed {
			t.Fatalf("cancel: %+v", r)
		}
	}
	for _, ext := range []string{"A", "H"} {
		l := mustLead(t, s, ext)
		if l.State != crm.StateFailed || l.Reason != crm.CanceledReason || !l.NextAttemptAt.IsZero() || l.Hold != "" {
			t.Fatalf("canceled %s = %s reason %q next %v hold %q", ext, l.State, l.Reason, l.NextAttemptAt, l.Hold)
		}
	}
	if d := mustDetail(t, s, "A"); len(d.Attempts) != 1 || d.Attempts[0].Outcome != crm.StateRetryWait {
		t.Fatalf("attempts after cancel = %+v, want the one send only", d.Attempts)
	}
	if got, err := s.Leads(ctx, crm.LeadQuery{Reason: "CANCELED BY"}); err != nil || len(got) != 2 {
		t.Fatalf("Reason filter: %s, %v", names(got), err)
	}
	sub, err := s.Resubmit(ctx, "A", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sub.KeyKept || sub.Lead.IdempotencyKey != a.IdempotencyKey || sub.Lead.State != crm.StateQueued {
		t.Fatalf("resubmit = kept %v key %q state %s; want the key %q kept, queued",
			sub.KeyKept, sub.Lead.IdempotencyKey, sub.Lead.State, a.IdempotencyKey)
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 10)
	if err != nil || names(got) != "[A]" || got[0].IdempotencyKey != a.IdempotencyKey {
		t.Fatalf("claim after resubmit = %s, %v", names(got), err)
	}
	assertCounts(t, s, "cancel and resubmit")
}

// testRetryNow: retry-now makes a waiting lead due now with its key; the
// next claim takes it as the next attempt.
func testRetryNow(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "A")
	retryLater(t, s, clk, "A", time.Hour)
	a := mustLead(t, s, "A")
	clk.Advance(time.Second)
	if got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 1); err != nil || len(got) != 0 {
		t.Fatalf("claimed before due: %s, %v", names(got), err)
	}
	if r := act(t, s, crm.ActRetryNow, "A")[0]; r.Err != nil || r.Before != crm.StateRetryWait || r.After != crm.StateRetryWait {
		t.Fatalf("retry-now: %+v, want retry_wait → retry_wait", r)
	}
	l := mustLead(t, s, "A")
	if !l.NextAttemptAt.Equal(clk.Now()) || l.Attempts != a.Attempts || l.IdempotencyKey != a.IdempotencyKey {
		t.Fatalf("after retry-now: next %v attempts %d key %q; want now %v, %d, %q",
			l.NextAttemptAt, l.Attempts, l.IdempotencyKey, clk.Now(), a.Attempts, a.IdempotencyKey)
	}
	if due, ok, err := s.NextDue(ctx); err != nil || !ok || !due.Equal(clk.Now()) {
		t.Fatalf("NextDue = %v, %v, %v; want now", due, ok, err)
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].ExternalID != "A" {
		t.Fatalf("claim = %s, %v; want A", names(got), err)
	}
	if got[0].IdempotencyKey != a.IdempotencyKey || got[0].Attempts != a.Attempts+1 {
		t.Fatalf("claimed with key %q attempt %d; want %q, %d", got[0].IdempotencyKey, got[0].Attempts, a.IdempotencyKey, a.Attempts+1)
	}
}

func testRetryAllNow(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	for i, ext := range []string{"R-1", "R-2", "R-3", "R-held"} {
		mustEnqueue(t, s, ext)
		retryLater(t, s, clk, ext, time.Duration(i+1)*time.Hour)
	}
	mustEnqueue(t, s, "Q")
	act(t, s, crm.ActHold, "R-held")
	clk.Advance(time.Second)
	n, err := s.RetryAllNow(ctx)
	if err != nil || n != 3 {
		t.Fatalf("RetryAllNow = %d, %v; want 3", n, err)
	}
	for _, ext := range []string{"R-1", "R-2", "R-3"} {
		if l := mustLead(t, s, ext); l.State != crm.StateRetryWait || !l.NextAttemptAt.Equal(clk.Now()) {
			t.Errorf("%s: %s next %v, want retry_wait due now", ext, l.State, l.NextAttemptAt)
		}
	}
	if l := mustLead(t, s, "R-held"); l.State != crm.StateHeld || !l.NextAttemptAt.IsZero() {
		t.Errorf("the held lead: %s next %v", l.State, l.NextAttemptAt)
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("claim = %s, %v; want R-1..3 and Q", names(got), err)
	}
	if n, err := s.RetryAllNow(ctx); err != nil || n != 0 {
		t.Fatalf("RetryAllNow with none waiting = %d, %v", n, err)
	}
}

// testHoldRacesClaim: an operator holds leads while senders on another
// Store claim them. Each lead ends either claimed (in flight, not held)
// or held (and then never claimed); the two results agree lead by lead.
func testHoldRacesClaim(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, reopen := open(t, h, store.Options{})
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	n := 300
	if testing.Short() {
		n = 60
	}
	var ps [][]byte
	var exts []string
	for i := range n {
		exts = append(exts, fmt.Sprintf("H-%03d", i))
		ps = append(ps, payload(exts[i]))
	}
	if _, errs, err := s.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("enqueue: %v %v", err, errors.Join(errs...))
	}
	// The senders start once the first holds are in, and the operator
	// waits for a claim between its holds, so both sides are at work at
	// once whichever one the scheduler or the write lock favours.
	start := make(chan struct{})
	progress := make(chan struct{}, 1)  // a claim returned
	claimersDone := make(chan struct{}) // every sender stopped
	var claimers sync.WaitGroup
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed = map[string]int{}
		held    = map[string]bool{}
		errs    []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range 3 {
		wg.Add(1)
		claimers.Add(1)
		go func() {
			defer wg.Done()
			defer claimers.Done()
			<-start
			for {
				got, err := other.Claim(ctx, fmt.Sprintf("w%d", w), clk.Now(), time.Hour, 3)
				select {
				case progress <- struct{}{}:
				default:
				}
				if err != nil {
					fail(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, l := range got {
					claimed[l.ExternalID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	var once sync.Once
	begin := func() { once.Do(func() { close(start) }) }
	go func() {
		defer wg.Done()
		defer begin() // the senders stop, whatever happens here
		// Newest first, a few at a time: the holds meet the claims
		// (oldest first) in the middle.
		for end := n; end > 0; end -= 5 {
			if end == n-5 {
				begin()
			}
			batch := slices.Clone(exts[max(0, end-5):end])
			slices.Reverse(batch)
			res, err := s.Act(ctx, crm.ActHold, batch)
			if err != nil {
				fail(err)
				return
			}
			if end < n {
				select {
				case <-progress:
				case <-claimersDone:
				}
			}
			mu.Lock()
			for _, r := range res {
				switch {
				case r.Err == nil && r.Before == crm.StateQueued && r.After == crm.StateHeld:
					held[r.ExternalID] = true
				case errors.Is(r.Err, crm.ErrWrongState) && r.Before == crm.StateInFlight:
				default:
					errs = append(errs, fmt.Errorf("hold %s: %+v", r.ExternalID, r))
				}
			}
			mu.Unlock()
		}
	}()
	go func() {
		claimers.Wait()
		close(claimersDone)
	}()
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(fewErrors(errs))
	}
	states, err := s.States(ctx, exts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range exts {
		c, hd := claimed[ext], held[ext]
		switch {
		case c > 1:
			t.Errorf("%s claimed %d times", ext, c)
		case c == 1 && hd:
			t.Errorf("%s both claimed and held", ext)
		case c == 0 && !hd:
			t.Errorf("%s neither claimed nor held", ext)
		case c == 1 && states[ext] != crm.StateInFlight:
			t.Errorf("%s claimed but %s", ext, states[ext])
		case hd && states[ext] != crm.StateHeld:
			t.Errorf("%s held but %s", ext, states[ext])
		}
	}
	// The claimed leads' leases expire; only they come back.
	clk.Advance(2 * time.Hour)
	again := 0
	for {
		got, err := s.Claim(ctx, "late", clk.Now(), time.Hour, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		for _, l := range got {
			again++
			if held[l.ExternalID] {
				t.Errorf("held lead %s claimed", l.ExternalID)
			}
		}
	}
	if again != len(claimed) {
		t.Errorf("%d leads came back after their leases, want the %d claimed", again, len(claimed))
	}
	t.Logf("%d claimed, %d held", len(claimed), len(held))
	assertCounts(t, s, "hold racing claim")
}

func testPauses(t *testing.T, h Harness) {
	t.Run("rules", func(t *testing.T) { testPauseRules(t, h) })
	t.Run("two_fields", func(t *testing.T) { testPauseTwoFields(t, h) })
	t.Run("retry_while_paused", func(t *testing.T) { testPauseRetry(t, h) })
	t.Run("races_enqueue", func(t *testing.T) { testPauseRacesEnqueue(t, h) })
}

func testPauseRules(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	junk := fields{source: "junk", subID: "9"}
	mustEnqueueFields(t, s, "J-queued", junk)
	mustEnqueueFields(t, s, "J-retry", junk)
	retryLater(t, s, clk, "J-retry", time.Hour)
	mustEnqueueFields(t, s, "J-done", junk)
	setState(t, s, clk, "J-done", crm.StateRejected, "")
	mustEnqueueFields(t, s, "J-op", junk)
	act(t, s, crm.ActHold, "J-op")
	mustEnqueueFields(t, s, "J-flight", junk)
	claimOne(t, s, clk, "w", "J-flight")
	mustEnqueueFields(t, s, "G-1", fields{source: "good", subID: "9"})
	retry := mustLead(t, s, "J-retry")

	for _, bad := range []crm.Pause{{Field: crm.GroupCountry, Value: "DE"}, {Field: "", Value: "junk"}, {Field: "Source", Value: "junk"}} {
		if _, err := s.Pause(ctx, bad); err == nil {
			t.Errorf("Pause(%+v) accepted", bad)
		}
	}
	if ps, err := s.Pauses(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("pauses after refused rules = %+v, %v", ps, err)
	}
	clk.Advance(time.Second)
	pausedAt := clk.Now()
	n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "junk"})
	if err != nil || n != 2 {
		t.Fatalf("Pause = %d, %v; want 2 (J-queued, J-retry)", n, err)
	}
	for _, ext := range []string{"J-queued", "J-retry"} {
		l := mustLead(t, s, ext)
		if l.State != crm.StateHeld || l.Hold != crm.HoldSource || l.Reason != "paused: source junk" || !l.NextAttemptAt.IsZero() {
			t.Errorf("%s = %s hold %q reason %q next %v; want held by the pause", ext, l.State, l.Hold, l.Reason, l.NextAttemptAt)
		}
	}
	if l := mustLead(t, s, "J-retry"); l.Attempts != retry.Attempts || l.IdempotencyKey != retry.IdempotencyKey {
		t.Errorf("paused retry lost its attempts or key: %d %q", l.Attempts, l.IdempotencyKey)
	}
	for ext, want := range map[string]crm.State{"J-done": crm.StateRejected, "J-flight": crm.StateInFlight, "G-1": crm.StateQueued} {
		if l := mustLead(t, s, ext); l.State != want {
			t.Errorf("%s = %s, want %s (not the pause's)", ext, l.State, want)
		}
	}
	if l := mustLead(t, s, "J-op"); l.Hold != crm.HoldOperator {
		t.Errorf("the operator's hold became %q", l.Hold)
	}
	clk.Advance(time.Second)
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "junk"}); err != nil || n != 0 {
		t.Fatalf("pausing twice = %d, %v; want 0, nil", n, err)
	}
	clk.Advance(time.Second)
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSubID, Value: "404"}); err != nil || n != 0 {
		t.Fatalf("pause a sub_id nobody has = %d, %v", n, err)
	}
	ps, err := s.Pauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]crm.Pause{{Field: crm.GroupSource, Value: "junk", At: pausedAt}, {Field: crm.GroupSubID, Value: "404", At: clk.Now()}})
	if fmt.Sprint(normPauses(ps)) != want {
		t.Fatalf("Pauses = %v, want %v", normPauses(ps), want)
	}

	// Enqueued while paused: held at once, and the returned lead says so.
	l := mustEnqueueFields(t, s, "J-new", junk)
	if l.State != crm.StateHeld || l.Hold != crm.HoldSource || l.Reason != "paused: source junk" {
		t.Fatalf("enqueued while paused: %s hold %q reason %q", l.State, l.Hold, l.Reason)
	}
	if got := mustLead(t, s, "J-new"); got.State != crm.StateHeld || got.Hold != crm.HoldSource || !got.NextAttemptAt.IsZero() {
		t.Fatalf("stored: %s hold %q next %v", got.State, got.Hold, got.NextAttemptAt)
	}
	leads, errs, err := s.EnqueueBatch(ctx, [][]byte{fieldPayload("J-b1", junk), fieldPayload("G-b1", fields{source: "good"})}, store.EnqueueOptions{})
	if err != nil || errors.Join(errs...) != nil {
		t.Fatal(err, errors.Join(errs...))
	}
	if leads[0].State != crm.StateHeld || leads[0].Hold != crm.HoldSource || leads[1].State != crm.StateQueued {
		t.Fatalf("batch: %s/%q, %s", leads[0].State, leads[0].Hold, leads[1].State)
	}
	if c := assertCounts(t, s, "pause"); c.States[crm.StateHeld] != 5 {
		t.Fatalf("Counts held = %d, want 5", c.States[crm.StateHeld])
	}
	got, err := s.Claim(ctx, "w2", clk.Now(), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Source == "junk" || c.ExternalID[0] == 'J' {
			t.Errorf("claimed %s of the paused source", c.ExternalID)
		}
	}
	if err := s.Release(ctx, "w2", leadIDs(got)); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Second)
	n, err = s.Resume(ctx, crm.Pause{Field: crm.GroupSource, Value: "junk"})
	if err != nil || n != 4 {
		t.Fatalf("Resume = %d, %v; want 4", n, err)
	}
	for _, ext := range []string{"J-queued", "J-retry", "J-new", "J-b1"} {
		l := mustLead(t, s, ext)
		if l.State != crm.StateQueued || l.Hold != "" || !l.NextAttemptAt.Equal(clk.Now()) {
			t.Errorf("%s after resume = %s hold %q next %v; want queued, due now", ext, l.State, l.Hold, l.NextAttemptAt)
		}
	}
	if l := mustLead(t, s, "J-op"); l.State != crm.StateHeld || l.Hold != crm.HoldOperator {
		t.Errorf("resume released the operator's hold: %s %q", l.State, l.Hold)
	}
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSource, Value: "junk"}); err != nil || n != 0 {
		t.Errorf("resume again = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSource, Value: "never-paused"}); err != nil || n != 0 {
		t.Errorf("resume an unknown rule = %d, %v; want 0, nil", n, err)
	}
	ps, err = s.Pauses(ctx)
	if err != nil || len(ps) != 1 || ps[0].Field != crm.GroupSubID {
		t.Fatalf("Pauses after resume = %+v, %v", ps, err)
	}
	if l := mustEnqueueFields(t, s, "J-after", junk); l.State != crm.StateQueued || l.Hold != "" {
		t.Errorf("enqueued after resume: %s hold %q", l.State, l.Hold)
	}
	assertCounts(t, s, "resume")
}

// normPauses is ps with times in UTC at millisecond resolution, for
// comparison.
func normPauses(ps []crm.Pause) []crm.Pause {
	out := slices.Clone(ps)
	for i := range out {
		out[i].At = out[i].At.UTC().Truncate(time.Millisecond)
	}
	return out
}

func leadIDs(ls []crm.Lead) []int64 {
	out := make([]int64, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

// testPauseTwoFields: a lead whose source and sub_id are both paused is
// held by its source; resuming either keeps it held by the other.
func testPauseTwoFields(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	both := fields{source: "S", subID: "77"} // a number: its JSON text
	mustEnqueueFields(t, s, "B-1", both)
	mustEnqueueFields(t, s, "B-2", both)
	mustEnqueueFields(t, s, "Sub-1", fields{source: "other", subID: `"77"`})
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSubID, Value: "77"}); err != nil || n != 3 {
		t.Fatalf("pause sub_id 77 = %d, %v; want 3", n, err)
	}
	if l := mustLead(t, s, "Sub-1"); l.Hold != crm.HoldSubID || l.Reason != "paused: sub_id 77" || l.SubID != "77" {
		t.Fatalf("Sub-1 = hold %q reason %q sub_id %q", l.Hold, l.Reason, l.SubID)
	}
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "S"}); err != nil || n != 0 {
		t.Fatalf("pause source S over held leads = %d, %v; want 0 (none queued)", n, err)
	}
	l := mustEnqueueFields(t, s, "B-3", both)
	if l.State != crm.StateHeld || l.Hold != crm.HoldSource || l.Reason != "paused: source S" {
		t.Fatalf("B-3 with both paused: %s hold %q reason %q; want held by its source", l.State, l.Hold, l.Reason)
	}
	clk.Advance(time.Second)
	// Resuming the source: B-3 (held by it) stays held, now by its sub_id.
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSource, Value: "S"}); err != nil || n != 0 {
		t.Fatalf("resume source S = %d, %v; want 0 (all still held by the sub_id)", n, err)
	}
	for _, ext := range []string{"B-1", "B-2", "B-3", "Sub-1"} {
		if l := mustLead(t, s, ext); l.State != crm.StateHeld || l.Hold != crm.HoldSubID {
			t.Errorf("%s = %s hold %q, want held by sub_id", ext, l.State, l.Hold)
		}
	}
	// Release keeps a lead a pause covers held.
	if r := act(t, s, crm.ActRelease, "B-1")[0]; r.Err != nil || r.After != crm.StateHeld {
		t.Errorf("release under a pause: %+v, want still held, no error", r)
	}
	clk.Advance(time.Second)
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSubID, Value: "77"}); err != nil || n != 4 {
		t.Fatalf("resume sub_id 77 = %d, %v; want 4", n, err)
	}
	for _, ext := range []string{"B-1", "B-2", "B-3", "Sub-1"} {
		if l := mustLead(t, s, ext); l.State != crm.StateQueued || l.Hold != "" || !l.NextAttemptAt.Equal(clk.Now()) {
			t.Errorf("%s = %s hold %q next %v, want queued due now", ext, l.State, l.Hold, l.NextAttemptAt)
		}
	}
	// The other way round: the source paused last, its sub_id resumed.
	mustEnqueueFields(t, s, "C-1", both)
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSubID, Value: "77"}); err != nil || n != 5 {
		t.Fatalf("pause sub_id 77 again = %d, %v; want 5", n, err)
	}
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "S"}); err != nil || n != 0 {
		t.Fatalf("pause source S = %d, %v", n, err)
	}
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSubID, Value: "77"}); err != nil || n != 1 {
		t.Fatalf("resume sub_id 77 with source S paused = %d, %v; want 1 (Sub-1)", n, err)
	}
	for ext, hold := range map[string]string{"B-1": crm.HoldSource, "C-1": crm.HoldSource, "Sub-1": ""} {
		if l := mustLead(t, s, ext); l.Hold != hold {
			t.Errorf("%s hold %q, want %q", ext, l.Hold, hold)
		}
	}
	assertCounts(t, s, "two pauses")
}

// testPauseRetry: an attempt that ends in a retry while its source is
// paused leaves the lead held, with its attempt recorded as it was.
func testPauseRetry(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueueFields(t, s, "P-1", fields{source: "slow"})
	mustEnqueueFields(t, s, "P-2", fields{source: "slow"})
	l1 := claimOne(t, s, clk, "w", "P-1")
	l2 := claimOne(t, s, clk, "w", "P-2")
	if n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "slow"}); err != nil || n != 0 {
		t.Fatalf("pause with both in flight = %d, %v; want 0", n, err)
	}
	next := clk.Now().Add(time.Minute)
	if err := s.Record(ctx, "w", crm.AttemptResult{
		Attempt:       crm.Attempt{LeadID: l1.ID, Outcome: crm.StateRetryWait, Error: "dial tcp: connection refused", StartedAt: clk.Now()},
		NextAttemptAt: next,
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "w", crm.AttemptResult{
		Attempt: crm.Attempt{LeadID: l2.ID, HTTPStatus: 200, Outcome: crm.StateAccepted, StartedAt: clk.Now()}, CRMID: "crm-p2",
	}); err != nil {
		t.Fatal(err)
	}
	d := mustDetail(t, s, "P-1")
	if d.Lead.State != crm.StateHeld || d.Lead.Hold != crm.HoldSource || !d.Lead.NextAttemptAt.IsZero() ||
		d.Lead.Attempts != l1.Attempts || d.Lead.IdempotencyKey != l1.IdempotencyKey || d.Lead.LeaseOwner != "" {
		t.Fatalf("retried while paused: %s hold %q next %v attempts %d key %q lease %q; want held by source, attempts %d, key kept",
			d.Lead.State, d.Lead.Hold, d.Lead.NextAttemptAt, d.Lead.Attempts, d.Lead.IdempotencyKey, d.Lead.LeaseOwner, l1.Attempts)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].Outcome != crm.StateRetryWait {
		t.Fatalf("attempts = %+v, want the one retry_wait", d.Attempts)
	}
	if l := mustLead(t, s, "P-2"); l.State != crm.StateAccepted {
		t.Fatalf("P-2 = %s, a final answer is kept", l.State)
	}
	clk.Advance(2 * time.Minute)
	if got, _ := s.Claim(ctx, "w", clk.Now(), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed %s while paused", names(got))
	}
	if n, err := s.Resume(ctx, crm.Pause{Field: crm.GroupSource, Value: "slow"}); err != nil || n != 1 {
		t.Fatalf("resume = %d, %v", n, err)
	}
	got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 10)
	if err != nil || names(got) != "[P-1]" || got[0].Attempts != l1.Attempts+1 || got[0].IdempotencyKey != l1.IdempotencyKey {
		t.Fatalf("claim after resume = %+v, %v; want P-1, attempt %d, same key", got, err, l1.Attempts+1)
	}
	assertCounts(t, s, "retry while paused")
}

// testPauseRacesEnqueue: batches enqueued on one Store while another
// pauses their source, and senders claim. Every lead is counted once:
// held by the Pause, held at enqueue, or claimed before the pause; a
// batch started after Pause returned is held whole, and a claim started
// after it takes none of the source's leads.
func testPauseRacesEnqueue(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, reopen := open(t, h, store.Options{})
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	batches := 40
	if testing.Short() {
		batches = 10
	}
	var (
		paused        atomic.Bool
		wg            sync.WaitGroup
		mu            sync.Mutex
		errs          []error
		total, atEnq  int
		claimedSource = map[string]bool{}
		queuedAtEnq   = map[string]bool{}
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	start := make(chan struct{})
	enqueued := make(chan struct{}) // after the first batch
	// The sender claims when a batch went in, as a woken dispatcher does:
	// a claim loop spinning on BEGIN IMMEDIATE in another handle would
	// starve the Pause of SQLite's lock (its busy handler is not fair),
	// which is a test of the lock, not of the pause.
	kick := make(chan struct{}, 1)
	enqDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(enqDone)
		<-start
		// At least a few batches go in after Pause returned, however
		// long it took.
		for b, afterPause := 0, 0; b < batches || afterPause < 3; b++ {
			after := paused.Load()
			if after {
				afterPause++
			}
			var ps [][]byte
			for i := range 10 {
				ps = append(ps, fieldPayload(fmt.Sprintf("R-%02d-%d", b, i), fields{source: "race"}))
			}
			leads, es, err := other.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
			if err == nil {
				err = errors.Join(es...)
			}
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			for _, l := range leads {
				total++
				switch l.State {
				case crm.StateHeld:
					atEnq++
				case crm.StateQueued:
					queuedAtEnq[l.ExternalID] = true
					if after {
						errs = append(errs, fmt.Errorf("%s enqueued queued after Pause returned", l.ExternalID))
					}
				default:
					errs = append(errs, fmt.Errorf("%s enqueued %s", l.ExternalID, l.State))
				}
			}
			mu.Unlock()
			if b == 0 {
				close(enqueued)
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for {
			after := paused.Load()
			got, err := other.Claim(ctx, "sender", clk.Now(), time.Hour, 2)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			for _, l := range got {
				claimedSource[l.ExternalID] = true
				if after {
					errs = append(errs, fmt.Errorf("%s claimed by a claim started after Pause returned", l.ExternalID))
				}
			}
			mu.Unlock()
			if after && len(got) == 0 {
				return
			}
			if !after && len(got) == 0 {
				select {
				case <-kick:
				case <-enqDone:
				}
			}
		}
	}()
	close(start)
	<-enqueued
	n, err := s.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "race"})
	paused.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if len(errs) > 0 {
		t.Fatal(fewErrors(errs))
	}
	for ext := range claimedSource {
		if !queuedAtEnq[ext] {
			t.Errorf("%s claimed but it was enqueued held", ext)
		}
	}
	if n+atEnq+len(claimedSource) != total {
		t.Errorf("held by Pause %d + held at enqueue %d + claimed %d != %d enqueued", n, atEnq, len(claimedSource), total)
	}
	c := assertCounts(t, s, "pause racing enqueue")
	if c.States[crm.StateHeld] != total-len(claimedSource) || c.States[crm.StateQueued] != 0 {
		t.Errorf("counts %s; want every unclaimed lead held (%d)", countsString(c), total-len(claimedSource))
	}
	t.Logf("%d enqueued: %d held by Pause, %d held at enqueue, %d claimed", total, n, atEnq, len(claimedSource))
}
