// Package forward hands stored callbacks on to the user's app
// (docs/protocol.md §5): the Standard Webhooks signature every delivery
// carries, a Verifier for the app's side (and the tests'), and the
// Forwarder that drains the store's delivery queue. It is its own package
// because the scheme is not CartelCRM's (crm signs leads and checks
// callbacks the CRM's way) and because serve and the dashboard both run
// a Forwarder.
package forward

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every forward secret; the rest is the base64 key.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the
// verifier's clock, either way: the five minutes the scheme's own
// libraries enforce.
const DefaultTolerance = 5 * time.Minute

// minKeyBytes is the shortest key accepted: the scheme's secrets are 24
// to 64 random bytes, and a key a person typed is no key.
const minKeyBytes = 16

// Sentinel errors of ParseSecret and Verify. None quotes a secret or a
// signature.
var (
	// ErrSecretFormat means a secret is not whsec_ followed by the base64
	// of at least 16 bytes.
	ErrSecretFormat = errors.New("not a Standard Webhooks secret (want whsec_ followed by base64, e.g. from 'openssl rand -base64 32')")
	// ErrNotSigned means a webhook header is missing.
	ErrNotSigned = errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	// ErrBadTimestamp means webhook-timestamp is not unix seconds.
	ErrBadTimestamp = errors.New("webhook-timestamp is not unix seconds")
	// ErrTooOld and ErrTooNew mean the timestamp is outside the tolerance
	// (a replayed request, or a clock far off).
	ErrTooOld = errors.New("webhook-timestamp too old")
	ErrTooNew = errors.New("webhook-timestamp too far in the future")
	// ErrNoValidSignature means no v1 signature matched any key.
	ErrNoValidSignature = errors.New("no valid webhook signature")
)

// ParseSecret returns the key of a whsec_ secret. Both standard and
// unpadded base64 are taken (libraries print either). Its error never
// holds the secret.
func ParseSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(secret), SecretPrefix)
	if !ok {
		return nil, ErrSecretFormat
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(rest)
	}
	if err != nil || len(key) < minKeyBytes {
		return nil, ErrSecretFormat
	}
	return key, nil
}

// parseSecrets parses each secret, naming the bad one by position.
func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no secret: %w", ErrSecretFormat)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			if len(secrets) > 1 {
				return nil, fmt.Errorf("secret %d of %d: %w", i+1, len(secrets), err)
			}
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// Signer signs deliveries with one or several keys: during a rotation the
// app is sent one signature per key, so it accepts the delivery with
// either its old or its new secret.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer for the whsec_ secrets, the current one
// first.
func NewSigner(secrets ...string) (*Signer, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// Signature is the webhook-signature value for id, ts and body: a
// space-separated "v1,<base64>" per key.
func (s *Signer) Signature(id string, ts time.Time, body []byte) string {
	unix := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	return b.String()
}

// Sign sets the three webhook headers on h for a delivery of body under
// id at ts.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Signature(id, ts, body))
}

// mac is HMAC-SHA256(key, "{id}.{timestamp}.{body}").
func mac(key []byte, id, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verifier checks deliveries as the app should: the headers present, the
// timestamp within Tolerance of Now, and one v1 signature made with one
// of its keys over the raw body. leadwatch itself never verifies what it
// sends; the Verifier is for tests and for apps written in Go.
type Verifier struct {
	keys [][]byte
	// Tolerance bounds the timestamp's distance from Now; DefaultTolerance
	// when zero.
	Tolerance time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewVerifier returns a Verifier accepting any of the whsec_ secrets.
func NewVerifier(secrets ...string) (*Verifier, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys}, nil
}

// Verify checks h and body. Header lookup is case-insensitive, as HTTP's.
// It returns which key matched (0 for the first secret given), so an app
// in a rotation learns when the old secret stops being used.
func (v *Verifier) Verify(h http.Header, body []byte) (int, error) {
	id, unix, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || unix == "" || sigs == "" {
		return -1, ErrNotSigned
	}
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return -1, ErrBadTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	ts := time.Unix(sec, 0)
	switch t := now(); {
	case ts.Before(t.Add(-tol)):
		return -1, ErrTooOld
	case ts.After(t.Add(tol)):
		return -1, ErrTooNew
	}
	var given [][]byte
	for _, f := range strings.Fields(sigs) {
		ver, b64, ok := strings.Cut(f, ",")
		if !ok || ver != "v1" {
			continue // another version, or noise: not ours to judge
		}
		if sig, err := base64.StdEncoding.DecodeString(b64); err == nil {
			given = append(given, sig)
		}
	}
	for i, k := range v.keys {
		want := mac(k, id, unix, body)
		for _, sig := range given {
			if hmac.Equal(sig, want) {
				return i, nil
			}
		}
	}
	return -1, ErrNoValidSignature
}

// SignedRequest is a POST of body to url signed with secret under id at
// ts, as the Forwarder sends it: for other packages' tests and for apps'
// own, so none of them copies the algorithm.
func SignedRequest(url, secret, id string, ts time.Time, body []byte) (*http.Request, error) {
	s, err := NewSigner(secret)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	s.Sign(req.Header, id, ts, body)
	return req, nil
}
