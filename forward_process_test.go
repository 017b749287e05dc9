package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/forward"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// testForwardSecret signs deliveries in the tests; never a real one.
const testForwardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// webhookApp is the user's app as the tests run it: it verifies each
// request's Standard Webhooks signature with the forward package's
// Verifier (a request that fails it is counted and answered 401), fails
// a share of the verified ones with a 503, and keeps what it accepted by
// webhook-id.
type webhookApp struct {
	verifier *forward.Verifier
	failRate float64

	mu       sync.Mutex
	rng      *rand.Rand
	accepted map[string][]byte // webhook-id → body, first accepted
	ids      map[string]string // body → the webhook-id it came under, to check it never changes
	idChange int               // a body seen under a second webhook-id
	dups     int               // accepted again (at least once: allowed, counted)
	failed   int

	badSig   atomic.Int64
	requests atomic.Int64
}

func newWebhookApp(t *testing.T, failRate float64, seed uint64) (*webhookApp, *httptest.Server) {
	t.Helper()
	v, err := forward.NewVerifier(testForwardSecret)
	if err != nil {
		t.Fatal(err)
	}
	a := &webhookApp{verifier: v, failRate: failRate, rng: rand.New(rand.NewPCG(seed, 12)),
		accepted: map[string][]byte{}, ids: map[string]string{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *webhookApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if _, err := a.verifier.Verify(r.Header, body); err != nil {
		a.badSig.Add(1)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(forward.HeaderID)
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.ids[string(body)]; ok && prev != id {
		a.idChange++
	}
	a.ids[string(body)] = id
	if a.rng.Float64() < a.failRate {
		a.failed++
		http.Error(w, "app busy", http.StatusServiceUnavailable)
		return
	}
	if _, ok := a.accepted[id]; ok {
		a.dups++
	} else {
		a.accepted[id] = body
	}
	w.WriteHeader(http.StatusOK)
}

func (a *webhookApp) acceptedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.accepted)
}

// TestForwardSurvivesKill9 is issue 12's forwarding test: callbacks
// stored by a real serve are forwarded to an app that verifies every
// signature and fails 30% of requests; serve is killed with SIGKILL in
// the middle and started again; in the end every stored callback reached
// the app byte for byte, under webhook-id cb_<its id>, the same on every
// retry, and the queue is empty.
func TestForwardSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test in -short")
	}
	skipWithoutForwarding(t)
	dbPath := filepath.Join(t.TempDir(), "forward.db")
	forwardSurvivesKill9(t, dbPath, func(t *testing.T) store.Store {
		return storetest.OpenPath(t, dbPath, store.Options{ReadOnly: true})
	})
}

