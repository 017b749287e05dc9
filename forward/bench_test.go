package forward_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/forward"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// benchQueue is what the benchmarks need of the store: the queue, and its
// stats to see it drained.
type benchQueue interface {
	forward.Queue
	ForwardStats(ctx context.Context) (crm.ForwardStats, error)
}

// openQueue is a SQLite store in the benchmark's temp dir, forwarding
// started when start says, or a skip when this store has no delivery
// queue.
func openQueue(b *testing.B, start bool) (store.Store, benchQueue) {
	b.Helper()
	db := storetest.Open(b, store.Options{})
	q, ok := any(db).(benchQueue)
	if !ok {
		b.Skip("the store has no delivery queue")
	}
	if !start {
		return db, q
	}
	if err := q.StartForwarding(context.Background()); err != nil {
		b.Fatal(err)
	}
	return db, q
}

// loopbackApp serves an app that verifies each delivery's signature, as a
// real one must, and answers 204; it counts what it accepted.
func loopbackApp(b *testing.B) (string, *atomic.Int64) {
	b.Helper()
	v, err := forward.NewVerifier(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	var accepted atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := v.Verify(r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook", &accepted
}

// runForwarder runs a Forwarder at concurrency 32 over q to url until the
// benchmark ends.
func runForwarder(b *testing.B, q forward.Queue, url string, busy func() bool) *forward.Forwarder {
	b.Helper()
	f, stop := startForwarder(b, q, url, busy)
	b.Cleanup(stop)
	return f
}

// startForwarder runs a Forwarder at concurrency 32 over q to url until
// stop.
func startForwarder(b *testing.B, q forward.Queue, url string, busy func() bool) (*forward.Forwarder, func()) {
	b.Helper()
	s, err := forward.NewSigner(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	f, err := forward.New(q, forward.Config{URL: url, Signer: s, Concurrency: 32, Timeout: 10 * time.Second, Busy: busy})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	return f, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
	}
}

// callbackBody is a callback as the CRM sends it, unique per (run, i).
func callbackBody(run int64, i int) []byte {
	return fmt.Appendf(nil, `{"internal_id":"crm-%d-%d","external_id":"lead-%d","event":"status_changed","status":"interested","reason":null,"timestamp":%d,"extra":{"campaign":"launch","sub_id":"s-%d"}}`,
		run, i, i, 1764200000+i, i%97)
}

// storeCallbacks saves n callbacks in group commits of 64, as the
// listener would.
func storeCallbacks(b *testing.B, db store.Store, n int) {
	b.Helper()
	run := rand.Int64()
	ctx := context.Background()
	for i := 0; i < n; i += 64 {
		var evs []crm.CallbackEvent
		for j := i; j < min(n, i+64); j++ {
			ev, err := crm.ParseCallback(callbackBody(run, j))
			if err != nil {
				b.Fatal(err)
			}
			ev.ReceivedAt = time.Now()
			evs = append(evs, ev)
		}
		if _, err := db.SaveCallbacks(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForward measures deliveries per second from the SQLite queue
// (claims, synchronous=FULL records in batches) to a loopback app that
// verifies every signature, at concurrency 32. The callbacks are stored
// first, outside the timer; the timer runs until the queue is drained.
// The budget is ≥ 2,000 deliveries/s (docs/architecture.md).
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 20000x ./forward/
func BenchmarkForward(b *testing.B) {
	db, q := openQueue(b, true)
	url, accepted := loopbackApp(b)
	storeCallbacks(b, db, b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	f := runForwarder(b, q, url, nil)
	poll.UntilWithin(b, 10*time.Minute, "the queue drained", func() bool { return f.Delivered() >= int64(b.N) })
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	if got := accepted.Load(); got < int64(b.N) {
		b.Fatalf("app accepted %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	// CPU per delivery of this process (store, forwarder and app alike),
	// which the other processes of a shared machine disturb less than
	// the rate: 2 cores over it is the rate this machine could reach.
	b.ReportMetric(float64(cpu/time.Microsecond)/float64(b.N), "cpu_us/delivery")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListenerForwarding measures the listener's acknowledged rate
// (verified, durably stored callbacks at 32 keep-alive connections) with
// forwarding off and on, in the same run: four rounds of off then on,
// each on a fresh store, b.N/4 callbacks each, so that what else the
// machine runs weighs on both alike. ratio is on/off over the rounds'
// total times, the budget ≥ 0.85. With forwarding on it also reports the
// queue's lag when a burst ended (deliveries not yet delivered, the
// largest of the rounds) and how long the queue then took to drain (the
// longest).
//
//	go test -run '^$' -bench BenchmarkListenerForwarding -benchtime 20000x ./forward/
func BenchmarkListenerForwarding(b *testing.B) {
	const rounds = 4
	n := max(1, b.N/rounds)
	took := map[bool]time.Duration{}
	var lag int64
	var drain time.Duration
	b.ResetTimer()
	for range rounds {
		for _, on := range []bool{false, true} {
			// Off is a store that never forwarded: what the listener
			// costs without the queue at all.
			db, q := openQueue(b, on)
			h, err := callbacks.NewHandler(callbacks.Config{Secrets: [][]byte{[]byte(benchCallbackSecret)}}, db)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := callbacks.NewServer("", h)
			go srv.Serve(ln)
			var (
				f    *forward.Forwarder
				stop func()
			)
			if on {
				url, _ := loopbackApp(b)
				// As main wires it: the Forwarder yields while the
				// listener takes a burst.
				verified := func() uint64 { return h.Stats().Verified }
				f, stop = startForwarder(b, q, url, forward.RateAbove(verified, forward.DefaultBusyRate, nil))
			}
			took[on] += load(b, "http://"+ln.Addr().String()+callbacks.DefaultPath, 32, n)
			if on {
				burstEnd := time.Now()
				lag = max(lag, int64(n)-f.Delivered())
				poll.UntilWithin(b, 10*time.Minute, "the queue drained", func() bool { return f.Delivered() >= int64(n) })
				drain = max(drain, time.Since(burstEnd))
				stop()
			}
			srv.Close()
			h.Close()
		}
	}
	b.StopTimer()
	off, on := float64(rounds*n)/took[false].Seconds(), float64(rounds*n)/took[true].Seconds()
	b.ReportMetric(off, "off_callbacks/s")
	b.ReportMetric(on, "on_callbacks/s")
	b.ReportMetric(on/off, "ratio")
	b.ReportMetric(float64(lag), "lag_at_end")
	b.ReportMetric(drain.Seconds()*1000, "drain_ms")
}

const benchCallbackSecret = "bench-callback-secret"

// load posts n unique signed callbacks from c goroutines, each with its
// own keep-alive connection, and returns the wall time; any answer but
// 200 fails the benchmark.
func load(b *testing.B, url string, c, n int) time.Duration {
	b.Helper()
	var next, fails atomic.Int64
	run := rand.Int64()
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{
				Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
				Timeout:   30 * time.Second,
			}
			defer client.CloseIdleConnections()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				req, _ := crm.NewSignedCallback(url, bytes.Clone(callbackBody(run, int(i))), []byte(benchCallbackSecret), time.Now())
				res, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				if err != nil || res.StatusCode != 200 {
					fails.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := fails.Load(); f > 0 {
		b.Fatalf("%d of %d callbacks not answered 200", f, n)
	}
	return elapsed
}
