package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// instance is one `leadwatch serve` process on a fixed listener address,
// restartable on the same address. Its stderr, over every run, is kept.
type serveProc struct {
	t      *testing.T
	name   string
	addr   string
	args   []string
	env    []string
	stderr lockedBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

func newServeProc(t *testing.T, name string, env []string, args ...string) *serveProc {
	in := &serveProc{t: t, name: name, addr: loopbackPort(t), env: env}
	in.args = append(append([]string{"serve"}, args...), "--listen", in.addr)
	t.Cleanup(func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.cmd != nil && in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			in.cmd.Wait()
		}
	})
	return in
}

// start runs the process and waits until its /healthz answers 200.
func (in *serveProc) start() {
	in.t.Helper()
	in.launch()
	in.waitHealthy()
}

// launch runs the process.
func (in *serveProc) launch() {
	in.t.Helper()
	cmd := exec.Command(leadwatchBinary(in.t), in.args...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Stderr = &in.stderr
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.mu.Lock()
	in.cmd = cmd
	in.mu.Unlock()
}

// waitHealthy waits until the process's /healthz answers 200.
func (in *serveProc) waitHealthy() {
	in.t.Helper()
	poll.UntilWithin(in.t, 20*time.Second, in.name+" to answer /healthz 200", func() bool {
		return healthStatus(in.addr) == 200
	})
}

// kill SIGKILLs the process and reaps it.
func (in *serveProc) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		in.t.Errorf("kill %s: %v", in.name, err)
	}
	_ = in.cmd.Wait()
}

// stop SIGTERMs the process and checks it exits cleanly.
func (in *serveProc) stop() {
	in.t.Helper()
	in.mu.Lock()
	cmd := in.cmd
	in.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		in.t.Fatal(err)
	}
	if err := waitExit(in.t, cmd, 30*time.Second); err != nil {
		in.t.Errorf("%s did not stop cleanly on SIGTERM: %v\n%s", in.name, err, tail(in.stderr.String(), 3000))
	}
}

