package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestBehindHAProxy starts HAProxy (tools/haproxy/run.sh) in front of two
// serve instances sharing one store, sends callbacks through it without
// pause, and stops one instance with SIGTERM: HAProxy's /healthz checks
// take it out during its drain, so every callback is still answered 200
// (by either instance) and stored once. PostgreSQL is the real case;
// SQLite (two processes on one file, one host) runs without a server.
func TestBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("process test in -short")
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (Debian: apt-get install haproxy)")
	}
	t.Run("postgres", func(t *testing.T) { behindHAProxy(t, storetest.Postgres(t)) })
	t.Run("sqlite", func(t *testing.T) { behindHAProxy(t, filepath.Join(t.TempDir(), "shared.db")) })
}

func behindHAProxy(t *testing.T, db string) {
	sb := sandbox.StartTest(t, sandbox.Config{})
	dir := t.TempDir()
	cfg := dpConfig(t, filepath.Join(dir, "c.toml"), sb.URL, db, "2s", []string{sandbox.TestCallbackSecret},
		`trusted_proxies = ["127.0.0.1"]`)
	a, addrA := dpStart(t, cfg)
	b, addrB := dpStart(t, cfg)

	front := dpFreeAddr(t)
	hap := exec.Command("tools/haproxy/run.sh", front, addrA, addrB)
	hap.Env = append(hap.Environ(), "INTER=200ms", "FALL=2", "RISE=1", "CFG="+filepath.Join(dir, "haproxy.cfg"))
	hapLog := &logtest.Buffer{}
	hap.Stdout, hap.Stderr = hapLog, hapLog
	if err := hap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hap.Process.Kill()
		hap.Wait()
		if t.Failed() {
			t.Logf("instance A:\n%s\ninstance B:\n%s\nhaproxy:\n%s", a.log, b.log, hapLog)
		}
	})
	url := "http://" + front + "/cartelcrm/callback"
	poll.UntilWithin(t, 20*time.Second, "HAProxy to forward callbacks", func() bool {
		return dpCallback(url, 0, sandbox.TestCallbackSecret) == http.StatusOK
	})

	// The senders: four streams of callbacks through HAProxy, each one
	// after another as the CRM sends them, counting the answers. Numbers
	// 1..sent are each sent once.
	const streams = 4
	var (
		mu      sync.Mutex
		next    = 1
		sent    int
		ok      int
		bad     []string
		stop    = make(chan struct{})
		stopped sync.WaitGroup
	)
	for range streams {
		stopped.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				code := dpCallback(url, n, sandbox.TestCallbackSecret)
				mu.Lock()
				sent++
				if code == http.StatusOK {
					ok++
				} else {
					bad = append(bad, fmt.Sprintf("callback %d: status %d", n, code))
				}
				mu.Unlock()
			}
		})
	}
	okCount := func() int { mu.Lock(); defer mu.Unlock(); return ok }
	poll.Until(t, "callbacks to flow", func() bool { return okCount() >= 20 })

	a.signal(t, syscall.SIGTERM)
	if err := waitExit(t, a.cmd, 30*time.Second); err != nil {
		t.Fatalf("instance A exit: %v\n%s", err, a.log)
	}
	after := okCount()
	poll.Until(t, "callbacks to flow to B alone", func() bool { return okCount() >= after+20 })
	close(stop)
	stopped.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d of %d callbacks not answered 200 while A stopped: %v\nhaproxy:\n%s", len(bad), sent, bad, hapLog)
	}
	// HAProxy's check took A out while it drained (a failed /healthz, a
	// layer-7 reason), not after it had gone (connection refused).
	if !strings.Contains(hapLog.String(), "leadwatch1 is DOWN, reason: Layer7 wrong status") {
		t.Errorf("HAProxy did not take A out on /healthz:\n%s", hapLog)
	}
	st, err := openStore(context.Background(), config.Config{Store: config.Store{Path: db}}, store.Options{Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.CallbacksAfter(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	// Callback 0 was the readiness probe; n = 1..sent were sent once each.
	if len(evs) != sent+1 {
		t.Errorf("stored %d callbacks, want %d (every one answered, stored once)", len(evs), sent+1)
	}

	// A refusal through HAProxy, a trusted proxy: its client address comes
	// from X-Forwarded-For (the test's own loopback address, no port), not
	// from HAProxy's connection (address and port).
	if code := dpCallback(url, sent+1, "not-the-secret"); code != http.StatusForbidden {
		t.Fatalf("badly signed callback through HAProxy: %d", code)
	}
	var refusals []crm.Refusal
	poll.Until(t, "the refusal to be stored", func() bool {
		refusals, err = st.Refusals(context.Background(), crm.EventQuery{Limit: 10})
		return err == nil && len(refusals) > 0
	})
	if got := refusals[0].RemoteAddr; got != "127.0.0.1" {
		t.Errorf("refusal through HAProxy from %q, want the forwarded client 127.0.0.1", got)
	}
	t.Logf("%d callbacks through HAProxy, %d answered 200, instance A stopped after %d", sent, ok, after)
}

// dpFreeAddr is a loopback address with a port free a moment ago.
func dpFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
