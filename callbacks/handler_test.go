package callbacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

const (
	wantOK        = `{"ok":true}`
	wantReplay    = `{"ok":true,"replay":true}`
	wantTooLarge  = `{"error":"body_too_large"}`
	wantTimestamp = `{"error":"timestamp_out_of_range"}`
	wantSignature = `{"error":"bad_signature"}`
	wantPayload   = `{"error":"invalid_payload"}`
	wantUnavail   = `{"error":"unavailable"}`
)

// headers builds a request's X-Timestamp and X-Signature values.
type headers func(body []byte) map[string][]string

func tsNow(offset int64) string { return strconv.FormatInt(testNow.Unix()+offset, 10) }

// signedWith signs with secret i, timestamp now.
func signedWith(i int) headers {
	return func(body []byte) map[string][]string {
		return map[string][]string{
			crm.HeaderTimestamp: {tsNow(0)},
			crm.HeaderSignature: {crm.Sign(testSecrets[i], body)},
		}
	}
}

// withTS signs correctly but sends the given X-Timestamp values.
func withTS(ts ...string) headers {
	return func(body []byte) map[string][]string {
		h := signedWith(0)(body)
		h[crm.HeaderTimestamp] = ts
		if ts == nil {
			delete(h, crm.HeaderTimestamp)
		}
		return h
	}
}

// withSig sends a fresh timestamp and the signature values sig(body).
func withSig(sig func(body []byte) []string) headers {
	return func(body []byte) map[string][]string {
		h := map[string][]string{crm.HeaderTimestamp: {tsNow(0)}}
		if s := sig(body); s != nil {
			h[crm.HeaderSignature] = s
		}
		return h
	}
}

func digest(body []byte) string { return crm.Digest(testSecrets[0], body) }

