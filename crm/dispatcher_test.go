package crm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// world is a sandbox, a store and a client over loopback.
type world struct {
	sb     *sandbox.Server
	db     *sqlite.DB
	client *crm.Client
}

func newWorld(t *testing.T, sc sandbox.Config) *world {
	t.Helper()
	sb := sandbox.StartTest(t, sc)
	return &world{sb: sb, db: storetest.Open(t, store.Options{}), client: newClient(t, sb.URL)}
}

func lead(id, phone, country string) []byte {
	m := map[string]string{"external_id": id, "phone": phone}
	if country != "" {
		m["country"] = country
	}
	b, _ := json.Marshal(m)
	return b
}

func (w *world) enqueue(t *testing.T, payloads ...[]byte) {
	t.Helper()
	for _, p := range payloads {
		if _, err := w.db.Enqueue(context.Background(), p, store.EnqueueOptions{}); err != nil {
			t.Fatalf("enqueue %s: %v", p, err)
		}
	}
}

// run starts a dispatcher and returns a stop function that waits for it.
func run(t *testing.T, outbox crm.Outbox, sender crm.Sender, cfg crm.DispatcherConfig) (*crm.Dispatcher, func()) {
	t.Helper()
	d := crm.NewDispatcher(outbox, sender, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// waitFinal polls the store until every id is final, for at most within.
func waitFinal(t *testing.T, db *sqlite.DB, ids []string, within time.Duration) map[string]crm.Lead {
	t.Helper()
	out := map[string]crm.Lead{}
	pending := 0
	poll.UntilWithin(t, within, "every lead to be final", func() bool {
		pending = 0
		for _, id := range ids {
			l, err := db.Lead(context.Background(), id)
			if err != nil {
				t.Fatalf("lead %s: %v", id, err)
			}
			out[id] = l
			if !l.State.Final() {
				pending++
			}
		}
		return pending == 0
	})
	return out
}

// lead returns the lead with that id, failing the test if there is none.
func (w *world) lead(t *testing.T, id string) crm.Lead {
	t.Helper()
	l, err := w.db.Lead(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fakeClock is a crm.Clock that moves only when told (Advance), and
// reports every wait the dispatcher starts (nextWait), so a test can step
// a Run loop through its waits instead of sleeping through them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration // every After's duration, in call order
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

// newFakeClock returns a fakeClock at now. Tests that enqueue after
// creating it start it ahead of the store's clock: the dispatcher claims
// a queued lead only once its clock has reached the lead's enqueue time.
func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration, 4096)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	}
	select {
	case c.waits <- d:
	default:
		panic("fakeClock: more waits than a test should ever need")
	}
	return ch
}

// Advance moves the clock by d and fires every timer that is then due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	c.timers = kept
}

// nextWait returns the duration of the next wait the dispatcher starts.
func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(poll.DefaultTimeout):
		t.Fatal("the dispatcher started no wait")
		return 0
	}
}

// drainWaits forgets the waits started so far.
func (c *fakeClock) drainWaits() {
	for {
		select {
		case <-c.waits:
		default:
			return
		}
	}
}

var fastPolicy = crm.RetryPolicy{MaxAttempts: 6, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, RateLimitedDelay: 50 * time.Millisecond}

func TestDispatcherOutcomes(t *testing.T) {
	w := newWorld(t, sandbox.Config{BlockCountries: []string{"RU"}})
	w.enqueue(t,
		lead("ok-1", "+380501234567", "UA"),
		lead("ok-2", "+48512345678", "PL"),
		lead("dup-phone", "+380501234567", "UA"),
		lead("bad-phone", "0501234567", ""),
		lead("geo", "+79121234567", "RU"),
		lead("bad-country", "+4915112345678", "Germany"),
	)
	run(t, w.db, w.client, crm.DispatcherConfig{Concurrency: 1, Policy: fastPolicy})
	got := waitFinal(t, w.db, []string{"ok-1", "ok-2", "dup-phone", "bad-phone", "geo", "bad-country"}, 10*time.Second)
	want := map[string]crm.State{
		"ok-1": crm.StateAccepted, "ok-2": crm.StateAccepted, "dup-phone": crm.StateDuplicate,
		"bad-phone": crm.StateValidationError, "geo": crm.StateRejected, "bad-country": crm.StateValidationError,
	}
	for id, st := range want {
		if got[id].State != st {
			t.Errorf("%s: state %s (%s), want %s", id, got[id].State, got[id].Reason, st)
		}
	}
	if got["ok-1"].CRMID == "" || got["dup-phone"].CRMID != got["ok-1"].CRMID || got["dup-phone"].Reason != "phone_exists" {
		t.Errorf("duplicate should name the existing lead: ok-1 %q, dup %q %q", got["ok-1"].CRMID, got["dup-phone"].CRMID, got["dup-phone"].Reason)
	}
	if got["geo"].Reason != "geo_not_allowed" {
		t.Errorf("geo reason %q", got["geo"].Reason)
	}
	d, err := w.db.LeadDetail(context.Background(), "ok-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].HTTPStatus != 200 || d.Attempts[0].IdempotencyKey != got["ok-2"].IdempotencyKey || d.Attempts[0].Outcome != crm.StateAccepted {
		t.Errorf("attempt history %+v", d.Attempts)
	}
}

