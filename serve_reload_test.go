package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm/sandbox"
)

// TestReloadSwapsCRMSettings: services.Reload points the sender at a new
// CRM URL with a new API key and HMAC secret; a configuration missing one
// of them, or one turning TLS on, is refused and changes nothing.
func TestReloadSwapsCRMSettings(t *testing.T) {
	sbA := sandbox.StartTest(t, sandbox.Config{})
	sbB := sandbox.StartTest(t, sandbox.Config{APIKey: "rotated-api-key", HMACSecret: []byte("rotated-hmac")})
	cfg := config.Default()
	cfg.CRM.BaseURL, cfg.CRM.APIKey, cfg.CRM.HMACSecret = sbA.URL, sandbox.TestAPIKey, sandbox.TestHMACSecret
	cfg.Callbacks.Secrets = []config.Secret{"cb"}
	client, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sender := newSwapSender(client)
	svc := &services{}
	// A new lead each time: the sandbox answers 409 to a repeated
	// external_id or phone.
	n := 0
	submit := func(ext string) int {
		n++
		lead := fmt.Appendf(nil, `{"external_id":%q,"phone":"+3805012345%02d","country":"UA"}`, ext, n)
		return sender.Submit(context.Background(), lead, "key-"+ext).StatusCode
	}
	if code := submit("k-1"); code/100 != 2 {
		t.Fatalf("before reload: %d", code)
	}

	rotated := cfg
	rotated.CRM.BaseURL, rotated.CRM.APIKey, rotated.CRM.HMACSecret = sbB.URL, "rotated-api-key", "rotated-hmac"
	if err := svc.Reload(rotated, sender); err != nil {
		t.Fatal(err)
	}
	if code := submit("k-2"); code/100 != 2 {
		t.Fatalf("after reload to the rotated CRM: %d", code)
	}

	broken := rotated
	broken.CRM.APIKey = ""
	if err := svc.Reload(broken, sender); err == nil || !strings.Contains(err.Error(), "crm.api_key") {
		t.Fatalf("reload without an API key: %v", err)
	}
	tlsOn := rotated
	tlsOn.CRM.BaseURL = sbA.URL
	tlsOn.Callbacks.TLSCert, tlsOn.Callbacks.TLSKey = "c.pem", "k.pem"
	if err := svc.Reload(tlsOn, sender); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload turning TLS on: %v", err)
	}
	// Neither refused reload changed the client: still the rotated CRM
	// (sandbox A would answer the rotated key 401).
	if code := submit("k-3"); code/100 != 2 {
		t.Fatalf("after refused reloads: %d (want the rotated CRM still)", code)
	}
}
