// Package callbacks is the HTTP listener that receives CartelCRM's signed
// status callbacks (docs/protocol.md §3). It checks, in the protocol's order, the
// body size, the timestamp window, the HMAC signature over the raw body and
// the payload, then stores the event durably through an EventSink before it
// answers 200. Concurrent events are group-committed: one sink transaction
// per batch, each request waiting for its own batch (docs/architecture.md, durability
// rule 2). Every refusal is recorded, off the request path and bounded, so
// that bad traffic can neither slow the answers down nor fill the store.
//
// Where docs/protocol.md is silent, the listener decides:
//   - Two X-Timestamp (or two X-Signature) headers are refused as
//     timestamp_out_of_range (bad_signature): which value was meant would
//     be a guess, even when both are valid.
//   - A signed body naming one of the fields the listener reads
//     (internal_id, event, timestamp, external_id, status, reason) twice at
//     the top level, even through JSON escapes, is invalid_payload: parsers
//     disagree on which value wins, so it has no single dedup key.
//   - A body whose read fails (client gone, the server's ReadTimeout) is
//     answered 400 {"error":"bad_request"} and not recorded as a refusal:
//     nothing was delivered.
//   - Refusals go to a bounded queue (Config.RefusalQueue) drained by one
//     goroutine at most Config.RefusalsPerSecond; when it is full they are
//     only counted (Stats.RefusalsDropped). The costlier diagnosis of the
//     raw-body bug runs only on bodies up to 16 KiB and only while the
//     queue has room.
//   - GET/HEAD /healthz answers 503
//     {"ok":false,"error":"unavailable","reason":"<code>"} when the store
//     cannot commit, with one of the fixed codes of HealthChecker, and
//     logs the cause (rate-limited): the listener may face the internet,
//     so no error text is ever shown.
//   - A request waits for its commit at most twice Config.CommitTimeout,
//     then gets 503; so does every request after Close. The wait does not
//     end when the client half-closes or leaves: the answer reflects the
//     commit, and a committed event is answered 200 whenever the
//     connection can still carry it.
//   - Bodies are read within a budget of bytes (Config.MaxBodyBytesInFlight):
//     a body's buffer grows as its bytes arrive, and every growth past the
//     first 4 KiB is reserved before it is allocated, waiting at most
//     Config.BodyWait for room; otherwise the request is answered 503
//     unavailable and its connection closed. Unauthenticated clients that
//     announce large bodies and stall so hold next to nothing, and those
//     that really send bytes hold at most the budget, never memory in
//     proportion to their number.
//   - Every answer but a signed callback's closes its connection: refusals
//     (4xx), /healthz, and 503s sent without reading the body. A refused
//     sender is misconfigured or hostile, and a health probe costs a
//     handshake at most once a second; keep-alive would save them that,
//     while an idle connection costs a file descriptor and some 30 KiB
//     for up to the idle timeout. So no unauthenticated client can hold
//     an idle connection: the only idle ones are the CRM's (ConnLimiter
//     makes room among those at the cap).
//   - After SetDraining(true) (serve's SIGTERM), /healthz answers 503
//     with reason "draining" while callbacks are still served, so that a
//     balancer takes the instance out before it stops.
//   - Behind a proxy of Config.TrustedProxies, a refusal's client address
//     comes from X-Forwarded-For (the rightmost address not itself
//     trusted; see proxy.go), and a refusal keeps the connection open: it
//     is the proxy's, pooled, not the refused client's. X-Forwarded-For
//     from any other peer is ignored.
//   - Repeated conditions (refusal queue full, refusals not stored, the
//     body budget full, an unhealthy store) are logged once per ten
//     seconds each, with a count of the lines left out (internal/ratelog).
//     A failed commit is logged once per batch by the committer, not once
//     more per request.
package callbacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// Defaults of Config.
const (
	DefaultPath              = "/cartelcrm/callback"
	DefaultMaxBody           = 1 << 20
	DefaultMaxBatch          = 256
	DefaultCommitTimeout     = 5 * time.Second
	DefaultRefusalQueue      = 256
	DefaultRefusalsPerSecond = 200

	// DefaultMaxBodyBytesInFlight is the default body budget: 16 bodies of
	// the largest size at once, or tens of thousands of typical callbacks
	// of a few hundred bytes. It keeps the listener's resident memory
	// under 100 MiB however many clients announce large bodies.
	DefaultMaxBodyBytesInFlight = 16 * DefaultMaxBody

	// DefaultBodyWait is how long a body waits for room in the budget
	// before it is answered 503: long enough to ride out a burst, short
	// enough that a flood of stalled bodies does not pile up waiters.
	DefaultBodyWait = time.Second

	// logInterval is how often one repeated condition is logged.
	logInterval = 10 * time.Second

	// HealthPath answers whether the sink can take events.
	HealthPath = "/healthz"

	// headLen is how much of a refused body is kept for the operator.
	headLen = 256
)

