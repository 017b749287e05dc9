package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// testForward covers forwarding's durable queue (docs/protocol.md §5):
// where the cursor starts, order per lead, two Stores claiming at once,
// lease expiry and a forwarder gone between claim and record, release,
// replay, the stats, the timeline, the change signal, and what Prune and
// Forget do to it.
func testForward(t *testing.T, h Harness) {
	t.Run("CursorStartsAtNewest", func(t *testing.T) { testForwardCursor(t, h) })
	t.Run("OrderPerLead", func(t *testing.T) { testForwardOrder(t, h) })
	t.Run("TwoInstances", func(t *testing.T) { testForwardConcurrent(t, h) })
	t.Run("LeaseExpiry", func(t *testing.T) { testForwardLease(t, h) })
	t.Run("Release", func(t *testing.T) { testForwardRelease(t, h) })
	t.Run("Replay", func(t *testing.T) { testForwardReplay(t, h) })
	t.Run("Stats", func(t *testing.T) { testForwardStats(t, h) })
	t.Run("Timeline", func(t *testing.T) { testForwardTimeline(t, h) })
	t.Run("Watch", func(t *testing.T) { testForwardWatch(t, h) })
	t.Run("Prune", func(t *testing.T) { testForwardPrune(t, h) })
	t.Run("Forget", func(t *testing.T) { testForwardForget(t, h) })
	t.Run("OutOfOrderCommit", func(t *testing.T) { testForwardOutOfOrder(t, h) })
}

// fwdLease is the lease the tests claim deliveries with.
const fwdLease = time.Minute

// saveStatus stores one status callback for ext (linked when ext is an
// enqueued lead) and returns its stored row.
func saveStatus(tb testing.TB, s store.Store, ext, status string, ts int64) crm.CallbackEvent {
	tb.Helper()
	ev := callback("crm-"+ext, ext, "status_changed", status, ts)
	fresh, err := s.SaveCallbacks(context.Background(), []crm.CallbackEvent{ev})
	if err != nil || !fresh[0] {
		tb.Fatalf("save callback %s %s: fresh %v, %v", ext, status, fresh, err)
	}
	// The tail may withhold a committed row while an older transaction of
	// this database runs (PostgreSQL's horizon, e.g. another Store's fold),
	// so the row is looked for until it is listed (poll's deadline).
	var (
		id      int64
		listErr error
	)
	poll.Until(tb, fmt.Sprintf("callback %s %s to be listed after saving", ext, status), func() bool {
		evs, err := s.CallbacksAfter(context.Background(), 0, 10000)
		if err != nil {
			listErr = err
			return true
		}
		for _, e := range slices.Backward(evs) {
			if e.InternalID == ev.InternalID && e.Timestamp == ev.Timestamp {
				id = e.ID
				return true
			}
		}
		return false
	})
	if listErr != nil {
		tb.Fatalf("callbacks after: %v", listErr)
	}
	stored, err := s.Callback(context.Background(), id)
	if err != nil {
		tb.Fatalf("callback %d: %v", id, err)
	}
	return stored
}

func startForwarding(tb testing.TB, s store.Store) {
	tb.Helper()
	if err := s.StartForwarding(context.Background()); err != nil {
		tb.Fatalf("start forwarding: %v", err)
	}
}

func claimDeliveries(tb testing.TB, s store.Store, owner string, now time.Time, limit int) []crm.Delivery {
	tb.Helper()
	ds, err := s.ClaimDeliveries(context.Background(), owner, now, fwdLease, limit)
	if err != nil {
		tb.Fatalf("claim deliveries (%s): %v", owner, err)
	}
	for _, d := range ds {
		if d.State != crm.DeliveryInFlight {
			tb.Errorf("claimed delivery %d in state %s, want in_flight", d.ID, d.State)
		}
	}
	return ds
}

func recordDeliveries(tb testing.TB, s store.Store, owner string, rs ...crm.DeliveryResult) {
	tb.Helper()
	lost, err := s.RecordDeliveries(context.Background(), owner, rs)
	if err != nil || len(lost) != 0 {
		tb.Fatalf("record deliveries (%s): lost %v, %v", owner, lost, err)
	}
}

func delivered(id int64, at time.Time) crm.DeliveryResult {
	return crm.DeliveryResult{ID: id, At: at, Status: 200, Head: []byte("ok"), Latency: 3 * time.Millisecond, Delivered: true}
}

