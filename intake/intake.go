// Package intake is the listener's live intake: POST /v1/leads, where
// landing pages and trackers hand leads over one by one during a launch
// instead of in a file (docs/protocol.md, "Intake"). A lead passes the
// same check as `leadwatch submit` (the store's enqueue, crm.CheckLead)
// and is answered 202 only once it is committed to the outbox, so a lead
// the intake accepted survives a kill -9 of the process and is sent
// exactly once, under the idempotency key committed with it.
//
// Concurrent requests share commits: leads go to one group committer
// (internal/groupcommit), which enqueues whatever queued up during the
// previous commit in one store transaction (store.EnqueueBatch). With
// SQLite's synchronous=FULL a commit costs an fsync of a millisecond or
// two; one per request would cap the intake at a few hundred leads a
// second.
//
// Where the issue is silent, the intake decides:
//   - The token is a bearer token (Authorization: Bearer T), compared in
//     constant time over SHA-256 digests, so neither its bytes nor its
//     length leak through timing. A request without it, or with a wrong
//     one, is 401 {"error":"unauthorized"} before a byte of its body is
//     read, whatever its method.
//   - One JSON object is one lead: 202 {"external_id":…,"state":"queued"}
//     ("held" when its source or sub_id is paused), 409 with the state of
//     a known external_id, 422 with the reason of a bad lead. An array
//     is answered 207 whatever became of its leads, with one result per
//     lead in order, each carrying its own status; its good leads are
//     stored even when others are bad.
//   - A body that is not one lead nor an array of them (malformed JSON
//     in an array, an empty array) is 400 {"error":"invalid_body"} with
//     the reason; one not even framed as an object (a bare string) is a
//     bad lead, 422, like a submit line.
//   - Refusals (401, 413, 400) close their connection and are counted in
//     Stats, never stored as the listener's callback refusals: those are
//     the CRM's misconfigurations for the operator to read, and an
//     unauthenticated client must not be able to write to the store. A
//     401 is logged at most once per ten seconds, without the token.
//     Authenticated answers (202, 207, 409, 422) keep the connection, so
//     a tracker posting lead after lead needs no new handshake; an idle
//     one is as evictable by the listener's connection cap as the CRM's.
//   - A lead's wait for its commit is bounded by twice CommitTimeout, then
//     it is answered 503 (it may have been stored: retrying it is safe, a
//     stored lead comes back 409). The wait does not end when the client
//     leaves: the answer, if it can still be delivered, says what the
//     commit did.
package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/groupcommit"
	"github.com/leadwatch/leadwatch/internal/ratelog"
	"github.com/leadwatch/leadwatch/store"
)

// Path is where the intake takes leads, on the callback listener.
const Path = "/v1/leads"

// Defaults of Config.
const (
	DefaultMaxBody       = 1 << 20
	DefaultMaxBatch      = 512
	DefaultCommitTimeout = 5 * time.Second

	// logInterval is how often one repeated condition is logged.
	logInterval = 10 * time.Second

	// commitLinger caps how long a batch waits, under load, for the leads
	// of the clients just answered (groupcommit.Options.Linger; at most
	// half the previous commit in any case). Without it 32 keep-alive
	// clients split into two cohorts that take turns, about 15 leads a
	// commit (BenchmarkIntake's leads/commit); with it about 23, and a
	// lead pays for two thirds of the commits.
	commitLinger = 2 * time.Millisecond
)

// ErrNoToken is returned by New without a token: an intake anyone could
// write to must not start.
var ErrNoToken = errors.New("intake: no token configured")

// Outbox is what the intake needs of the store.
type Outbox interface {
	EnqueueBatch(ctx context.Context, payloads [][]byte, opt store.EnqueueOptions) ([]crm.Lead, []error, error)
	States(ctx context.Context, externalIDs []string) (map[string]crm.State, error)
}

// Config configures a Handler. Zero fields take the defaults above.
type Config struct {
	// Token is the bearer token requests must carry. Required.
	Token []byte
	// MaxBody is the largest request body; default DefaultMaxBody.
	MaxBody int64
	// MaxBatch caps the leads one commit carries; default DefaultMaxBatch.
	MaxBatch int
	// CommitTimeout bounds one EnqueueBatch; default DefaultCommitTimeout.
	CommitTimeout time.Duration
	// Strict refuses phones that are not valid E.164, as submit --strict.
	Strict bool
	// Logger receives operational logs; default discards. The token is
	// never logged.
	Logger *slog.Logger
}

