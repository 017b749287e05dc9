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
//   - GET/HEAD /healthz answers {"ok":false,"error":"unavailable"} when the
//     sink is down and logs the cause: the listener may face the internet.
//   - A request waits for its commit at most twice Config.CommitTimeout,
//     then gets 503; so does every request after Close.
package callbacks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/groupcommit"
)

// Defaults of Config.
const (
	DefaultPath              = "/cartelcrm/callback"
	DefaultMaxBody           = 1 << 20
	DefaultMaxBatch          = 256
	DefaultCommitTimeout     = 5 * time.Second
	DefaultRefusalQueue      = 256
	DefaultRefusalsPerSecond = 200

	// HealthPath answers whether the sink can take events.
	HealthPath = "/healthz"

	// headLen is how much of a refused body is kept for the operator.
	headLen = 256

	// preallocMax is the largest declared body length allocated up front.
	preallocMax = 64 << 10
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
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives operational logs; default discards. Secrets and
	// signatures are never logged.
	Logger *slog.Logger
}

// Stats are the listener's counters, for the dashboard header.
type Stats struct {
	Verified        uint64 // fresh callbacks stored and answered 200
	Replays         uint64 // callbacks answered 200 with "replay": dedup key already stored
	Refused         uint64 // callbacks refused by checks 0–3 (413, 401, 403, 400)
	Unavailable     uint64 // callbacks answered 503: the sink could not take them
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

	// dropWarned keeps a refusal flood from turning into a log flood.
	dropWarned atomic.Bool

	verified, replays, refused, unavailable, dropped, batches atomic.Uint64
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
	}
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
		ansNotFound.write(w)
	}
}

// serveCallback runs the checks of docs/protocol.md §3 in the table's order.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = allowPost
		ansMethodNotAllowed.write(w)
		return
	}
	now := h.cfg.Now()

	// 0. Body size. A declared length over the limit is refused before a
	// byte of the body is read; an undeclared one is cut by MaxBytesReader.
	if r.ContentLength > h.cfg.MaxBody {
		head := readHead(r.Body)
		// Do not keep the connection: its unread body would have to be
		// drained first.
		w.Header()["Connection"] = connClose
		h.refuse(w, r, now, ansTooLarge, bodyTooLargeDetail(r.ContentLength, h.cfg.MaxBody), head)
		return
	}
	body, err := h.readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.Header()["Connection"] = connClose
			h.refuse(w, r, now, ansTooLarge, bodyTooLargeDetail(-1, h.cfg.MaxBody), body)
			return
		}
		// The client went away or was too slow (the server's ReadTimeout):
		// nothing was delivered, so there is nothing to refuse or store.
		h.log.Debug("callback body read failed", "remote", r.RemoteAddr, "err", err)
		w.Header()["Connection"] = connClose
		ansBadRequest.write(w)
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
	idx, err := crm.VerifySignature(sigHeader, body, h.cfg.Secrets)
	if err != nil {
		h.refuse(w, r, now, ansSignature, signatureDetail(sigVals, err, body, h.cfg.Secrets, h.refusalRoom()), body)
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

	// 4, 5. Store durably (or learn it is a replay), then answer.
	fresh, err := h.commit(r.Context(), ev)
	switch {
	case err != nil && r.Context().Err() != nil:
		// The client is gone: nobody reads the answer, and the CRM will
		// retry; not a store failure, so not counted as one.
		ansUnavailable.write(w)
	case err != nil:
		h.unavailable.Add(1)
		h.log.Warn("callback not stored; answered 503 so the CRM retries", "dedup_key", ev.DedupKey, "err", err)
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

// readBody reads the whole body, at most MaxBody bytes. With a small
// declared length it reads into a buffer of exactly that size: the slice
// becomes CallbackEvent.RawBody, so growing and copying it would be waste.
// A large declared length is not trusted for the allocation: memory grows
// only as bytes actually arrive, so connections that announce a megabyte
// and then trickle cannot reserve a megabyte each.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	if n := r.ContentLength; n >= 0 && n <= preallocMax {
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(rd)
	return b.Bytes(), err
}

// readHead reads up to headLen bytes of a body that is not read otherwise.
func readHead(body io.Reader) []byte {
	buf := make([]byte, headLen)
	n, _ := io.ReadFull(body, buf)
	return buf[:n]
}

// serveHealth answers whether the sink can take events. The cause of a
// failure is logged, not shown: the listener may face the internet.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = allowGetHead
		ansMethodNotAllowed.write(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.sink.Ping(ctx); err != nil {
		h.log.Warn("health check: sink unavailable", "err", err)
		ansHealthDown.write(w)
		return
	}
	ansHealthOK.write(w)
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
	ansHealthDown       = newAnswer(http.StatusServiceUnavailable, `{"ok":false,"error":"unavailable"}`)

	contentTypeJSON = []string{"application/json"}
	noSniff         = []string{"nosniff"}
	allowPost       = []string{http.MethodPost}
	allowGetHead    = []string{"GET, HEAD"}
	connClose       = []string{"close"}
)
