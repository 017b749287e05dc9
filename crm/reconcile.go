package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// Reconciliation (docs/protocol.md §6): a lead the CRM accepted that got
// no status callback for a while, or whose last status is old and not
// final, gets a signed status lookup (§2). A status the lookup finds
// different from the last one known is stored as a polled status: a row
// among the lead's callbacks of kind KindPolled, whose raw body is the
// status_polled event leadwatch writes (PolledEvent), so it is forwarded
// and shown like a callback but counted apart and never taken for one.

// EventStatusPolled is the event name of the body leadwatch writes for a
// polled status (PolledEvent).
const EventStatusPolled = "status_polled"

// Reconciliation defaults (config keys reconcile.*).
const (
	DefaultReconcileAfter = 10 * time.Minute
	DefaultReconcileStale = 30 * time.Minute
	DefaultReconcileRate  = 5.0
)

// DefaultReconcileFinal lists the statuses that need no lookup: the CRM
// will not change them.
func DefaultReconcileFinal() []string { return []string{"ftd", "not_interested"} }

// MaxPolledStatusBytes bounds a status taken from a lookup; a longer one
// is garbage, not a status, and is not stored.
const MaxPolledStatusBytes = 128

// maxPolledReasonBytes cuts a lookup's reason: it is only shown.
const maxPolledReasonBytes = 1024

// ReconcileQuery selects the leads ReconcileStore.ClaimLookups hands out.
// Only accepted leads are ever looked up.
type ReconcileQuery struct {
	// Now is the time of the claim: it is stamped on the leads handed out
	// (their last lookup), and a lead is due when its last news (its
	// acceptance, its status or its last lookup, the latest of them) is
	// before Now-After (no status yet) or Now-Stale (a status not in
	// Final). A lead handed out under Now is therefore not due again
	// under the same Now, even with After 0: a pass that keeps one Now
	// looks each lead up at most once.
	Now   time.Time
	After time.Duration
	Stale time.Duration
	// Final are the statuses that need no lookup, compared without case.
	Final []string
	// AcceptedSince, when not zero, keeps only leads accepted at or after
	// it.
	AcceptedSince time.Time
	// ExternalIDs, when set, hands out exactly these leads (those
	// accepted), due or not: an operator asked for them. After, Stale,
	// Final and AcceptedSince are ignored.
	ExternalIDs []string
	// Limit bounds how many leads one claim hands out.
	Limit int
}

// IsFinal reports whether status is one of q.Final.
func (q ReconcileQuery) IsFinal(status string) bool {
	for _, f := range q.Final {
		if strings.EqualFold(f, status) {
			return true
		}
	}
	return false
}

// PolledStatus is what one lookup learned, for ReconcileStore.SavePolled.
type PolledStatus struct {
	LeadID     int64
	ExternalID string
	InternalID string // the CRM's id of the lead
	Status     string
	Reason     string
	// PolledAt is when the answer came; UpdatedAt the CRM's updated_at
	// (zero when it sent none). The status is ordered against callbacks
	// by UpdatedAt when set, else PolledAt: the CRM's clock is the one
	// its callbacks' timestamps come from.
	PolledAt  time.Time
	UpdatedAt time.Time
	RawBody   []byte // PolledEvent's bytes
}

// ReconcileStore is what a Reconciler needs from storage; the store
// package satisfies it.
type ReconcileStore interface {
	// ClaimLookups marks up to q.Limit due leads as looked up at q.Now
	// and returns them, so that no other instance hands them out until
	// they are due again. The mark is the claim: a lookup that dies is
	// retried by whoever finds the lead due next.
	ClaimLookups(ctx context.Context, q ReconcileQuery) ([]Lead, error)
	// SavePolled stores p as a polled status of its lead, only when p's
	// status differs from the lead's last known one and no newer status
	// is known; changed says whether it did. The lead's CRM status (and
	// first status time, if it had none) follows in the same transaction.
	SavePolled(ctx context.Context, p PolledStatus) (changed bool, err error)
}

// StatusLooker looks a lead's status up at the CRM. *Client satisfies it.
type StatusLooker interface {
	Status(ctx context.Context, externalID string) (StatusResponse, error)
}