// sortedCompact is what JSON.stringify-after-parse style senders sign:
// the body decoded and encoded again (encoding/json sorts map keys).
func sortedCompact(t testing.TB, body []byte) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCallbackChecks(t *testing.T) {
	typical := callbackBody(1, "status_changed")
	unordered := []byte(`{ "timestamp": 1790000000, "internal_id": "crm-9", "event": "ftd", "note": "<b>" }`)

	tests := []struct {
		name       string
		body       []byte
		hdr        headers
		wantStatus int
		wantBody   string
		wantDetail string // refusals: prefix of the stored Detail
		wantKey    string // 200: the dedup key stored
		wantIdx    int    // 200: the secret index recorded
	}{
		{name: "Valid", body: typical, hdr: signedWith(0), wantStatus: 200, wantBody: wantOK, wantKey: dedupKey(1, "status_changed")},
		{name: "SecondRotatedSecret", body: callbackBody(2, "e"), hdr: signedWith(1), wantStatus: 200, wantBody: wantOK, wantKey: dedupKey(2, "e"), wantIdx: 1},
		{name: "BareHex", body: callbackBody(3, "e"), hdr: withSig(func(b []byte) []string { return []string{digest(b)} }),
			wantStatus: 200, wantBody: wantOK, wantKey: dedupKey(3, "e")},
		{name: "UpperCaseHex", body: callbackBody(4, "e"), hdr: withSig(func(b []byte) []string { return []string{"sha256=" + strings.ToUpper(digest(b))} }),
			wantStatus: 200, wantBody: wantOK, wantKey: dedupKey(4, "e")},
		{name: "TimestampAtToleranceEdge", body: callbackBody(5, "e"), hdr: withTS(tsNow(-300)), wantStatus: 200, wantBody: wantOK, wantKey: dedupKey(5, "e")},
		{name: "NumberInternalIDKeepsDigits", body: []byte(`{"internal_id":12345678901234567890,"event":"ftd","timestamp":1790000000.50}`), hdr: signedWith(0),
			wantStatus: 200, wantBody: wantOK, wantKey: "12345678901234567890:ftd:1790000000.50"},

		// 0. body size
		{name: "BodyTooLarge5MiB", body: bytes.Repeat([]byte("a"), 5<<20), hdr: signedWith(0), wantStatus: 413, wantBody: wantTooLarge,
			wantDetail: "body too large (5242880 bytes > 1048576)"},

		// 1. timestamp
		{name: "TimestampMissing", body: typical, hdr: withTS(), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "no timestamp header"},
		{name: "TimestampEmpty", body: typical, hdr: withTS(""), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "empty timestamp header"},
		{name: "TimestampExponent", body: typical, hdr: withTS("1e9"), wantStatus: 401, wantBody: wantTimestamp, wantDetail: `timestamp is not an integer: "1e9"`},
		{name: "TimestampFloat", body: typical, hdr: withTS(tsNow(0) + ".5"), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "timestamp is not an integer: "},
		{name: "TimestampNegative", body: typical, hdr: withTS("-1"), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "clock skew of 1790000001 s"},
		{name: "TimestampBeyond64Bits", body: typical, hdr: withTS("99999999999999999999"), wantStatus: 401, wantBody: wantTimestamp,
			wantDetail: `timestamp is not an integer: "99999999999999999999" (beyond 64 bits)`},
		{name: "TimestampMinInt64", body: typical, hdr: withTS("-9223372036854775808"), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "clock skew beyond 64 bits"},
		{name: "TimestampStale", body: typical, hdr: withTS(tsNow(-301)), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "clock skew of 301 s"},
		{name: "TimestampFuture", body: typical, hdr: withTS(tsNow(301)), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "clock skew of -301 s"},
		{name: "TimestampRepeated", body: typical, hdr: withTS(tsNow(0), tsNow(0)), wantStatus: 401, wantBody: wantTimestamp, wantDetail: "repeated timestamp header (2 values)"},

		// 2. signature
		{name: "SignatureMissing", body: typical, hdr: withSig(func([]byte) []string { return nil }), wantStatus: 403, wantBody: wantSignature, wantDetail: "no signature header"},
		{name: "SignatureOddLengthHex", body: typical, hdr: withSig(func(b []byte) []string { return []string{"sha256=" + digest(b)[1:]} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "malformed signature hex (odd length 63)"},
		{name: "SignatureNonHex", body: typical, hdr: withSig(func(b []byte) []string { return []string{"sha256=" + strings.Repeat("zz", 32)} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "malformed signature hex (not hex)"},
		{name: "SignatureShort", body: typical, hdr: withSig(func(b []byte) []string { return []string{"sha256=" + digest(b)[:32]} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "malformed signature hex (16 bytes, want 32)"},
		{name: "SignatureOtherScheme", body: typical, hdr: withSig(func(b []byte) []string { return []string{"sha1=" + digest(b)} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: `malformed signature hex (unknown scheme "sha1")`},
		{name: "SignatureOfDifferentBody", body: typical, hdr: withSig(func([]byte) []string { return []string{crm.Sign(testSecrets[0], callbackBody(99, "x"))} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "signature made with none of the 2 secrets"},
		{name: "SignatureUnknownSecret", body: typical, hdr: withSig(func(b []byte) []string { return []string{crm.Sign([]byte("old-secret"), b)} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "signature made with none of the 2 secrets"},
		{name: "SignatureRepeated", body: typical, hdr: withSig(func(b []byte) []string { return []string{crm.Sign(testSecrets[0], b), crm.Sign(testSecrets[0], b)} }),
			wantStatus: 403, wantBody: wantSignature, wantDetail: "repeated signature header (2 values)"},
		{name: "SignatureOfReserializedBody", body: unordered, hdr: withSig(func(b []byte) []string { return []string{crm.Sign(testSecrets[1], sortedCompact(t, b))} }),
			wantStatus: 403, wantBody: wantSignature,
			wantDetail: "signature matches a re-serialized form of the body (the raw-body bug: sign the exact bytes sent); matching form: sorted-keys compact"},
		{name: "SignatureOfCompactedBody", body: unordered, hdr: withSig(func(b []byte) []string {
			var c bytes.Buffer
			json.Compact(&c, b)
			return []string{crm.Sign(testSecrets[0], c.Bytes())}
		}), wantStatus: 403, wantBody: wantSignature, wantDetail: "signature matches a re-serialized form of the body"},
		{name: "UnsignedNoBody", body: nil, hdr: withSig(func([]byte) []string { return nil }), wantStatus: 403, wantBody: wantSignature, wantDetail: "no signature header"},

		// 3. payload
		{name: "NoBody", body: nil, hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "not a JSON object"},
		{name: "TopLevelArray", body: []byte(`[{"internal_id":"a","event":"b","timestamp":1}]`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "not a JSON object"},
		{name: "InternalIDObject", body: []byte(`{"internal_id":{"id":1},"event":"b","timestamp":1}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload,
			wantDetail: "internal_id must be a string or a number"},
		{name: "EventMissing", body: []byte(`{"internal_id":"a","timestamp":1}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "event is required"},
		{name: "DuplicateKeys", body: []byte(`{"internal_id":"a","event":"b","timestamp":1,"internal_id":"c"}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload,
			wantDetail: `duplicate key "internal_id"`},
		{name: "DuplicateKeysEscaped", body: []byte(`{"internal_id":"a","event":"b","timestamp":1,"internal\u005fid":"c"}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload,
			wantDetail: `duplicate key "internal_id"`},
		{name: "TrailingData", body: []byte(`{"internal_id":"a","event":"b","timestamp":1} {}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "trailing data"},
		{name: "TrailingBrace", body: []byte(`{"internal_id":"a","event":"b","timestamp":1}}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "trailing data"},
		{name: "TrailingBracketAndBytes", body: []byte(`{"internal_id":"a","event":"b","timestamp":1}]garbage`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "trailing data"},
		{name: "TrailingSpaceIsFine", body: []byte("{\"internal_id\":\"a\",\"event\":\"b\",\"timestamp\":1} \r\n\t"), hdr: signedWith(0), wantStatus: 200, wantBody: wantOK, wantKey: "a:b:1"},
		{name: "NotJSON", body: []byte(`{internal_id: a}`), hdr: signedWith(0), wantStatus: 400, wantBody: wantPayload, wantDetail: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := newFakeSink()
			srv, h := newTestListener(t, sink, nil)
			res := postRaw(t, srv.Client(), srv.URL+callbacks.DefaultPath, tt.body, tt.hdr(tt.body))
			if res.status != tt.wantStatus || res.body != tt.wantBody {
				t.Fatalf("answer = %d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.wantBody)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantStatus == 200 {
				ev, ok := sink.event(tt.wantKey)
				if !ok {
					t.Fatalf("event %q not stored", tt.wantKey)
				}
				if !bytes.Equal(ev.RawBody, tt.body) || ev.SecretIdx != tt.wantIdx || !ev.ReceivedAt.Equal(testNow) {
					t.Errorf("stored %+v; want raw body kept, SecretIdx %d", ev, tt.wantIdx)
				}
				if st := h.Stats(); st.Verified != 1 || st.Refused != 0 {
					t.Errorf("stats = %+v", st)
				}
				return
			}
			if n := sink.eventCount(); n != 0 {
				t.Errorf("%d events stored for a refused callback", n)
			}
			poll.Until(t, "the refusal to be stored", func() bool { return len(sink.refusalList()) == 1 })
			rf := sink.refusalList()[0]
			if !strings.HasPrefix(rf.Detail, tt.wantDetail) && !strings.Contains(rf.Detail, tt.wantDetail) {
				t.Errorf("Detail = %q, want it to start with %q", rf.Detail, tt.wantDetail)
			}
			wantHead := tt.body
			if len(wantHead) > 256 {
				wantHead = wantHead[:256]
			}
			if tt.wantStatus == 413 {
				// A declared length over the limit is refused unread.
				wantHead = nil
			}
			if rf.HTTPStatus != tt.wantStatus || !bytes.Equal(rf.Head, wantHead) || rf.RemoteAddr == "" || !rf.At.Equal(testNow) {
				t.Errorf("refusal = {%d %q head %q remote %q at %v}", rf.HTTPStatus, rf.Code, rf.Head, rf.RemoteAddr, rf.At)
			}
			if !strings.Contains(tt.wantBody, rf.Code) {
				t.Errorf("refusal code %q does not match the answer %s", rf.Code, tt.wantBody)
			}
			if st := h.Stats(); st.Refused != 1 || st.Verified != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// TestRefusalNeverHoldsSecrets guards the rule that neither secrets nor
// signatures reach the store through a refusal's detail.
func TestRefusalNeverHoldsSecrets(t *testing.T) {
	sink := newFakeSink()
	srv, _ := newTestListener(t, sink, nil)
	body := callbackBody(1, "e")
	sig := crm.Sign([]byte("wrong"), body)
	postRaw(t, srv.Client(), srv.URL+callbacks.DefaultPath, body, map[string][]string{crm.HeaderTimestamp: {tsNow(0)}, crm.HeaderSignature: {sig}})
	poll.Until(t, "refusal", func() bool { return len(sink.refusalList()) == 1 })
	rf := sink.refusalList()[0]
	for _, s := range append([][]byte{[]byte(sig[7:])}, testSecrets...) {
		if bytes.Contains([]byte(rf.Detail), s) {
			t.Fatalf("refusal detail %q holds a secret or signature", rf.Detail)
		}
	}
}

func TestChunkedBodyTooLarge(t *testing.T) {
	sink := newFakeSink()
	srv, _ := newTestListener(t, sink, func(c *callbacks.Config) { c.MaxBody = 1000 })
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("x"), 5000))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+callbacks.DefaultPath, pr)
	req.Header.Set(crm.HeaderTimestamp, tsNow(0))
	res := do(t, srv.Client(), req)
	if res.status != 413 || res.body != wantTooLarge {
		t.Fatalf("answer = %d %s", res.status, res.body)
	}
	poll.Until(t, "refusal", func() bool { return len(sink.refusalList()) == 1 })
	if d := sink.refusalList()[0].Detail; d != "body too large (more than 1000 bytes > 1000)" {
		t.Errorf("Detail = %q", d)
	}
}

func TestRouting(t *testing.T) {
	sink := newFakeSink()
	srv, _ := newTestListener(t, sink, nil)
	tests := []struct {
		name, method, path string
		fail               bool
		wantStatus         int
		wantBody           string
		wantAllow          string
	}{
		{name: "GetOnCallbackPath", method: "GET", path: callbacks.DefaultPath, wantStatus: 405, wantBody: `{"error":"method_not_allowed"}`, wantAllow: "POST"},
		{name: "PutOnCallbackPath", method: "PUT", path: callbacks.DefaultPath, wantStatus: 405, wantBody: `{"error":"method_not_allowed"}`, wantAllow: "POST"},
		{name: "HealthOK", method: "GET", path: "/healthz", wantStatus: 200, wantBody: `{"ok":true}`},
		{name: "HealthDown", method: "GET", path: "/healthz", fail: true, wantStatus: 503, wantBody: `{"ok":false,"error":"unavailable","reason":"unreachable"}`},
		{name: "HealthPost", method: "POST", path: "/healthz", wantStatus: 405, wantBody: `{"error":"method_not_allowed"}`, wantAllow: "GET, HEAD"},
		{name: "UnknownPath", method: "POST", path: "/cartelcrm/callback/x", wantStatus: 404, wantBody: `{"error":"not_found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fail {
				sink.setFail(errSinkDown)
				defer sink.setFail(nil)
			}
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res := do(t, srv.Client(), req)
			if res.status != tt.wantStatus || res.body != tt.wantBody || res.header.Get("Allow") != tt.wantAllow {
				t.Errorf("answer = %d %s (Allow %q)", res.status, res.body, res.header.Get("Allow"))
			}
			if strings.Contains(res.body, errSinkDown.Error()) {
				t.Errorf("answer leaks the sink's error")
			}
		})
	}
	if n := len(sink.refusalList()); n != 0 {
		t.Errorf("%d refusals stored for routing errors", n)
	}
}

func TestReplay(t *testing.T) {
	sink := newFakeSink()
	srv, h := newTestListener(t, sink, nil)
	url := srv.URL + callbacks.DefaultPath
	body := callbackBody(7, "status_changed")
	tests := []struct {
		name     string
		hdr      headers
		wantBody string
	}{
		{"First", signedWith(0), wantOK},
		{"SameDelivery", signedWith(0), wantReplay},
		// The protocol's known weakness: X-Timestamp is not signed. The
		// persisted dedup key is what stops a replay with a fresh one.
		{"ReplayedWithOtherTimestamp", withTS(tsNow(-200)), wantReplay},
		{"ReplayedWithOtherSecret", signedWith(1), wantReplay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := postRaw(t, srv.Client(), url, body, tt.hdr(body))
			if res.status != 200 || res.body != tt.wantBody {
				t.Fatalf("answer = %d %s, want 200 %s", res.status, res.body, tt.wantBody)
			}
		})
	}
	if st := h.Stats(); st.Verified != 1 || st.Replays != 3 || sink.eventCount() != 1 {
		t.Errorf("stats = %+v, stored %d", st, sink.eventCount())
	}
}

func TestSinkFailure(t *testing.T) {
	sink := newFakeSink()
	srv, h := newTestListener(t, sink, nil)
	url := srv.URL + callbacks.DefaultPath
	body := callbackBody(8, "e")

	sink.setFail(errSinkDown)
	res := postSigned(t, srv.Client(), url, body, testSecrets[0])
	if res.status != 503 || res.body != wantUnavail {
		t.Fatalf("answer = %d %s, want 503 %s", res.status, res.body, wantUnavail)
	}
	if sink.eventCount() != 0 {
		t.Fatal("an event was stored by a failed commit")
	}
	// The CRM retries; once the store is back the same callback is new:
	// nothing was acknowledged before.
	sink.setFail(nil)
	if res := postSigned(t, srv.Client(), url, body, testSecrets[0]); res.body != wantOK {
		t.Fatalf("retry answer = %d %s", res.status, res.body)
	}
	if st := h.Stats(); st.Unavailable != 1 || st.Verified != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// shortSink answers fewer results than events: a broken sink must be
// treated as a failed commit, not indexed out of range.
type shortSink struct{ *fakeSink }

func (s shortSink) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	return nil, nil
}

func TestSinkBreakingContract(t *testing.T) {
	srv, _ := newTestListener(t, shortSink{newFakeSink()}, nil)
	res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(1, "e"), testSecrets[0])
	if res.status != 503 {
		t.Fatalf("answer = %d %s, want 503", res.status, res.body)
	}
}

// gatedListener starts a listener whose sink blocks in SaveCallbacks until
// released, and one request that is inside the sink already.
type gated struct {
	sink    *fakeSink
	h       *callbacks.Handler
	url     string
	client  *http.Client
	release func()
	answers chan response
	wg      sync.WaitGroup
}

func newGated(t *testing.T, mod func(*callbacks.Config)) *gated {
	t.Helper()
	sink := newFakeSink()
	sink.gate = make(chan struct{})
	sink.entered = make(chan int, 1000)
	srv, h := newTestListener(t, sink, mod)
	g := &gated{sink: sink, h: h, url: srv.URL + callbacks.DefaultPath, client: srv.Client(), answers: make(chan response, 1000)}
	var once sync.Once
	g.release = func() { once.Do(func() { close(sink.gate) }) }
	t.Cleanup(g.release)
	// Each request uses its own connection: the test wants them in flight
	// at once.
	g.client.Transport.(*http.Transport).MaxConnsPerHost = 0
	g.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 100
	return g
}

func (g *gated) send(t *testing.T, body []byte) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.answers <- postSigned(t, g.client, g.url, body, testSecrets[0])
	}()
}

func TestGroupCommit(t *testing.T) {
	t.Run("BatchesAndEachWaitsForItsCommit", func(t *testing.T) {
		g := newGated(t, nil)
		g.send(t, callbackBody(0, "e"))
		if n := <-g.sink.entered; n != 1 {
			t.Fatalf("first batch size %d", n)
		}
		// The committer is held inside the sink: the next 31 queue up.
		for i := 1; i < 32; i++ {
			g.send(t, callbackBody(i, "e"))
		}
		poll.Until(t, "31 events pending", func() bool { return g.h.Stats().Pending == 31 })
		select {
		case res := <-g.answers:
			t.Fatalf("an answer (%d %s) arrived before its commit", res.status, res.body)
		default:
		}
		g.release()
		g.wg.Wait()
		close(g.answers)
		for res := range g.answers {
			if res.body != wantOK {
				t.Errorf("answer %d %s", res.status, res.body)
			}
		}
		sizes := g.sink.batchSizes()
		if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 31 {
			t.Errorf("batch sizes %v, want [1 31]", sizes)
		}
		if g.sink.eventCount() != 32 {
			t.Errorf("%d events stored", g.sink.eventCount())
		}
	})
	t.Run("MaxBatchCaps", func(t *testing.T) {
		g := newGated(t, func(c *callbacks.Config) { c.MaxBatch = 8 })
		g.send(t, callbackBody(0, "e"))
		<-g.sink.entered
		for i := 1; i < 21; i++ {
			g.send(t, callbackBody(i, "e"))
		}
		poll.Until(t, "20 events pending", func() bool { return g.h.Stats().Pending == 20 })
		g.release()
		g.wg.Wait()
		sizes := g.sink.batchSizes()
		if fmt.Sprint(sizes) != "[1 8 8 4]" {
			t.Errorf("batch sizes %v, want [1 8 8 4]", sizes)
		}
	})
	t.Run("DuplicateInsideOneBatch", func(t *testing.T) {
		g := newGated(t, nil)
		g.send(t, callbackBody(0, "e"))
		<-g.sink.entered
		for _, n := range []int{1, 2, 1, 3, 1} {
			g.send(t, callbackBody(n, "e"))
		}
		poll.Until(t, "5 events pending", func() bool { return g.h.Stats().Pending == 5 })
		g.release()
		g.wg.Wait()
		close(g.answers)
		var ok, replay int
		for res := range g.answers {
			switch res.body {
			case wantOK:
				ok++
			case wantReplay:
				replay++
			default:
				t.Errorf("answer %d %s", res.status, res.body)
			}
		}
		if ok != 4 || replay != 2 {
			t.Errorf("%d fresh, %d replays; want 4 fresh (0,1,2,3), 2 replays", ok, replay)
		}
		if sizes := g.sink.batchSizes(); fmt.Sprint(sizes) != "[1 3]" {
			t.Errorf("batch sizes %v, want [1 3]: duplicates are not sent twice", sizes)
		}
	})
	t.Run("FailedCommitAnswers503ToWholeBatch", func(t *testing.T) {
		g := newGated(t, nil)
		g.sink.setFail(errSinkDown)
		g.send(t, callbackBody(0, "e"))
		<-g.sink.entered
		for i := 1; i < 11; i++ {
			g.send(t, callbackBody(i, "e"))
		}
		poll.Until(t, "10 events pending", func() bool { return g.h.Stats().Pending == 10 })
		g.release()
		g.wg.Wait()
		close(g.answers)
		for res := range g.answers {
			if res.status != 503 || res.body != wantUnavail {
				t.Errorf("answer %d %s, want 503", res.status, res.body)
			}
		}
		if g.sink.eventCount() != 0 || g.h.Stats().Unavailable != 11 {
			t.Errorf("stored %d, stats %+v", g.sink.eventCount(), g.h.Stats())
		}
	})
	t.Run("CommitTimeout", func(t *testing.T) {
		g := newGated(t, func(c *callbacks.Config) { c.CommitTimeout = 50 * time.Millisecond })
		g.send(t, callbackBody(0, "e"))
		g.wg.Wait()
		if res := <-g.answers; res.status != 503 {
			t.Errorf("answer %d %s, want 503", res.status, res.body)
		}
	})
	t.Run("ConcurrentWithoutGate", func(t *testing.T) {
		sink := newFakeSink()
		srv, h := newTestListener(t, sink, nil)
		var wg sync.WaitGroup
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					n := w*20 + i
					if res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(n, "e"), testSecrets[0]); res.status != 200 {
						t.Errorf("answer %d %s", res.status, res.body)
					}
				}
			}()
		}
		wg.Wait()
		if st := h.Stats(); st.Verified != 640 || sink.eventCount() != 640 {
			t.Errorf("stats %+v, stored %d", st, sink.eventCount())
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("DrainsQueuedEvents", func(t *testing.T) {
		g := newGated(t, nil)
		g.send(t, callbackBody(0, "e"))
		<-g.sink.entered
		for i := 1; i < 5; i++ {
			g.send(t, callbackBody(i, "e"))
		}
		poll.Until(t, "4 events pending", func() bool { return g.h.Stats().Pending == 4 })
		closed := make(chan struct{})
		go func() { g.h.Close(); close(closed) }()
		g.release()
		<-closed
		g.wg.Wait()
		if g.sink.eventCount() != 5 {
			t.Errorf("%d of 5 queued events committed by Close", g.sink.eventCount())
		}
	})
	t.Run("AfterCloseUnavailable", func(t *testing.T) {
		sink := newFakeSink()
		srv, h := newTestListener(t, sink, nil)
		h.Close()
		h.Close()
		res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(1, "e"), testSecrets[0])
		if res.status != 503 {
			t.Errorf("answer %d %s", res.status, res.body)
		}
	})
}

// TestRefusalsDoNotBlock: with the store's refusal writes stuck, refused
// callbacks are still answered at once, and the backlog is bounded.
func TestRefusalsDoNotBlock(t *testing.T) {
	sink := newFakeSink()
	sink.refusalGate = make(chan struct{})
	srv, h := newTestListener(t, sink, func(c *callbacks.Config) { c.RefusalQueue = 2 })
	t.Cleanup(func() { close(sink.refusalGate) })
	for i := 0; i < 10; i++ {
		res := postRaw(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(i, "e"), map[string][]string{crm.HeaderTimestamp: {tsNow(0)}})
		if res.status != 403 {
			t.Fatalf("answer %d %s", res.status, res.body)
		}
	}
	if st := h.Stats(); st.Refused != 10 || st.RefusalsDropped < 7 || st.RefusalsDropped > 8 {
		t.Errorf("stats %+v: want 10 refused, 7–8 dropped (1 in the sink, 2 queued)", st)
	}
}

// TestRefusalStoreFailureKeepsAnswer: a failing SaveRefusal is logged and
// never changes the answer.
type failingRefusals struct{ *fakeSink }

func (failingRefusals) SaveRefusal(context.Context, crm.Refusal) error { return errSinkDown }

func TestRefusalStoreFailureKeepsAnswer(t *testing.T) {
	srv, _ := newTestListener(t, failingRefusals{newFakeSink()}, nil)
	res := postRaw(t, srv.Client(), srv.URL+callbacks.DefaultPath, []byte("{}"), nil)
	if res.status != 401 || res.body != wantTimestamp {
		t.Fatalf("answer %d %s", res.status, res.body)
	}
}

func TestNewHandlerErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  callbacks.Config
		sink callbacks.EventSink
		want error
	}{
		{"NoSecrets", callbacks.Config{}, newFakeSink(), callbacks.ErrNoSecrets},
		{"EmptySecret", callbacks.Config{Secrets: [][]byte{[]byte("a"), {}}}, newFakeSink(), nil},
		{"NilSink", callbacks.Config{Secrets: testSecrets}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := callbacks.NewHandler(tt.cfg, tt.sink)
			if err == nil {
				h.Close()
				t.Fatal("NewHandler succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// BenchmarkVerify measures the checks of a typical 300-byte callback
// alone: timestamp, signature (one and two secrets: every secret is always
// tried) and parsing.
func BenchmarkVerify(b *testing.B) {
	body := callbackBody(123456, "status_changed")
	body = append(body[:len(body)-1], []byte(`,"pad":"`+strings.Repeat("x", 300-len(body)-9)+`"}`)...)
	if len(body) != 300 {
		b.Fatalf("body is %d bytes", len(body))
	}
	sig := crm.Sign(testSecrets[0], body)
	ts := tsNow(0)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("Signature/secrets=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := crm.VerifySignature(sig, body, testSecrets[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("AllChecks", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := crm.CheckTimestamp(ts, testNow, crm.DefaultTolerance); err != nil {
				b.Fatal(err)
			}
			if _, err := crm.VerifySignature(sig, body, testSecrets); err != nil {
				b.Fatal(err)
			}
			if _, err := crm.ParseCallback(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// panicSink panics in SaveCallbacks: the committer must survive it and
// answer 503, then go on serving.
type panicSink struct {
	*fakeSink
	panics *atomic.Bool
}

func (s panicSink) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	if s.panics.Load() {
		panic("driver bug")
	}
	return s.fakeSink.SaveCallbacks(ctx, evs)
}

func TestSinkPanic(t *testing.T) {
	var panics atomic.Bool
	panics.Store(true)
	sink := panicSink{newFakeSink(), &panics}
	srv, _ := newTestListener(t, sink, nil)
	url := srv.URL + callbacks.DefaultPath
	if res := postSigned(t, srv.Client(), url, callbackBody(1, "e"), testSecrets[0]); res.status != 503 || res.body != wantUnavail {
		t.Fatalf("answer %d %s, want 503", res.status, res.body)
	}
	panics.Store(false)
	if res := postSigned(t, srv.Client(), url, callbackBody(1, "e"), testSecrets[0]); res.body != wantOK {
		t.Fatalf("after the panic: answer %d %s", res.status, res.body)
	}
}

// nopSink accepts everything instantly: BenchmarkHandler measures the
// handler's own cost, without network or storage.
type nopSink struct{}

func (nopSink) SaveCallbacks(_ context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	fresh := make([]bool, len(evs))
	for i := range fresh {
		fresh[i] = true
	}
	return fresh, nil
}
func (nopSink) SaveRefusal(context.Context, crm.Refusal) error { return nil }
func (nopSink) Ping(context.Context) error                     { return nil }

// BenchmarkHandler: one verified callback through ServeHTTP in process
// (checks, group commit hand-off, answer), run in parallel.
func BenchmarkHandler(b *testing.B) {
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Now: nowFunc}, nopSink{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	body := callbackBody(1, "status_changed")
	sig := crm.Sign(testSecrets[0], body)
	ts := tsNow(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, callbacks.DefaultPath, bytes.NewReader(body))
			req.Header[crm.HeaderTimestamp] = []string{ts}
			req.Header[crm.HeaderSignature] = []string{sig}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("answer %d", rec.Code)
			}
		}
	})
}

// hangingSink never returns from SaveCallbacks, whatever its context says.
type hangingSink struct {
	*fakeSink
	release chan struct{}
}

func (s hangingSink) SaveCallbacks(context.Context, []crm.CallbackEvent) ([]bool, error) {
	<-s.release
	return nil, errSinkDown
}

// TestSinkHangs: requests are answered 503 within a bound even when the
// sink ignores its context.
func TestSinkHangs(t *testing.T) {
	sink := hangingSink{newFakeSink(), make(chan struct{})}
	srv, h := newTestListener(t, sink, func(c *callbacks.Config) { c.CommitTimeout = 50 * time.Millisecond })
	t.Cleanup(func() { close(sink.release) }) // runs before the listener's cleanup
	start := time.Now()
	res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(1, "e"), testSecrets[0])
	if res.status != 503 || time.Since(start) > 2*time.Second {
		t.Fatalf("answer %d %s after %v", res.status, res.body, time.Since(start))
	}
	if st := h.Stats(); st.Unavailable != 1 {
		t.Errorf("stats %+v", st)
	}
}
