package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// dpConfig writes a complete serve configuration (CRM settings of
// crmURL, the given callback secrets, store db, callbacks.drain) plus
// extra TOML lines of [callbacks], mode 0600, and returns its path.
func dpConfig(t *testing.T, path, crmURL, db, drain string, secrets []string, extra ...string) string {
	t.Helper()
	quoted := make([]string, len(secrets))
	for i, s := range secrets {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	data := fmt.Sprintf("[crm]\nbase_url = %q\napi_key = %q\nhmac_secret = %q\n\n[callbacks]\nsecrets = [%s]\ndrain = %q\n%s\n[store]\npath = %q\n",
		crmURL, sandbox.TestAPIKey, sandbox.TestHMACSecret, strings.Join(quoted, ", "), drain, strings.Join(extra, "\n"), db)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dpStart runs the binary's serve with cfg on a free loopback
// port and returns it, its address and its stderr, read continuously.
func dpStart(t *testing.T, cfg string, args ...string) (*dpProcess, string) {
	t.Helper()
	cmd, stderr, _ := startProcess(t, nil, true, append([]string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, args...)...)
	p := &dpProcess{cmd: cmd, log: &logtest.Buffer{}}
	go io.Copy(p.log, stderr) //nolint:errcheck // ends with the process
	re := regexp.MustCompile(`leadwatch serving"? listen=(127\.0\.0\.1:\d+)`)
	var addr string
	poll.UntilWithin(t, 20*time.Second, "serve to start", func() bool {
		if m := re.FindStringSubmatch(p.log.String()); m != nil {
			addr = m[1]
			return true
		}
		return p.exited()
	})
	if addr == "" {
		t.Fatalf("serve did not start:\n%s", p.log)
	}
	return p, addr
}

// dpProcess is a running serve and its log.
type dpProcess struct {
	cmd *exec.Cmd
	log *logtest.Buffer
}

func (p *dpProcess) exited() bool { return p.cmd.ProcessState != nil }

func (p *dpProcess) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// get answers GET url's status and body ("" and 0 when it failed).
func dpGet(url string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// dpCallback posts a callback for internal id n signed with secret and
// returns the status (0 when the request failed).
func dpCallback(url string, n int, secret string) int {
	body := fmt.Appendf(nil, `{"internal_id":"crm-%d","event":"status_changed","status":"ftd","timestamp":%d}`, n, 1764200000+n)
	req, err := crm.NewSignedCallback(url, body, []byte(secret), time.Now())
	if err != nil {
		return 0
	}
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck
	res.Body.Close()
	return res.StatusCode
}

// TestServeDrainsOnSIGTERM: after SIGTERM, /healthz answers 503 "draining"
// during callbacks.drain while a callback is still stored and answered
// 200; then serve stops accepting and exits 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("process test in -short")
	}
	sb := sandbox.StartTest(t, sandbox.Config{})
	dir := t.TempDir()
	db := filepath.Join(dir, "drain.db")
	cfg := dpConfig(t, filepath.Join(dir, "c.toml"), sb.URL, db, "3s", []string{sandbox.TestCallbackSecret})
	p, addr := dpStart(t, cfg)
	base := "http://" + addr
	if code, _ := dpGet(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz before SIGTERM: %d", code)
	}
	p.signal(t, syscall.SIGTERM)
	var body string
	poll.UntilWithin(t, 3*time.Second, "/healthz to fail with draining", func() bool {
		var code int
		code, body = dpGet(base + "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, `"reason":"draining"`) {
		t.Errorf("healthz while draining: %s", body)
	}
	if code := dpCallback(base+"/cartelcrm/callback", 1, sandbox.TestCallbackSecret); code != http.StatusOK {
		t.Fatalf("callback during the drain: %d\n%s", code, p.log)
	}
	if err := waitExit(t, p.cmd, 20*time.Second); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, p.log)
	}
	for _, want := range []string{"draining", "drained", "leadwatch stopped"} {
		if !strings.Contains(p.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.log)
		}
	}
	st := storetest.OpenPath(t, db, store.Options{})
	evs, err := st.CallbacksAfter(context.Background(), 0, 10)
	if err != nil || len(evs) != 1 || evs[0].InternalID != "crm-1" {
		t.Fatalf("stored callbacks %+v %v", evs, err)
	}
	noSecrets(t, p.log.String())
}