// LookupOutcome is what one status lookup came to.
type LookupOutcome string

// Lookup outcomes.
const (
	LookupChanged   LookupOutcome = "changed"   // a new status, stored as polled
	LookupUnchanged LookupOutcome = "unchanged" // the status known already
	LookupNotFound  LookupOutcome = "not_found" // 404: the CRM does not know a lead it accepted
	LookupInvalid   LookupOutcome = "invalid"   // an answer that is not a usable status
	LookupFailed    LookupOutcome = "failed"    // no answer, an error answer, or the store failed
)

// LookupOutcomes lists every outcome, for metrics and summaries.
var LookupOutcomes = []LookupOutcome{LookupChanged, LookupUnchanged, LookupNotFound, LookupInvalid, LookupFailed}

// LookupResult is one lookup.
type LookupResult struct {
	Lead    Lead
	Outcome LookupOutcome
	Status  string // the status answered; "" unless changed or unchanged
	Err     error  // why, unless changed or unchanged
}

// LookupObserver learns of every lookup's outcome, for metrics. It must be
// quick and never block.
type LookupObserver interface {
	Looked(outcome LookupOutcome)
}

type lookupObserverRef struct{ LookupObserver }

// ReconcileSummary counts a batch of lookups by outcome.
type ReconcileSummary map[LookupOutcome]int

// Total is how many lookups the summary counts.
func (s ReconcileSummary) Total() int {
	n := 0
	for _, c := range s {
		n += c
	}
	return n
}

// ReconcilerConfig tunes a Reconciler. Zero values take the defaults.
type ReconcilerConfig struct {
	Owner string        // who claims; default host:pid:random
	After time.Duration // default DefaultReconcileAfter
	Stale time.Duration // default DefaultReconcileStale
	Final []string      // default DefaultReconcileFinal(); set an empty non-nil slice for none
	// Rate is lookups per second, the Reconciler's own budget: the
	// dispatcher's limiter never sees a lookup, so lookups never delay a
	// submit. Default DefaultReconcileRate.
	Rate        float64
	Concurrency int           // lookups in flight at once; default 4
	IdleCheck   time.Duration // how often Run looks for due leads; default 5 s
	Clock       Clock
	Logger      *slog.Logger
	LogEvery    time.Duration // how often a repeated problem is logged; default 30 s
}

// Reconciler looks up the statuses of leads without news (Run, in the
// background) or of the leads asked for (Claim and LookUp, `leadwatch
// reconcile`).
type Reconciler struct {
	store    ReconcileStore
	looker   StatusLooker
	cfg      ReconcilerConfig
	limiter  *rate.Limiter
	log      *slog.Logger
	rlog     *ratelog.Logger
	observer atomic.Pointer[lookupObserverRef]
}

// NewReconciler returns a Reconciler; Run starts it.
func NewReconciler(st ReconcileStore, looker StatusLooker, cfg ReconcilerConfig) *Reconciler {
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	if cfg.After <= 0 {
		cfg.After = DefaultReconcileAfter
	}
	if cfg.Stale <= 0 {
		cfg.Stale = DefaultReconcileStale
	}
	if cfg.Final == nil {
		cfg.Final = DefaultReconcileFinal()
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultReconcileRate
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 30 * time.Second
	}
	log := cfg.Logger.With("component", "reconciler", "owner", cfg.Owner)
	return &Reconciler{
		store:  st,
		looker: looker,
		cfg:    cfg,
		// Burst 1: the rate is a spacing, so a backlog found at start
		// does not go out as one burst the CRM may throttle.
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1),
		log:     log,
		rlog:    ratelog.New(log, cfg.LogEvery, ratelog.WithClock(cfg.Clock.Now)),
	}
}

// SetObserver makes o hear every lookup from now on; nil removes it.
func (r *Reconciler) SetObserver(o LookupObserver) {
	if o == nil {
		r.observer.Store(nil)
		return
	}
	r.observer.Store(&lookupObserverRef{o})
}

