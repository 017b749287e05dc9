package sandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Paths and limits of the sandbox beyond the protocol's.
const (
	// PathStats serves the counters, to loopback callers only.
	PathStats = "/_sandbox/stats"

	// MaxBodyBytes caps a request body; a larger one is 413.
	MaxBodyBytes = 1 << 20

	// MaxIdempotencyKeyLen caps an Idempotency-Key, so keys cannot grow
	// the sandbox's memory without bound. The protocol's keys
	// ("{external_id}-{ms}-{hex}") stay far below it.
	MaxIdempotencyKeyLen = 255
)

// Error codes the sandbox answers with besides crm's.
const (
	CodeRateLimited = "rate_limited" // injected 429
	CodeForbidden   = "forbidden"    // stats from a non-loopback address
)

// statusSuffix ends the status lookup path.
const statusSuffix = "/status"

// fault is what an authenticated request gets instead of being processed.
type fault int

const (
	faultNone fault = iota
	faultDrop
	fault503
	fault429
)

// Handler returns the sandbox's HTTP handler: POST /v1/inbound/leads, GET
// /v1/inbound/leads/{external_id}/status, and GET /_sandbox/stats.
//
// Routing is by hand on the escaped path rather than by http.ServeMux so
// that an external_id containing an escaped "/" (%2F), or "." and "..", is
// one segment taken verbatim: ServeMux would clean or redirect such paths.
func (s *Sandbox) Handler() http.Handler {
	return http.HandlerFunc(s.route)
}

func (s *Sandbox) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == PathStats:
		if !allow(w, r, http.MethodGet) {
			return
		}
		s.serveStats(w, r)
	case p == crm.PathLeads:
		if !allow(w, r, http.MethodPost) {
			return
		}
		s.serveLead(w, r)
	case strings.HasPrefix(p, crm.PathLeads+"/") && strings.HasSuffix(p, statusSuffix) &&
		len(p) > len(crm.PathLeads)+1+len(statusSuffix):
		escaped := p[len(crm.PathLeads)+1 : len(p)-len(statusSuffix)]
		id, err := url.PathUnescape(escaped)
		if err != nil {
			writeError(w, http.StatusNotFound, crm.ErrCodeNotFound)
			return
		}
		if !allow(w, r, http.MethodGet) {
			return
		}
		s.serveStatus(w, r, id)
	default:
		writeError(w, http.StatusNotFound, crm.ErrCodeNotFound)
	}
}

// allow answers 405 unless r uses method.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, crm.CodeMethodNotAllowed)
	return false
}

// serveLead answers one lead submission (docs/protocol.md §1, §4).
func (s *Sandbox) serveLead(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.n.requests.Add(1)
	if s.isClosed() {
		writeError(w, http.StatusServiceUnavailable, crm.CodeUnavailable)
		return
	}
	if !s.authenticate(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if !s.verify(w, r, body) {
		return
	}
	key := r.Header.Get(crm.HeaderIdempotencyKey)
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		s.n.badRequests.Add(1)
		writeError(w, http.StatusBadRequest, crm.ErrCodeMissingIdempotency)
		return
	}
	in, err := decodeLead(body)
	if err != nil {
		s.n.badRequests.Add(1)
		writeError(w, http.StatusBadRequest, crm.ErrCodeInvalidJSON)
		return
	}
	s.noteKey(in, key)
	if s.injectFault(w, r) {
		return
	}

	hash := sha256.Sum256(body)
	s.mu.Lock()
	e, seen := s.keys[key]
	if !seen {
		s.keys[key] = &entry{bodyHash: hash}
	}
	s.mu.Unlock()
	if seen {
		s.answerSeenKey(w, e, hash)
		return
	}

	s.n.inFlight.Add(1)
	defer s.n.inFlight.Add(-1)
	// The wait goes on when the caller hangs up: a real CRM finishes what
	// it started, and the client's retry must then get the replay.
	if !s.sleep(s.cfg.Latency) {
		s.mu.Lock()
		delete(s.keys, key)
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, crm.CodeUnavailable)
		return
	}

	code, resp := s.decide(in)
	if resp.Status == crm.StatusAccepted {
		ms := float64(time.Since(start).Microseconds()) / 1000
		resp.DurationMS = &ms
	}
	stored, _ := json.Marshal(resp)
	s.mu.Lock()
	s.keys[key] = &entry{bodyHash: hash, done: true, code: code, resp: stored}
	s.mu.Unlock()
	writeRaw(w, code, stored)
}