// TestServeReloadsOnSIGHUP: rotating callbacks.secrets in the file and
// sending SIGHUP makes the new secret verify without a restart; a reload
// of a broken file is logged and changes nothing.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("process test in -short")
	}
	sb := sandbox.StartTest(t, sandbox.Config{})
	dir := t.TempDir()
	db := filepath.Join(dir, "hup.db")
	cfgPath := filepath.Join(dir, "c.toml")
	const oldSecret, newSecret = "cb-old-rotating-1", "cb-new-rotating-2"
	dpConfig(t, cfgPath, sb.URL, db, "0s", []string{oldSecret})
	p, addr := dpStart(t, cfgPath)
	url := "http://" + addr + "/cartelcrm/callback"
	if code := dpCallback(url, 1, oldSecret); code != http.StatusOK {
		t.Fatalf("old secret before rotation: %d", code)
	}
	if code := dpCallback(url, 2, newSecret); code != http.StatusForbidden {
		t.Fatalf("new secret before rotation: %d", code)
	}

	dpConfig(t, cfgPath, sb.URL, db, "0s", []string{newSecret})
	p.signal(t, syscall.SIGHUP)
	poll.Until(t, "the reload to be logged", func() bool { return strings.Contains(p.log.String(), "reloaded") })
	if code := dpCallback(url, 3, newSecret); code != http.StatusOK {
		t.Errorf("new secret after SIGHUP: %d\n%s", code, p.log)
	}
	if code := dpCallback(url, 4, oldSecret); code != http.StatusForbidden {
		t.Errorf("old secret after SIGHUP: %d", code)
	}

	// A broken file: the error is logged, the secrets in use stay.
	if err := os.WriteFile(cfgPath, []byte("[callbacks]\nsecrets = [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	poll.Until(t, "the failed reload to be logged", func() bool { return strings.Contains(p.log.String(), "reload failed") })
	if code := dpCallback(url, 5, newSecret); code != http.StatusOK {
		t.Errorf("secret in use after a failed reload: %d", code)
	}
	if p.exited() {
		t.Fatalf("serve exited on a bad reload:\n%s", p.log)
	}
	p.signal(t, syscall.SIGTERM)
	if err := waitExit(t, p.cmd, 20*time.Second); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, p.log)
	}
	for _, s := range []string{oldSecret, newSecret} {
		if strings.Contains(p.log.String(), s) {
			t.Errorf("secret %q logged", s)
		}
	}
	noSecrets(t, p.log.String())
}

// TestServeRefusesNewerSchema: an instance older than the database (a
// rolling upgrade's old instance meeting the migrated schema) stops at
// once with a message that says to upgrade leadwatch.
func TestServeRefusesNewerSchema(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	db := envVars["LEADWATCH_DB"]
	st := storetest.OpenPath(t, db, store.Options{})
	st.Close()
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ((SELECT MAX(version) FROM schema_migrations) + 1, 'from_the_future', 0)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, _, stderr := runCLI(t, envVars, "", "serve", "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "upgrade leadwatch") || !strings.Contains(stderr, "older than its database") {
		t.Fatalf("serve on a newer schema: exit %d, stderr %q", code, stderr)
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
		t.Errorf("want one line, got %d:\n%s", n+1, stderr)
	}
}

// TestServeTLSNeedsBoth: tls_cert without tls_key (or the reverse) is a
// configuration error naming the missing key, before anything starts.
func TestServeTLSNeedsBoth(t *testing.T) {
	envVars, sb := cliEnv(t, sandbox.Config{})
	dir := t.TempDir()
	for _, tc := range []struct{ line, want string }{
		{`tls_cert = "c.pem"`, "callbacks.tls_key is not"},
		{`tls_key = "k.pem"`, "callbacks.tls_cert is not"},
	} {
		cfg := dpConfig(t, filepath.Join(dir, "c.toml"), sb.URL, envVars["LEADWATCH_DB"], "0s", []string{"s"}, tc.line)
		code, _, stderr := runCLI(t, map[string]string{}, "", "serve", "--config", cfg, "--listen", "127.0.0.1:0")
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q", tc.line, code, stderr)
		}
	}
}

// TestServeTLS: with callbacks.tls_cert and tls_key, serve's listener
// speaks HTTPS: a client trusting the certificate gets /healthz and a
// signed callback answered, plain HTTP is not served, the key is never
// logged.
func TestServeTLS(t *testing.T) {
	envVars, _ := cliEnv(t, sandbox.Config{})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := x509.NewCertPool()
	pool.AddCert(dpSelfSigned(t, certFile, keyFile))
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[callbacks]\ndrain = \"0s\"\ntls_cert = %q\ntls_key = %q\n", certFile, keyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, env{
			stdin: strings.NewReader(""), stdout: stderr, stderr: stderr,
			getenv: func(k string) string { return envVars[k] },
		})
	}()
	re := regexp.MustCompile(`leadwatch serving"? listen=(127\.0\.0\.1:\d+) scheme=https`)
	var addr string
	poll.Until(t, "serve to start with TLS", func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("https healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("https healthz: %d", res.StatusCode)
	}
	body := []byte(`{"internal_id":"crm-tls","event":"status_changed","status":"ftd","timestamp":1764200000}`)
	req, _ := crm.NewSignedCallback("https://"+addr+"/cartelcrm/callback", body, []byte(sandbox.TestCallbackSecret), time.Now())
	res, err = client.Do(req)
	if err != nil {
		t.Fatalf("https callback: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("https callback: %d", res.StatusCode)
	}
	if code, _ := dpGet("http://" + addr + "/healthz"); code == http.StatusOK {
		t.Error("plain HTTP answered on the TLS listener")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
	key, _ := os.ReadFile(keyFile)
	if strings.Contains(stderr.String(), strings.Split(string(key), "\n")[1]) {
		t.Error("the TLS key was logged")
	}
	noSecrets(t, stderr.String())
}

// dpSelfSigned writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files and returns the certificate.
func dpSelfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "leadwatch serve test"},
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