// Query is the background query at now: the configured rules.
func (r *Reconciler) Query(now time.Time) ReconcileQuery {
	return ReconcileQuery{Now: now, After: r.cfg.After, Stale: r.cfg.Stale, Final: r.cfg.Final,
		Limit: r.batch()}
}

// batch is how many leads one claim takes: enough for every worker and
// about a second of the rate, so claims stay rare and a lead does not
// wait long between its claim and its lookup.
func (r *Reconciler) batch() int {
	return max(r.cfg.Concurrency, min(int(r.cfg.Rate), 256), 1)
}

// Run looks up due leads until ctx is done: every IdleCheck it claims due
// leads in batches and looks them up at the configured rate until none is
// due. It returns nil on a clean stop.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		now := r.cfg.Clock.Now()
		q := r.Query(now)
		for ctx.Err() == nil {
			leads, err := r.store.ClaimLookups(ctx, q)
			if err != nil {
				if ctx.Err() == nil {
					r.rlog.Warn("claim", "reconcile: claim lookups", "err", err)
				}
				break
			}
			if len(leads) == 0 {
				break
			}
			r.LookUp(ctx, leads, nil)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.cfg.Clock.After(r.cfg.IdleCheck):
		}
	}
}

// Claim claims the leads q selects, in batches of q.Limit (default: the
// Reconciler's batch), until none is left or max are claimed (0: no
// bound). q.Now is kept for every batch, so each lead comes once.
func (r *Reconciler) Claim(ctx context.Context, q ReconcileQuery, maxLeads int) ([]Lead, error) {
	if q.Limit <= 0 {
		q.Limit = r.batch()
	}
	if len(q.ExternalIDs) > 0 {
		// Named leads are handed out due or not: one claim of all.
		q.Limit = len(q.ExternalIDs)
		return r.store.ClaimLookups(ctx, q)
	}
	var out []Lead
	for maxLeads <= 0 || len(out) < maxLeads {
		if maxLeads > 0 {
			q.Limit = min(q.Limit, maxLeads-len(out))
		}
		leads, err := r.store.ClaimLookups(ctx, q)
		if err != nil {
			return out, err
		}
		if len(leads) == 0 {
			break
		}
		for i := range leads {
			// The payload is not needed for a lookup; a long claim
			// should not hold every lead's body.
			leads[i].Payload = nil
		}
		out = append(out, leads...)
	}
	return out, nil
}

// LookUp looks each lead up, at the configured rate and concurrency, and
// stores what changed. each, when not nil, hears every result as it comes
// (from one goroutine at a time). It stops early when ctx ends; the leads
// not looked up by then are not in the summary.
func (r *Reconciler) LookUp(ctx context.Context, leads []Lead, each func(LookupResult)) ReconcileSummary {
	sum := ReconcileSummary{}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, r.cfg.Concurrency)
	)
	for _, l := range leads {
		if r.limiter.Wait(ctx) != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := r.lookup(ctx, l)
			if res.Outcome == "" {
				return // interrupted: not a result
			}
			if o := r.observer.Load(); o != nil {
				o.Looked(res.Outcome)
			}
			mu.Lock()
			defer mu.Unlock()
			sum[res.Outcome]++
			if each != nil {
				each(res)
			}
		}()
	}
	wg.Wait()
	return sum
}

