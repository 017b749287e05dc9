package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/ratelog"
	"github.com/leadwatch/leadwatch/store"
)

// demoPolicy retries fast so that every outcome, a give-up included, shows
// within seconds rather than the minutes a real launch would wait.
var demoPolicy = crm.RetryPolicy{
	MaxAttempts:      5,
	BaseDelay:        time.Second,
	MaxDelay:         8 * time.Second,
	RateLimitedDelay: 3 * time.Second,
}

// demoWorld is the embedded sandbox, a store and the services, wired as a
// real launch would be but all on loopback with throwaway secrets.
type demoWorld struct {
	dir     string // temporary directory, removed by close; "" when --db was given
	db      store.Store
	sandbox *sandbox.Server
	svc     *services
	sender  *demoSender
	cfg     config.Config
	blocked string // a country code the sandbox rejects
	log     *slog.Logger
	closeFn []func()
}

// newDemoWorld builds the demo: the listener on a free loopback port, the
// sandbox posting callbacks to it, and a dispatcher sending to the sandbox.
func newDemoWorld(ctx context.Context, e env, dbPath, logPath string, logTo *os.File) (*demoWorld, error) {
	w := &demoWorld{}
	ok := false
	defer func() {
		if !ok {
			w.close()
		}
	}()
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "leadwatch-demo-")
		if err != nil {
			return nil, err
		}
		w.dir = dir
		dbPath = filepath.Join(dir, "demo.db")
	}
	if logTo != nil {
		w.log = slog.New(slog.NewTextHandler(logTo, nil))
	} else {
		log, closeLog, err := openLog(e, logPath, dbPath)
		if err != nil {
			return nil, err
		}
		w.log = log
		w.closeFn = append(w.closeFn, closeLog)
	}

	// Secrets for this run only: both ends get them in memory, nothing
	// is printed or stored.
	cfg := config.Default()
	cfg.CRM.APIKey = config.Secret(randomHex(16))
	cfg.CRM.HMACSecret = config.Secret(randomHex(32))
	cfg.Callbacks.Secrets = []config.Secret{config.Secret(randomHex(32))}
	cfg.CRM.Timeout = config.Duration(5 * time.Second)
	cfg.CRM.Concurrency = 8
	cfg.Store.Path = dbPath

	db, err := openStore(ctx, cfg, store.Options{Logger: w.log})
	if err != nil {
		return nil, err
	}
	w.db = db

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo listener: %w", err)
	}
	cfg.Callbacks.Listen = ln.Addr().String()

	sc := sandbox.DemoFaults(sandbox.Config{
		APIKey:         string(cfg.CRM.APIKey.Reveal()),
		HMACSecret:     cfg.CRM.HMACSecret.Reveal(),
		CallbackSecret: cfg.Callbacks.Secrets[0].Reveal(),
		CallbackURL:    "http://" + ln.Addr().String() + cfg.Callbacks.Path,
		Seed:           time.Now().UnixNano(),
		Logger:         w.log.With("component", "sandbox"),
		// Enough 503s and 429s that the retry pane is never empty for long.
		FailRate:     0.08,
		ThrottleRate: 0.08,
		RetryAfter:   4 * time.Second,
	})
	sb, err := sandbox.Start(sc, "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("demo sandbox: %w", err)
	}
	w.sandbox = sb
	if len(sc.BlockCountries) > 0 {
		w.blocked = sc.BlockCountries[0]
	}
	cfg.CRM.BaseURL = sb.URL

	good, err := newClient(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	// A revoked key, for the story's "failed: needs the operator" row.
	stale := cfg
	stale.CRM.APIKey = config.Secret("revoked-" + randomHex(4))
	revoked, err := newClient(stale)
	if err != nil {
		ln.Close()
		return nil, err
	}
	w.sender = &demoSender{
		good: good, revoked: revoked, stale: map[string]bool{},
		downErr: fmt.Errorf("demo outage: dial tcp %s: connect: connection refused", strings.TrimPrefix(sb.URL, "http://")),
	}
	policy := demoPolicy
	svc, err := newServices(cfg, db, w.log, serviceOptions{
		send: true, listen: true, policy: &policy, sender: w.sender, listener: ln,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	w.svc = svc
	w.cfg = cfg
	ok = true
	return w, nil
}

func (w *demoWorld) close() {
	if w.sandbox != nil {
		w.sandbox.Close()
	}
	if w.db != nil {
		w.db.Close()
	}
	for _, f := range w.closeFn {
		f()
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
}

// walkIns posts, now and then, a signed status callback for a lead that
// leadwatch never sent (one a call centre typed into the CRM by hand), so
// the events pane shows how an unmatched callback looks.
func (w *demoWorld) walkIns(ctx context.Context) {
	url := "http://" + w.svc.ListenAddr() + w.cfg.Callbacks.Path
	secret := w.cfg.Callbacks.Secrets[0].Reveal()
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(7 * time.Second)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body, _ := json.Marshal(crm.CallbackBody{
			InternalID: fmt.Sprintf("crm_walkin_%d", i),
			Event:      "status_changed",
			Status:     "new",
			Timestamp:  time.Now().Unix(),
		})
		req, err := crm.NewSignedCallback(url, body, secret, time.Now())
		if err != nil {
			return
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			continue
		}
		resp.Body.Close()
	}
}

func runDemo(ctx context.Context, e env, dbPath, logPath string) error {
	w, err := newDemoWorld(ctx, e, dbPath, logPath, nil)
	if err != nil {
		return err
	}
	defer w.close()
	campaignCtx, stop := context.WithCancel(ctx)
	defer stop()
	go runCampaign(campaignCtx, w.db, w.svc.disp.Notify, w.sender, w.log, campaignPlan{Blocked: w.blocked})
	go w.sender.outageAt(campaignCtx, demoOutageAt, demoOutageFor, w.log)
	go w.walkIns(campaignCtx)
	return runDashboard(ctx, e, w.db, w.svc, w.cfg.CRM.BaseURL, demoPolicy.MaxAttempts, w.log)
}

// The demo's CRM outage: from demoOutageAt after the start, in the middle
// of the campaign's peak, for demoOutageFor, no request reaches the
// sandbox, so the header's CRM health turns red and recovers.
const (
	demoOutageAt  = 30 * time.Second
	demoOutageFor = 20 * time.Second
)

// demoSender sends most leads with the right key and a few, once, with a
// revoked one, the way a launch meets a key rotated under it: those fail
// with 401 and need the operator, whose resubmit then goes through.
// During an outage every attempt fails as a refused connection would,
// without an HTTP answer.
type demoSender struct {
	good, revoked *crm.Client
	mu            sync.Mutex
	stale         map[string]bool // external ids whose next send uses the revoked key
	down          atomic.Bool     // the outage is on
	downErr       error           // what an attempt meets during it
}

// outageAt takes the CRM away after at, for dur, unless ctx ends first.
func (s *demoSender) outageAt(ctx context.Context, at, dur time.Duration, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(at):
	}
	log.Info("demo: CRM outage begins", "for", dur)
	s.down.Store(true)
	defer s.down.Store(false)
	select {
	case <-ctx.Done():
	case <-time.After(dur):
		log.Info("demo: CRM outage ends")
	}
}

func (s *demoSender) markStale(externalID string) {
	s.mu.Lock()
	s.stale[externalID] = true
	s.mu.Unlock()
}

// Submit implements crm.Sender.
func (s *demoSender) Submit(ctx context.Context, body []byte, key string) crm.Result {
	var head struct {
		ExternalID string `json:"external_id"`
	}
	_ = json.Unmarshal(body, &head)
	if s.down.Load() {
		// As fast as a refused connection: no answer, so retryable.
		return crm.Result{Err: s.downErr, Outcome: crm.Classify(0, nil, nil, s.downErr, time.Now())}
	}
	s.mu.Lock()
	stale := s.stale[head.ExternalID]
	delete(s.stale, head.ExternalID)
	s.mu.Unlock()
	if stale {
		return s.revoked.Submit(ctx, body, key)
	}
	return s.good.Submit(ctx, body, key)
}

// campaignPlan shapes the synthetic launch. Zero values take defaults.
type campaignPlan struct {
	Total   int           // leads in all; default 1500
	Ramp    time.Duration // time to reach full rate; default 10 s
	PeakPer time.Duration // interval between leads at full rate; default 40 ms
	Seed    uint64
	Blocked string // a country the sandbox blocks
}

// runCampaign enqueues a synthetic launch: a ramp of leads, most good, some
// invalid, some duplicates by phone, some from a blocked country, a few
// sent with a revoked key. It stops at Total or when ctx ends.
func runCampaign(ctx context.Context, db store.Store, notify func(), sender *demoSender, log *slog.Logger, plan campaignPlan) {
	if plan.Total == 0 {
		plan.Total = 1500
	}
	if plan.Ramp == 0 {
		plan.Ramp = 10 * time.Second
	}
	if plan.PeakPer == 0 {
		plan.PeakPer = 40 * time.Millisecond
	}
	if plan.Blocked == "" {
		plan.Blocked = "RU"
	}
	if plan.Seed == 0 {
		plan.Seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(plan.Seed, 0x1ead))
	start := time.Now()
	run := fmt.Sprintf("%04x", rng.IntN(1<<16))
	var phones []string
	// A store that stopped taking writes fails every lead of the ramp:
	// one line per interval says so without burying the log.
	rlog := ratelog.New(log, 30*time.Second)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 1; i <= plan.Total; i++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		l := demoLead(rng, run, i, phones, plan.Blocked)
		phones = append(phones, l.Phone)
		body, _ := json.Marshal(l)
		if l.stale && sender != nil {
			sender.markStale(l.ExternalID)
		}
		if _, err := db.Enqueue(ctx, body, store.EnqueueOptions{}); err != nil {
			if ctx.Err() != nil {
				return
			}
			rlog.Warn("enqueue", "demo enqueue", "external_id", l.ExternalID, "err", err)
		}
		notify()
		// Ramp linearly from one lead every 400 ms to the peak rate.
		frac := min(float64(time.Since(start))/float64(plan.Ramp), 1)
		gap := time.Duration(float64(400*time.Millisecond)*(1-frac) + float64(plan.PeakPer)*frac)
		timer.Reset(gap)
	}
}