func retryAt(id int64, at, next time.Time, why string) crm.DeliveryResult {
	return crm.DeliveryResult{ID: id, At: at, Status: 503, Head: []byte("busy"), Latency: time.Millisecond, Error: why, NextAt: next}
}

// deliveredCallbacks is the callback ids of ds, in order.
func deliveredCallbacks(ds []crm.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.CallbackID
	}
	return out
}

func forwardStats(tb testing.TB, s store.Store) crm.ForwardStats {
	tb.Helper()
	st, err := s.ForwardStats(context.Background())
	if err != nil {
		tb.Fatalf("forward stats: %v", err)
	}
	return st
}

func testForwardCursor(t *testing.T, h Harness) {
	s, clk, reopen := open(t, h, store.Options{})
	mustEnqueue(t, s, "old")
	saveStatus(t, s, "old", "new", 1)
	if st := forwardStats(t, s); st.Enabled || st.Pending != 0 || st.Lag != 0 {
		t.Fatalf("before StartForwarding: %+v, want disabled and empty", st)
	}
	if ds := claimDeliveries(t, s, "a", clk.Now(), 10); len(ds) != 0 {
		t.Fatalf("claim before StartForwarding: %v, want none", deliveredCallbacks(ds))
	}
	startForwarding(t, s)
	if ds := claimDeliveries(t, s, "a", clk.Now(), 10); len(ds) != 0 {
		t.Fatalf("claim right after StartForwarding: %v, want none (history is not forwarded)", deliveredCallbacks(ds))
	}
	mustEnqueue(t, s, "lead")
	first := saveStatus(t, s, "lead", "new", 2)
	second := saveStatus(t, s, "stray", "ftd", 3) // unmatched
	if st := forwardStats(t, s); !st.Enabled || st.Lag != 2 {
		t.Fatalf("two callbacks after the start: %+v, want enabled with lag 2", st)
	}
	// A second start (a restart, another instance) does not move the
	// cursor: the two stored since stay queued.
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	startForwarding(t, other)
	ds := claimDeliveries(t, other, "b", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{first.ID, second.ID}) {
		t.Fatalf("claimed callbacks %v, want [%d %d]", got, first.ID, second.ID)
	}
	d := ds[0]
	if d.ExternalID != "lead" || d.LeadID == 0 || d.WebhookID != fmt.Sprintf("cb_%d", first.ID) ||
		!bytes.Equal(d.Body, first.RawBody) || d.Replay || d.Attempts != 0 {
		t.Errorf("first delivery %+v: want lead's, webhook-id cb_%d, the raw body, no replay, no attempts", d, first.ID)
	}
	if ds[1].ExternalID != "" || ds[1].LeadID != 0 || !bytes.Equal(ds[1].Body, second.RawBody) {
		t.Errorf("unmatched delivery %+v: want no lead and the raw body", ds[1])
	}
	if st := forwardStats(t, s); st.Lag != 0 || st.InFlight != 2 {
		t.Errorf("after the claim: %+v, want lag 0 and 2 in flight", st)
	}
}

func testForwardOrder(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "A")
	mustEnqueue(t, s, "B")
	startForwarding(t, s)
	a1 := saveStatus(t, s, "A", "new", 1)
	a2 := saveStatus(t, s, "A", "no_answer", 2)
	b1 := saveStatus(t, s, "B", "new", 3)
	u1 := saveStatus(t, s, "U", "new", 4)
	u2 := saveStatus(t, s, "U", "ftd", 5)
	a3 := saveStatus(t, s, "A", "ftd", 6)

	// One delivery per lead at a time; unmatched ones wait on nothing.
	ds := claimDeliveries(t, s, "w", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{a1.ID, b1.ID, u1.ID, u2.ID}) {
		t.Fatalf("first claim %v, want [A1 B1 U1 U2] = %v", got, []int64{a1.ID, b1.ID, u1.ID, u2.ID})
	}
	t0 := clk.Now()
	recordDeliveries(t, s, "w", retryAt(ds[0].ID, t0, t0.Add(time.Minute), "503"),
		delivered(ds[1].ID, t0), delivered(ds[2].ID, t0), delivered(ds[3].ID, t0))
	// A1 waits to retry, and A2, A3 wait behind it.
	if ds := claimDeliveries(t, s, "w", clk.Now(), 10); len(ds) != 0 {
		t.Fatalf("while A1 waits to retry: claimed %v, want none", deliveredCallbacks(ds))
	}
	clk.Advance(time.Minute)
	ds = claimDeliveries(t, s, "w", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{a1.ID}) || ds[0].Attempts != 1 || ds[0].LastError != "503" {
		t.Fatalf("after the retry time: %v (%+v), want A1 again with 1 attempt and its error", got, ds)
	}
	recordDeliveries(t, s, "w", delivered(ds[0].ID, clk.Now()))
	ds = claimDeliveries(t, s, "w", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{a2.ID}) {
		t.Fatalf("after A1 delivered: %v, want A2", got)
	}
	// A delivery given up on does not block the lead's next one.
	recordDeliveries(t, s, "w", crm.DeliveryResult{ID: ds[0].ID, At: clk.Now(), Error: "connection refused", Final: true})
	ds = claimDeliveries(t, s, "w", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{a3.ID}) {
		t.Fatalf("after A2 failed: %v, want A3", got)
	}
}