// ErrNoSecrets is returned by NewHandler when no callback secret is
// configured: a listener that cannot verify anything must not start.
var ErrNoSecrets = errors.New("callbacks: no callback secret configured")

// errClosed is what a request gets when it arrives after Close.
var errClosed = errors.New("callbacks: handler closed")

// Config configures a Handler. Zero fields take the defaults above.
type Config struct {
	// Path is where callbacks are posted; default DefaultPath.
	Path string
	// Secrets are the callback secrets. Several means rotation: any one
	// matching is enough, and CallbackEvent.SecretIdx records which.
	Secrets [][]byte
	// Tolerance is the accepted |now − X-Timestamp|; default
	// crm.DefaultTolerance.
	Tolerance time.Duration
	// MaxBody is the largest body read; default DefaultMaxBody.
	MaxBody int64
	// MaxBatch caps how many events one group commit carries; default
	// DefaultMaxBatch.
	MaxBatch int
	// CommitTimeout bounds one sink.SaveCallbacks call; a batch that takes
	// longer is answered 503 (the CRM retries). Default DefaultCommitTimeout.
	CommitTimeout time.Duration
	// RefusalQueue is how many refusals may wait to be stored; past it they
	// are counted (Stats.RefusalsDropped) but not stored. Default
	// DefaultRefusalQueue.
	RefusalQueue int
	// RefusalsPerSecond caps how often refusals are written, so a flood of
	// bad callbacks cannot take the store's write capacity from good ones.
	// Default DefaultRefusalsPerSecond.
	RefusalsPerSecond int
	// MaxBodyBytesInFlight caps the bytes of request bodies being read at
	// once; default DefaultMaxBodyBytesInFlight, raised to MaxBody when
	// smaller (a body of the largest size must still fit).
	MaxBodyBytesInFlight int64
	// BodyWait is how long a body's next bytes wait for room in the body
	// budget before the request is answered 503; default DefaultBodyWait.
	BodyWait time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives operational logs; default discards. Secrets and
	// signatures are never logged.
	Logger *slog.Logger
	// TrustedProxies are the balancers whose X-Forwarded-For is believed
	// (see clientAddr); empty trusts nobody's.
	TrustedProxies []netip.Prefix
}

// Stats are the listener's counters, for the dashboard header.
type Stats struct {
	Verified        uint64 // fresh callbacks stored and answered 200
	Replays         uint64 // callbacks answered 200 with "replay": dedup key already stored
	Refused         uint64 // callbacks refused by checks 0–3 (413, 401, 403, 400)
	Unavailable     uint64 // callbacks answered 503: the sink could not take them
	Shed            uint64 // requests answered 503 mid-body: the body budget stayed full
	BodyBytes       uint64 // bytes of the body budget reserved right now
	Reading         uint64 // callback bodies being read right now
	RefusalsDropped uint64 // refusals answered but not stored (queue full)
	Batches         uint64 // group commits attempted
	Pending         uint64 // events waiting for a group commit right now
}