// Stats are the intake's counters, one per lead except where a request
// is counted.
type Stats struct {
	Accepted     uint64 // leads committed and answered 202
	Duplicates   uint64 // leads answered 409: external_id already in the outbox
	Invalid      uint64 // leads answered 422
	Unavailable  uint64 // leads answered 503: not known to be committed
	Unauthorized uint64 // requests answered 401
	TooLarge     uint64 // requests answered 413
	BadRequests  uint64 // requests answered 400 or 405
	Commits      uint64 // group commits attempted
}

// Handler serves Path and hands every other request to the next handler
// (the callback listener). Create it with New and stop it with Close,
// after the server has stopped handing it requests.
type Handler struct {
	cfg   Config
	token [sha256.Size]byte
	db    Outbox
	next  http.Handler
	log   *slog.Logger
	rlog  *ratelog.Logger

	commits *groupcommit.Batcher[checked, result]

	accepted, duplicates, invalid, unavailable, unauthorized, tooLarge, badRequests, batches atomic.Uint64
}

// New validates cfg, fills in its defaults and starts the group
// committer. next serves every path but Path.
func New(cfg Config, db Outbox, next http.Handler) (*Handler, error) {
	if len(cfg.Token) == 0 {
		return nil, ErrNoToken
	}
	if db == nil || next == nil {
		return nil, errors.New("intake: nil outbox or next handler")
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, db: db, next: next, log: cfg.Logger.With("component", "intake")}
	// Only the digest is kept: the handler never holds the token itself,
	// so nothing it prints or keeps can show it.
	h.token = sha256.Sum256(cfg.Token)
	h.cfg.Token = nil
	h.rlog = ratelog.New(h.log, logInterval)
	h.commits = groupcommit.New(h.commitBatch, groupcommit.Options{MaxBatch: cfg.MaxBatch, Queue: 4 * cfg.MaxBatch, Linger: commitLinger})
	return h, nil
}

// Close commits the leads already queued and stops the committer; leads
// offered afterwards are answered 503. It is idempotent.
func (h *Handler) Close() { h.commits.Close() }

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() Stats {
	return Stats{
		Accepted:     h.accepted.Load(),
		Duplicates:   h.duplicates.Load(),
		Invalid:      h.invalid.Load(),
		Unavailable:  h.unavailable.Load(),
		Unauthorized: h.unauthorized.Load(),
		TooLarge:     h.tooLarge.Load(),
		BadRequests:  h.badRequests.Load(),
		Commits:      h.batches.Load(),
	}
}

// ServeHTTP serves Path and hands anything else to the next handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		h.next.ServeHTTP(w, r)
		return
	}
	// The token first, whatever the method: an unauthenticated client
	// learns nothing about the intake but that it wants a token.
	if !h.authorized(r) {
		h.unauthorized.Add(1)
		h.rlog.Warn("unauthorized", "intake request without a valid token; answered 401", "remote", r.RemoteAddr)
		w.Header()["Www-Authenticate"] = wwwAuthenticate
		refuse(w, http.StatusUnauthorized, errorBody("unauthorized", ""))
		return
	}
	if r.Method != http.MethodPost {
		h.badRequests.Add(1)
		w.Header()["Allow"] = allowPost
		refuse(w, http.StatusMethodNotAllowed, errorBody("method_not_allowed", ""))
		return
	}
	// A declared length over the limit is refused before the body is
	// read; an undeclared one is cut by MaxBytesReader.
	if r.ContentLength > h.cfg.MaxBody {
		h.tooLarge.Add(1)
		refuse(w, http.StatusRequestEntityTooLarge, errorBody("body_too_large", h.tooLargeReason()))
		return
	}
	body, err := h.readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.tooLarge.Add(1)
			refuse(w, http.StatusRequestEntityTooLarge, errorBody("body_too_large", h.tooLargeReason()))
			return
		}
		// The client went away or was too slow: nothing was delivered.
		h.badRequests.Add(1)
		refuse(w, http.StatusBadRequest, errorBody("bad_request", ""))
		return
	}
	payloads, array, reason := split(body)
	if reason != "" {
		h.badRequests.Add(1)
		refuse(w, http.StatusBadRequest, errorBody("invalid_body", reason))
		return
	}
	// The wait is not tied to the request's context (see the package
	// comment); it stays bounded all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*h.cfg.CommitTimeout)
	defer cancel()
	results := h.enqueue(ctx, payloads)
	if !array {
		res := results[0]
		writeJSON(w, res.status, res.answer(false))
		return
	}
	var b bytes.Buffer
	b.Grow(64 * len(results))
	b.WriteString(`{"results":[`)
	for i, res := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(res.answer(true))
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusMultiStatus, b.Bytes())
}