// lookup asks the CRM for one lead's status and stores it if it changed.
// An interrupted lookup has no Outcome.
func (r *Reconciler) lookup(ctx context.Context, l Lead) LookupResult {
	res := LookupResult{Lead: l}
	sr, err := r.looker.Status(ctx, l.ExternalID)
	polledAt := r.cfg.Clock.Now()
	if err == nil {
		err = CheckStatusAnswer(l.ExternalID, sr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return LookupResult{Lead: l}
		}
		res.Err = err
		switch {
		case errors.Is(err, ErrNotFound):
			res.Outcome = LookupNotFound
			// The CRM accepted this lead and now says it does not know
			// it: the operator must hear of it, but once per lead is
			// enough; the lead is asked again after reconcile.stale.
			r.log.Warn("reconcile: the CRM does not know a lead it accepted",
				"external_id", l.ExternalID, "crm_id", l.CRMID)
		case IsInvalidAnswer(err):
			res.Outcome = LookupInvalid
			r.rlog.Warn("invalid", "reconcile: unusable status answer", "external_id", l.ExternalID, "err", err)
		default:
			res.Outcome = LookupFailed
			r.rlog.Warn("failed", "reconcile: status lookup failed", "external_id", l.ExternalID, "err", err)
		}
		return res
	}
	res.Status = sr.Status
	internal := l.CRMID
	if internal == "" {
		internal = sr.ID
	}
	if internal == "" {
		internal = l.ExternalID
	}
	reason := ""
	if sr.Reason != nil {
		reason = cutUTF8(*sr.Reason, maxPolledReasonBytes)
	}
	p := PolledStatus{
		LeadID:     l.ID,
		ExternalID: l.ExternalID,
		InternalID: internal,
		Status:     sr.Status,
		Reason:     reason,
		PolledAt:   polledAt,
		UpdatedAt:  sr.UpdatedAt,
	}
	p.RawBody = PolledEvent(p)
	changed, err := r.store.SavePolled(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return LookupResult{Lead: l}
		}
		res.Outcome, res.Err = LookupFailed, fmt.Errorf("store polled status: %w", err)
		r.rlog.Warn("store", "reconcile: store polled status", "external_id", l.ExternalID, "err", err)
		return res
	}
	res.Outcome = LookupUnchanged
	if changed {
		res.Outcome = LookupChanged
	}
	return res
}

// errInvalidAnswer marks a status answer that is not a usable status.
var errInvalidAnswer = errors.New("invalid status answer")

// IsInvalidAnswer reports whether err is a status answer that is not a
// usable status: unparsable JSON, far too large, or checked and refused
// by CheckStatusAnswer. Such an answer is counted and logged, never
// stored.
func IsInvalidAnswer(err error) bool {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	return errors.Is(err, errInvalidAnswer) || errors.Is(err, errResponseTooLarge) ||
		errors.As(err, &syn) || errors.As(err, &typ)
}

// CheckStatusAnswer refuses a status answer for externalID that leadwatch
// cannot take as the lead's status: no status, one that is not short
// printable text, or an answer about another lead.
func CheckStatusAnswer(externalID string, sr StatusResponse) error {
	switch {
	case sr.Status == "":
		return fmt.Errorf("status of %q: %w: no status", externalID, errInvalidAnswer)
	case len(sr.Status) > MaxPolledStatusBytes:
		return fmt.Errorf("status of %q: %w: status of %d bytes", externalID, errInvalidAnswer, len(sr.Status))
	case !utf8.ValidString(sr.Status) || strings.ContainsFunc(sr.Status, unicode.IsControl):
		return fmt.Errorf("status of %q: %w: status is not printable text", externalID, errInvalidAnswer)
	case sr.ExternalID != "" && sr.ExternalID != externalID:
		return fmt.Errorf("status of %q: %w: the answer is about %q", externalID, errInvalidAnswer, cutUTF8(sr.ExternalID, 64))
	}
	return nil
}

// cutUTF8 cuts s to at most n bytes at a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// polledEvent is the JSON of PolledEvent (docs/protocol.md §6).
type polledEvent struct {
	Event      string  `json:"event"`
	InternalID string  `json:"internal_id"`
	ExternalID string  `json:"external_id"`
	Status     string  `json:"status"`
	Reason     *string `json:"reason"`
	PolledAt   int64   `json:"polled_at"`
}

// PolledEvent is the body leadwatch writes for a polled status, stored as
// its raw body and forwarded to the app as it is:
// {"event":"status_polled","internal_id":…,"external_id":…,"status":…,
// "reason":…,"polled_at":<unix ms>}; reason is null when empty.
func PolledEvent(p PolledStatus) []byte {
	ev := polledEvent{Event: EventStatusPolled, InternalID: p.InternalID, ExternalID: p.ExternalID,
		Status: p.Status, PolledAt: p.PolledAt.UnixMilli()}
	if p.Reason != "" {
		ev.Reason = &p.Reason
	}
	b, err := json.Marshal(ev)
	if err != nil {
		// Strings and an integer always marshal.
		panic(err)
	}
	return b
}