// TestDispatcherChaos is the outbox under a hostile CRM: 30% 503, 10% 429
// with Retry-After, 5% dropped connections. Every lead ends final, nothing
// is created twice, and every wait after a 429 honours its Retry-After.
func TestDispatcherChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test in -short")
	}
	w := newWorld(t, sandbox.Config{Seed: 7, FailRate: 0.30, ThrottleRate: 0.10, RetryAfter: time.Second, DropRate: 0.05})
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("chaos-%03d", i)
		w.enqueue(t, lead(ids[i], fmt.Sprintf("+3805012%05d", i), "UA"))
	}
	policy := crm.RetryPolicy{MaxAttempts: 30, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, RateLimitedDelay: time.Second}
	run(t, w.db, w.client, crm.DispatcherConfig{Concurrency: 32, Policy: policy})
	got := waitFinal(t, w.db, ids, 60*time.Second)

	accepted := 0
	for _, id := range ids {
		if got[id].State == crm.StateAccepted {
			accepted++
		} else {
			t.Errorf("%s ended %s: %s", id, got[id].State, got[id].Reason)
		}
	}
	st := w.sb.Sandbox.Stats()
	if st.LeadsCreatedPerExternalIDMax != 1 || st.Accepted != int64(accepted) {
		t.Errorf("sandbox created max %d per id, accepted %d; we saw %d accepted", st.LeadsCreatedPerExternalIDMax, st.Accepted, accepted)
	}
	if st.Faults429 == 0 || st.Faults503 == 0 || st.FaultsDropped == 0 {
		t.Fatalf("faults not exercised: %+v", st)
	}
	honoured := 0
	for _, id := range ids {
		d, err := w.db.LeadDetail(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var sends []crm.Attempt
		for _, a := range d.Attempts {
			if a.Kind == crm.KindSend {
				sends = append(sends, a)
				if a.IdempotencyKey != got[id].IdempotencyKey {
					t.Errorf("%s: attempt %d under key %s, lead key %s", id, a.Number, a.IdempotencyKey, got[id].IdempotencyKey)
				}
			}
		}
		for i := 1; i < len(sends); i++ {
			prev := sends[i-1]
			if prev.HTTPStatus != 429 {
				continue
			}
			if prev.Delay != time.Second {
				t.Errorf("%s: 429 answered with delay %s (%s), want Retry-After 1s", id, prev.Delay, prev.DelayWhy)
			}
			earliest := prev.StartedAt.Add(prev.Duration).Add(prev.Delay)
			if sends[i].StartedAt.Before(earliest.Add(-5 * time.Millisecond)) {
				t.Errorf("%s: attempt %d at %s, before Retry-After allowed %s", id, sends[i].Number, sends[i].StartedAt, earliest)
			}
			honoured++
		}
	}
	if honoured == 0 {
		t.Fatal("no 429 was followed by a retry; the check checked nothing")
	}
	t.Logf("sandbox: %d requests, 503 %d, 429 %d, dropped %d, replays %d; %d Retry-After waits checked",
		st.Requests, st.Faults503, st.Faults429, st.FaultsDropped, st.IdempotentReplays, honoured)
}

