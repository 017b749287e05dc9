package callbacks_test

// Tests against the real store: the listener's integration, its benchmark
// and the crash test, which runs the listener as a child process (the test
// binary re-executed, see TestMain) and kills it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// Environment of the crash test's child listener.
const (
	envChild     = "LEADWATCH_CALLBACK_CHILD"
	envChildDB   = "LEADWATCH_CALLBACK_DB"
	envChildAddr = "LEADWATCH_CALLBACK_ADDR"
)

// TestMain runs the tests, or, in a child started by TestCrashRecovery, a
// real listener that serves until it is killed.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		runChildListener()
		return
	}
	os.Exit(m.Run())
}

// runChildListener is the production wiring in miniature: the real store,
// NewHandler with the real clock, NewServer. It never returns normally:
// the parent SIGKILLs it.
func runChildListener() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := sqlite.Open(context.Background(), os.Getenv(envChildDB), store.Options{})
	if err != nil {
		log.Error("open store", "err", err)
		os.Exit(1)
	}
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Logger: log}, db)
	if err != nil {
		log.Error("new handler", "err", err)
		os.Exit(1)
	}
	srv := callbacks.NewServer(os.Getenv(envChildAddr), h, callbacks.WithLogger(log))
	err = srv.ListenAndServe()
	log.Error("serve", "err", err)
	os.Exit(1)
}

