package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
)

// TestPostgresStoppedMidRun stops the PostgreSQL server (pg_ctl stop -m
// immediate) under a running `leadwatch serve` that is sending leads and
// receiving callbacks: the listener answers 503 (health and callbacks), the
// sender backs off rather than failing leads (max_attempts is small, so a
// store error counted as an attempt would fail some), and when the server
// is started again on the same port both recover by themselves. Every
// callback answered 200 is in the store afterwards, exactly once.
func TestPostgresStoppedMidRun(t *testing.T) {
	c := startCluster(t, "")
	dsn := withPassword(t, c.database("lw", ""), testPassword)
	needPostgresBackend(t, dsn)
	sb := sandbox.StartTest(t, sandbox.Config{Latency: time.Millisecond})
	dir := t.TempDir()
	// rate_limit spreads the sending over the outage; max_attempts = 3
	// would fail leads whose store errors were counted as attempts.
	cfgPath := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[crm]
timeout = "1s"
concurrency = 8
rate_limit = 150.0
[retry]
max_attempts = 3
base_delay = "50ms"
max_delay = "500ms"
[callbacks]
drain = "0s"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	envVars := map[string]string{
		"CARTELCRM_BASE_URL":    sb.URL,
		"CARTELCRM_API_KEY":     sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET": sandbox.TestHMACSecret,
		"CALLBACK_SECRET":       sandbox.TestCallbackSecret,
		"LEADWATCH_DB":          dsn,
	}
	var procEnv []string
	for k, v := range envVars {
		procEnv = append(procEnv, k+"="+v)
	}
	const n = 1000
	code, out, errOut := runCLI(t, envVars, "", "submit", writeLeads(t, dir, "out", n))
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s\n%s", code, out, errOut)
	}
	db, err := postgres.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	in := newServeProc(t, "serve", procEnv, "--config", cfgPath)
	in.start()

	// One callback after another, each answer recorded, until stopped.
	var mu sync.Mutex
	codes := map[int]int{} // event -> its status code
	byCode := map[int]int{}
	stopCB := make(chan struct{})
	cbDone := make(chan struct{})
	go func() {
		defer close(cbDone)
		rate := time.NewTicker(2 * time.Millisecond) // a load, paced: at most 500 callbacks/s
		defer rate.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopCB:
				return
			case <-rate.C:
			}
			c := signedPost(t, in.addr, callbackBody("out", i))
			mu.Lock()
			codes[i] = c
			byCode[c]++
			mu.Unlock()
		}
	}()
	count := func(code int) int {
		mu.Lock()
		defer mu.Unlock()
		return byCode[code]
	}

	poll.UntilWithin(t, 20*time.Second, "some leads final and callbacks stored before the outage", func() bool {
		return finalCount(t, db) >= 100 && count(200) >= 20
	})
	before := finalCount(t, db)
	if before == n {
		t.Fatal("every lead was sent before the outage: the test proves nothing (lower rate_limit)")
	}
	logBefore := len(in.stderr.String())
	c.kill()
	t.Logf("server stopped with %d/%d final", before, n)
	poll.UntilWithin(t, 20*time.Second, "/healthz 503 and callbacks refused 503", func() bool {
		return healthStatus(in.addr) == 503 && count(503) >= 5
	})
	// The sender, too, has met the outage (it logs store errors).
	poll.UntilWithin(t, 20*time.Second, "serve to log the store's errors", func() bool {
		return strings.Contains(in.stderr.String()[logBefore:], "level=ERROR") ||
			strings.Contains(in.stderr.String()[logBefore:], "level=WARN")
	})
	// Backing off, not spinning: while the server is down, serve uses
	// a small share of a core (the callbacks it refuses included).
	cpu0, wall0 := in.cpuTime(), time.Now()
	poll.UntilWithin(t, 10*time.Second, "a second of the outage to pass", func() bool { return time.Since(wall0) >= time.Second })
	if share := float64(in.cpuTime()-cpu0) / float64(time.Since(wall0)); share > 0.5 {
		t.Errorf("serve used %.0f%% of a core while the database was down: is something retrying without a pause?", 100*share)
	} else {
		t.Logf("serve used %.0f%% of a core while the database was down", 100*share)
	}
	acked503 := count(200)
	c.resume()
	t.Log("server started again")
	poll.UntilWithin(t, 30*time.Second, "/healthz 200 again", func() bool { return healthStatus(in.addr) == 200 })
	poll.UntilWithin(t, 60*time.Second, "every lead final after the outage", func() bool { return finalCount(t, db) == n })
	poll.UntilWithin(t, 20*time.Second, "callbacks acknowledged again", func() bool { return count(200) >= acked503+20 })
	close(stopCB)
	<-cbDone
	in.stop()
	noPassword(t, "serve's log", in.stderr.String())

	failed := 0
	if err := db.ExportLeads(context.Background(), func(l crm.Lead) error {
		if l.State != crm.StateAccepted {
			if failed++; failed <= 5 {
				t.Errorf("%s ended %s: %s", l.ExternalID, l.State, l.Reason)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := sb.Sandbox.Stats(); st.LeadsCreatedPerExternalIDMax != 1 || st.KeysPerExternalIDMax != 1 {
		t.Errorf("the CRM created up to %d per external_id under up to %d keys", st.LeadsCreatedPerExternalIDMax, st.KeysPerExternalIDMax)
	}
	stored := storedCallbacks(t, db)
	for i, code := range codes {
		id := fmt.Sprintf("out-%d", i)
		if code == 200 && stored[id] != 1 {
			t.Errorf("callback %s answered 200 and is stored %d times", id, stored[id])
		}
		if stored[id] > 1 {
			t.Errorf("callback %s stored %d times", id, stored[id])
		}
	}
	t.Logf("callbacks: %d answered 200, %d 503, %d no answer; serve logged %d lines", byCode[200], byCode[503], byCode[0],
		strings.Count(in.stderr.String(), "\n"))
	if testing.Verbose() {
		t.Logf("serve's log:\n%s", tail(in.stderr.String(), 4000))
	}
}
