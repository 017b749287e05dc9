package metrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// BenchmarkListenerMetrics measures what metrics cost the listener: the
// same load of signed callbacks at 32 keep-alive connections against a
// listener without metrics and one with them (the observer on every
// refusal and commit, the handler's counters read by scrapes, /metrics
// scraped every 100 ms, far more often than Prometheus does), each over
// a fresh SQLite store (synchronous=FULL, group commit), in the same run
// and interleaved. ratio is on/s over off/s. One in ten callbacks has a
// bad signature, so the refusal path is measured as well. An op is one
// callback to each listener.
//
//	go test -run '^$' -bench BenchmarkListenerMetrics -benchtime 20000x -count 3 ./metrics/
func BenchmarkListenerMetrics(b *testing.B) {
	const conns = 32
	off := startListener(b, nil)
	m := New(storetest.Open(b, store.Options{}), nil)
	on := startListener(b, m)
	srv, err := Listen("127.0.0.1:0", m, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx) //nolint:errcheck // stops with the benchmark
	scrapes := scrapeEvery(ctx, "http://"+srv.Addr()+Path, 100*time.Millisecond)

	b.ResetTimer()
	// Halves, interleaved: a machine that slows down mid-run slows both.
	var offTime, onTime time.Duration
	for half := range 2 {
		n := b.N / 2
		if half == 1 {
			n = b.N - n
		}
		offTime += load(b, off, conns, n, half)
		onTime += load(b, on, conns, n, half)
	}
	b.StopTimer()
	offRate, onRate := float64(b.N)/offTime.Seconds(), float64(b.N)/onTime.Seconds()
	b.ReportMetric(offRate, "off/s")
	b.ReportMetric(onRate, "on/s")
	b.ReportMetric(onRate/offRate, "ratio")
	b.ReportMetric(float64(scrapes.Load()), "scrapes")
}

// startListener serves a callback handler over a fresh store on loopback,
// with m as its observer when m is not nil, and returns its callback URL.
func startListener(b *testing.B, m *Metrics) string {
	b.Helper()
	db := storetest.Open(b, store.Options{})
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: [][]byte{[]byte("bench-secret")}}, db)
	if err != nil {
		b.Fatal(err)
	}
	if m != nil {
		h.SetObserver(m)
		m.WatchListener(h.Stats)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := callbacks.NewServer("", h)
	go srv.Serve(ln) //nolint:errcheck // closed below
	b.Cleanup(func() { srv.Close(); h.Close() })
	return "http://" + ln.Addr().String() + callbacks.DefaultPath
}

// scrapeEvery GETs url every interval until ctx ends; it counts the
// scrapes answered 200.
func scrapeEvery(ctx context.Context, url string, interval time.Duration) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		c := &http.Client{Timeout: 10 * time.Second}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if resp, err := c.Get(url); err == nil {
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n.Add(1)
				}
			}
		}
	}()
	return &n
}

// load posts n callbacks to url from conns goroutines, each with its own
// keep-alive connection, and returns the wall time. Every tenth is signed
// with a wrong secret and must be refused; the others must be stored.
func load(b *testing.B, url string, conns, n, round int) time.Duration {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
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
				body := fmt.Appendf(nil, `{"internal_id":"crm-%d-%d","external_id":"lead-%d","event":"status_changed","status":"interested","timestamp":%d}`,
					round, i, i, start.UnixMilli())
				secret, want := []byte("bench-secret"), http.StatusOK
				if i%10 == 9 {
					secret, want = []byte("wrong"), http.StatusForbidden
				}
				req, _ := crm.NewSignedCallback(url, body, secret, time.Now())
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != want {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d callbacks not answered as expected", f, n)
	}
	return time.Since(start)
}

// BenchmarkObservers is what the hooks cost per call, on the request path
// (Refused), per group commit (Committed) and per attempt (Attempted).
//
//	go test -run '^$' -bench BenchmarkObservers ./metrics/
func BenchmarkObservers(b *testing.B) {
	m := New(storetest.Open(b, store.Options{}), nil)
	b.Run("Refused", func(b *testing.B) {
		for b.Loop() {
			m.Refused(crm.CodeBadSignature)
		}
	})
	b.Run("Committed", func(b *testing.B) {
		for b.Loop() {
			m.Committed(14, 3*time.Millisecond, nil)
		}
	})
	b.Run("Attempted", func(b *testing.B) {
		for b.Loop() {
			m.Attempted(200, 40*time.Millisecond)
		}
	})
}