// allCallbacks reads every stored callback, oldest first, without raw
// bodies (a list leaves them out; db.Callback has them).
func allCallbacks(tb testing.TB, db *sqlite.DB) []crm.CallbackEvent {
	tb.Helper()
	var all []crm.CallbackEvent
	var after int64
	for {
		page, err := db.CallbacksAfter(context.Background(), after, 10000)
		if err != nil {
			tb.Fatalf("CallbacksAfter: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
}

func TestWithStore(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	srv, h := newTestListener(t, db, nil)
	url := srv.URL + callbacks.DefaultPath
	body := callbackBody(42, "status_changed")
	tests := []struct {
		name     string
		body     []byte
		hdr      headers
		wantCode int
		wantBody string
	}{
		{"Fresh", body, signedWith(1), 200, wantOK},
		{"Replay", body, signedWith(0), 200, wantReplay},
		{"BadSignature", callbackBody(43, "e"), withSig(func([]byte) []string { return []string{crm.Sign([]byte("x"), body)} }), 403, wantSignature},
		{"Stale", callbackBody(44, "e"), withTS(tsNow(-1000)), 401, wantTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := postRaw(t, srv.Client(), url, tt.body, tt.hdr(tt.body))
			if res.status != tt.wantCode || res.body != tt.wantBody {
				t.Fatalf("answer %d %s, want %d %s", res.status, res.body, tt.wantCode, tt.wantBody)
			}
		})
	}
	evs := allCallbacks(t, db)
	if len(evs) != 1 {
		t.Fatalf("%d callbacks stored, want 1", len(evs))
	}
	ev, err := db.Callback(context.Background(), evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DedupKey != dedupKey(42, "status_changed") || !bytes.Equal(ev.RawBody, body) || ev.SecretIdx != 1 || ev.ExternalID != "lead-42" || ev.Status != "interested" {
		t.Errorf("stored %+v", ev)
	}
	poll.Until(t, "two refusals stored", func() bool {
		rs, err := db.Refusals(context.Background(), crm.EventQuery{Limit: 10})
		return err == nil && len(rs) == 2
	})
	if err := h.Stats(); err.Verified != 1 || err.Replays != 1 || err.Refused != 2 {
		t.Errorf("stats %+v", err)
	}
	res := do(t, srv.Client(), mustRequest(t, http.MethodGet, srv.URL+callbacks.HealthPath))
	if res.status != 200 || res.body != `{"ok":true}` {
		t.Errorf("healthz %d %s", res.status, res.body)
	}
}

// TestDedupByParts: the listener and the store tell events apart by
// internal_id, event and timestamp one by one, whether they arrive apart
// or in one group commit; the joined "internal_id:event:timestamp" is only
// how a key is shown. A number and the string of its digits are one value.
func TestDedupByParts(t *testing.T) {
	bodies := []string{
		`{"internal_id":"a:b","event":"c","timestamp":1}`,
		`{"internal_id":"a","event":"b:c","timestamp":1}`, // joins into the same "a:b:c:1"
		`{"internal_id":"n","event":"e","timestamp":1}`,
		`{"internal_id":"n","event":"e","timestamp":"1"}`, // the digits of the number above
	}
	want := []string{wantOK, wantOK, wantOK, wantReplay}

	t.Run("Apart", func(t *testing.T) {
		db := storetest.Open(t, store.Options{})
		srv, _ := newTestListener(t, db, nil)
		// Ids that are not UTF-8, or lone surrogates, which a decoder
		// that substitutes U+FFFD would make one id.
		odd := []string{
			"{\"internal_id\":\"\xff\",\"event\":\"e\",\"timestamp\":1}",
			"{\"internal_id\":\"\xfe\",\"event\":\"e\",\"timestamp\":1}",
			`{"internal_id":"\ud800","event":"e","timestamp":1}`,
			`{"internal_id":"\udbff","event":"e","timestamp":1}`,
		}
		all := append(slices.Clone(bodies), odd...)
		for i, b := range all {
			w := wantOK
			if i < len(want) {
				w = want[i]
			}
			if res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, []byte(b), testSecrets[0]); res.body != w {
				t.Errorf("%q: answer %d %s, want %s", b, res.status, res.body, w)
			}
		}
		if n := len(allCallbacks(t, db)); n != 3+len(odd) {
			t.Errorf("%d callbacks stored, want %d", n, 3+len(odd))
		}
	})

	t.Run("OneBatch", func(t *testing.T) {
		// The first commit is held until every other request waits in
		// the queue, so they all go into the next batch together.
		db := storetest.Open(t, store.Options{})
		sink := &heldSink{DB: db, release: make(chan struct{})}
		srv, h := newTestListener(t, sink, nil)
		url := srv.URL + callbacks.DefaultPath
		first := make(chan response, 1)
		go func() { first <- postSigned(t, srv.Client(), url, callbackBody(1, "hold"), testSecrets[0]) }()
		poll.Until(t, "the first commit to start", func() bool { return sink.started.Load() })
		got := make([]chan response, len(bodies))
		for i, b := range bodies {
			got[i] = make(chan response, 1)
			go func() { got[i] <- postSigned(t, srv.Client(), url, []byte(b), testSecrets[0]) }()
		}
		poll.Until(t, "every request queued behind the held commit", func() bool { return h.Stats().Pending == uint64(len(bodies)) })
		close(sink.release)
		if res := <-first; res.body != wantOK {
			t.Fatalf("held callback: answer %d %s", res.status, res.body)
		}
		// Which of the last two is first in the batch is up to the
		// scheduler; one of them is fresh, the other its replay.
		answers := make([]string, len(bodies))
		for i := range bodies {
			answers[i] = (<-got[i]).body
		}
		if answers[0] != wantOK || answers[1] != wantOK {
			t.Errorf("the two events that join alike: answers %s and %s, want both %s", answers[0], answers[1], wantOK)
		}
		if pair := []string{answers[2], answers[3]}; !slices.Contains(pair, wantOK) || !slices.Contains(pair, wantReplay) {
			t.Errorf("1 and \"1\": answers %s, want one fresh and one replay", pair)
		}
		if st := h.Stats(); st.Batches != 2 {
			t.Errorf("%d commits, want 2 (the held one and one for the rest)", st.Batches)
		}
		if n := len(allCallbacks(t, db)); n != 4 {
			t.Errorf("%d callbacks stored, want 4 (the held one and three)", n)
		}
	})
}

// heldSink is the store, whose first SaveCallbacks waits for release.
type heldSink struct {
	*sqlite.DB
	started atomic.Bool
	release chan struct{}
}

func (s *heldSink) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	if !s.started.Swap(true) {
		<-s.release
	}
	return s.DB.SaveCallbacks(ctx, evs)
}

func mustRequest(tb testing.TB, method, url string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

// TestCrashRecovery runs the listener as a real process, sends signed
// callbacks at concurrency 32 with duplicates mixed in, SIGKILLs it at
// random moments and restarts it on the same database while the clients
// retry as the CRM would. Afterwards every callback that was answered 200
// must be stored exactly once, and none answered fresh twice.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts and kills processes; skipped with -short")
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "db")
	addr := freeAddr(t)
	url := "http://" + addr + callbacks.DefaultPath
	child := &childListener{t: t, db: dbPath, addr: addr, logPath: filepath.Join(dir, "child.log")}
	child.start()
	t.Cleanup(child.kill)

	const workers, perWorker = 32, 1 << 20 // senders run until stop
	var (
		mu        sync.Mutex
		acked     = map[string]int{} // dedup key → 200 answers
		freshAcks = map[string]int{} // dedup key → fresh 200 answers
		sent      = map[string]bool{}
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		retries   atomic.Int64
		acks      atomic.Int64 // 200 answers so far
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for i := 0; i < perWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := w*perWorker + i
				if i%5 == 4 {
					k -= 2 // deliver a recent one again
				}
				body := []byte(fmt.Sprintf(`{"internal_id":"crm-%d","event":"status_changed","timestamp":%d}`, k, k))
				key := fmt.Sprintf("crm-%d:status_changed:%d", k, k)
				mu.Lock()
				sent[key] = true
				mu.Unlock()
				for attempt := 0; ; attempt++ {
					req, _ := crm.NewSignedCallback(url, body, testSecrets[k%2], time.Now())
					res, err := client.Do(req)
					if err != nil {
						// Connection refused or reset: the listener is
						// down. Back off a little, as the CRM would.
						retries.Add(1)
						time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
						continue
					}
					answer, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusServiceUnavailable {
						retries.Add(1)
						continue
					}
					if res.StatusCode != 200 {
						t.Errorf("callback %s: answer %d %s", key, res.StatusCode, answer)
						break
					}
					mu.Lock()
					acked[key]++
					if string(answer) == wantOK {
						freshAcks[key]++
					}
					mu.Unlock()
					acks.Add(1)
					break
				}
			}
		}()
	}

	// Each restarted listener takes a random number of acknowledgements
	// before it is killed, so the kills land at random moments of real
	// traffic, never on an idle listener.
	progress := func(what string, n int64) {
		target := acks.Load() + n
		poll.UntilWithin(t, time.Minute, what, func() bool { return acks.Load() >= target })
	}
	kills := 0
	for ; kills < 6; kills++ {
		progress("acknowledgements before a kill", int64(300+rand.IntN(1500)))
		child.kill()
		child.start()
	}
	// Let the clients go on against a steady listener for a while, then
	// have them finish the callback each is delivering.
	progress("acknowledgements from the steady listener", 1000)
	close(stop)
	wg.Wait()
	child.kill() // a last crash, right after the final acknowledgements

	db := storetest.OpenPath(t, dbPath, store.Options{})
	stored := map[string]int{}
	for _, ev := range allCallbacks(t, db) {
		stored[ev.DedupKey]++
		if !sent[ev.DedupKey] {
			t.Errorf("stored %q, which was never sent", ev.DedupKey)
		}
	}
	for key := range acked {
		if n := stored[key]; n != 1 {
			t.Errorf("callback %s was answered 200 but is stored %d times", key, n)
		}
		if freshAcks[key] > 1 {
			t.Errorf("callback %s was answered as fresh %d times", key, freshAcks[key])
		}
	}
	t.Logf("%d kills; %d callbacks acknowledged, %d stored, %d client retries", kills+1, len(acked), len(stored), retries.Load())
	if len(acked) < workers {
		t.Errorf("only %d callbacks acknowledged: the test did not exercise the listener", len(acked))
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// childListener is the test binary re-executed as a listener process.
type childListener struct {
	t       *testing.T
	db      string
	addr    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
}

// start launches the child and waits until /healthz answers 200.
func (c *childListener) start() {
	c.t.Helper()
	for try := 0; try < 3; try++ {
		logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			c.t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=1", envChildDB+"="+c.db, envChildAddr+"="+c.addr)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			c.t.Fatalf("start child: %v", err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if waitHealthy(c.addr, exited) {
			c.cmd, c.exited = cmd, exited
			return
		}
		cmd.Process.Kill()
		<-exited
	}
	out, _ := os.ReadFile(c.logPath)
	c.t.Fatalf("child listener did not become healthy; its log:\n%s", out)
}

// kill SIGKILLs the child: no graceful shutdown, no deferred commit.
func (c *childListener) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.exited
	c.cmd = nil
}

func waitHealthy(addr string, exited <-chan struct{}) bool {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		res, err := client.Get("http://" + addr + callbacks.HealthPath)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return true
			}
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return false
}
