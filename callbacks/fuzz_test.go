package callbacks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
)

// FuzzHandler throws arbitrary bodies and X-Timestamp / X-Signature values
// at the handler. A NUL in a header argument splits it into several header
// values; an empty one leaves the header out. With sign set, the signature
// is made correctly over the body with secret secretIdx%3 (2 is a secret
// the handler does not know). It checks that the handler never panics,
// answers only with the protocol's statuses, and never stores an event
// whose timestamp and signature an independent check would refuse.
func FuzzHandler(f *testing.F) {
	valid := callbackBody(1, "status_changed")
	f.Add(valid, tsNow(0), "", true, uint8(0))
	f.Add(valid, tsNow(0), "", true, uint8(1))
	f.Add(valid, tsNow(0), "", true, uint8(2))
	f.Add(valid, tsNow(-301), "", true, uint8(0))
	f.Add(valid, "1e9", "", true, uint8(0))
	f.Add(valid, tsNow(0), "sha256="+crm.Digest(testSecrets[0], valid), false, uint8(0))
	f.Add(valid, tsNow(0), strings.ToUpper(crm.Digest(testSecrets[0], valid)), false, uint8(0))
	f.Add(valid, tsNow(0)+"\x00"+tsNow(0), "", true, uint8(0))
	f.Add([]byte(`{"internal_id":1,"event":"e","timestamp":1,"internal_id":2}`), tsNow(0), "", true, uint8(0))
	f.Add([]byte(`[1,2]`), tsNow(0), "", true, uint8(0))

	sink := newFakeSink()
	h, err := callbacks.NewHandler(callbacks.Config{
		Secrets: testSecrets[:2],
		MaxBody: 4096,
		Now:     nowFunc,
	}, sink)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(h.Close)
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 405: true, 413: true, 503: true}
	unknownSecret := []byte("not-configured")

	f.Fuzz(func(t *testing.T, body []byte, ts, sig string, sign bool, secretIdx uint8) {
		if sign {
			secret := unknownSecret
			if i := int(secretIdx % 3); i < 2 {
				secret = testSecrets[i]
			}
			sig = crm.Sign(secret, body)
		}
		req := httptest.NewRequest(http.MethodPost, callbacks.DefaultPath, bytes.NewReader(body))
		tsVals, sigVals := splitValues(ts), splitValues(sig)
		if tsVals != nil {
			req.Header[crm.HeaderTimestamp] = tsVals
		}
		if sigVals != nil {
			req.Header[crm.HeaderSignature] = sigVals
		}
		before := sink.eventCount()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if !allowed[rec.Code] {
			t.Fatalf("status %d (%s) is not a protocol answer", rec.Code, rec.Body)
		}
		stored := sink.eventCount() - before
		valid := len(body) <= 4096 && validTimestamp(tsVals) && validSignature(sigVals, body)
		if rec.Code == 200 && !valid {
			t.Fatalf("200 %s for a callback that fails the independent check", rec.Body)
		}
		if stored > 0 {
			if !valid || rec.Code != 200 {
				t.Fatalf("event stored (answer %d) without a valid timestamp and signature", rec.Code)
			}
			ev, err := crm.ParseCallback(body)
			if err != nil {
				t.Fatalf("stored an unparsable body: %v", err)
			}
			got, ok := sink.event(ev.DedupKey)
			if !ok || !bytes.Equal(got.RawBody, body) {
				t.Fatalf("stored event %q does not carry the raw body", ev.DedupKey)
			}
		}
	})
}

// nowFunc is the fixed test clock as a Config.Now.
func nowFunc() time.Time { return testNow }

func splitValues(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// validTimestamp and validSignature restate docs/protocol.md §3, rows 1 and 2,
// without crm's helpers, so a bug there cannot hide a bug here.
func validTimestamp(vals []string) bool {
	if len(vals) != 1 {
		return false
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(vals[0]), 10, 64)
	if err != nil {
		return false
	}
	d := testNow.Unix() - ts
	return d >= -300 && d <= 300
}

func validSignature(vals []string, body []byte) bool {
	if len(vals) != 1 {
		return false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(vals[0]), "sha256="))
	if err != nil {
		return false
	}
	for _, s := range testSecrets[:2] {
		m := hmac.New(sha256.New, s)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return true
		}
	}
	return false
}
