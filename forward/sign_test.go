package forward

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testSecret and otherSecret are whsec_ secrets of 24 bytes each.
const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
)

// TestSpecVector checks the signature against the Standard Webhooks
// specification's published example, so the scheme is the one the app's
// libraries implement, not merely one this package agrees with itself on.
func TestSpecVector(t *testing.T) {
	s, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event":"lead.accepted","external_id":"A1"}`)
	rotating, err := NewSigner(otherSecret, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(s *Signer, at time.Time, b []byte) http.Header {
		h := http.Header{}
		s.Sign(h, "cb_7", at, b)
		return h
	}
	one, _ := NewSigner(testSecret)
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		secrets []string
		wantKey int
		wantErr error
	}{
		{"Valid", signed(one, now, body), body, []string{testSecret}, 0, nil},
		{"RotationOldSecret", signed(rotating, now, body), body, []string{testSecret}, 0, nil},
		{"RotationNewSecret", signed(rotating, now, body), body, []string{otherSecret}, 0, nil},
		{"VerifierRotating", signed(one, now, body), body, []string{otherSecret, testSecret}, 1, nil},
		{"TamperedBody", signed(one, now, body), append([]byte(" "), body...), []string{testSecret}, -1, ErrNoValidSignature},
		{"WrongSecret", signed(one, now, body), body, []string{otherSecret}, -1, ErrNoValidSignature},
		{"TooOld", signed(one, now.Add(-DefaultTolerance-time.Second), body), body, []string{testSecret}, -1, ErrTooOld},
		{"TooNew", signed(one, now.Add(DefaultTolerance+time.Second), body), body, []string{testSecret}, -1, ErrTooNew},
		{"Missing", http.Header{"Webhook-Id": {"cb_7"}}, body, []string{testSecret}, -1, ErrNotSigned},
		{"BadTimestamp", func() http.Header {
			h := signed(one, now, body)
			h.Set(HeaderTimestamp, "yesterday")
			return h
		}(), body, []string{testSecret}, -1, ErrBadTimestamp},
		{"OtherVersionsIgnored", func() http.Header {
			h := signed(one, now, body)
			h.Set(HeaderSignature, "v2,AAAA "+h.Get(HeaderSignature)+" garbage")
			return h
		}(), body, []string{testSecret}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.secrets...)
			if err != nil {
				t.Fatal(err)
			}
			v.Now = func() time.Time { return now }
			key, err := v.Verify(tt.h, tt.body)
			if !errors.Is(err, tt.wantErr) || key != tt.wantKey {
				t.Fatalf("Verify = %d, %v; want %d, %v", key, err, tt.wantKey, tt.wantErr)
			}
		})
	}
}

// TestSignHeaders checks what goes on the wire: unix seconds, one
// signature per key.
func TestSignHeaders(t *testing.T) {
	s, _ := NewSigner(testSecret, otherSecret)
	h := http.Header{}
	s.Sign(h, "cb_1", time.Unix(1700000000, 0), []byte("{}"))
	if h.Get(HeaderID) != "cb_1" || h.Get(HeaderTimestamp) != "1700000000" {
		t.Fatalf("headers = %v", h)
	}
	if sigs := strings.Fields(h.Get(HeaderSignature)); len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || sigs[0] == sigs[1] {
		t.Fatalf("signatures = %q", h.Get(HeaderSignature))
	}
}

func TestParseSecret(t *testing.T) {
	unpadded := strings.TrimRight(testSecret, "=")
	if _, err := ParseSecret(unpadded); err != nil {
		t.Fatalf("unpadded: %v", err)
	}
	if k, err := ParseSecret(" " + testSecret + "\n"); err != nil || len(k) != 24 {
		t.Fatalf("ParseSecret = %d bytes, %v", len(k), err)
	}
	for name, bad := range map[string]string{
		"NoPrefix":   "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"NotBase64":  "whsec_not*base64*at*all*hunter2hunter2",
		"TooShort":   "whsec_c2hvcnQ=",
		"Empty":      "",
		"PrefixOnly": "whsec_",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSecret(bad)
			if !errors.Is(err, ErrSecretFormat) {
				t.Fatalf("err = %v, want ErrSecretFormat", err)
			}
			if rest := strings.TrimPrefix(bad, "whsec_"); len(rest) > 4 && strings.Contains(err.Error(), rest) {
				t.Fatalf("error quotes the secret: %v", err)
			}
		})
	}
	if _, err := NewSigner(testSecret, "whsec_bad"); err == nil || !strings.Contains(err.Error(), "secret 2 of 2") {
		t.Fatalf("NewSigner with a bad second secret: %v", err)
	}
}

func TestSignedRequest(t *testing.T) {
	body := []byte(`{"a":1}`)
	req, err := SignedRequest("http://app.example/hook", testSecret, "cb_9", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret)
	if _, err := v.Verify(req.Header, body); err != nil {
		t.Fatalf("Verify(SignedRequest) = %v", err)
	}
	if req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
		t.Fatalf("request = %s %v", req.Method, req.Header)
	}
}

func TestPolicy(t *testing.T) {
	p := Policy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 5 * time.Second}
	for _, tt := range []struct {
		made      int
		jitter    float64
		wantFinal bool
		want      time.Duration
	}{
		{1, 0, false, 500 * time.Millisecond},
		{1, 0.999999, false, time.Second - time.Microsecond},
		{2, 0, false, time.Second},
		{3, 0.5, false, 3 * time.Second},
		{4, 1, false, 5 * time.Second}, // 8 s capped to 5
		{5, 0.5, true, 0},
		{9, 0.5, true, 0},
	} {
		final, d := p.Next(tt.made, tt.jitter)
		if final != tt.wantFinal || (d-tt.want).Abs() > time.Microsecond {
			t.Errorf("Next(%d, %g) = %v, %s; want %v, %s", tt.made, tt.jitter, final, d, tt.wantFinal, tt.want)
		}
	}
	if final, d := (Policy{}).Next(1, 0); final || d != DefaultBaseDelay/2 {
		t.Errorf("zero Policy: Next(1, 0) = %v, %s", final, d)
	}
}
