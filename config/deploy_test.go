package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeployKeys: callbacks.drain, trusted_proxies and tls_cert/tls_key
// load from TOML, and Validate names what is wrong with each.
func TestDeployKeys(t *testing.T) {
	if d := Default().Callbacks.Drain.D(); d != 5*time.Second {
		t.Errorf("default drain %s, want 5s", d)
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	data := "[callbacks]\ndrain = \"1s\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::1\"]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	if _, err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if c.Callbacks.Drain.D() != time.Second || c.Callbacks.TLSCert != "c.pem" || c.Callbacks.TLSKey != "k.pem" {
		t.Errorf("loaded %+v", c.Callbacks)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::1/128")}
	got := c.TrustedProxyPrefixes()
	if len(got) != len(want) {
		t.Fatalf("prefixes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("prefix %d = %v, want %v", i, got[i], want[i])
		}
	}

	base := Default()
	base.CRM.BaseURL, base.CRM.APIKey, base.CRM.HMACSecret = "http://x", "k", "h"
	base.Callbacks.Secrets = []Secret{"s"}
	for _, tt := range []struct {
		set  func(*Config)
		want string // "" means valid
	}{
		{func(c *Config) { c.Callbacks.Drain = 0 }, ""},
		{func(c *Config) { c.Callbacks.Drain = Duration(-time.Second) }, "callbacks.drain must not be negative"},
		{func(c *Config) { c.Callbacks.TrustedProxies = []string{"10.0.0.1", "proxy.example"} }, `callbacks.trusted_proxies: "proxy.example" is neither`},
		{func(c *Config) { c.Callbacks.TrustedProxies = []string{"10.0.0.0/33"} }, `"10.0.0.0/33"`},
		{func(c *Config) { c.Callbacks.TLSCert = "c.pem" }, "callbacks.tls_cert is set but callbacks.tls_key is not"},
		{func(c *Config) { c.Callbacks.TLSKey = "k.pem" }, "callbacks.tls_key is set but callbacks.tls_cert is not"},
		{func(c *Config) { c.Callbacks.TLSCert, c.Callbacks.TLSKey = "c.pem", "k.pem" }, ""},
	} {
		c := base
		tt.set(&c)
		err := c.Validate(NeedSender | NeedListener)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("valid config refused: %v", err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate = %v, want mention of %q", err, tt.want)
		}
	}
}