// testForwardConcurrent has two Stores on one database claim and record
// at once, as two instances would: every delivery is made exactly once
// (no lease expires), each lead's in stored order, and a lead is never
// held by both at once.
func testForwardConcurrent(t *testing.T, h Harness) {
	s1, clk, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{Now: clk.Now})
	leads, per := 12, 8
	if testing.Short() {
		leads, per = 6, 4
	}
	startForwarding(t, s1)
	want := map[string][]int64{}
	for i := range leads {
		mustEnqueue(t, s1, fmt.Sprintf("L%d", i))
	}
	for j := range per {
		for i := range leads {
			ext := fmt.Sprintf("L%d", i)
			ev := saveStatus(t, s1, ext, fmt.Sprintf("s%d", j), int64(j+1))
			want[ext] = append(want[ext], ev.ID)
		}
	}
	var (
		mu      sync.Mutex
		got     = map[string][]int64{}
		holding = map[string]string{} // lead -> owner holding one of its deliveries
		total   int
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := func(s store.Store, owner string) error {
		// Nothing claimable means the other holds the leads that are
		// due: wait for a commit (bounded) rather than spin on the lock.
		changed := s.Watch(ctx)
		for idle := 0; idle < 3; {
			ds, err := s.ClaimDeliveries(context.Background(), owner, clk.Now(), time.Hour, 5)
			if err != nil {
				return err
			}
			mu.Lock()
			done := total == leads*per
			for _, d := range ds {
				if o, ok := holding[d.ExternalID]; ok {
					mu.Unlock()
					return fmt.Errorf("%s claimed callback %d of %s while %s holds one of its deliveries", owner, d.CallbackID, d.ExternalID, o)
				}
				holding[d.ExternalID] = owner
			}
			mu.Unlock()
			if len(ds) == 0 {
				if done {
					idle++
					continue
				}
				select {
				case <-changed:
				case <-time.After(time.Second):
				}
				continue
			}
			rs := make([]crm.DeliveryResult, len(ds))
			mu.Lock()
			for i, d := range ds {
				rs[i] = delivered(d.ID, clk.Now())
				got[d.ExternalID] = append(got[d.ExternalID], d.CallbackID)
				delete(holding, d.ExternalID)
				total++
			}
			mu.Unlock()
			if lost, err := s.RecordDeliveries(context.Background(), owner, rs); err != nil || len(lost) > 0 {
				return fmt.Errorf("%s record: lost %v, %v", owner, lost, err)
			}
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- work(s1, "one") }()
	go func() { errs <- work(s2, "two") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for ext, ids := range want {
		if !slices.Equal(got[ext], ids) {
			t.Errorf("%s delivered callbacks %v, want %v (each once, in stored order)", ext, got[ext], ids)
		}
	}
	if st := forwardStats(t, s2); st.Delivered != leads*per || st.Pending != 0 || st.InFlight != 0 {
		t.Errorf("stats after the run: %+v, want %d delivered and nothing left", st, leads*per)
	}
}

// testForwardLease: a forwarder that claimed and then vanished (its Store
// closed without recording, as a kill -9 leaves it) loses the delivery to
// another once the lease ends, and its late record is refused.
func testForwardLease(t *testing.T, h Harness) {
	s, clk, reopen := open(t, h, store.Options{})
	mustEnqueue(t, s, "K")
	startForwarding(t, s)
	ev := saveStatus(t, s, "K", "new", 1)
	gone := mustReopen(t, reopen, store.Options{Now: clk.Now})
	ds := claimDeliveries(t, gone, "gone", clk.Now(), 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	if again := claimDeliveries(t, s, "next", clk.Now().Add(fwdLease-time.Millisecond), 10); len(again) != 0 {
		t.Fatalf("before the lease ends: claimed %v, want none", deliveredCallbacks(again))
	}
	clk.Advance(fwdLease)
	again := claimDeliveries(t, s, "next", clk.Now(), 10)
	if len(again) != 1 || again[0].ID != ds[0].ID || again[0].CallbackID != ev.ID || again[0].Attempts != 0 {
		t.Fatalf("after the lease ended: %+v, want delivery %d again, no attempts recorded", again, ds[0].ID)
	}
	late := mustReopen(t, reopen, store.Options{Now: clk.Now})
	lost, err := late.RecordDeliveries(context.Background(), "gone", []crm.DeliveryResult{delivered(ds[0].ID, clk.Now())})
	if err != nil || !slices.Equal(lost, []int64{ds[0].ID}) {
		t.Fatalf("the old owner's record: lost %v, %v; want [%d] lost", lost, err, ds[0].ID)
	}
	if err := late.ReleaseDeliveries(context.Background(), "gone", []int64{ds[0].ID}); err != nil {
		t.Fatalf("the old owner's release: %v", err)
	}
	recordDeliveries(t, s, "next", delivered(again[0].ID, clk.Now()))
	fa, err := s.ForwardAttempts(context.Background(), "K")
	if err != nil || len(fa) != 1 {
		t.Fatalf("attempts: %v, %v; want exactly the new owner's one", fa, err)
	}
}

func testForwardRelease(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	startForwarding(t, s)
	saveStatus(t, s, "R", "new", 1)
	ds := claimDeliveries(t, s, "a", clk.Now(), 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d, want 1", len(ds))
	}
	if err := s.ReleaseDeliveries(context.Background(), "b", []int64{ds[0].ID}); err != nil {
		t.Fatal(err)
	}
	if again := claimDeliveries(t, s, "b", clk.Now(), 10); len(again) != 0 {
		t.Fatalf("after another owner's release: claimed %d, want none (a's lease holds)", len(again))
	}
	if err := s.ReleaseDeliveries(context.Background(), "a", []int64{ds[0].ID}); err != nil {
		t.Fatal(err)
	}
	again := claimDeliveries(t, s, "b", clk.Now(), 10)
	if len(again) != 1 || again[0].ID != ds[0].ID || again[0].Attempts != 0 {
		t.Fatalf("after release: %+v, want the same delivery, due now, no attempt counted", again)
	}
}

func testForwardReplay(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "P")
	early := saveStatus(t, s, "P", "new", 1) // before forwarding: history
	clk.Advance(time.Hour)
	startForwarding(t, s)
	late := saveStatus(t, s, "P", "ftd", 2)
	ds := claimDeliveries(t, s, "a", clk.Now(), 10)
	recordDeliveries(t, s, "a", delivered(ds[0].ID, clk.Now()))

	n, err := s.Replay(context.Background(), []int64{early.ID, late.ID, 1 << 40}, time.Time{})
	if err != nil || n != 2 {
		t.Fatalf("replay two ids and an unknown one: %d, %v; want 2", n, err)
	}
	ds = claimDeliveries(t, s, "a", clk.Now(), 10)
	// The older callback's replay comes first and holds the newer back.
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{early.ID}) || !ds[0].Replay ||
		ds[0].WebhookID != fmt.Sprintf("cb_%d", early.ID) || !bytes.Equal(ds[0].Body, early.RawBody) {
		t.Fatalf("after replay: %+v, want the early callback's replay, same webhook-id and body", ds)
	}
	recordDeliveries(t, s, "a", delivered(ds[0].ID, clk.Now()))
	ds = claimDeliveries(t, s, "a", clk.Now(), 10)
	if got := deliveredCallbacks(ds); !slices.Equal(got, []int64{late.ID}) || !ds[0].Replay {
		t.Fatalf("then: %v, want the late callback's replay", got)
	}
	recordDeliveries(t, s, "a", delivered(ds[0].ID, clk.Now()))
	// By time: only the callback received within the last half hour.
	if n, err := s.Replay(context.Background(), nil, clk.Now().Add(-30*time.Minute)); err != nil || n != 1 {
		t.Fatalf("replay since half an hour ago: %d, %v; want 1", n, err)
	}
	if n, err := s.Replay(context.Background(), nil, time.Time{}); err != nil || n != 2 {
		t.Fatalf("replay since the beginning: %d, %v; want 2", n, err)
	}
	if st := forwardStats(t, s); st.Pending != 3 || st.Delivered != 3 {
		t.Fatalf("stats: %+v, want 3 pending and 3 delivered", st)
	}
}

func testForwardStats(t *testing.T, h Harness) {
	s, clk, reopen := open(t, h, store.Options{})
	startForwarding(t, s)
	t0 := clk.Now()
	for i := range 4 {
		saveStatus(t, s, fmt.Sprintf("S%d", i), "new", 1)
	}
	ds := claimDeliveries(t, s, "a", t0, 3)
	if len(ds) != 3 {
		t.Fatalf("claim: %d, want 3", len(ds))
	}
	clk.Advance(time.Second)
	recordDeliveries(t, s, "a", delivered(ds[0].ID, t0),
		retryAt(ds[1].ID, clk.Now(), clk.Now().Add(time.Hour), "503 Service Unavailable"),
		crm.DeliveryResult{ID: ds[2].ID, At: clk.Now(), Error: "timeout", Final: true})
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	st := forwardStats(t, other)
	if !st.Enabled || st.Pending != 2 || st.InFlight != 0 || st.Delivered != 1 || st.Failed != 1 || st.Lag != 0 {
		t.Errorf("stats %+v: want 2 pending (one new, one retrying), 1 delivered, 1 failed", st)
	}
	if st.LastError != "timeout" || !st.LastErrorAt.Equal(clk.Now()) || !st.LastDelivered.Equal(t0) {
		t.Errorf("stats %+v: want last error timeout at %v, last delivered at %v", st, clk.Now(), t0)
	}
	if !st.OldestPending.Equal(t0) {
		t.Errorf("oldest pending %v, want %v (queued at the claim)", st.OldestPending, t0)
	}
}

func testForwardTimeline(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "T")
	startForwarding(t, s)
	ev := saveStatus(t, s, "T", "new", 1)
	saveStatus(t, s, "other", "new", 1)
	t0 := clk.Now()
	ds := claimDeliveries(t, s, "a", t0, 10)
	if len(ds) != 2 {
		t.Fatalf("claim: %d, want 2", len(ds))
	}
	mine := ds[0]
	recordDeliveries(t, s, "a", retryAt(mine.ID, t0, t0, "503"), delivered(ds[1].ID, t0))
	ds = claimDeliveries(t, s, "a", t0, 10)
	recordDeliveries(t, s, "a", delivered(ds[0].ID, t0.Add(time.Second)))

	check := func(what string, fa []crm.ForwardAttempt) {
		t.Helper()
		if len(fa) != 2 {
			t.Fatalf("%s: %d attempts, want 2", what, len(fa))
		}
		a, b := fa[0], fa[1]
		if a.DeliveryID != mine.ID || a.CallbackID != ev.ID || a.ExternalID != "T" || a.WebhookID != fmt.Sprintf("cb_%d", ev.ID) ||
			a.Status != 503 || string(a.Head) != "busy" || a.Error != "503" || a.Delivered || a.Latency != time.Millisecond ||
			!a.At.Equal(t0) || !a.NextAt.Equal(t0) {
			t.Errorf("%s: first attempt %+v", what, a)
		}
		if b.ID <= a.ID || b.Status != 200 || !b.Delivered || string(b.Head) != "ok" || b.Error != "" || !b.At.Equal(t0.Add(time.Second)) {
			t.Errorf("%s: second attempt %+v", what, b)
		}
	}
	fa, err := s.ForwardAttempts(context.Background(), "T")
	if err != nil {
		t.Fatal(err)
	}
	check("ForwardAttempts", fa)
	check("LeadDetail", mustDetail(t, s, "T").Forwards)
	if fa, err := s.ForwardAttempts(context.Background(), "nobody"); err != nil || len(fa) != 0 {
		t.Errorf("attempts of an unknown lead: %v, %v; want none", fa, err)
	}
	all, err := attemptsAfter(t, s, 0, 2, 2)
	if err != nil || len(all) != 2 {
		t.Fatalf("attempts after 0, limit 2: %v, %v", all, err)
	}
	rest, err := attemptsAfter(t, s, all[1].ID, 10, 1)
	if err != nil || len(rest) != 1 || rest[0].ID <= all[1].ID {
		t.Fatalf("attempts after %d: %v, %v; want the last one", all[1].ID, rest, err)
	}
	if all[1].ExternalID != "" || !all[1].Delivered {
		t.Errorf("the unmatched callback's attempt %+v: want no lead, delivered", all[1])
	}
}

