package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/forward"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// TestDemoApp checks the demo's app over loopback as the forwarder meets
// it: a delivery signed with its secret is taken (200, with how often
// its webhook-id came), a forged or unsigned one refused (401), the fail share
// answers 503, and its log never holds the secret.
func TestDemoApp(t *testing.T) {
	var logb bytes.Buffer
	var secrets []string
	start := func(t *testing.T, failRate float64) *demoApp {
		t.Helper()
		a, err := newDemoApp(slog.New(slog.NewTextHandler(&logb, nil)), 1, failRate)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.close)
		secrets = append(secrets, strings.TrimPrefix(a.Secret, forward.SecretPrefix))
		if !strings.HasPrefix(a.Secret, forward.SecretPrefix) || !strings.HasPrefix(a.URL, "http://127.0.0.1:") {
			t.Fatalf("demo app at %q with a secret that is not whsec_", a.URL)
		}
		return a
	}
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(t *testing.T, req *http.Request) (int, string) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	body := []byte(`{"internal_id":"crm-1","event":"status_changed","status":"ftd","timestamp":1773489540}`)

	t.Run("Signed", func(t *testing.T) {
		a := start(t, 0)
		for i := 1; i <= 2; i++ {
			req, err := forward.SignedRequest(a.URL, a.Secret, "cb_7", time.Now(), body)
			if err != nil {
				t.Fatal(err)
			}
			code, got := send(t, req)
			if want := fmt.Sprintf(`{"ok":true,"seen":%d}`, i); code != http.StatusOK || got != want {
				t.Fatalf("delivery %d: %d %s, want 200 with %s", i, code, got, want)
			}
		}
	})
	t.Run("Forged", func(t *testing.T) {
		a := start(t, 0)
		other, err := newDemoApp(slog.New(slog.DiscardHandler), 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		req, err := forward.SignedRequest(a.URL, other.Secret, "cb_8", time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		if code, got := send(t, req); code != http.StatusUnauthorized || !strings.Contains(got, "no valid webhook signature") {
			t.Fatalf("forged delivery: %d %s, want 401", code, got)
		}
		unsigned, _ := http.NewRequest(http.MethodPost, a.URL, bytes.NewReader(body))
		if code, _ := send(t, unsigned); code != http.StatusUnauthorized {
			t.Fatalf("unsigned delivery: %d, want 401", code)
		}
	})
	t.Run("Fails", func(t *testing.T) {
		a := start(t, 1)
		req, err := forward.SignedRequest(a.URL, a.Secret, "cb_9", time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := send(t, req); code != http.StatusServiceUnavailable {
			t.Fatalf("with fail rate 1: %d, want 503", code)
		}
	})
	if !strings.Contains(logb.String(), "demo app refused a delivery") {
		t.Fatalf("the refusals were not logged:\n%s", logb.String())
	}
	for _, s := range secrets {
		if strings.Contains(logb.String(), s) {
			t.Fatalf("the demo app logged its secret:\n%s", logb.String())
		}
	}
}

// TestDemoForwardsToItsApp: in the demo, a callback the listener stores
// reaches the demo app, signed so that it verifies, under webhook-id
// cb_<id>; the queue counts it delivered (through the demo app's 503s);
// and the log holds no forward secret.
func TestDemoForwardsToItsApp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo's listener, sandbox, forwarder and app")
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := newDemoWorld(ctx, env{getenv: func(string) string { return "" }}, filepath.Join(dir, "demo.db"), "", logf)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if w.app == nil {
		t.Fatal("the demo does not forward: its store has no forwarding")
	}
	runDone := make(chan error, 1)
	go func() { runDone <- w.svc.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	// The forwarder starts its cursor at the newest callback when it
	// starts: post after that, or the callback is history.
	poll.UntilWithin(t, 10*time.Second, "forwarding to start", func() bool {
		fs, err := w.db.ForwardStats(ctx)
		return err == nil && fs.Enabled
	})

	body, _ := json.Marshal(crm.CallbackBody{InternalID: "crm_walkin_t", Event: "status_changed", Status: "new", Timestamp: time.Now().Unix()})
	req, err := crm.NewSignedCallback("http://"+w.svc.ListenAddr()+w.cfg.Callbacks.Path, body, w.cfg.Callbacks.Secrets[0].Reveal(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the listener answered %d", resp.StatusCode)
	}
	cbs, err := w.db.Callbacks(ctx, crm.EventQuery{Filter: "crm_walkin_t", Limit: 1})
	if err != nil || len(cbs) != 1 {
		t.Fatalf("the callback was not stored: %v %v", cbs, err)
	}
	hook := fmt.Sprintf("cb_%d", cbs[0].ID)
	poll.UntilWithin(t, 30*time.Second, hook+" delivered to the demo app", func() bool {
		fs, err := w.db.ForwardStats(ctx)
		return err == nil && fs.Delivered >= 1 && w.app.deliveries(hook) >= 1
	})
	logb, _ := os.ReadFile(logf.Name())
	if strings.Contains(string(logb), strings.TrimPrefix(w.app.Secret, forward.SecretPrefix)) {
		t.Fatal("the log holds the forward secret")
	}
}
