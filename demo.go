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
	blocked []string // the country codes the sandbox rejects
	app     *demoApp // the app callbacks are forwarded to; nil when the store cannot forward
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
	// Statuses change seconds apart here: a lead without news for 20 s
	// (no status) or 45 s (a status not final) is looked up, so the healed
	// leads of the lost callbacks show while the cycle runs.
	cfg.Reconcile.After = config.Duration(20 * time.Second)
	cfg.Reconcile.Stale = config.Duration(45 * time.Second)

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
		// A tenth of the callbacks never come, so the lookups' polled
		// statuses show within one cycle (docs/protocol.md §6).
		CallbackLossRate: 0.1,
	})
	sb, err := sandbox.Start(sc, "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("demo sandbox: %w", err)
	}
	w.sandbox = sb
	w.blocked = sc.BlockCountries
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
	if err := w.forwardToDemoApp(ctx, &cfg); err != nil {
		ln.Close()
		return nil, err
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
	start := time.Now()
	go runCampaign(campaignCtx, w.db, w.svc.disp.Notify, w.sender, w.log, campaignPlan{Start: start, Blocked: w.blocked})
	go demoEvery(campaignCtx, start, demoOutageAt, func() { w.sender.outage(campaignCtx, demoOutageFor, w.log) })
	go demoEvery(campaignCtx, start, demoBurstAt, func() { w.badSignatures(campaignCtx, demoBurstSize, demoBurstFor) })
	go w.walkIns(campaignCtx)
	return runDashboard(ctx, e, w.db, w.svc, w.cfg.CRM.BaseURL, demoPolicy.MaxAttempts, w.log)
}

// The demo's timeline: one cycle of demoCycle, repeated until the user
// quits, so that every part of the dashboard has something to show within
// the first minute and again every few minutes after.
//
//	0:00–0:10  the ramp: from a lead every 1.5 s to the peak of 25 leads/s
//	0:10–1:20  the peak
//	0:30–0:50  the CRM outage: no request reaches the sandbox, the header's
//	           CRM health turns red, leads pile up waiting to retry, then
//	           it recovers and the backlog goes out
//	1:00–1:03  a burst of 300 callbacks signed with a wrong secret (a
//	           forger replaying "ftd" callbacks): refusals per minute jump
//	1:20–1:30  the ramp down
//	1:30–3:00  the lull: a lead every 1.5 s
//
// Throughout: every 7 s a walk-in callback for a lead leadwatch never sent
// (unmatched); statuses (new, no_answer, callback, interested, ftd,
// not_interested) arrive from the sandbox seconds after each acceptance; a
// few leads go out with a revoked key (401, failed) until resubmitted. The
// traffic comes from five sources; one of them, "pushtraffic", is junk:
// mostly blocked countries and malformed phones, which the Sources view
// shows as a high rejected share. Every stored callback is forwarded to
// the demo app (demo_app.go), which answers 503 to one in ten, so the
// header's forwarding line and the timelines' "→ app" rows move too.
// Once the store holds demoLeadCap leads
// the campaign adds no more, so hours of demo stay as fast as the first
// minutes; the outages, bursts and walk-ins go on.
const (
	demoCycle    = 3 * time.Minute
	demoRampUp   = 10 * time.Second
	demoPeakEnd  = 80 * time.Second
	demoRampDown = 10 * time.Second
	demoPeakGap  = 40 * time.Millisecond
	demoLullGap  = 1500 * time.Millisecond

	demoOutageAt  = 30 * time.Second
	demoOutageFor = 20 * time.Second

	demoBurstAt   = 60 * time.Second
	demoBurstSize = 300
	demoBurstFor  = 3 * time.Second

	demoLeadCap = 200_000
)

// demoGap is the wait after a lead at off into the cycle: the ramps move
// the rate (leads per second) linearly between the lull's and the peak's,
// so the traffic grows the way a campaign's does rather than jumping.
func demoGap(off time.Duration) time.Duration {
	off %= demoCycle
	lull, peak := 1/demoLullGap.Seconds(), 1/demoPeakGap.Seconds()
	rate := lull
	switch {
	case off < demoRampUp:
		rate = lull + (peak-lull)*float64(off)/float64(demoRampUp)
	case off < demoPeakEnd:
		rate = peak
	case off < demoPeakEnd+demoRampDown:
		rate = peak - (peak-lull)*float64(off-demoPeakEnd)/float64(demoRampDown)
	}
	return time.Duration(float64(time.Second) / rate)
}