// cpuTime is the CPU time (user + system) the running process has used,
// from /proc (Linux); 0 when it cannot be read.
func (in *serveProc) cpuTime() time.Duration {
	in.mu.Lock()
	pid := in.cmd.Process.Pid
	in.mu.Unlock()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// healthStatus is addr's /healthz status code, 0 when it does not answer.
func healthStatus(addr string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// callbackClient posts signed callbacks; no keep-alive, so a killed
// instance costs one refused connection, not a stale pooled one.
var callbackClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// signedPost signs body and posts it to addr; the status code, 0 when no
// answer came.
func signedPost(t *testing.T, addr string, body []byte) int {
	req, err := crm.NewSignedCallback("http://"+addr+"/cartelcrm/callback", body, []byte(sandbox.TestCallbackSecret), time.Now())
	if err != nil {
		t.Error(err)
		return 0
	}
	resp, err := callbackClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// callbackBody is a status callback for event i, unmatched on purpose: it
// is stored whatever the leads' state, so "stored exactly once" is
// checkable for every acknowledged one.
func callbackBody(prefix string, i int) []byte {
	return fmt.Appendf(nil, `{"internal_id":"%s-%d","event":"status_changed","status":"ftd","timestamp":%d}`, prefix, i, 1764200000+i)
}

// storedCallbacks counts the stored callbacks by internal_id.
func storedCallbacks(t *testing.T, db store.Store) map[string]int {
	t.Helper()
	got := map[string]int{}
	if err := db.ExportCallbacks(context.Background(), func(ev crm.CallbackEvent) error {
		got[ev.InternalID]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// finalCount is how many leads are in a final state.
func finalCount(t *testing.T, db store.Store) int {
	c, err := db.Counts(context.Background())
	if err != nil {
		t.Logf("counts: %v", err)
		return -1
	}
	n := 0
	for st, k := range c.States {
		if st.Final() {
			n += k
		}
	}
	return n
}

// writeLeads writes n leads (prefix-0000…) as JSONL and returns the file.
func writeLeads(t *testing.T, dir, prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"external_id":"%s-%04d","phone":"+3805%08d","country":"UA"}`+"\n", prefix, i, i)
	}
	file := filepath.Join(dir, prefix+".jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestSeveralInstances runs three `leadwatch serve` processes on one
// PostgreSQL database, each on its own port, against the sandbox with
// faults (20% 503, 10% 429, 5% dropped connections). 2,000 leads are
// enqueued once with `submit`; signed callbacks are spread over the three,
// every fifth one sent to two of them; one instance, picked at random, is
// SIGKILLed at random moments four times and restarted. Every lead ends
// final and accepted, the CRM created each once under one key and never saw
// two instances send one lead at once, and every callback any instance
// acknowledged is stored exactly once.
func TestSeveralInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes and 2,000 leads in -short")
	}
	dsn := pgURL(t)
	severalInstances(t, dsn, func() store.Store {
		db, err := postgres.Open(context.Background(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// severalInstances is TestSeveralInstances on the store at location;
// open opens it for the test's own reads.
func severalInstances(t *testing.T, location string, open func() store.Store) {
	dsn := location
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 6))
	sb := sandbox.StartTest(t, sandbox.Config{
		Seed:     int64(seed),
		FailRate: 0.20, ThrottleRate: 0.10, RetryAfter: time.Second, DropRate: 0.05,
		Latency: time.Millisecond,
	})
	dir := t.TempDir()
	// A short CRM timeout keeps the lease (2×timeout + 10 s) of a killed
	// instance's leads short enough for the test's budget.
	cfgPath := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[crm]
timeout = "1s"
concurrency = 16
[retry]
max_attempts = 100
base_delay = "20ms"
max_delay = "300ms"
rate_limited_delay = "1s"
[callbacks]
drain = "0s" # no balancer to wait for
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

	const n = 2000
	code, out, errOut := runCLI(t, envVars, "", "submit", writeLeads(t, dir, "mi", n))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("enqueued %d lead(s), refused 0", n)) {
		t.Fatalf("submit: exit %d\n%s\n%s", code, out, errOut)
	}
	db := open()
	keys := map[string]string{}
	if err := db.ExportLeads(context.Background(), func(l crm.Lead) error {
		keys[l.ExternalID] = l.IdempotencyKey
		return nil
	}); err != nil || len(keys) != n {
		t.Fatalf("%d leads in the store (%v)", len(keys), err)
	}

	insts := make([]*serveProc, 3)
	for i := range insts {
		insts[i] = newServeProc(t, fmt.Sprintf("instance %d", i), procEnv, "--config", cfgPath)
	}
	for _, in := range insts {
		in.launch() // at once: they migrate the same database together
	}
	for _, in := range insts {
		in.waitHealthy()
	}

	// Callbacks: event i goes to instance i%3, every fifth also to the
	// next one; a send that gets no 200 is tried on the others, as the
	// CRM would redeliver. acked[i] says some instance answered 200.
	const events = 1500
	acked := make([]bool, events)
	var answered [600]int // count by status code
	var amu sync.Mutex
	cbDone := make(chan struct{})
	go func() {
		defer close(cbDone)
		var cw sync.WaitGroup
		for w := range 4 {
			cw.Add(1)
			go func() {
				defer cw.Done()
				for i := w; i < events; i += 4 {
					body := callbackBody("mi", i)
					targets := []int{i % 3}
					if i%5 == 0 {
						targets = append(targets, (i+1)%3)
					}
					for _, first := range targets {
						for try := range 3 {
							c := signedPost(t, insts[(first+try)%3].addr, body)
							amu.Lock()
							answered[c]++
							if c == 200 {
								acked[i] = true
							}
							amu.Unlock()
							if c == 200 {
								break
							}
						}
					}
				}
			}()
		}
		cw.Wait()
	}()

	// Four kills at random moments, each of a random instance, each
	// restarted on its port at once.
	for k := range 4 {
		time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond) // the crash moment: random by design
		in := insts[rng.IntN(len(insts))]
		in.kill()
		t.Logf("kill %d: %s, %d/%d final", k+1, in.name, finalCount(t, db), n)
		in.start()
	}

	last := time.Now()
	poll.UntilWithin(t, 60*time.Second, "every lead final and every callback sent", func() bool {
		f := finalCount(t, db)
		if time.Since(last) > 5*time.Second {
			t.Logf("%d/%d final", f, n)
			last = time.Now()
		}
		select {
		case <-cbDone:
			return f == n
		default:
			return false
		}
	})
	for _, in := range insts {
		in.stop()
	}
	for _, in := range insts {
		noPassword(t, in.name+"'s log", in.stderr.String())
		noSecrets(t, in.stderr.String())
	}

	// Every lead accepted, under the key it was enqueued with.
	bad := 0
	if err := db.ExportLeads(context.Background(), func(l crm.Lead) error {
		if l.State != crm.StateAccepted || l.IdempotencyKey != keys[l.ExternalID] {
			if bad++; bad <= 5 {
				t.Errorf("%s ended %s (%s) under key %s, enqueued with %s", l.ExternalID, l.State, l.Reason, l.IdempotencyKey, keys[l.ExternalID])
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st := sb.Sandbox.Stats()
	if st.LeadsCreatedPerExternalIDMax != 1 || st.Accepted != n {
		t.Errorf("the CRM created up to %d per external_id and accepted %d; want 1 and %d", st.LeadsCreatedPerExternalIDMax, st.Accepted, n)
	}
	if st.KeysPerExternalIDMax != 1 {
		t.Errorf("the CRM saw a lead under %d keys", st.KeysPerExternalIDMax)
	}
	if st.InProgressConflicts != 0 {
		t.Errorf("the CRM answered %d request_in_progress: two instances sent one lead at once", st.InProgressConflicts)
	}

	stored := storedCallbacks(t, db)
	nAcked := 0
	for i := range events {
		id := fmt.Sprintf("mi-%d", i)
		if acked[i] {
			nAcked++
			if stored[id] != 1 {
				t.Errorf("callback %s was acknowledged and is stored %d times", id, stored[id])
			}
		} else if stored[id] > 1 {
			t.Errorf("callback %s is stored %d times", id, stored[id])
		}
	}
	if nAcked < events*9/10 {
		t.Errorf("only %d of %d callbacks acknowledged", nAcked, events)
	}
	t.Logf("CRM: %d requests, %d replays, 503 %d, 429 %d, dropped %d; callbacks: %d acknowledged of %d, answers 200 %d, 0 (no answer) %d, 503 %d",
		st.Requests, st.IdempotentReplays, st.Faults503, st.Faults429, st.FaultsDropped, nAcked, events, answered[200], answered[0], answered[503])
}

// TestSeveralInstancesSQLite is the same on one SQLite file, which several
// processes may share too.
func TestSeveralInstancesSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes and 2,000 leads in -short")
	}
	path := filepath.Join(t.TempDir(), "several.db")
	severalInstances(t, path, func() store.Store { return storetest.OpenPath(t, path, store.Options{}) })
}