// TestDispatcherSharedOutbox runs two dispatchers on two handles of one
// database, as two processes would: leases keep every lead with one
// sender, so the CRM never sees the same key twice at once.
func TestDispatcherSharedOutbox(t *testing.T) {
	w := newWorld(t, sandbox.Config{Latency: 2 * time.Millisecond})
	db2 := storetest.OpenPath(t, w.db.Path(), store.Options{})
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("shared-%03d", i)
		w.enqueue(t, lead(ids[i], fmt.Sprintf("+4851%07d", i), "PL"))
	}
	d1, _ := run(t, w.db, w.client, crm.DispatcherConfig{Owner: "one", Concurrency: 8, Policy: fastPolicy})
	d2, _ := run(t, db2, w.client, crm.DispatcherConfig{Owner: "two", Concurrency: 8, Policy: fastPolicy})
	got := waitFinal(t, w.db, ids, 30*time.Second)
	for _, id := range ids {
		if got[id].State != crm.StateAccepted {
			t.Errorf("%s: %s %s", id, got[id].State, got[id].Reason)
		}
	}
	st := w.sb.Sandbox.Stats()
	if st.InProgressConflicts != 0 || st.IdempotentReplays != 0 || st.LeadsCreatedPerExternalIDMax != 1 {
		t.Errorf("a lead was sent twice: %+v", st)
	}
	// A dispatcher counts an attempt just after its commit, which the
	// states above may already show.
	poll.Until(t, "both dispatchers to count their attempts", func() bool { return d1.Sent()+d2.Sent() >= n })
	if d1.Sent() == 0 || d2.Sent() == 0 || d1.Sent()+d2.Sent() != n {
		t.Errorf("sent %d + %d, want both working and %d in all", d1.Sent(), d2.Sent(), n)
	}
}

// TestDispatcherWakesOnNotify shows new work is picked up at once, not at
// the next idle check.
func TestDispatcherWakesOnNotify(t *testing.T) {
	w := newWorld(t, sandbox.Config{})
	clk := newFakeClock(time.Now().Add(time.Minute))
	d, _ := run(t, w.db, w.client, crm.DispatcherConfig{IdleCheck: time.Hour, Policy: fastPolicy, Clock: clk})
	// Run reaches its wait: an empty outbox, so the hour's idle check; the
	// clock never gets there.
	if wait := clk.nextWait(t); wait != time.Hour {
		t.Fatalf("first wait %s, want the idle check", wait)
	}
	w.enqueue(t, lead("late", "+380501112233", "UA"))
	d.Notify()
	waitFinal(t, w.db, []string{"late"}, 5*time.Second)
}

// TestDispatcherRetryScheduleSurvivesRestart: the next attempt time is in
// the store, so a new dispatcher resumes the schedule.
func TestDispatcherRetryScheduleSurvivesRestart(t *testing.T) {
	w := newWorld(t, sandbox.Config{Seed: 1, FailRate: 1})
	w.enqueue(t, lead("r-1", "+380501112233", "UA"))
	slow := crm.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour, RateLimitedDelay: time.Hour}
	_, stop := run(t, w.db, w.client, crm.DispatcherConfig{Policy: slow, Jitter: func() float64 { return 0.99 }})
	var l crm.Lead
	poll.Until(t, "the first attempt's 503 to be recorded", func() bool {
		l = w.lead(t, "r-1")
		return l.State == crm.StateRetryWait
	})
	stop()
	if l.State != crm.StateRetryWait || l.Attempts != 1 || l.LastHTTPStatus != 503 {
		t.Fatalf("after one 503: %+v", l)
	}
	if d := time.Until(l.NextAttemptAt); d < 50*time.Minute {
		t.Fatalf("next attempt in %s, want about an hour", d)
	}
	// A restarted dispatcher whose clock is past the schedule sends it.
	w.sb.Close()
	w2 := newWorld(t, sandbox.Config{})
	run(t, w.db, w2.client, crm.DispatcherConfig{Policy: fastPolicy, Clock: newFakeClock(time.Now().Add(2 * time.Hour))})
	got := waitFinal(t, w.db, []string{"r-1"}, 5*time.Second)
	if got["r-1"].State != crm.StateAccepted || got["r-1"].Attempts != 2 || got["r-1"].IdempotencyKey != l.IdempotencyKey {
		t.Fatalf("after restart: %+v", got["r-1"])
	}
}