func (h *Handler) tooLargeReason() string {
	return "the body is over the intake's " + strconv.FormatInt(h.cfg.MaxBody, 10) + "-byte limit (intake.max_body)"
}

// authorized reports whether r carries the token, comparing digests in
// constant time.
func (h *Handler) authorized(r *http.Request) bool {
	vals := r.Header["Authorization"]
	if len(vals) != 1 {
		return false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.token[:]) == 1
}

// readBody reads at most MaxBody bytes of r's body; past them it fails
// with MaxBytesReader's error.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	size := int64(4 << 10)
	if r.ContentLength > 0 {
		size = r.ContentLength + 1 // +1: the read that sees EOF needs no second buffer
	}
	var b bytes.Buffer
	b.Grow(int(min(size, h.cfg.MaxBody+1)))
	_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	return b.Bytes(), err
}

// split frames a body as leads: an array's elements, each byte for byte
// (they are what will be signed and sent), or the body itself as one
// lead. reason says why a body is not framed as leads at all.
func split(body []byte) (payloads [][]byte, array bool, reason string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return [][]byte{trimmed}, false, ""
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, true, "not a JSON array of leads: " + err.Error()
	}
	if len(raw) == 0 {
		return nil, true, "an empty array: no leads"
	}
	payloads = make([][]byte, len(raw))
	for i, m := range raw {
		payloads[i] = m
	}
	return payloads, true, ""
}

// checked is a lead that passed the store's check, with its fields.
type checked struct {
	payload []byte
	fields  crm.LeadFields
}

// enqueue checks every payload and hands the good ones to the group
// committer, then waits for each one's commit. A lead is never reported
// stored unless its batch committed.
//
// The check (store.CheckPayload, the phone's metadata lookup included)
// runs here, in the lead's own request, not in the committer: about 17 µs
// of CPU a lead, a third of the single writer's time once its inserts
// were batched, which every lead of the batch waited for. The size limit
// is the store's, applied again there.
func (h *Handler) enqueue(ctx context.Context, payloads [][]byte) []result {
	results := make([]result, len(payloads))
	calls := make([]*groupcommit.Call[result], len(payloads))
	for i, p := range payloads {
		f, err := store.CheckPayload(p, h.cfg.Strict, math.MaxInt)
		if err != nil {
			results[i] = invalid(p, err)
			continue
		}
		c, err := h.commits.Submit(ctx, checked{p, f})
		if err != nil {
			results[i] = unavailable(p)
			continue
		}
		calls[i] = c
	}
	for i, c := range calls {
		if c == nil {
			continue
		}
		res, err := c.Wait(ctx)
		if err != nil {
			res = unavailable(payloads[i])
		}
		results[i] = res
	}
	for _, res := range results {
		switch res.status {
		case http.StatusAccepted:
			h.accepted.Add(1)
		case http.StatusConflict:
			h.duplicates.Add(1)
		case http.StatusUnprocessableEntity:
			h.invalid.Add(1)
		default:
			h.unavailable.Add(1)
		}
	}
	return results
}

// result is one lead's answer.
type result struct {
	status       int
	externalID   string    // "" when the lead has none usable
	state        crm.State // stored (202) or found (409); "" when unknown
	phoneInvalid bool      // stored flagged: the phone is not E.164
	code, reason string    // an error's code and reason
}

// invalid is the answer of a lead the store's check refused with err.
func invalid(payload []byte, err error) result {
	return result{status: http.StatusUnprocessableEntity, externalID: externalIDOf(payload), code: "invalid_lead",
		reason: strings.TrimPrefix(err.Error(), crm.ErrInvalidLead.Error()+": ")}
}

// unavailable is the answer of a lead whose commit failed or was not
// waited for.
func unavailable(payload []byte) result {
	return result{status: http.StatusServiceUnavailable, externalID: externalIDOf(payload), code: "unavailable",
		reason: "the lead was not committed in time; it may have been: retry it (a stored lead comes back 409)"}
}