// demoEvery runs fn at start+offset and then once each demoCycle after,
// until ctx ends. fn runs on this goroutine: a slow one delays the next
// run rather than overlapping it.
func demoEvery(ctx context.Context, start time.Time, offset time.Duration, fn func()) {
	for next := start.Add(offset); ; next = next.Add(demoCycle) {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		fn()
	}
}

// badSignatures posts n status callbacks signed with a secret the
// listener does not know, spread over about `over`, as a forger (or a CRM
// with a rotated secret) would: each is refused (403 bad_signature) and
// shows in the header's refusals per minute and the events pane. It
// returns how many got an answer.
func (w *demoWorld) badSignatures(ctx context.Context, n int, over time.Duration) int {
	url := "http://" + w.svc.ListenAddr() + w.cfg.Callbacks.Path
	wrong := []byte(randomHex(32)) // a fresh random secret: the listener knows only its own
	client := &http.Client{Timeout: 5 * time.Second}
	w.log.Info("demo: burst of callbacks with a wrong signature", "count", n, "over", over)
	const workers = 4
	jobs := make(chan int)
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body, _ := json.Marshal(crm.CallbackBody{
					InternalID: fmt.Sprintf("crm_%08d", 90_000_000+i),
					Event:      "status_changed",
					Status:     "ftd",
					Timestamp:  time.Now().Unix(),
				})
				req, err := crm.NewSignedCallback(url, body, wrong, time.Now())
				if err != nil {
					continue
				}
				resp, err := client.Do(req.WithContext(ctx))
				if err != nil {
					continue
				}
				resp.Body.Close()
				answered.Add(1)
			}
		}()
	}
	pace := time.NewTicker(max(over/time.Duration(max(n, 1)), time.Millisecond))
	defer pace.Stop()
feed:
	for i := range n {
		select {
		case <-ctx.Done():
			break feed
		case jobs <- i:
		}
		select {
		case <-ctx.Done():
			break feed
		case <-pace.C:
		}
	}
	close(jobs)
	wg.Wait()
	return int(answered.Load())
}

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

// outage takes the CRM away for dur, unless ctx ends first.
func (s *demoSender) outage(ctx context.Context, dur time.Duration, log *slog.Logger) {
	log.Info("demo: CRM outage begins", "for", dur)
	s.down.Store(true)
	defer s.down.Store(false)
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
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
	Start time.Time // the timeline's origin; default now
	// Gap is the wait after a lead at an offset from Start; default
	// demoGap.
	Gap func(off time.Duration) time.Duration
	// Cap stops the campaign once the store holds this many leads (those
	// it had before included); default demoLeadCap.
	Cap     int
	Seed    uint64
	Blocked []string // countries the sandbox blocks; default RU
}

// runCampaign enqueues a synthetic launch in waves (plan.Gap): most leads
// good, some invalid, some duplicates by phone, some from a blocked
// country, a few sent with a revoked key, and the junk source's mostly
// bad ones. It stops when the store holds plan.Cap leads or ctx ends.
func runCampaign(ctx context.Context, db store.Store, notify func(), sender *demoSender, log *slog.Logger, plan campaignPlan) {
	if plan.Start.IsZero() {
		plan.Start = time.Now()
	}
	if plan.Gap == nil {
		plan.Gap = demoGap
	}
	if plan.Cap == 0 {
		plan.Cap = demoLeadCap
	}
	if len(plan.Blocked) == 0 {
		plan.Blocked = []string{"RU"}
	}
	if plan.Seed == 0 {
		plan.Seed = uint64(time.Now().UnixNano())
	}
	// A --db store may hold leads already: they count towards the cap.
	stored := 0
	if c, err := db.Counts(ctx); err == nil {
		for _, n := range c.States {
			stored += n
		}
	}
	rng := rand.New(rand.NewPCG(plan.Seed, 0x1ead))
	run := fmt.Sprintf("%04x", rng.IntN(1<<16))
	// The phones a duplicate may reuse: the last few thousand are plenty
	// and keep memory flat over hours.
	const keepPhones = 4096
	var phones []string
	// A store that stopped taking writes fails every lead of the ramp:
	// one line per interval says so without burying the log.
	rlog := ratelog.New(log, 30*time.Second)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 1; stored < plan.Cap; i++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		l := demoLead(rng, run, i, phones, plan.Blocked)
		if l.Source != demoJunkSource {
			if len(phones) == keepPhones {
				phones = phones[1:]
			}
			phones = append(phones, l.Phone)
		}
		body, _ := json.Marshal(l)
		if l.stale && sender != nil {
			sender.markStale(l.ExternalID)
		}
		if _, err := db.Enqueue(ctx, body, store.EnqueueOptions{}); err != nil {
			if ctx.Err() != nil {
				return
			}
			rlog.Warn("enqueue", "demo enqueue", "external_id", l.ExternalID, "err", err)
		} else {
			stored++
		}
		notify()
		timer.Reset(plan.Gap(time.Since(plan.Start)))
	}
	log.Info("demo: the store holds enough leads, the campaign adds no more", "leads", stored)
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