// TestDispatcherShutdownReleases: under a rate limit, leads waiting their
// turn are not held under a lease; after shutdown they are queued, their
// attempt uncounted, ready for any other sender.
func TestDispatcherShutdownReleases(t *testing.T) {
	w := newWorld(t, sandbox.Config{})
	for i := range 4 {
		w.enqueue(t, lead(fmt.Sprintf("rl-%d", i), fmt.Sprintf("+38050111223%d", i), "UA"))
	}
	d, stop := run(t, w.db, w.client, crm.DispatcherConfig{Concurrency: 4, RateLimit: 0.01, Policy: fastPolicy})
	// The first lead goes at once (burst 1); wait for it.
	poll.Until(t, "the first lead to be sent", func() bool { return d.Sent() >= 1 })
	stop()
	if d.Sent() != 1 {
		t.Fatalf("sent %d, want 1", d.Sent())
	}
	queued := 0
	for i := range 4 {
		l, err := w.db.Lead(context.Background(), fmt.Sprintf("rl-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		switch l.State {
		case crm.StateQueued:
			queued++
			if l.Attempts != 0 || l.LeaseOwner != "" {
				t.Errorf("released lead kept its claim: %+v", l)
			}
		case crm.StateAccepted:
		default:
			t.Errorf("%s left %s", l.ExternalID, l.State)
		}
	}
	if queued != 3 {
		t.Fatalf("%d leads back in the queue, want 3", queued)
	}
}

func TestDispatcherPause(t *testing.T) {
	w := newWorld(t, sandbox.Config{})
	clk := newFakeClock(time.Now().Add(time.Minute))
	d := crm.NewDispatcher(w.db, w.client, crm.DispatcherConfig{Policy: fastPolicy, Clock: clk})
	d.SetPaused(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	w.enqueue(t, lead("p-1", "+380501112299", "UA"))
	// While paused the lead must stay queued, across wake-ups and idle
	// checks: after each, Run has gone round its loop (it starts a new
	// wait) and left the lead alone.
	for i := range 6 {
		clk.drainWaits()
		if i%2 == 0 {
			d.Notify()
		} else {
			clk.Advance(time.Second) // the idle check
		}
		clk.nextWait(t)
		if l := w.lead(t, "p-1"); l.State != crm.StateQueued {
			t.Fatalf("paused dispatcher moved the lead to %s", l.State)
		}
	}
	d.SetPaused(false)
	waitFinal(t, w.db, []string{"p-1"}, 5*time.Second)
	cancel()
	<-done
}

func BenchmarkSubmitRoundTrip(b *testing.B) {
	sb := sandbox.StartTest(b, sandbox.Config{})
	c := newClient(b, sb.URL)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("b-%d", i)
		res := c.Submit(context.Background(), lead(id, fmt.Sprintf("+38050%07d", i), "UA"), id+"-k")
		if res.Outcome.State != crm.StateAccepted {
			b.Fatalf("%+v", res)
		}
	}
}

func BenchmarkSubmitParallel32(b *testing.B) {
	sb := sandbox.StartTest(b, sandbox.Config{})
	c := newClient(b, sb.URL)
	var mu sync.Mutex
	n := 0
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // 32 goroutines in all
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			id := fmt.Sprintf("p-%d", i)
			res := c.Submit(context.Background(), lead(id, fmt.Sprintf("+48%09d", i), "PL"), id+"-k")
			if res.Outcome.State != crm.StateAccepted {
				b.Errorf("%+v", res)
				return
			}
		}
	})
}

// flakyOutbox is the real store whose first Claims fail, as a database
// locked by another process would.
type flakyOutbox struct {
	*sqlite.DB
	mu       sync.Mutex
	failures int
	claims   []time.Time // the dispatcher's time of each Claim
}

func (f *flakyOutbox) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Lead, error) {
	f.mu.Lock()
	f.claims = append(f.claims, now)
	fail := len(f.claims) <= f.failures
	f.mu.Unlock()
	if fail {
		return nil, store.ErrBusy
	}
	return f.DB.Claim(ctx, owner, now, lease, limit)
}

