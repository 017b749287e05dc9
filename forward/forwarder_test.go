package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// testApp is the user's app: it verifies every request's signature
// (answering 401 when it fails, which the test then reports), fails the
// requests fail says to fail with a 500, and keeps what it accepted.
type testApp struct {
	t        *testing.T
	verifier *Verifier
	fail     func(n int64) bool

	requests atomic.Int64
	badSig   atomic.Int64

	mu       sync.Mutex
	accepted map[string][]byte // webhook-id → body
	order    map[int][]int     // lead → seqs in the order first accepted
	dups     int
}

func newTestApp(t *testing.T, fail func(n int64) bool) (*testApp, *httptest.Server) {
	t.Helper()
	v, err := NewVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	a := &testApp{t: t, verifier: v, fail: fail, accepted: map[string][]byte{}, order: map[int][]int{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *testApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := a.verifier.Verify(r.Header, body); err != nil {
		a.badSig.Add(1)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if a.fail != nil && a.fail(n) {
		http.Error(w, "app down", http.StatusInternalServerError)
		return
	}
	var ev struct{ Lead, Seq int }
	_ = json.Unmarshal(body, &ev)
	a.mu.Lock()
	id := r.Header.Get(HeaderID)
	if _, seen := a.accepted[id]; seen {
		a.dups++
	} else {
		a.accepted[id] = body
		a.order[ev.Lead] = append(a.order[ev.Lead], ev.Seq)
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *testApp) acceptedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.accepted)
}

// startForwarder runs a Forwarder over q to url until the test ends, and
// returns it with a stop that waits for Run to return.
func startForwarder(t *testing.T, q Queue, cfg Config) (*Forwarder, func()) {
	t.Helper()
	f, cancel, done := runForwarder(t, q, cfg)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return f, stop
}

// runForwarder starts a Forwarder on q as startForwarder does and hands
// back its parts: cancel stops it, done gives Run's result.
func runForwarder(t *testing.T, q Queue, cfg Config) (*Forwarder, context.CancelFunc, <-chan error) {
	t.Helper()
	if cfg.Signer == nil {
		s, err := NewSigner(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Signer = s
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = Policy{MaxAttempts: 50, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	}
	f, err := New(q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(cancel)
	return f, cancel, done
}

// TestDeliversEverything: an app that fails 30% of requests still gets
// every delivery, signed, byte for byte, each lead's in stored order,
// each under the webhook-id it had on every retry.
func TestDeliversEverything(t *testing.T) {
	app, srv := newTestApp(t, func(n int64) bool { return n%10 < 3 })
	q := newFakeQueue()
	const leads, perLead = 20, 15
	bodies := map[string]string{}
	for seq := range perLead {
		for lead := 1; lead <= leads; lead++ {
			body := fmt.Sprintf(`{"lead":%d,"seq":%d, "raw":  "kept as sent"}`, lead, seq)
			bodies[fmt.Sprintf("cb_%d", q.add(int64(lead), body))] = body
		}
	}
	unmatched := q.add(0, `{"lead":0,"seq":0}`)
	bodies[fmt.Sprintf("cb_%d", unmatched)] = `{"lead":0,"seq":0}`
	f, _ := startForwarder(t, q, Config{URL: srv.URL, Concurrency: 8})

	poll.Until(t, "every delivery delivered", func() bool { return q.count(crm.DeliveryDelivered) == len(bodies) })
	// The counter moves after the store's commit, so it may trail the
	// queue's count a moment; it must reach it and stop there.
	poll.Until(t, "Delivered() to count every delivery", func() bool { return f.Delivered() >= int64(len(bodies)) })
	if n := app.badSig.Load(); n != 0 {
		t.Fatalf("%d requests failed the app's signature check", n)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.accepted) != len(bodies) {
		t.Fatalf("app accepted %d, want %d", len(app.accepted), len(bodies))
	}
	for id, want := range bodies {
		if got := string(app.accepted[id]); got != want {
			t.Fatalf("%s: app got %q, want %q", id, got, want)
		}
	}
	for lead := 1; lead <= leads; lead++ {
		seqs := app.order[lead]
		for i := range seqs {
			if seqs[i] != i {
				t.Fatalf("lead %d: accepted in order %v, want 0..%d", lead, seqs, perLead-1)
			}
		}
	}
	if failed := f.Failures(); failed == 0 {
		t.Fatal("no attempt failed: the app's 30% failures were not exercised")
	}
	if got := f.Delivered(); got != int64(len(bodies)) {
		t.Fatalf("Delivered() = %d, want %d", got, len(bodies))
	}
	// Each failed attempt was recorded with the app's answer and a retry
	// time, and every 2xx with its status.
	for _, r := range q.results() {
		switch {
		case r.Delivered && r.Status != http.StatusNoContent:
			t.Fatalf("delivered attempt with status %d", r.Status)
		case !r.Delivered && (r.Status != 500 || r.NextAt.IsZero() || !strings.Contains(string(r.Head), "app down")):
			t.Fatalf("failed attempt recorded as %+v", r)
		}
	}
}

// TestGivesUpAfterMaxAttempts: a delivery the app always refuses is
// failed after max_attempts, with the last answer, and not tried again.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	app, srv := newTestApp(t, func(int64) bool { return true })
	q := newFakeQueue()
	id := q.add(1, `{"lead":1}`)
	startForwarder(t, q, Config{URL: srv.URL, Policy: Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	poll.Until(t, "the delivery failed", func() bool { return q.count(crm.DeliveryFailed) == 1 })
	d := q.delivery(id)
	if d.Attempts != 3 || !strings.Contains(d.LastError, "app answered 500 (gave up after 3 attempts)") {
		t.Fatalf("delivery = %d attempts, last error %q", d.Attempts, d.LastError)
	}
	if n := app.requests.Load(); n != 3 {
		t.Fatalf("app saw %d requests, want 3", n)
	}
}

// TestLaterEventWaitsForEarlier: while a lead's first delivery is
// failing, its second is not sent.
func TestLaterEventWaitsForEarlier(t *testing.T) {
	var firstTries atomic.Int64
	app, _ := newTestApp(t, nil)
	gate := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderID) == "cb_1" && firstTries.Add(1) <= 3 {
			if firstTries.Load() == 3 {
				close(gate)
			}
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		app.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	q := newFakeQueue()
	q.add(7, `{"lead":7,"seq":0}`)
	q.add(7, `{"lead":7,"seq":1}`)
	startForwarder(t, q, Config{URL: srv.URL})
	<-gate
	poll.Until(t, "both delivered", func() bool { return q.count(crm.DeliveryDelivered) == 2 })
	app.mu.Lock()
	defer app.mu.Unlock()
	if got := app.order[7]; len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("order = %v, want [0 1]", got)
	}
}

// TestBadForwardURLs: an app that refuses connections, hangs, redirects
// or answers 10 MiB costs a recorded attempt each, never the process.
func TestBadForwardURLs(t *testing.T) {
	t.Run("Refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String() + "/hook?token=hunter2"
		ln.Close()
		r := oneAttempt(t, url, time.Second)
		if r.Status != 0 || r.Delivered || r.NextAt.IsZero() || !strings.Contains(r.Error, "connection refused") {
			t.Fatalf("attempt = %+v", r)
		}
		if strings.Contains(r.Error, "hunter2") {
			t.Fatalf("error quotes the URL's query: %q", r.Error)
		}
	})
	t.Run("Hangs", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		r := oneAttempt(t, srv.URL, 50*time.Millisecond)
		if r.Status != 0 || r.Delivered || r.NextAt.IsZero() || !strings.Contains(r.Error, "no answer within 50ms") {
			t.Fatalf("attempt = %+v", r)
		}
	})
	t.Run("Redirects", func(t *testing.T) {
		var followed atomic.Int64
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
		t.Cleanup(target.Close)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/elsewhere?sig=secret", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(srv.Close)
		r := oneAttempt(t, srv.URL, time.Second)
		if r.Status != http.StatusTemporaryRedirect || r.Delivered || !r.Final || !strings.Contains(r.Error, "not followed") {
			t.Fatalf("attempt = %+v", r)
		}
		if followed.Load() != 0 {
			t.Fatal("the redirect was followed")
		}
		if strings.Contains(r.Error, "sig=secret") {
			t.Fatalf("error quotes the Location's query: %q", r.Error)
		}
	})
	t.Run("Answers10MiB", func(t *testing.T) {
		const size = 10 << 20
		var written atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			chunk := []byte(strings.Repeat("x", 64<<10))
			for written.Load() < size {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		}))
		t.Cleanup(srv.Close)
		r := oneAttempt(t, srv.URL, 5*time.Second)
		if !r.Delivered || r.Status != http.StatusOK || len(r.Head) != HeadBytes {
			t.Fatalf("attempt: delivered %v, status %d, head %d bytes", r.Delivered, r.Status, len(r.Head))
		}
		srv.Close() // waits for the handler: its writes stopped when the forwarder hung up
		if w := written.Load(); w >= size {
			t.Fatalf("the app wrote all %d bytes: the forwarder read the whole answer", w)
		}
	})
}

// oneAttempt forwards one delivery to url and returns its first recorded
// attempt.
func oneAttempt(t *testing.T, url string, timeout time.Duration) crm.DeliveryResult {
	t.Helper()
	q := newFakeQueue()
	q.add(1, `{"lead":1}`)
	_, stop := startForwarder(t, q, Config{URL: url, Timeout: timeout,
		Policy: Policy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}})
	poll.Until(t, "an attempt recorded", func() bool { return len(q.results()) > 0 })
	stop()
	return q.results()[0]
}