// demoJunkSource is the traffic source that sends junk, for the Sources
// view (and a pause) to find.
const demoJunkSource = "pushtraffic"

var (
	demoFirst   = []string{"Olena", "Marta", "Ivan", "Piotr", "Anna", "Lukas", "Sofia", "Marco", "Lucía", "Jonas", "Elif", "Tomás"}
	demoLast    = []string{"Kovalenko", "Nowak", "Schmidt", "Rossi", "García", "Dubois", "Novák", "Horvat", "Silva", "Jansen"}
	demoCountry = []struct{ code, prefix string }{
		{"UA", "+38050"}, {"PL", "+4851"}, {"DE", "+49151"}, {"IT", "+39347"}, {"ES", "+34612"}, {"FR", "+33612"}, {"NL", "+31612"},
	}
	// The good sources, each with its share of the good traffic (in
	// hundredths) and the prefix of its few sub_ids (ad sets, placements).
	demoSources = []struct {
		name, sub string
		share     int
	}{
		{"fb", "fb-adset", 40}, {"google", "gads", 25}, {"tiktok", "tt-camp", 20}, {"native", "taboola", 15},
	}
	demoFunnels = []string{"crypto-q4", "forex-eu", "gold-lp"}
)

// demoLead makes lead number i. The mix is fixed by i so every kind of
// outcome appears early: the first twenty leads already hold one of each,
// and one lead in thirteen, from the sixth on, is the junk source's.
func demoLead(rng *rand.Rand, run string, i int, phones []string, blocked []string) demoPayload {
	c := demoCountry[rng.IntN(len(demoCountry))]
	first, last := demoFirst[rng.IntN(len(demoFirst))], demoLast[rng.IntN(len(demoLast))]
	l := demoPayload{
		ExternalID: fmt.Sprintf("lp-%s-%05d", run, i),
		Phone:      fmt.Sprintf("%s%07d", c.prefix, rng.IntN(10_000_000)),
		Email:      fmt.Sprintf("%s.%s%d@example.com", asciiLower(first), asciiLower(last), i),
		FirstName:  first,
		LastName:   last,
		Country:    c.code,
		Funnel:     demoFunnels[rng.IntN(len(demoFunnels))],
		ClickID:    randomHex(6),
	}
	if i%13 == 6 {
		// The junk source: a blocked country more often than not, else
		// as often a phone no CRM takes as a lead that is fine.
		l.Source = demoJunkSource
		l.SubID = fmt.Sprintf("pt-zone-%d", 9001+rng.IntN(3))
		switch r := rng.IntN(100); {
		case r < 60:
			l.Country = blocked[rng.IntN(len(blocked))]
			l.Phone = fmt.Sprintf("+1212%07d", rng.IntN(10_000_000))
		case r < 80:
			l.Phone = fmt.Sprintf("0%d", 500000000+rng.IntN(99999999))
		}
		return l
	}
	pick := rng.IntN(100)
	for _, s := range demoSources {
		if pick < s.share {
			l.Source = s.name
			l.SubID = fmt.Sprintf("%s-%d", s.sub, 101+rng.IntN(5))
			break
		}
		pick -= s.share
	}
	switch {
	case i%17 == 3: // a phone an earlier lead already used
		if len(phones) > 0 {
			l.Phone = phones[rng.IntN(len(phones))]
		}
	case i%19 == 5: // a blocked country
		l.Country = blocked[0]
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
