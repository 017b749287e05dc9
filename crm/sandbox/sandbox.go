// Package sandbox is a fake CartelCRM (docs/protocol.md §4), used by --demo, by
// "leadwatch sandbox" and by every test that needs the other end of the wire.
//
// It serves the lead and status endpoints with the protocol's checks and
// answers, stores leads in memory, walks each accepted lead through a status
// lifecycle and sends a signed callback per change. Faults — 503s, 429s,
// dropped connections, latency, and duplicated, badly signed, stale or
// reordered callbacks — are injected from a seeded source, so a failing run
// can be replayed.
//
// # Choices where the protocol is silent
//
//   - Check order of an API request: route (404 not_found, 405
//     method_not_allowed), bearer (401 unauthorized), X-Timestamp (401
//     timestamp_out_of_range), body size (413 body_too_large, 1 MiB),
//     X-Signature over the raw body, empty for GET (403 bad_signature).
//     Bearer first so an unauthenticated caller learns nothing else.
//   - A lead without Idempotency-Key, or with one longer than 255 bytes, is
//     400 idempotency_key_required: the protocol's client always sends one,
//     and a sandbox that forgave its absence would hide that bug.
//   - A body that is not one JSON object is 400 invalid_json.
//   - Then a fault may be drawn (one draw per authenticated request, lead or
//     status, in arrival order). A fault answer is never stored under the key.
//   - Only LeadResponse answers (accepted, duplicate, validation_error,
//     rejected) are stored under the idempotency key and replayed; request
//     errors (auth, 400, 413, faults) are not, so a corrected retry is
//     processed. Same key with different body bytes is 422
//     idempotency_key_reused even while the first is in flight; same key and
//     bytes while the first is in flight is 409 request_in_progress. Keys
//     live as long as the Sandbox.
//   - Validation order: external_id, phone, email, country; the first
//     failure is the reason. country is matched case-insensitively against
//     the ISO 3166-1 alpha-2 table in validate.go.
//   - Decision order after validation: duplicate external_id, duplicate
//     phone, blocked country, accept. A rejected lead is not stored (id null)
//     and can be sent again.
//   - Lifecycle: "new" at acceptance (announced by a callback at once), then
//     one of no_answer, callback or interested, then ftd or not_interested,
//     StatusDelay apart. Callback event is "status_changed"; its body
//     timestamp is unix seconds, strictly increasing per lead so the
//     listener's dedup key internal_id:event:timestamp never merges two
//     changes that fall in one second.
//   - Redelivery: after a non-2xx answer or a network error, waits
//     CallbackBackoff doubling to MaxCallbackBackoff, no jitter (so tests are
//     predictable), at most CallbackAttempts deliveries.
//   - After Close the API answers 503 unavailable and nothing more is sent.
package sandbox

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Sandbox is one fake CartelCRM. It is safe for concurrent use.
type Sandbox struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	blocked map[string]bool

	// ctx is cancelled by Close: it ends lifecycle waits, backoffs and
	// in-flight callback POSTs.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent callback POSTs
	once   sync.Once

	faultMu  sync.Mutex
	faultRNG *rand.Rand // one draw per authenticated request

	mu         sync.Mutex
	closed     bool
	seq        uint64            // leads created; numbers the CRM ids and seeds each lead's RNG
	byExternal map[string]*lead  // external_id -> lead
	byPhone    map[string]*lead  // phone -> lead
	keys       map[string]*entry // Idempotency-Key -> request state
	created    map[string]int    // external_id -> times created (must stay 1)
	createdMax int
	// keysSeen is every Idempotency-Key each external_id arrived under,
	// faults included: a client must never send one lead under two keys.
	keysSeen    map[string]map[string]struct{}
	keysSeenMax int
	pending     int           // lifecycle and delivery goroutines running
	idle        chan struct{} // closed when pending drops to 0; replaced when work starts

	n counters
}