// Handler serves the callback path and /healthz. Create it with NewHandler
// and stop it with Close.
type Handler struct {
	cfg  Config
	sink EventSink
	log  *slog.Logger

	// commits is the group committer of verified events.
	commits *groupcommit.Batcher[crm.CallbackEvent, bool]

	// mu guards closed against sends on refusals, which Close closes;
	// requests hold it shared only for a non-blocking moment.
	mu     sync.RWMutex
	closed bool
	// closing lets the refusal recorder stop pacing once Close drains it.
	closing  atomic.Bool
	refusals chan crm.Refusal
	wg       sync.WaitGroup // the refusal recorder

	// bodies bounds the bytes of bodies being read at once.
	bodies *bodyBudget
	// health is the sink's HealthChecker, nil when it has none (then
	// /healthz falls back to Ping).
	health HealthChecker
	// rlog logs repeated conditions once per logInterval: a refusal flood
	// or a full disk must not turn into a log flood.
	rlog *ratelog.Logger

	// secrets verify signatures; SetSecrets swaps them (SIGHUP) while
	// requests read them.
	secrets atomic.Pointer[[][]byte]
	// proxies are Config.TrustedProxies.
	proxies trustedProxies
	// draining makes /healthz fail while callbacks are still served
	// (SetDraining).
	draining atomic.Bool
	// observer hears refusals and commits, for metrics (SetObserver).
	observer atomic.Pointer[observerRef]

	verified, replays, refused, unavailable, shed, dropped, batches atomic.Uint64
	reading                                                         atomic.Int64 // bodies being read
}

// NewHandler validates cfg, fills in its defaults and starts the group
// committer and the refusal recorder. It fails when no secret is given.
func NewHandler(cfg Config, sink EventSink) (*Handler, error) {
	if len(cfg.Secrets) == 0 {
		return nil, ErrNoSecrets
	}
	for i, s := range cfg.Secrets {
		if len(s) == 0 {
			return nil, errors.New("callbacks: callback secret " + strconv.Itoa(i) + " is empty")
		}
	}
	if sink == nil {
		return nil, errors.New("callbacks: nil EventSink")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = crm.DefaultTolerance
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	if cfg.RefusalQueue <= 0 {
		cfg.RefusalQueue = DefaultRefusalQueue
	}
	if cfg.RefusalsPerSecond <= 0 {
		cfg.RefusalsPerSecond = DefaultRefusalsPerSecond
	}
	if cfg.MaxBodyBytesInFlight <= 0 {
		cfg.MaxBodyBytesInFlight = DefaultMaxBodyBytesInFlight
	}
	cfg.MaxBodyBytesInFlight = max(cfg.MaxBodyBytesInFlight, cfg.MaxBody)
	if cfg.BodyWait <= 0 {
		cfg.BodyWait = DefaultBodyWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Copy the secrets so a caller reusing its slices cannot change what
	// verifies behind the handler's back.
	secrets := make([][]byte, len(cfg.Secrets))
	for i, s := range cfg.Secrets {
		secrets[i] = bytes.Clone(s)
	}
	cfg.Secrets = secrets

	h := &Handler{
		cfg:      cfg,
		sink:     sink,
		log:      cfg.Logger.With("component", "callbacks"),
		refusals: make(chan crm.Refusal, cfg.RefusalQueue),
		bodies:   newBodyBudget(cfg.MaxBodyBytesInFlight, cfg.MaxBody, cfg.BodyWait),
	}
	h.secrets.Store(&secrets)
	h.proxies = trustedProxies(cfg.TrustedProxies)
	h.health, _ = sink.(HealthChecker)
	h.rlog = ratelog.New(h.log, logInterval, ratelog.WithClock(cfg.Now))
	h.commits = h.newCommitter()
	h.wg.Add(1)
	go h.runRefusalRecorder()
	return h, nil
}

// Close stops accepting events, commits those already queued, stores the
// queued refusals and returns when both background goroutines are done.
// Requests arriving after Close are answered 503. Close is idempotent.
func (h *Handler) Close() {
	h.closing.Store(true)
	h.commits.Close()
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.refusals)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() Stats {
	return Stats{
		Verified:        h.verified.Load(),
		Replays:         h.replays.Load(),
		Refused:         h.refused.Load(),
		Unavailable:     h.unavailable.Load(),
		Shed:            h.shed.Load(),
		BodyBytes:       uint64(h.bodies.reserved.Load()),
		Reading:         uint64(h.reading.Load()),
		RefusalsDropped: h.dropped.Load(),
		Batches:         h.batches.Load(),
		Pending:         uint64(h.commits.Pending()),
	}
}

// ServeHTTP routes the callback path and HealthPath; anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case h.cfg.Path:
		h.serveCallback(w, r)
	case HealthPath:
		h.serveHealth(w, r)
	default:
		w.Header()["Connection"] = connClose
		ansNotFound.write(w)
	}
}

