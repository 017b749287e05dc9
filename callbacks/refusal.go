package callbacks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// maxReserializeCheck bounds the body size for which a failed signature is
// checked against re-serialized forms of the body. The check costs a JSON
// decode and about a dozen HMACs per secret; real callbacks are a few
// hundred bytes, and an attacker must not be able to buy milliseconds of
// work with each bad request.
const maxReserializeCheck = 16 << 10

// refuse answers a refused callback, closing its connection, and queues
// the refusal for storage without waiting for it: when the queue is full
// the refusal is only counted, so refused traffic never waits on, nor
// piles up in, the store.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, now time.Time, a answer, detail string, body []byte) {
	h.refused.Add(1)
	if o := h.observe(); o != nil {
		o.Refused(codeOf(a))
	}
	head := body
	if len(head) > headLen {
		head = head[:headLen]
	}
	rf := crm.Refusal{
		At:         now,
		RemoteAddr: h.proxies.clientAddr(r),
		HTTPStatus: a.status,
		Code:       codeOf(a),
		Detail:     detail,
		// A copy: the body buffer would otherwise stay alive for as long
		// as the refusal waits in the queue.
		Head: bytes.Clone(head),
	}
	h.mu.RLock()
	queued := false
	if !h.closed {
		select {
		case h.refusals <- rf:
			queued = true
		default:
		}
	}
	h.mu.RUnlock()
	if !queued {
		h.dropped.Add(1)
		h.rlog.Warn("refusal_queue", "refusal queue full; refusals are answered and counted but not stored",
			"queue", cap(h.refusals))
	}
	// A refused client loses its connection (see the package comment),
	// but a trusted proxy's connection is not the client's: it is pooled
	// and carries other clients' callbacks, and closing it would only
	// cost the proxy a new handshake. The proxy closes its client's side.
	if !h.proxies.viaProxy(r) {
		w.Header()["Connection"] = connClose
	}
	a.write(w)
}

// codeOf returns the protocol error code an answer carries.
func codeOf(a answer) string {
	switch a.status {
	case http.StatusRequestEntityTooLarge:
		return crm.CodeBodyTooLarge
	case http.StatusUnauthorized:
		return crm.CodeTimestampRange
	case http.StatusForbidden:
		return crm.CodeBadSignature
	default:
		return crm.CodeInvalidPayload
	}
}

// runRefusalRecorder stores queued refusals one at a time, at most
// RefusalsPerSecond, so that the refusal path's write load is bounded
// whatever the rate of bad requests. After Close it stores what is left
// without pacing and returns.
func (h *Handler) runRefusalRecorder() {
	defer h.wg.Done()
	interval := time.Second / time.Duration(h.cfg.RefusalsPerSecond)
	var next time.Time
	for rf := range h.refusals {
		if wait := time.Until(next); wait > 0 && !h.closing.Load() {
			time.Sleep(wait)
		}
		next = time.Now().Add(interval)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := h.sink.SaveRefusal(ctx, rf)
		cancel()
		if err != nil {
			// Never changes the answer, which was sent already.
			h.rlog.Warn("refusal_store", "store refusal failed", "code", rf.Code, "detail", rf.Detail, "err", err)
		}
	}
}

func bodyTooLargeDetail(n, max int64) string {
	if n < 0 {
		// No Content-Length: MaxBytesReader stopped the read one byte past
		// the limit.
		return fmt.Sprintf("body too large (more than %d bytes > %d)", max, max)
	}
	return fmt.Sprintf("body too large (%d bytes > %d)", n, max)
}

// timestampDetail says precisely why X-Timestamp was refused.
func timestampDetail(vals []string, err error, now time.Time, tolerance time.Duration) string {
	v := strings.TrimSpace(first(vals))
	switch {
	case len(vals) == 0:
		return "no timestamp header"
	case errors.Is(err, crm.ErrNoTimestamp):
		return "empty timestamp header"
	case errors.Is(err, crm.ErrBadTimestamp):
		if isInteger(v) {
			return "timestamp is not an integer: " + quoteClip(v) + " (beyond 64 bits)"
		}
		return "timestamp is not an integer: " + quoteClip(v)
	case errors.Is(err, crm.ErrTimestampOutOfRange):
		tol := int64(tolerance / time.Second)
		ts, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			return err.Error()
		}
		n := now.Unix()
		// now − ts overflows for timestamps near the int64 limits.
		if (ts < 0 && n > math.MaxInt64+ts) || (ts > 0 && n < math.MinInt64+ts) {
			return fmt.Sprintf("clock skew beyond 64 bits (timestamp %d; tolerance %d s)", ts, tol)
		}
		return fmt.Sprintf("clock skew of %d s (tolerance %d s)", n-ts, tol)
	}
	return err.Error()
}