// lead is one accepted lead. Its mutable fields are guarded by Sandbox.mu.
type lead struct {
	crmID      string
	externalID string
	phone      string
	status     string
	reason     string
	updatedAt  time.Time
	lastTS     int64 // body timestamp of the last change, to keep them increasing
}

// statusResponse is l as the status endpoint answers it. The caller holds
// Sandbox.mu.
func (l *lead) statusResponse() crm.StatusResponse {
	resp := crm.StatusResponse{ExternalID: l.externalID, ID: l.crmID, Status: l.status, UpdatedAt: l.updatedAt}
	if l.reason != "" {
		reason := l.reason
		resp.Reason = &reason
	}
	return resp
}

// entry is an idempotency key's state: in flight until done, then the
// answer to replay.
type entry struct {
	bodyHash [32]byte
	done     bool
	code     int
	resp     []byte // the stored LeadResponse, marshalled without replay
}

// New returns a Sandbox for cfg, filling zero fields with the defaults.
// cfg should have passed Validate; New itself does not fail.
func New(cfg Config) *Sandbox {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultCallbackTimeout}
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.StatusDelay == 0 {
		cfg.StatusDelay = DefaultStatusDelay
	}
	if cfg.CallbackBackoff == 0 {
		cfg.CallbackBackoff = DefaultCallbackBackoff
	}
	if cfg.CallbackAttempts == 0 {
		cfg.CallbackAttempts = DefaultCallbackAttempts
	}
	blocked := make(map[string]bool, len(cfg.BlockCountries))
	for _, c := range cfg.BlockCountries {
		blocked[strings.ToUpper(strings.TrimSpace(c))] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &Sandbox{
		cfg:        cfg,
		log:        cfg.Logger,
		client:     cfg.HTTPClient,
		blocked:    blocked,
		ctx:        ctx,
		cancel:     cancel,
		sem:        make(chan struct{}, DefaultCallbackConcurrency),
		faultRNG:   rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		byExternal: make(map[string]*lead),
		byPhone:    make(map[string]*lead),
		keys:       make(map[string]*entry),
		created:    make(map[string]int),
		keysSeen:   make(map[string]map[string]struct{}),
		idle:       idle,
	}
}

// Close stops the lifecycles and callback deliveries (in-flight POSTs are
// cancelled) and waits for their goroutines to end. Afterwards the API
// answers 503. It is safe to call more than once.
func (s *Sandbox) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
}

// Pending returns how many lifecycles and callback deliveries are still
// running.
func (s *Sandbox) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// WaitIdle blocks until every lifecycle has reached its final status and
// every callback has been delivered or given up, or until ctx ends. Tests
// and the demo use it instead of sleeping.
func (s *Sandbox) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.pending == 0 {
			s.mu.Unlock()
			return nil
		}
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Lookup returns a lead's current status as the status endpoint would,
// without the HTTP round trip and its signing; ok is false for an unknown
// lead. Other packages' tests use it to check the CRM's side of a run.
func (s *Sandbox) Lookup(externalID string) (resp crm.StatusResponse, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byExternal[externalID]
	if !ok {
		return crm.StatusResponse{}, false
	}
	return l.statusResponse(), true
}

// goLocked runs f in a goroutine counted by Pending and waited for by
// Close, unless the sandbox is closed. The caller holds s.mu, which is what
// makes the closed check and wg.Add atomic with respect to Close.
func (s *Sandbox) goLocked(f func()) bool {
	if s.closed {
		return false
	}
	if s.pending == 0 {
		s.idle = make(chan struct{})
	}
	s.pending++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.finish()
		f()
	}()
	return true
}

// spawn is goLocked for callers that do not hold s.mu.
func (s *Sandbox) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goLocked(f)
}

func (s *Sandbox) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if s.pending == 0 {
		close(s.idle)
	}
}

// sleep waits d, or less if the sandbox closes; it reports whether the
// whole wait passed.
func (s *Sandbox) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}