// noteKey records that the lead in arrived under key.
func (s *Sandbox) noteKey(in leadInput, key string) {
	var id string
	if raw, ok := in.fields["external_id"]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keysSeen[id]
	if ks == nil {
		ks = make(map[string]struct{}, 1)
		s.keysSeen[id] = ks
	}
	ks[key] = struct{}{}
	s.keysSeenMax = max(s.keysSeenMax, len(ks))
}

// answerSeenKey answers a request whose Idempotency-Key is already known:
// different bytes are a conflict whatever the first request's state, the
// same bytes wait for it (409) or get its answer again.
func (s *Sandbox) answerSeenKey(w http.ResponseWriter, e *entry, hash [32]byte) {
	switch {
	case e.bodyHash != hash:
		s.n.keyConflicts.Add(1)
		writeError(w, http.StatusUnprocessableEntity, crm.ErrCodeKeyReused)
	case !e.done:
		s.n.inProgress.Add(1)
		writeError(w, http.StatusConflict, crm.ErrCodeRequestInProgress)
	default:
		s.n.replays.Add(1)
		var resp crm.LeadResponse
		_ = json.Unmarshal(e.resp, &resp)
		resp.Replay = true
		writeJSON(w, e.code, resp)
	}
}

// decide validates a lead and, when it passes, creates it unless it is a
// duplicate or from a blocked country. Creation happens under s.mu together
// with the duplicate checks, so no external_id or phone is ever created
// twice however requests race.
func (s *Sandbox) decide(in leadInput) (int, crm.LeadResponse) {
	v, reason := in.validate()
	if reason != "" {
		s.n.validationErrors.Add(1)
		return http.StatusUnprocessableEntity, crm.LeadResponse{Status: crm.StatusValidationError, Reason: &reason}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.byExternal[v.ExternalID]; ok {
		s.n.duplicates.Add(1)
		return http.StatusConflict, dupResponse(l.crmID, "external_id_exists")
	}
	if l, ok := s.byPhone[v.Phone]; ok {
		s.n.duplicates.Add(1)
		return http.StatusConflict, dupResponse(l.crmID, "phone_exists")
	}
	if v.Country != "" && s.blocked[v.Country] {
		s.n.rejected.Add(1)
		reason := "geo_not_allowed"
		return http.StatusOK, crm.LeadResponse{Status: crm.StatusRejected, Reason: &reason}
	}
	l := s.createLocked(v)
	s.n.accepted.Add(1)
	id := l.crmID
	return http.StatusOK, crm.LeadResponse{ID: &id, Status: crm.StatusAccepted}
}

func dupResponse(id, reason string) crm.LeadResponse {
	return crm.LeadResponse{ID: &id, Status: crm.StatusDuplicate, Reason: &reason}
}

// serveStatus answers a status lookup (docs/protocol.md §2).
func (s *Sandbox) serveStatus(w http.ResponseWriter, r *http.Request, externalID string) {
	s.n.requests.Add(1)
	if s.isClosed() {
		writeError(w, http.StatusServiceUnavailable, crm.CodeUnavailable)
		return
	}
	if !s.authenticate(w, r) {
		return
	}
	// The signature is over the empty body whatever the request carries.
	if !s.verify(w, r, nil) {
		return
	}
	if s.injectFault(w, r) {
		return
	}
	s.n.inFlight.Add(1)
	defer s.n.inFlight.Add(-1)
	if !s.sleep(s.cfg.Latency) {
		writeError(w, http.StatusServiceUnavailable, crm.CodeUnavailable)
		return
	}
	s.n.statusLookups.Add(1)
	resp, ok := s.Lookup(externalID)
	if !ok {
		s.n.statusNotFound.Add(1)
		writeError(w, http.StatusNotFound, crm.ErrCodeNotFound)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveStats answers the counters to loopback callers. There is no auth, so
// the address is the only gate: the counters say nothing secret, but a
// sandbox bound to a public interface should not hand them out.
func (s *Sandbox) serveStats(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r.RemoteAddr) {
		writeError(w, http.StatusForbidden, CodeForbidden)
		return
	}
	writeJSON(w, http.StatusOK, s.Stats())
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// authenticate checks the bearer key, then the timestamp window.
func (s *Sandbox) authenticate(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") ||
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.APIKey)) != 1 {
		s.n.unauthorized.Add(1)
		writeError(w, http.StatusUnauthorized, crm.ErrCodeUnauthorized)
		return false
	}
	if _, err := crm.CheckTimestamp(r.Header.Get(crm.HeaderTimestamp), s.cfg.Now(), crm.DefaultTolerance); err != nil {
		s.n.stale.Add(1)
		s.log.Debug("sandbox: timestamp refused", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusUnauthorized, crm.ErrCodeTimestampRange)
		return false
	}
	return true
}

// verify checks X-Signature over the raw body bytes with the shared helper.
func (s *Sandbox) verify(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if _, err := crm.VerifySignature(r.Header.Get(crm.HeaderSignature), body, [][]byte{s.cfg.HMACSecret}); err != nil {
		s.n.badSig.Add(1)
		s.log.Debug("sandbox: signature refused", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusForbidden, crm.ErrCodeBadSignature)
		return false
	}
	return true
}

// readBody reads the whole body through a MaxBytesReader.
func (s *Sandbox) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		s.n.badRequests.Add(1)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, crm.CodeBodyTooLarge)
		} else {
			writeError(w, http.StatusBadRequest, crm.ErrCodeInvalidJSON)
		}
		return nil, false
	}
	return body, true
}