// isInteger reports whether s is an optionally signed run of digits.
func isInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func quoteClip(s string) string {
	const n = 32
	if len(s) > n {
		return strconv.Quote(s[:n]) + "…"
	}
	return strconv.Quote(s)
}

// Detail texts of signature refusals. The re-serialized one names the
// seed's key point, so the operator fixing the CRM side knows what to fix.
const (
	detailReserialized = "signature matches a re-serialized form of the body (the raw-body bug: sign the exact bytes sent)"
)

// signatureDetail says precisely why X-Signature was refused. It never
// includes the signature itself. diagnose allows the costlier check for the
// raw-body bug; it is off when the refusal would not be stored anyway.
func signatureDetail(vals []string, err error, body []byte, secrets [][]byte, diagnose bool) string {
	v := strings.TrimSpace(first(vals))
	switch {
	case len(vals) == 0:
		return "no signature header"
	case errors.Is(err, crm.ErrNoSignature):
		return "empty signature header"
	case errors.Is(err, crm.ErrMalformedSignature):
		return "malformed signature hex (" + malformedReason(v) + ")"
	case errors.Is(err, crm.ErrNoValidSignature):
		if diagnose {
			if form := reserializedMatch(v, body, secrets); form != "" {
				return detailReserialized + "; matching form: " + form
			}
		}
		return fmt.Sprintf("signature made with none of the %d secrets", len(secrets))
	}
	return err.Error()
}

// refusalRoom reports whether the refusal queue has room right now, so that
// work done only for the stored detail can be skipped during a flood.
func (h *Handler) refusalRoom() bool {
	return len(h.refusals) < cap(h.refusals)
}

// malformedReason names what is wrong with an undecodable signature.
func malformedReason(v string) string {
	if i := strings.IndexByte(v, '='); i > 0 && i <= 16 && !strings.HasPrefix(v, crm.SignaturePrefix) {
		return "unknown scheme " + quoteClip(v[:i])
	}
	hx := strings.TrimPrefix(v, crm.SignaturePrefix)
	if len(hx)%2 == 1 {
		return fmt.Sprintf("odd length %d", len(hx))
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		return "not hex"
	}
	return fmt.Sprintf("%d bytes, want %d", len(b), sha256.Size)
}

// reserializedMatch checks whether the signature verifies against a common
// re-serialization of the body: the raw-body bug, where the sender signs
// JSON.stringify(obj) or a framework's re-encoding and sends other bytes.
// It returns the name of the matching form, or "" when none matches. This
// is diagnosis only; such a callback stays refused.
func reserializedMatch(sig string, body []byte, secrets [][]byte) string {
	if len(body) > maxReserializeCheck || !json.Valid(body) {
		return ""
	}
	for _, f := range reserializedForms(body) {
		if bytes.Equal(f.b, body) {
			continue
		}
		if _, err := crm.VerifySignature(sig, f.b, secrets); err == nil {
			return f.name
		}
	}
	return ""
}

type form struct {
	name string
	b    []byte
}

// reserializedForms returns the body re-serialized the ways senders commonly
// do: compacted as is (JavaScript's JSON.stringify keeps key order), with
// whitespace trimmed, indented, and decoded-then-encoded by encoding/json
// (sorted keys, with and without HTML escaping, compact and indented).
func reserializedForms(body []byte) []form {
	var forms []form
	add := func(name string, b []byte) {
		forms = append(forms, form{name, b})
		// A trailing newline, as json.Encoder and many loggers add.
		forms = append(forms, form{name + " + newline", append(bytes.Clone(b), '\n')})
	}
	add("trimmed", bytes.TrimSpace(body))
	var buf bytes.Buffer
	if json.Compact(&buf, body) == nil {
		add("compact", bytes.Clone(buf.Bytes()))
	}
	buf.Reset()
	if json.Indent(&buf, body, "", "  ") == nil {
		add("indented", bytes.Clone(buf.Bytes()))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return forms
	}
	if b, err := json.Marshal(v); err == nil {
		add("sorted-keys compact", b)
	}
	buf.Reset()
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		add("sorted-keys compact unescaped", bytes.TrimSuffix(bytes.Clone(buf.Bytes()), []byte("\n")))
	}
	if b, err := json.MarshalIndent(v, "", "  "); err == nil {
		add("sorted-keys indented", b)
	}
	return forms
}

// payloadDetail is ParseCallback's reason without the generic prefix.
func payloadDetail(err error) string {
	return strings.TrimPrefix(err.Error(), crm.ErrInvalidPayload.Error()+": ")
}