// TestStopReleases: deliveries claimed but not sent when the Forwarder
// stops go back to the queue at once, and the attempt on the wire is
// finished and recorded, not abandoned.
func TestStopReleases(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	q := newFakeQueue()
	for range 10 {
		q.add(1, `{"lead":1}`) // one lead: sent one after the other
	}
	_, cancel, done := runForwarder(t, q, Config{URL: srv.URL, Timeout: 10 * time.Second})
	<-entered
	// The stop comes first, while the attempt is on the wire; only then
	// does the app answer. Answering first would let the next delivery
	// of the lead go out before the forwarder saw the stop.
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := q.count(crm.DeliveryDelivered); got != 1 {
		t.Fatalf("delivered = %d, want 1 (the attempt on the wire)", got)
	}
	if got := q.count(crm.DeliveryPending); got != 9 {
		t.Fatalf("pending = %d, want 9 released", got)
	}
}

// TestClaimFailureRetried: a store that fails claims is retried, and
// forwarding goes on once it recovers.
func TestClaimFailureRetried(t *testing.T) {
	_, srv := newTestApp(t, nil)
	q := newFakeQueue()
	q.failClaims = 2
	q.add(1, `{"lead":1}`)
	startForwarder(t, q, Config{URL: srv.URL})
	poll.Until(t, "delivered after the store recovered", func() bool { return q.count(crm.DeliveryDelivered) == 1 })
}