// serveCallback runs the checks of docs/protocol.md §3 in the table's order.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		hdr := w.Header()
		hdr["Allow"] = allowPost
		hdr["Connection"] = connClose
		ansMethodNotAllowed.write(w)
		return
	}
	now := h.cfg.Now()

	// 0. Body size. A declared length over the limit is refused before a
	// byte of the body is read (so at once, whatever the client sends
	// next); the connection is closed (refuse does it) rather than drained.
	// An undeclared length is cut by MaxBytesReader.
	if r.ContentLength > h.cfg.MaxBody {
		h.refuse(w, r, now, ansTooLarge, bodyTooLargeDetail(r.ContentLength, h.cfg.MaxBody), nil)
		// Nor drained: with a small max_body the unread rest can be under
		// net/http's 256 KiB drain limit, and a stalling client would hold
		// the connection until the read timeout.
		http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // see the 503 below
		return
	}
	body, res, err := h.readBody(w, r)
	// The body's bytes stay reserved until the handler is done with them.
	defer res.release()
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, errBodyBudget):
			h.shed.Add(1)
			h.rlog.Warn("body_budget", "body budget full; answered 503 before the body was read",
				"budget_bytes", h.cfg.MaxBodyBytesInFlight, "wait", h.cfg.BodyWait.String())
			w.Header()["Connection"] = connClose
			ansUnavailable.write(w)
			// net/http would drain up to 256 KiB of the unread body before
			// closing, waiting on a client that may be stalling on purpose; a
			// past read deadline ends the drain, and the connection, at once.
			http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // HTTP/1 supports it; without it the drain is bounded by ReadTimeout
		case errors.As(err, &tooLarge):
			w.Header()["Connection"] = connClose
			h.refuse(w, r, now, ansTooLarge, bodyTooLargeDetail(-1, h.cfg.MaxBody), body)
		default:
			// The client went away or was too slow (the server's ReadTimeout):
			// nothing was delivered, so there is nothing to refuse or store.
			h.log.Debug("callback body read failed", "remote", h.proxies.clientAddr(r), "err", err)
			w.Header()["Connection"] = connClose
			ansBadRequest.write(w)
		}
		return
	}

	// 1. Timestamp. Two X-Timestamp headers are refused: which one a proxy
	// or the CRM meant is a guess, and guessing is how checks are fooled.
	tsVals := r.Header[crm.HeaderTimestamp]
	if len(tsVals) > 1 {
		h.refuse(w, r, now, ansTimestamp, repeated("timestamp", tsVals), body)
		return
	}
	tsHeader := first(tsVals)
	skew, err := crm.CheckTimestamp(tsHeader, now, h.cfg.Tolerance)
	if err != nil {
		h.refuse(w, r, now, ansTimestamp, timestampDetail(tsVals, err, now, h.cfg.Tolerance), body)
		return
	}

	// 2. Signature over the raw bytes, every secret tried in constant time.
	// Two X-Signature headers are refused for the same reason as above.
	sigVals := r.Header[crm.HeaderSignature]
	if len(sigVals) > 1 {
		h.refuse(w, r, now, ansSignature, repeated("signature", sigVals), body)
		return
	}
	sigHeader := first(sigVals)
	secrets := *h.secrets.Load()
	idx, err := crm.VerifySignature(sigHeader, body, secrets)
	if err != nil {
		h.refuse(w, r, now, ansSignature, signatureDetail(sigVals, err, body, secrets, h.refusalRoom()), body)
		return
	}

	// 3. Payload, parsed once: one JSON object, no field we read named
	// twice (it would have no single dedup key), nothing after it.
	ev, err := crm.ParseCallback(body)
	if err != nil {
		h.refuse(w, r, now, ansInvalidPayload, payloadDetail(err), body)
		return
	}
	ev.ReceivedAt = now
	ev.Skew = skew
	ev.SecretIdx = idx

	// 4, 5. Store durably (or learn it is a replay), then answer. The wait
	// is not tied to the request's context: net/http cancels that when the
	// client half-closes after a complete request, and such a client still
	// reads the answer, which must then say what the commit did. The wait
	// stays bounded (commit).
	fresh, err := h.commit(context.WithoutCancel(r.Context()), ev)
	switch {
	case err != nil:
		// The committer logged the batch's failure; a line per request
		// on top would double the log exactly when the disk is full.
		h.unavailable.Add(1)
		ansUnavailable.write(w)
	case fresh:
		h.verified.Add(1)
		ansOK.write(w)
	default:
		h.replays.Add(1)
		ansReplay.write(w)
	}
}