// TestForwardSurvivesKill9Postgres is the same against PostgreSQL, where
// the claim is FOR UPDATE SKIP LOCKED and the cursor must not step past a
// callback still committing.
func TestForwardSurvivesKill9Postgres(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test in -short")
	}
	u := pgURL(t)
	forwardSurvivesKill9(t, u, func(t *testing.T) store.Store {
		db, err := postgres.Open(context.Background(), u, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// forwardSurvivesKill9 runs the kill -9 forwarding test on the store at
// location; open opens it in the test.
func forwardSurvivesKill9(t *testing.T, location string, open func(t *testing.T) store.Store) {
	bin := leadwatchBinary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	app, appSrv := newWebhookApp(t, 0.30, seed)

	dir := t.TempDir()
	dbPath := location
	cfgPath := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[callbacks]
drain = "0s"
[metrics]
listen = "127.0.0.1:0"
[forward]
timeout = "1s"
max_attempts = 1000
base_delay = "10ms"
max_delay = "200ms"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sb := sandbox.StartTest(t, sandbox.Config{})
	env := []string{"CARTELCRM_BASE_URL=" + sb.URL, "CARTELCRM_API_KEY=" + sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET=" + sandbox.TestHMACSecret, "CALLBACK_SECRET=" + sandbox.TestCallbackSecret,
		"LEADWATCH_FORWARD_SECRET=" + testForwardSecret}
	listenRe := regexp.MustCompile(`leadwatch serving"? listen=(127\.0\.0\.1:\d+)`)
	start := func() (*exec.Cmd, string, *logtest.Buffer) {
		cmd := exec.Command(bin, "serve", "--config", cfgPath, "--db", dbPath, "--listen", "127.0.0.1:0",
			"--forward-to", appSrv.URL+"/hooks/leadwatch")
		cmd.Env = append(os.Environ(), env...)
		logged := &logtest.Buffer{}
		cmd.Stderr = logged
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		var m []string
		poll.UntilWithin(t, 15*time.Second, "serve to listen", func() bool {
			m = listenRe.FindStringSubmatch(logged.String())
			return m != nil
		})
		return cmd, m[1], logged
	}

	const perRound = 1500
	client := &http.Client{Timeout: 5 * time.Second}
	body := func(i int) string {
		return fmt.Sprintf(`{"internal_id":"crm-%d","event":"status_changed","status":"ftd","timestamp":%d, "note":"raw %d"}`,
			i, 1764200000+i, i)
	}
	var (
		next    atomic.Int64
		ackedMu sync.Mutex
		acked   = map[string]bool{} // internal ids answered 200
	)
	// send posts up to count callbacks from 8 connections at once, faster
	// than the app takes them, and stops at the first not answered 200
	// (the process was killed): it returns that error.
	send := func(addr string, count int) error {
		end := next.Load() + int64(count)
		var g errgroup.Group
		for range 8 {
			g.Go(func() error {
				for {
					i := int(next.Add(1))
					if int64(i) > end {
						next.Add(-1)
						return nil
					}
					req, err := crm.NewSignedCallback("http://"+addr+"/cartelcrm/callback", []byte(body(i)), []byte(sandbox.TestCallbackSecret), time.Now())
					if err != nil {
						return err
					}
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("callback %d answered %d", i, resp.StatusCode)
					}
					ackedMu.Lock()
					acked[fmt.Sprintf("crm-%d", i)] = true
					ackedMu.Unlock()
				}
			})
		}
		return g.Wait()
	}
	ackedCount := func() int {
		ackedMu.Lock()
		defer ackedMu.Unlock()
		return len(acked)
	}

	// The first run is killed while callbacks arrive and deliveries are
	// on the wire, with a backlog queued: some accepted by the app, not
	// all.
	cmd, addr, logged := start()
	db := open(t)
	sent := make(chan error, 1)
	go func() { sent <- send(addr, 4*perRound) }()
	// The kill lands with deliveries leased to the process (on the wire,
	// or claimed and waiting for a sender). The process is frozen
	// (SIGSTOP) while the store is read, so the leases seen are the ones
	// the kill finds; when none are, it thaws and the test looks again.
	var st crm.ForwardStats
	poll.UntilWithin(t, 60*time.Second, "callbacks stored, some accepted, deliveries in flight at the kill", func() bool {
		if ackedCount() < perRound || app.acceptedCount() == 0 {
			return false
		}
		if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		var err error
		st, err = db.ForwardStats(context.Background())
		if err == nil && st.InFlight > 0 && st.Pending > 0 {
			return true
		}
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-sent // stopped at the kill, or done before it
	atKill := app.acceptedCount()
	t.Logf("killed with %d of %d acknowledged callbacks accepted by the app; queue %+v", atKill, ackedCount(), st)
	if atKill >= ackedCount() {
		t.Fatal("everything was delivered before the kill; the test proved nothing")
	}
	noSecrets(t, logged.String())
	if strings.Contains(logged.String(), testForwardSecret) {
		t.Fatal("the forward secret was logged")
	}

	// The restart resumes the queue and forwards what arrives next.
	cmd, addr, logged = start()
	if err := send(addr, perRound); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var evs []crm.CallbackEvent
	for after := int64(0); ; {
		page, err := db.CallbacksAfter(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		evs = append(evs, page...)
		after = page[len(page)-1].ID
	}
	// Every callback answered 200 is stored (a callback stored as the
	// kill landed, before its answer, is stored too, and forwarded).
	stored := map[string]bool{}
	for _, ev := range evs {
		stored[ev.InternalID] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Fatalf("callback %s was answered 200 but is not stored", id)
		}
	}
	poll.UntilWithin(t, 120*time.Second, "every stored callback accepted by the app", func() bool { return app.acceptedCount() >= len(evs) })
	poll.Until(t, "the queue to be empty", func() bool {
		st, err := db.ForwardStats(ctx)
		return err == nil && st.Pending == 0 && st.InFlight == 0 && st.Lag == 0
	})
	// GET /metrics of the restarted process counts its deliveries and
	// shows the queue, empty now.
	mm := regexp.MustCompile(`metrics serving"? listen=(127\.0\.0\.1:\d+)`).FindStringSubmatch(logged.String())
	if mm == nil {
		t.Fatalf("no metrics address logged:\n%s", tail(logged.String(), 2000))
	}
	resp, err := http.Get("http://" + mm[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scraped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{`(?m)^leadwatch_forward_deliveries_total [1-9]`, `(?m)^leadwatch_forward_failures_total [1-9]`,
		`(?m)^leadwatch_forward_queue_depth 0$`} {
		if !regexp.MustCompile(re).Match(scraped) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 15*time.Second); err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, tail(logged.String(), 2000))
	}
	if strings.Contains(logged.String(), testForwardSecret) {
		t.Fatal("the forward secret was logged")
	}

	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.accepted) != len(evs) {
		t.Fatalf("the app accepted %d distinct webhook-ids, %d callbacks are stored", len(app.accepted), len(evs))
	}
	for _, ev := range evs {
		id := fmt.Sprintf("cb_%d", ev.ID)
		got, ok := app.accepted[id]
		if !ok {
			t.Fatalf("callback %d (%s) never reached the app", ev.ID, ev.InternalID)
		}
		var i int
		if _, err := fmt.Sscanf(ev.InternalID, "crm-%d", &i); err != nil {
			t.Fatal(err)
		}
		if string(got) != body(i) {
			t.Fatalf("callback %d: the app got %q, the CRM sent %q", ev.ID, got, body(i))
		}
	}
	if n := app.badSig.Load(); n != 0 {
		t.Fatalf("%d deliveries failed the app's signature check", n)
	}
	if app.idChange != 0 {
		t.Fatalf("%d bodies came under a second webhook-id", app.idChange)
	}
	if app.failed == 0 {
		t.Fatal("the app never failed a request: the retries were not exercised")
	}
	st, err = db.ForwardStats(ctx)
	if err != nil || st.Delivered != len(evs) || st.Failed != 0 {
		t.Fatalf("ForwardStats = %+v, %v; want %d delivered, 0 failed", st, err, len(evs))
	}
	t.Logf("app: %d requests, %d failed by it, %d accepted twice (at least once)", app.requests.Load(), app.failed, app.dups)
}

// skipWithoutForwarding skips a test when the SQLite store has no
// delivery queue to forward from.
func skipWithoutForwarding(t *testing.T) {
	t.Helper()
	db := storetest.OpenPath(t, filepath.Join(t.TempDir(), "probe.db"), store.Options{})
	if err := db.StartForwarding(context.Background()); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the SQLite store has no delivery queue yet")
	}
}