// TestPrunedBodyNotSent: a delivery whose raw body was pruned fails at
// once without a request.
func TestPrunedBodyNotSent(t *testing.T) {
	app, srv := newTestApp(t, nil)
	q := newFakeQueue()
	q.add(1, "")
	startForwarder(t, q, Config{URL: srv.URL})
	poll.Until(t, "failed", func() bool { return q.count(crm.DeliveryFailed) == 1 })
	if app.requests.Load() != 0 {
		t.Fatal("an empty body was sent")
	}
}

// TestObserver: every attempt is heard, delivered or not.
func TestObserver(t *testing.T) {
	_, srv := newTestApp(t, func(n int64) bool { return n == 1 })
	q := newFakeQueue()
	q.add(1, `{"lead":1}`)
	f, _ := startForwarder(t, q, Config{URL: srv.URL})
	var o countingObserver
	f.SetObserver(&o)
	poll.Until(t, "delivered", func() bool { return q.count(crm.DeliveryDelivered) == 1 })
	if o.delivered.Load() != 1 || o.failed.Load() > 1 {
		t.Fatalf("observer heard %d delivered, %d failed", o.delivered.Load(), o.failed.Load())
	}
}

type countingObserver struct{ delivered, failed atomic.Int64 }

func (o *countingObserver) Forwarded(_ int, _ time.Duration, delivered bool) {
	if delivered {
		o.delivered.Add(1)
	} else {
		o.failed.Add(1)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	s, _ := NewSigner(testSecret)
	for name, cfg := range map[string]Config{
		"NoURL":     {Signer: s},
		"NotHTTP":   {URL: "ftp://app/hook", Signer: s},
		"Relative":  {URL: "/hook", Signer: s},
		"NoSigner":  {URL: "http://app/hook"},
		"UserInfo?": {URL: "gopher://u:pw@app/", Signer: s},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(newFakeQueue(), cfg)
			if err == nil {
				t.Fatal("New accepted it")
			}
			if strings.Contains(err.Error(), "pw") {
				t.Fatalf("error quotes the password: %v", err)
			}
		})
	}
}