// repeated is the refusal detail for a header sent more than once.
func repeated(what string, vals []string) string {
	return "repeated " + what + " header (" + strconv.Itoa(len(vals)) + " values)"
}

// errBodyBudget is readBody's error when the body budget had no room for
// the bytes that arrived within Config.BodyWait.
var errBodyBudget = errors.New("body budget full")

// readBody reads r's body into memory, at most MaxBody bytes, into a
// buffer that grows as bytes arrive (doubling, never past the declared
// length or MaxBody). The first freeBody bytes are free; every growth past
// them is reserved from the body budget first, so memory follows what
// clients really sent (bodyBudget). Past the limit it reads one byte
// more, so that the body reports what follows: io.EOF, or
// MaxBytesReader's error. The reservation is the caller's to release.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, reservation, error) {
	limit := h.cfg.MaxBody
	if r.ContentLength >= 0 {
		limit = r.ContentLength // at most MaxBody: checked before
	}
	h.reading.Add(1)
	defer h.reading.Add(-1)
	res := h.bodies.reserve(r.ContentLength)
	rd := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	buf := make([]byte, 0, min(limit, freeBody))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				var one [1]byte
				n, err := io.ReadFull(rd, one[:])
				if n > 0 {
					// More than declared: net/http's body reader never
					// gives this, MaxBytesReader fails before; be safe.
					return buf, res, &http.MaxBytesError{Limit: limit}
				}
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					err = nil
				}
				return buf, res, err
			}
			grown := min(2*int64(cap(buf)), limit)
			if !res.grow(r.Context(), grown-max(int64(cap(buf)), freeBody)) {
				return buf, res, errBodyBudget
			}
			next := make([]byte, len(buf), grown)
			copy(next, buf)
			buf = next
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if r.ContentLength >= 0 && int64(len(buf)) < r.ContentLength {
				return buf, res, io.ErrUnexpectedEOF
			}
			return buf, res, nil
		}
		if err != nil {
			return buf, res, err
		}
	}
}

// serveHealth answers whether the store can commit. The cause of a
// failure is logged (rate-limited), not shown: the listener may face the
// internet, so the answer carries only a fixed code.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr := w.Header()
		hdr["Allow"] = allowGetHead
		hdr["Connection"] = connClose
		ansMethodNotAllowed.write(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// A probe's connection is not kept (see the package comment).
	w.Header()["Connection"] = connClose
	if h.draining.Load() {
		// Told to stop: the balancer must take this instance out while
		// it still serves what reaches it. Not a store problem: no log.
		ansHealthDraining.write(w)
		return
	}
	code, err := h.checkHealth(ctx)
	if code != "" {
		h.rlog.Warn("health:"+code, "health check: the store cannot commit; /healthz answers 503", "reason", code, "err", err)
		a, _ := healthDown(code)
		a.write(w)
		return
	}
	ansHealthOK.write(w)
}