// drawFault makes the one fault draw of a request. With every rate at zero
// it draws nothing, so turning faults off does not shift anything else.
func (s *Sandbox) drawFault() fault {
	c := &s.cfg
	if c.DropRate == 0 && c.FailRate == 0 && c.ThrottleRate == 0 {
		return faultNone
	}
	s.faultMu.Lock()
	u := s.faultRNG.Float64()
	s.faultMu.Unlock()
	switch {
	case u < c.DropRate:
		return faultDrop
	case u < c.DropRate+c.FailRate:
		return fault503
	case u < c.DropRate+c.FailRate+c.ThrottleRate:
		return fault429
	}
	return faultNone
}

// injectFault answers r with a drawn fault, if any, and reports whether it
// did. Nothing about the request is stored.
func (s *Sandbox) injectFault(w http.ResponseWriter, r *http.Request) bool {
	switch s.drawFault() {
	case faultDrop:
		s.n.faultsDropped.Add(1)
		s.log.Debug("sandbox: dropping connection", "path", r.URL.Path)
		drop(w)
		return true
	case fault503:
		s.n.faults503.Add(1)
		writeError(w, http.StatusServiceUnavailable, crm.CodeUnavailable)
		return true
	case fault429:
		s.n.faults429.Add(1)
		secs := int64(math.Ceil(s.cfg.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeError(w, http.StatusTooManyRequests, CodeRateLimited)
		return true
	}
	return false
}

// drop closes the connection without an answer, as a crashed or overloaded
// CRM would. Where the connection cannot be hijacked (HTTP/2), aborting the
// handler resets the stream, which the client sees the same way.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Sandbox) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func writeError(w http.ResponseWriter, code int, errCode string) {
	writeJSON(w, code, crm.ErrorResponse{Error: errCode})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the sandbox's own types are marshalled; this cannot happen.
		panic(fmt.Sprintf("sandbox: marshal %T: %v", v, err))
	}
	writeRaw(w, code, b)
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	// Two writes rather than append(b, '\n'): b may be a stored answer
	// that replays read concurrently. The response is buffered anyway.
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}
