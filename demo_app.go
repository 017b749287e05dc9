package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/forward"
)

// demoApp is the user's app in the demo: a loopback HTTP server that
// --demo forwards every stored callback to, so the header's forwarding
// line and the timelines' "→ app" rows have something to show. It
// checks each delivery's Standard Webhooks signature as a real app
// would (401 when it does not verify) and fails a share of the rest with
// a 503, so retries and the occasional give-up show too. Its secret is
// made for the run and lives in memory only.
type demoApp struct {
	URL    string
	Secret string // whsec_…; never printed or logged

	srv      *http.Server
	verifier *forward.Verifier
	log      *slog.Logger

	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	seen     map[string]int // verified deliveries per webhook-id, echoed in the answer
}

// deliveries is how many verified deliveries of webhook-id id came in.
func (a *demoApp) deliveries(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id]
}

// demoAppFailRate is the share of verified deliveries the demo app
// answers 503: enough that the forwarding line goes amber now and then.
const demoAppFailRate = 0.10

// demoAppMaxBody bounds what the demo app reads of a delivery: the
// CRM's callbacks are small, and a test app must not buffer without end.
const demoAppMaxBody = 1 << 20

// newDemoApp makes a secret and the app's handler; start serves it.
func newDemoApp(log *slog.Logger, seed uint64, failRate float64) (*demoApp, error) {
	key := make([]byte, 32)
	if _, err := crand.Read(key); err != nil {
		return nil, fmt.Errorf("demo app secret: %w", err)
	}
	secret := forward.SecretPrefix + base64.StdEncoding.EncodeToString(key)
	v, err := forward.NewVerifier(secret)
	if err != nil {
		return nil, fmt.Errorf("demo app: %w", err)
	}
	return &demoApp{
		Secret: secret, verifier: v, log: log,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), failRate: failRate,
		seen: map[string]int{},
	}, nil
}

// start serves the app on a free loopback port and sets URL.
func (a *demoApp) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	a.URL = "http://" + ln.Addr().String() + "/hooks/cartelcrm"
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(ln)
	return nil
}

// close stops the app.
func (a *demoApp) close() {
	if a.srv != nil {
		a.srv.Close()
	}
}

// ServeHTTP takes one delivery: 401 unless it verifies, then 503 for a
// share, else 200 with a small JSON answer (its first bytes show in the
// lead's timeline).
func (a *demoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, demoAppMaxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id := r.Header.Get(forward.HeaderID)
	if _, err := a.verifier.Verify(r.Header, body); err != nil {
		a.log.Warn("demo app refused a delivery", "webhook_id", id, "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":%q}`, err.Error())
		return
	}
	a.mu.Lock()
	fail := a.rng.Float64() < a.failRate
	a.seen[id]++
	n := a.seen[id]
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"demo app busy, try again"}`)
		return
	}
	// Short, so the timeline's first bytes show all of it: "seen":2 is
	// a retry or a replay the app recognised by its webhook-id.
	fmt.Fprintf(w, `{"ok":true,"seen":%d}`, n)
}

// forwardToDemoApp starts the demo app and points cfg's [forward] at it:
// every stored callback is forwarded to it, signed with a secret made
// for this run. A backend without forwarding leaves the demo without.
func (w *demoWorld) forwardToDemoApp(ctx context.Context, cfg *config.Config) error {
	if _, err := w.db.ForwardStats(ctx); errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	app, err := newDemoApp(w.log.With("component", "demo_app"), uint64(time.Now().UnixNano()), demoAppFailRate)
	if err == nil {
		err = app.start()
	}
	if err != nil {
		return err
	}
	w.app = app
	w.closeFn = append(w.closeFn, app.close)
	cfg.Forward.URL, cfg.Forward.Secret = app.URL, config.Secret(app.Secret)
	// Retries within seconds, as the sender's do here, so a 503 and the
	// delivery after it are both on screen.
	cfg.Forward.MaxAttempts = 5
	cfg.Forward.BaseDelay, cfg.Forward.MaxDelay = config.Duration(time.Second), config.Duration(8*time.Second)
	return nil
}