// checkHealth asks the sink's HealthChecker when it has one, else Ping. It
// returns "" when the store can commit, else one of the fixed codes, and
// the detail for the log.
func (h *Handler) checkHealth(ctx context.Context) (string, error) {
	if h.health == nil {
		if err := h.sink.Ping(ctx); err != nil {
			return HealthUnreachable, err
		}
		return "", nil
	}
	code, err := h.health.Health(ctx)
	switch {
	case code == "" && err == nil:
		return "", nil
	case code == "":
		// A checker that failed without a code (its context ended, say)
		// has not shown the store can commit.
		return HealthUnreachable, err
	}
	if _, known := healthDown(code); !known {
		// Only the fixed codes go on the wire: an unknown one could be
		// anything, error text included.
		return HealthUnreachable, fmt.Errorf("unknown health code %q: %w", code, err)
	}
	return code, err
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// answer is a precomputed JSON response: the hot path writes constant
// bytes instead of encoding a value per request.
type answer struct {
	status int
	body   []byte
	length []string
}

// healthDown is the /healthz answer of a fixed code; false for any other.
func healthDown(code string) (answer, bool) {
	switch code {
	case HealthStoreReplaced:
		return ansHealthReplaced, true
	case HealthDiskFull:
		return ansHealthDiskFull, true
	case HealthReadOnly:
		return ansHealthReadOnly, true
	case HealthUnreachable:
		return ansHealthUnreachable, true
	}
	return answer{}, false
}

func newHealthDown(code string) answer {
	return newAnswer(http.StatusServiceUnavailable, `{"ok":false,"error":"`+crm.CodeUnavailable+`","reason":"`+code+`"}`)
}

func newAnswer(status int, body string) answer {
	return answer{status: status, body: []byte(body), length: []string{strconv.Itoa(len(body))}}
}

// write sends the answer. The header slices are shared between requests;
// net/http only reads them, and a handler appending to them would copy, as
// each has length = capacity.
func (a answer) write(w http.ResponseWriter) {
	hdr := w.Header()
	hdr["Content-Type"] = contentTypeJSON
	hdr["Content-Length"] = a.length
	hdr["X-Content-Type-Options"] = noSniff
	w.WriteHeader(a.status)
	w.Write(a.body) //nolint:errcheck // the client may be gone; nothing to do about it
}

// The answers of docs/protocol.md §3 and the header values they share. They are
// never modified.
var (
	ansOK               = newAnswer(http.StatusOK, `{"ok":true}`)
	ansReplay           = newAnswer(http.StatusOK, `{"ok":true,"replay":true}`)
	ansTooLarge         = newAnswer(http.StatusRequestEntityTooLarge, `{"error":"`+crm.CodeBodyTooLarge+`"}`)
	ansTimestamp        = newAnswer(http.StatusUnauthorized, `{"error":"`+crm.CodeTimestampRange+`"}`)
	ansSignature        = newAnswer(http.StatusForbidden, `{"error":"`+crm.CodeBadSignature+`"}`)
	ansInvalidPayload   = newAnswer(http.StatusBadRequest, `{"error":"`+crm.CodeInvalidPayload+`"}`)
	ansUnavailable      = newAnswer(http.StatusServiceUnavailable, `{"error":"`+crm.CodeUnavailable+`"}`)
	ansMethodNotAllowed = newAnswer(http.StatusMethodNotAllowed, `{"error":"`+crm.CodeMethodNotAllowed+`"}`)
	ansBadRequest       = newAnswer(http.StatusBadRequest, `{"error":"bad_request"}`)
	ansNotFound         = newAnswer(http.StatusNotFound, `{"error":"not_found"}`)
	ansHealthOK         = newAnswer(http.StatusOK, `{"ok":true}`)

	ansHealthReplaced    = newHealthDown(HealthStoreReplaced)
	ansHealthDiskFull    = newHealthDown(HealthDiskFull)
	ansHealthReadOnly    = newHealthDown(HealthReadOnly)
	ansHealthUnreachable = newHealthDown(HealthUnreachable)
	ansHealthDraining    = newHealthDown(HealthDraining)

	contentTypeJSON = []string{"application/json"}
	noSniff         = []string{"nosniff"}
	allowPost       = []string{http.MethodPost}
	allowGetHead    = []string{"GET, HEAD"}
	connClose       = []string{"close"}
)