// TestDispatcherBacksOffWhenClaimFails: a failing store is retried with a
// growing pause, not hammered, and sending resumes when it recovers.
func TestDispatcherBacksOffWhenClaimFails(t *testing.T) {
	w := newWorld(t, sandbox.Config{})
	w.enqueue(t, lead("busy-1", "+380501112244", "UA"))
	fo := &flakyOutbox{DB: w.db, failures: 3}
	clk := newFakeClock(time.Now())
	var logs logtest.Buffer
	d, _ := run(t, fo, w.client, crm.DispatcherConfig{Policy: fastPolicy, IdleCheck: 10 * time.Millisecond, Clock: clk, Logger: logs.JSON()})
	// After each failed claim Run waits 100 ms, 200 ms, 400 ms (not the
	// 10 ms idle check), and claims again only when that much time passed.
	for i, want := range []time.Duration{100, 200, 400} {
		want *= time.Millisecond
		if wait := clk.nextWait(t); wait != want {
			t.Fatalf("wait after failed claim %d: %s, want %s", i+1, wait, want)
		}
		clk.Advance(want)
	}
	waitFinal(t, w.db, []string{"busy-1"}, 10*time.Second)
	fo.mu.Lock()
	claims := slices.Clone(fo.claims)
	fo.mu.Unlock()
	if len(claims) < 4 {
		t.Fatalf("%d claims, want the 3 failures and a success", len(claims))
	}
	for i, want := range []time.Duration{100, 200, 400} {
		if gap := claims[i+1].Sub(claims[i]); gap != want*time.Millisecond {
			t.Errorf("gap %d after a failed claim: %s, want %dms", i+1, gap, want)
		}
	}
	// The attempt is counted just after its Record commits, which
	// waitFinal may see first.
	poll.Until(t, "the attempt to be counted", func() bool { return d.Sent() > 0 })
	if d.Sent() != 1 {
		t.Fatalf("sent %d", d.Sent())
	}
	// Three failures within the logging interval are one line, not three.
	if n := len(logs.Records("claim failed")); n != 1 {
		t.Errorf("%d \"claim failed\" lines for 3 failed claims in 0.7 s, want 1:\n%s", n, logs.String())
	}
}

// TestDispatcherLogsFailedLeads: a lead that ends failed waits for an
// operator, so each is logged at warn with its external_id and why,
// whatever made it fail; a lead that ends otherwise is not.
func TestDispatcherLogsFailedLeads(t *testing.T) {
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://crm.example.test/v2/leads", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	tests := []struct {
		name   string
		sc     sandbox.Config
		client func(t *testing.T, sandboxURL string) *crm.Client
		reason string
	}{
		{"WrongAPIKey", sandbox.Config{}, func(t *testing.T, u string) *crm.Client {
			return newClient(t, u, func(c *crm.ClientConfig) { c.APIKey = "not-the-key" })
		}, "HTTP 401"},
		{"Redirect", sandbox.Config{}, func(t *testing.T, _ string) *crm.Client {
			return newClient(t, redirect.URL)
		}, "redirect"},
		{"GaveUp", sandbox.Config{Seed: 1, FailRate: 1}, func(t *testing.T, u string) *crm.Client {
			return newClient(t, u)
		}, "gave up after 2 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.sc)
			w.enqueue(t, lead("fl-1", "+380501234567", "UA"))
			var logs logtest.Buffer
			policy := fastPolicy
			policy.MaxAttempts = 2
			run(t, w.db, tt.client(t, w.sb.URL), crm.DispatcherConfig{Policy: policy, IdleCheck: 10 * time.Millisecond, Logger: logs.JSON()})
			if l := waitFinal(t, w.db, []string{"fl-1"}, 10*time.Second)["fl-1"]; l.State != crm.StateFailed {
				t.Fatalf("state %s (%s), want failed", l.State, l.Reason)
			}
			var got []map[string]any
			poll.Until(t, "the failed lead's log line", func() bool {
				got = logs.Records("lead failed")
				return len(got) > 0
			})
			if len(got) != 1 {
				t.Fatalf("%d lines for one failed lead:\n%s", len(got), logs.String())
			}
			reason, _ := got[0]["reason"].(string)
			if got[0]["level"] != "WARN" || got[0]["external_id"] != "fl-1" || !strings.Contains(reason, tt.reason) {
				t.Errorf("logged %v, want WARN with external_id fl-1 and a reason with %q", got[0], tt.reason)
			}
			if strings.Contains(logs.String(), sandbox.TestAPIKey) || strings.Contains(logs.String(), sandbox.TestHMACSecret) {
				t.Errorf("a secret in the log:\n%s", logs.String())
			}
		})
	}
	t.Run("AcceptedIsNotLogged", func(t *testing.T) {
		w := newWorld(t, sandbox.Config{})
		w.enqueue(t, lead("ok-1", "+380501234567", "UA"))
		var logs logtest.Buffer
		d, stop := run(t, w.db, w.client, crm.DispatcherConfig{Policy: fastPolicy, Logger: logs.JSON()})
		waitFinal(t, w.db, []string{"ok-1"}, 10*time.Second)
		poll.Until(t, "the attempt to be recorded", func() bool { return d.Sent() == 1 })
		stop()
		if got := logs.Records("lead failed"); len(got) != 0 {
			t.Errorf("an accepted lead was logged as failed: %v", got)
		}
	})
}