// leadAnswer is a result as JSON.
type leadAnswer struct {
	Status       int       `json:"status,omitempty"`
	ExternalID   string    `json:"external_id,omitempty"`
	State        crm.State `json:"state,omitempty"`
	PhoneInvalid bool      `json:"phone_invalid,omitempty"`
	Error        string    `json:"error,omitempty"`
	Reason       string    `json:"reason,omitempty"`
}

// answer is res as JSON; inArray adds its status (an array's answer is
// 207 for all of them).
func (res result) answer(inArray bool) []byte {
	a := leadAnswer{ExternalID: res.externalID, State: res.state, PhoneInvalid: res.phoneInvalid, Error: res.code, Reason: res.reason}
	if inArray {
		a.Status = res.status
	}
	b, err := json.Marshal(a)
	if err != nil { // strings and ints only: cannot happen
		return []byte(`{"error":"internal"}`)
	}
	return b
}

// commitBatch enqueues one batch in one store transaction and answers
// each lead. A store failure fails the whole batch (nothing of it was
// stored); a bad or known lead fails only itself.
func (h *Handler) commitBatch(batch []checked) ([]result, error) {
	h.batches.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.CommitTimeout)
	defer cancel()
	payloads := make([][]byte, len(batch))
	fields := make([]crm.LeadFields, len(batch))
	for i, c := range batch {
		payloads[i], fields[i] = c.payload, c.fields
	}
	leads, errs, err := h.db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{Strict: h.cfg.Strict, Checked: fields})
	if err == nil && (len(leads) != len(batch) || len(errs) != len(batch)) {
		err = fmt.Errorf("store answered %d leads and %d errors for %d payloads", len(leads), len(errs), len(batch))
	}
	if err != nil {
		h.rlog.Error("commit", "intake commit failed; answering 503", "leads", len(batch), "err", err)
		return nil, err
	}
	out := make([]result, len(batch))
	var dups []string
	for i, e := range errs {
		switch {
		case e == nil:
			l := leads[i]
			out[i] = result{status: http.StatusAccepted, externalID: l.ExternalID, state: l.State, phoneInvalid: l.PhoneInvalid}
		case errors.Is(e, store.ErrDuplicate):
			id := fields[i].ExternalID
			out[i] = result{status: http.StatusConflict, externalID: id, code: "duplicate",
				reason: "external_id already in the outbox"}
			dups = append(dups, id)
		case errors.Is(e, store.ErrInvalid):
			out[i] = invalid(payloads[i], e)
		default:
			// An item error the store does not classify is not known to
			// be the lead's fault.
			h.rlog.Error("item", "intake: a lead failed in the store; answering 503", "err", e)
			out[i] = unavailable(payloads[i])
		}
	}
	if len(dups) > 0 {
		// The state of a known lead, read after the commit: for two
		// requests of one id in one batch, the first one's.
		states, err := h.db.States(ctx, dups)
		if err != nil {
			h.rlog.Warn("states", "intake: states of known leads not read; their 409s carry none", "err", err)
		}
		for i := range out {
			if out[i].status == http.StatusConflict {
				out[i].state = states[out[i].externalID]
			}
		}
	}
	return out, nil
}

// externalIDOf is a payload's external_id when it is a string, for the
// answer of a lead the store did not take; "" otherwise.
func externalIDOf(payload []byte) string {
	var f struct {
		ExternalID any `json:"external_id"`
	}
	if json.Unmarshal(payload, &f) != nil {
		return ""
	}
	s, _ := f.ExternalID.(string)
	return s
}

// errorBody is a request-level error answer.
func errorBody(code, reason string) []byte {
	b, _ := json.Marshal(leadAnswer{Error: code, Reason: reason})
	return b
}

// refuse answers a refused request and closes its connection without
// draining the unread body: a refused client (unauthenticated, or over
// the limit) must hold neither an idle connection nor the server's time.
func refuse(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Connection"] = connClose
	writeJSON(w, status, body)
	// A past read deadline ends net/http's drain of the unread body, and
	// the connection, at once.
	http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // HTTP/1 supports it; without it the drain is bounded by ReadTimeout
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = contentTypeJSON
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	hdr["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do about it
}

// Header values shared between requests; never modified.
var (
	contentTypeJSON = []string{"application/json"}
	noSniff         = []string{"nosniff"}
	allowPost       = []string{http.MethodPost}
	connClose       = []string{"close"}
	wwwAuthenticate = []string{`Bearer realm="leadwatch intake"`}
)