func testForwardWatch(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, clk, reopen := open(t, h, store.Options{})
	startForwarding(t, s)
	other := mustReopen(t, reopen, store.Options{Now: clk.Now})
	ch := other.Watch(ctx)
	n := 0
	poll.Until(t, "a signal after a delivery is recorded", func() bool {
		n++
		saveStatus(t, s, fmt.Sprintf("W%d", n), "new", 1)
		ds := claimDeliveries(t, s, "a", clk.Now(), 10)
		for {
			select {
			case <-ch: // drain what the save and claim signalled
				continue
			default:
			}
			break
		}
		for _, d := range ds {
			recordDeliveries(t, s, "a", delivered(d.ID, clk.Now()))
		}
		select {
		case _, ok := <-ch:
			return ok
		case <-time.After(time.Second):
			return false
		}
	})
}

func testForwardPrune(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	startForwarding(t, s)
	saveStatus(t, s, "done", "new", 1)
	saveStatus(t, s, "live", "new", 1)
	ds := claimDeliveries(t, s, "a", clk.Now(), 10)
	if len(ds) != 2 {
		t.Fatalf("claim: %d, want 2", len(ds))
	}
	// Three attempts each; "done" is delivered at the third, "live" still
	// retries.
	for i := range 3 {
		now := clk.Now()
		rs := []crm.DeliveryResult{retryAt(ds[1].ID, now, now, "503")}
		if i < 2 {
			rs = append(rs, retryAt(ds[0].ID, now, now, "503"))
		} else {
			rs = append(rs, delivered(ds[0].ID, now))
		}
		recordDeliveries(t, s, "a", rs...)
		clk.Advance(time.Minute)
		if i < 2 {
			ds = claimDeliveries(t, s, "a", clk.Now(), 10)
			if len(ds) != 2 {
				t.Fatalf("claim %d: %d, want 2", i, len(ds))
			}
		}
	}
	st, err := s.Prune(context.Background(), clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.ForwardAttempts != 2 {
		t.Errorf("prune: %d forward attempts deleted, want 2 (the delivered one's but its last)", st.ForwardAttempts)
	}
	all, err := attemptsAfter(t, s, 0, 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	var done, live int
	for _, a := range all {
		if a.DeliveryID == ds[0].ID {
			done++
			if !a.Delivered {
				t.Errorf("the delivered one kept attempt %+v, want its last (delivered)", a)
			}
		} else {
			live++
		}
	}
	if done != 1 || live != 3 {
		t.Errorf("after prune: %d attempts of the delivered one, %d of the retrying one; want 1 and 3", done, live)
	}
}

func testForwardForget(t *testing.T, h Harness) {
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "F")
	mustEnqueue(t, s, "keep")
	startForwarding(t, s)
	saveStatus(t, s, "F", "new", 1)
	saveStatus(t, s, "F", "ftd", 2)
	saveStatus(t, s, "keep", "new", 1)
	ds := claimDeliveries(t, s, "a", clk.Now(), 10)
	if len(ds) != 2 {
		t.Fatalf("claim: %d, want 2 (F's first, keep's)", len(ds))
	}
	echo := func(id int64) crm.DeliveryResult {
		return crm.DeliveryResult{ID: id, At: clk.Now(), Status: 200, Head: []byte(`{"echo":"+15550100"}`), Delivered: true}
	}
	recordDeliveries(t, s, "a", echo(ds[0].ID), echo(ds[1].ID))
	if _, err := s.Forget(context.Background(), "F"); err != nil {
		t.Fatal(err)
	}
	fa, err := s.ForwardAttempts(context.Background(), "F")
	if err != nil || len(fa) != 1 {
		t.Fatalf("F's attempts after forget: %v, %v; want 1", fa, err)
	}
	if len(fa[0].Head) != 0 {
		t.Errorf("F's attempt kept its head %q after forget", fa[0].Head)
	}
	if kept, err := s.ForwardAttempts(context.Background(), "keep"); err != nil || len(kept) != 1 || len(kept[0].Head) == 0 {
		t.Errorf("another lead's attempts after forget: %v, %v; want its head kept", kept, err)
	}
	// F's second callback, not yet forwarded, lost its body: it is not
	// sent empty.
	if ds := claimDeliveries(t, s, "a", clk.Now(), 10); len(ds) != 0 {
		t.Errorf("after forget: claimed %v, want none (the forgotten lead's pending delivery ends failed)", deliveredCallbacks(ds))
	}
	if st := forwardStats(t, s); st.Failed != 1 || st.Pending != 0 {
		t.Errorf("stats after forget: %+v, want the pending one failed", st)
	}
	// Nor is it replayed: its body is gone. keep's still is.
	if n, err := s.Replay(context.Background(), nil, time.Time{}); err != nil || n != 1 {
		t.Errorf("replay everything after forget: %d, %v; want 1 (keep's; F's bodies are erased)", n, err)
	}
}

// testForwardOutOfOrder: a callback whose transaction took its id and
// then stalled must not be stepped over when a later id commits first;
// once it commits, both are delivered, once each.
func testForwardOutOfOrder(t *testing.T, h Harness) {
	if h.StallCallback == nil {
		t.Skip("this backend commits callbacks in id order (one writer): no out-of-order commit to test")
	}
	ctx := context.Background()
	s1, clk, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{Now: clk.Now})
	startForwarding(t, s1)
	ts := clk.Now().Unix()
	stalled, resume := h.StallCallback(t, s1, "slow")
	slowDone := make(chan error, 1)
	go func() {
		_, err := s1.SaveCallbacks(ctx, []crm.CallbackEvent{callback("slow", "", "e", "", ts)})
		slowDone <- err
	}()
	poll.Until(t, "the slow save to stall inside its transaction, its id taken", func() bool {
		select {
		case err := <-slowDone:
			t.Fatalf("the slow save returned without stalling: %v", err)
		default:
		}
		return stalled()
	})
	fastDone := make(chan error, 1)
	go func() {
		_, err := s2.SaveCallbacks(ctx, []crm.CallbackEvent{callback("fast", "", "e", "", ts)})
		fastDone <- err
	}()
	fastFirst := false
	select {
	case err := <-fastDone:
		if err != nil {
			resume()
			t.Fatalf("a second store's callback while the first's transaction is open: %v", err)
		}
		fastFirst = true
	case <-time.After(3 * time.Second):
		t.Log("the second save waits for the stalled one: inserts are serialized")
	}
	var got []crm.Delivery
	claim := func() {
		t.Helper()
		ds := claimDeliveries(t, s2, "b", clk.Now(), 10)
		for _, d := range ds {
			recordDeliveries(t, s2, "b", delivered(d.ID, clk.Now()))
		}
		got = append(got, ds...)
	}
	claim() // while the slow one is still open: the fast one must wait
	if len(got) != 0 {
		resume()
		t.Fatalf("claimed %v while a smaller callback id was still committing, want nothing yet", deliveredCallbacks(got))
	}
	resume()
	if err := <-slowDone; err != nil {
		t.Fatalf("the stalled save: %v", err)
	}
	if !fastFirst {
		if err := <-fastDone; err != nil {
			t.Fatalf("the second save: %v", err)
		}
	}
	// Other tests' transactions on the server may hold the bound back a
	// little longer: claim until both came.
	poll.Until(t, "both callbacks delivered", func() bool {
		claim()
		return len(got) >= 2
	})
	if len(got) != 2 || got[0].CallbackID >= got[1].CallbackID {
		t.Fatalf("delivered callbacks %v, want the two, each once, in id order", deliveredCallbacks(got))
	}
}

// attemptsAfter reads ForwardAttemptsAfter(after, limit) until it returns
// want attempts or fails, within poll's deadline, and returns the last
// answer: like the callbacks' tail (tailOf), a backend may withhold a
// committed attempt while an older transaction of its database runs.
func attemptsAfter(t *testing.T, s store.Store, after int64, limit, want int) (as []crm.ForwardAttempt, err error) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("the forward attempts after id %d to number %d", after, want), func() bool {
		as, err = s.ForwardAttemptsAfter(context.Background(), after, limit)
		return err != nil || len(as) >= want
	})
	return as, err
}