type demoPayload struct {
	ExternalID string `json:"external_id"`
	Phone      string `json:"phone"`
	Email      string `json:"email,omitempty"`
	FirstName  string `json:"first_name,omitempty"`
	LastName   string `json:"last_name,omitempty"`
	Country    string `json:"country,omitempty"`
	Source     string `json:"source,omitempty"`
	Funnel     string `json:"funnel,omitempty"`
	SubID      string `json:"sub_id,omitempty"`
	ClickID    string `json:"click_id,omitempty"`
	stale      bool
}

var (
	demoFirst   = []string{"Olena", "Marta", "Ivan", "Piotr", "Anna", "Lukas", "Sofia", "Marco", "Lucía", "Jonas", "Elif", "Tomás"}
	demoLast    = []string{"Kovalenko", "Nowak", "Schmidt", "Rossi", "García", "Dubois", "Novák", "Horvat", "Silva", "Jansen"}
	demoCountry = []struct{ code, prefix string }{
		{"UA", "+38050"}, {"PL", "+4851"}, {"DE", "+49151"}, {"IT", "+39347"}, {"ES", "+34612"}, {"FR", "+33612"}, {"NL", "+31612"},
	}
	demoSources = []string{"fb", "google", "tiktok", "native"}
)

// demoLead makes lead number i. The mix is fixed by i so every kind of
// outcome appears early: the first twenty leads already hold one of each.
func demoLead(rng *rand.Rand, run string, i int, phones []string, blocked string) demoPayload {
	c := demoCountry[rng.IntN(len(demoCountry))]
	first, last := demoFirst[rng.IntN(len(demoFirst))], demoLast[rng.IntN(len(demoLast))]
	l := demoPayload{
		ExternalID: fmt.Sprintf("lp-%s-%05d", run, i),
		Phone:      fmt.Sprintf("%s%07d", c.prefix, rng.IntN(10_000_000)),
		Email:      fmt.Sprintf("%s.%s%d@example.com", asciiLower(first), asciiLower(last), i),
		FirstName:  first,
		LastName:   last,
		Country:    c.code,
		Source:     demoSources[rng.IntN(len(demoSources))],
		Funnel:     "crypto-q4",
		SubID:      fmt.Sprintf("s%03d", rng.IntN(1000)),
		ClickID:    randomHex(6),
	}
	switch {
	case i%17 == 3: // a phone an earlier lead already used
		if len(phones) > 0 {
			l.Phone = phones[rng.IntN(len(phones))]
		}
	case i%19 == 5: // a blocked country
		l.Country = blocked
		l.Phone = fmt.Sprintf("+1212%07d", rng.IntN(10_000_000))
	case i%23 == 7: // malformed: a local phone number
		l.Phone = fmt.Sprintf("0%d", 500000000+rng.IntN(99999999))
	case i%29 == 11: // malformed: a broken email
		l.Email = "lead@"
	case i%31 == 13: // sent with a revoked key: 401, failed
		l.stale = true
	}
	return l
}

func asciiLower(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			out = append(out, c+'a'-'A')
		case c >= 'a' && c <= 'z':
			out = append(out, c)
		}
	}
	return string(out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
