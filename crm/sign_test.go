package crm

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSignMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (.ci/run installs it)")
	}
	bodies := map[string][]byte{
		"Seed":    []byte(`{"phone":"+380501234567"}`),
		"Unicode": []byte(`{"first_name":"Олена","note":"日本語 ✓ \u00e9"}`),
		"Empty":   {},
		"Binary":  {0, 1, 2, 255, '\n', '\r'},
		"OneMiB":  bytes.Repeat([]byte("0123456789abcdef"), 1<<16),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			secret := "test_secret"
			cmd := exec.Command(openssl, "dgst", "-sha256", "-hmac", secret)
			cmd.Stdin = bytes.NewReader(body)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl: %v", err)
			}
			// "SHA2-256(stdin)= <hex>" or "(stdin)= <hex>" by version.
			f := strings.Fields(string(out))
			want := f[len(f)-1]
			if got := Digest([]byte(secret), body); got != want {
				t.Fatalf("Digest = %s, openssl = %s", got, want)
			}
			if got := Sign([]byte(secret), body); got != "sha256="+want {
				t.Fatalf("Sign = %s", got)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"internal_id":"c1","event":"status_changed","timestamp":1764200000}`)
	old, cur := []byte("old-secret"), []byte("new-secret")
	good := Digest(cur, body)
	tests := []struct {
		name    string
		header  string
		secrets [][]byte
		idx     int
		err     error
	}{
		{"Prefixed", "sha256=" + good, [][]byte{cur}, 0, nil},
		{"BareHex", good, [][]byte{cur}, 0, nil},
		{"UpperHex", "sha256=" + strings.ToUpper(good), [][]byte{cur}, 0, nil},
		{"RotatedSecond", "sha256=" + good, [][]byte{old, cur}, 1, nil},
		{"Missing", "", [][]byte{cur}, -1, ErrNoSignature},
		{"EmptyHex", "sha256=", [][]byte{cur}, -1, ErrMalformedSignature},
		{"OddHex", "sha256=" + good[:63], [][]byte{cur}, -1, ErrMalformedSignature},
		{"NotHex", "sha256=" + strings.Repeat("zz", 32), [][]byte{cur}, -1, ErrMalformedSignature},
		{"ShortHex", "sha256=abcd", [][]byte{cur}, -1, ErrMalformedSignature},
		{"OtherBody", Sign(cur, []byte(`{}`)), [][]byte{cur}, -1, ErrNoValidSignature},
		{"WrongSecret", "sha256=" + good, [][]byte{old}, -1, ErrNoValidSignature},
		{"NoSecrets", "sha256=" + good, nil, -1, ErrNoValidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := VerifySignature(tt.header, body, tt.secrets)
			if !errors.Is(err, tt.err) || idx != tt.idx {
				t.Fatalf("VerifySignature = %d, %v; want %d, %v", idx, err, tt.idx, tt.err)
			}
		})
	}
}

func TestCheckTimestamp(t *testing.T) {
	now := time.Unix(1_764_200_000, 0)
	tests := []struct {
		name   string
		header string
		skew   time.Duration
		err    error
	}{
		{"Now", "1764200000", 0, nil},
		{"EdgePast", "1764199700", 300 * time.Second, nil},
		{"EdgeFuture", "1764200300", -300 * time.Second, nil},
		{"Stale", "1764199699", 301 * time.Second, ErrTimestampOutOfRange},
		{"Future", "1764200301", -301 * time.Second, ErrTimestampOutOfRange},
		{"Missing", "", 0, ErrNoTimestamp},
		{"Float", "1764200000.5", 0, ErrBadTimestamp},
		{"Exponent", "1e9", 0, ErrBadTimestamp},
		{"Negative", "-1", 1_764_200_001 * time.Second, ErrTimestampOutOfRange},
		{"Huge", "99999999999999999999", 0, ErrBadTimestamp},
		{"MaxInt", "9223372036854775807", 0, ErrTimestampOutOfRange},
		{"MinInt", "-9223372036854775808", 0, ErrTimestampOutOfRange},
		{"Words", "yesterday", 0, ErrBadTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skew, err := CheckTimestamp(tt.header, now, DefaultTolerance)
			if !errors.Is(err, tt.err) || skew != tt.skew {
				t.Fatalf("CheckTimestamp(%q) = %v, %v; want %v, %v", tt.header, skew, err, tt.skew, tt.err)
			}
		})
	}
}

func TestNewSignedCallbackVerifies(t *testing.T) {
	body := []byte(`{"b":1,  "a":"ü"}`)
	now := time.Now()
	req, err := NewSignedCallback("http://127.0.0.1/cb", body, []byte("s"), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySignature(req.Header.Get(HeaderSignature), body, [][]byte{[]byte("s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckTimestamp(req.Header.Get(HeaderTimestamp), now, DefaultTolerance); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSign1KiB(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	secret := []byte("bench-secret")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(secret, body)
	}
}

func BenchmarkVerify1KiB(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	secret := []byte("bench-secret")
	sig := Sign(secret, body)
	secrets := [][]byte{secret}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifySignature(sig, body, secrets); err != nil {
			b.Fatal(err)
		}
	}
}
