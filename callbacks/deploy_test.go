package callbacks_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// TestRefusalBehindTrustedProxy: from a trusted proxy, a refusal names the
// forwarded client and leaves the proxy's pooled connection open; from any
// other peer, X-Forwarded-For is ignored and the connection is closed.
func TestRefusalBehindTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		wantIP  string // "" means the loopback peer itself
		close   bool
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9", false},
		{"untrusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newFakeSink()
			srv, _ := newTestListener(t, sink, func(c *callbacks.Config) { c.TrustedProxies = tc.trusted })
			body := callbackBody(1, "status_changed")
			hdr := withSig(func([]byte) []string { return []string{"sha256=" + strings.Repeat("0", 64)} })(body)
			hdr["X-Forwarded-For"] = []string{"198.51.100.1, 203.0.113.9"}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+callbacks.DefaultPath, strings.NewReader(string(body)))
			for k, v := range hdr {
				req.Header[k] = v
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", res.StatusCode)
			}
			if res.Close != tc.close {
				t.Errorf("connection closed = %v, want %v", res.Close, tc.close)
			}
			var got []string
			poll.Until(t, "the refusal to be stored", func() bool {
				for _, r := range sink.refusalList() {
					got = append(got, r.RemoteAddr)
				}
				return len(got) > 0
			})
			want := tc.wantIP
			if want == "" {
				if host, _, err := net.SplitHostPort(got[0]); err != nil || host != "127.0.0.1" {
					t.Errorf("refusal from %q, want the loopback peer", got[0])
				}
			} else if got[0] != want {
				t.Errorf("refusal from %q, want %q", got[0], want)
			}
		})
	}
}

// TestDrainingHealth: while draining, /healthz answers 503 "draining" and
// callbacks are still stored and answered 200.
func TestDrainingHealth(t *testing.T) {
	sink := newFakeSink()
	srv, h := newTestListener(t, sink, nil)
	if r := do(t, srv.Client(), mustGet(t, srv.URL+callbacks.HealthPath)); r.status != http.StatusOK {
		t.Fatalf("healthz before draining: %d", r.status)
	}
	h.SetDraining(true)
	r := do(t, srv.Client(), mustGet(t, srv.URL+callbacks.HealthPath))
	if r.status != http.StatusServiceUnavailable || r.body != `{"ok":false,"error":"unavailable","reason":"draining"}` {
		t.Fatalf("healthz while draining: %d %s", r.status, r.body)
	}
	if r := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(7, "status_changed"), testSecrets[0]); r.status != http.StatusOK || r.body != wantOK {
		t.Fatalf("callback while draining: %d %s", r.status, r.body)
	}
	if _, ok := sink.event(dedupKey(7, "status_changed")); !ok {
		t.Error("callback answered 200 while draining was not stored")
	}
	h.SetDraining(false)
	if r := do(t, srv.Client(), mustGet(t, srv.URL+callbacks.HealthPath)); r.status != http.StatusOK {
		t.Errorf("healthz after draining ended: %d", r.status)
	}
}

// TestSetSecrets: after a rotation the new secret verifies and the old one
// no longer does; an empty list changes nothing.
func TestSetSecrets(t *testing.T) {
	sink := newFakeSink()
	srv, h := newTestListener(t, sink, nil)
	url := srv.URL + callbacks.DefaultPath
	fresh := []byte("rotated-secret")
	if r := postSigned(t, srv.Client(), url, callbackBody(1, "e"), fresh); r.status != http.StatusForbidden {
		t.Fatalf("unknown secret before rotation: %d", r.status)
	}
	if err := h.SetSecrets(nil); err == nil {
		t.Fatal("SetSecrets(nil) accepted")
	}
	if err := h.SetSecrets([][]byte{fresh, {}}); err == nil {
		t.Fatal("an empty secret accepted")
	}
	if r := postSigned(t, srv.Client(), url, callbackBody(2, "e"), testSecrets[0]); r.status != http.StatusOK {
		t.Fatalf("a failed SetSecrets changed the secrets: %d", r.status)
	}
	if err := h.SetSecrets([][]byte{fresh}); err != nil {
		t.Fatal(err)
	}
	if r := postSigned(t, srv.Client(), url, callbackBody(3, "e"), fresh); r.status != http.StatusOK {
		t.Errorf("new secret after rotation: %d %s", r.status, r.body)
	}
	if r := postSigned(t, srv.Client(), url, callbackBody(4, "e"), testSecrets[0]); r.status != http.StatusForbidden {
		t.Errorf("old secret after rotation: %d", r.status)
	}
}

// TestTLSListener: with a certificate, the limited listener speaks HTTPS to
// a client trusting it, a renewed certificate is served after Reload, and
// the connection limiter still sees TLS connections go idle (so at the cap
// it closes the idle one at once rather than waiting for a silent one).
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := x509.NewCertPool()
	pool.AddCert(writeSelfSigned(t, certFile, keyFile, 1))

	if _, err := callbacks.LoadCertFiles(certFile, filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing key: %v", err)
	}
	certs, err := callbacks.LoadCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Now: nowFunc}, newFakeSink())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// One slot, and a silent grace no test waits for: only an idle
	// connection can be closed to admit the next.
	lim := callbacks.NewConnLimiter(1, time.Hour)
	srv := callbacks.NewServer(ln.Addr().String(), h, callbacks.WithConnLimiter(lim))
	go srv.Serve(certs.TLSListener(lim.Listener(ln)))
	t.Cleanup(func() { srv.Close(); h.Close() })

	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	}
	url := "https://" + ln.Addr().String() + callbacks.DefaultPath
	first := client()
	if r := postSigned(t, first, url, callbackBody(1, "e"), testSecrets[0]); r.status != http.StatusOK {
		t.Fatalf("callback over TLS: %d %s", r.status, r.body)
	}
	// first's connection is now idle, kept alive; a second client needs
	// its slot.
	second := client()
	if r := postSigned(t, second, url, callbackBody(2, "e"), testSecrets[0]); r.status != http.StatusOK {
		t.Fatalf("second client at the cap: %d %s", r.status, r.body)
	}
	if lim.Evicted() != 1 {
		t.Errorf("evicted %d connections, want the idle TLS one", lim.Evicted())
	}

	// Renew: a new serial in the same files.
	pool.AddCert(writeSelfSigned(t, certFile, keyFile, 2))
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if s := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); s != 2 {
		t.Errorf("served serial %d after Reload, want 2", s)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(); err == nil {
		t.Error("Reload of a broken key succeeded")
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with the
// given serial, and its key, as PEM files, and returns the certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "leadwatch test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
