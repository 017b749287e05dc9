package crm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the protocol (docs/protocol.md §1, §3).
const (
	HeaderSignature      = "X-Signature"
	HeaderTimestamp      = "X-Timestamp"
	HeaderIdempotencyKey = "Idempotency-Key"

	// SignaturePrefix introduces the hex digest in X-Signature.
	SignaturePrefix = "sha256="

	// DefaultTolerance is the seed's anti-replay window for X-Timestamp.
	DefaultTolerance = 300 * time.Second
)

// Sentinel errors of signature and timestamp verification. Callers branch
// on them with errors.Is; the listener turns them into precise refusal
// reasons.
var (
	ErrNoSignature         = errors.New("no signature header")
	ErrMalformedSignature  = errors.New("malformed signature hex")
	ErrNoValidSignature    = errors.New("signature made with none of the secrets")
	ErrNoTimestamp         = errors.New("no timestamp header")
	ErrBadTimestamp        = errors.New("timestamp is not an integer")
	ErrTimestampOutOfRange = errors.New("timestamp out of range")
)

// Digest returns the lowercase hex HMAC-SHA256 of body under secret.
func Digest(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the X-Signature value for body: "sha256=" + Digest.
func Sign(secret, body []byte) string {
	return SignaturePrefix + Digest(secret, body)
}

// VerifySignature checks an X-Signature header value against body with each
// secret in turn and returns the index of the first secret that matches.
// Both "sha256=<hex>" and bare hex are accepted; the hex is decoded and
// compared as bytes in constant time, so either letter case passes.
func VerifySignature(header string, body []byte, secrets [][]byte) (int, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return -1, ErrNoSignature
	}
	hexPart := strings.TrimPrefix(header, SignaturePrefix)
	got, err := hex.DecodeString(hexPart)
	if err != nil || len(got) != sha256.Size {
		return -1, ErrMalformedSignature
	}
	match := -1
	for i, secret := range secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		// Every secret is tried so the time taken does not tell which one
		// matched.
		if hmac.Equal(m.Sum(nil), got) && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return -1, ErrNoValidSignature
	}
	return match, nil
}

// CheckTimestamp parses an X-Timestamp value (unix seconds, a decimal
// integer) and checks it lies within tolerance of now. It returns the skew,
// now minus the timestamp, even when the timestamp is out of range.
func CheckTimestamp(header string, now time.Time, tolerance time.Duration) (time.Duration, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0, ErrNoTimestamp
	}
	ts, err := strconv.ParseInt(header, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, clip(header, 32))
	}
	// Keep the arithmetic in range: a timestamp tens of thousands of years
	// away is simply out of range, never an overflowed skew that looks small.
	const far = 1 << 40
	if ts > far || ts < -far {
		return 0, fmt.Errorf("%w: %d is not a plausible unix time", ErrTimestampOutOfRange, ts)
	}
	diff := now.Unix() - ts
	skew := time.Duration(diff) * time.Second
	if skew > tolerance || skew < -tolerance {
		return skew, fmt.Errorf("%w: clock skew of %d s", ErrTimestampOutOfRange, diff)
	}
	return skew, nil
}

// SignRequest sets X-Timestamp (from now) and X-Signature (over body, which
// must be exactly the bytes the request sends) on req.
func SignRequest(req *http.Request, secret, body []byte, now time.Time) {
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secret, body))
}

// NewSignedCallback builds a callback POST to url carrying body, signed with
// secret at time now, as CartelCRM sends it (docs/protocol.md §3). The sandbox
// uses it, and so can other packages' tests, so that nobody copies the
// algorithm.
func NewSignedCallback(url string, body, secret []byte, now time.Time) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	SignRequest(req, secret, body, now)
	return req, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
