package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestOutboxSurvivesKill9 is durability rule 3 with real processes:
// `leadwatch serve` sends 2,000 leads to the sandbox (injected 503s, 429s
// and dropped connections) and is killed with SIGKILL at random moments,
// several times, then restarted until every lead is final. Nothing may be
// lost, nothing created twice at the CRM, no lead sent under two keys.
func TestOutboxSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test in -short")
	}
	bin := leadwatchBinary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))

	sb := sandbox.StartTest(t, sandbox.Config{
		Seed:     int64(seed),
		FailRate: 0.10, ThrottleRate: 0.05, RetryAfter: time.Second, DropRate: 0.03,
		Latency: time.Millisecond,
	})

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "crash.db")
	cfgPath := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[crm]
timeout = "2s"
concurrency = 32
[retry]
max_attempts = 100
base_delay = "20ms"
max_delay = "300ms"
rate_limited_delay = "1s"
[callbacks]
listen = "127.0.0.1:0"
`), 0o600); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	db := storetest.OpenPath(t, dbPath, store.Options{})
	payloads := make([][]byte, n)
	ids := make([]string, n)
	for i := range payloads {
		ids[i] = fmt.Sprintf("k9-%04d", i)
		payloads[i] = []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+3805%08d","country":"UA"}`, ids[i], i))
	}
	if _, errs, err := db.EnqueueBatch(context.Background(), payloads, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	} else {
		for i, e := range errs {
			if e != nil {
				t.Fatalf("enqueue %s: %v", ids[i], e)
			}
		}
	}
	keys := map[string]string{}
	for _, id := range ids {
		l, err := db.Lead(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = l.IdempotencyKey
	}

	start := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(bin, "serve", "--config", cfgPath, "--db", dbPath)
		cmd.Env = append(os.Environ(),
			"CARTELCRM_BASE_URL="+sb.URL, "CARTELCRM_API_KEY="+sandbox.TestAPIKey,
			"CARTELCRM_HMAC_SECRET="+sandbox.TestHMACSecret, "CALLBACK_SECRET="+sandbox.TestCallbackSecret)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	finalCount := func() int {
		c, err := db.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f := 0
		for st, k := range c.States {
			if st.Final() {
				f += k
			}
		}
		return f
	}

	inFlight := func() int {
		c, err := db.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c.States[crm.StateInFlight]
	}
	kills, midSend := 0, 0
	for round := 0; round < 6; round++ {
		before := finalCount()
		cmd, stderr := start()
		// Kill only once this run is sending, so every kill lands among
		// attempts on the wire rather than during start-up.
		deadline := time.Now().Add(20 * time.Second)
		for finalCount() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		wait := time.Duration(50+rng.IntN(500)) * time.Millisecond
		time.Sleep(wait) // the crash moment: random by design, not a wait for a condition
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		leased := inFlight()
		if leased > 0 {
			midSend++
		}
		noSecrets(t, stderr.String())
		t.Logf("kill %d, %s after its first attempt: %d/%d final, %d left in flight", kills, wait, finalCount(), n, leased)
		if finalCount() == n {
			break
		}
	}
	if midSend == 0 {
		t.Fatal("no kill landed while attempts were in flight; the test proved nothing")
	}

	// The last run goes to the end, then stops cleanly on SIGTERM.
	cmd, stderr := start()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Logf("%d/%d final after the last restart; stderr:\n%s", finalCount(), n, tail(stderr.String(), 2000))
		}
	})
	last := time.Now()
	poll.UntilWithin(t, 90*time.Second, "every lead to be final after the last restart", func() bool {
		if time.Since(last) > 5*time.Second {
			t.Logf("final run: %d/%d final", finalCount(), n)
			last = time.Now()
		}
		return finalCount() == n
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve did not stop cleanly on SIGTERM: %v\n%s", err, tail(stderr.String(), 2000))
	}
	noSecrets(t, stderr.String())

	// Every lead final and accepted, under the key it was enqueued with.
	for _, id := range ids {
		d, err := db.LeadDetail(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Lead.State != crm.StateAccepted {
			t.Errorf("%s ended %s: %s", id, d.Lead.State, d.Lead.Reason)
		}
		if d.Lead.IdempotencyKey != keys[id] {
			t.Errorf("%s: key changed from %s to %s", id, keys[id], d.Lead.IdempotencyKey)
		}
		for _, a := range d.Attempts {
			if a.IdempotencyKey != keys[id] {
				t.Errorf("%s: attempt %d under key %s", id, a.Number, a.IdempotencyKey)
			}
		}
	}
	st := sb.Sandbox.Stats()
	if st.LeadsCreatedPerExternalIDMax != 1 || st.Accepted != n {
		t.Errorf("CRM created max %d per external_id, accepted %d, want 1 and %d", st.LeadsCreatedPerExternalIDMax, st.Accepted, n)
	}
	if st.KeysPerExternalIDMax != 1 {
		t.Errorf("the CRM saw a lead under %d different keys", st.KeysPerExternalIDMax)
	}
	t.Logf("%d kills; CRM: %d requests, %d replays, %d in-progress, 503 %d, 429 %d, dropped %d",
		kills, st.Requests, st.IdempotentReplays, st.InProgressConflicts, st.Faults503, st.Faults429, st.FaultsDropped)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
