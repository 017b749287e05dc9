package callbacks_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// BenchmarkListener measures verified, durably stored callbacks per second
// over real loopback HTTP, against the real store (synchronous=FULL, group
// commit), at several concurrencies, and in the same run the same load
// against a stdlib handler that neither verifies nor stores (it reads the
// body and answers {"ok":true}): the ceiling of this machine for the
// protocol. ratio is stored/s over nostore/s; the budget is ratio ≥ 0.6
// and p99 ≤ 10 ms at c=32 (docs/architecture.md, performance budgets).
// Each load goroutine has its own client and keep-alive connection and
// signs unique callbacks; one in ten repeats a recent one (a replay). An op
// is one stored callback plus one no-storage request.
//
//	go test -run '^$' -bench 'BenchmarkListener/c=32' -benchtime 20000x -count 3 ./callbacks/
func BenchmarkListener(b *testing.B) {
	for _, c := range []int{1, 32, 128} {
		b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
			benchListener(b, c, storetest.Open(b, store.Options{}))
		})
	}
	// The same handler, group commit included, over a sink that keeps the
	// events in memory: what the listener costs without its store, so
	// that the store's share of the budget is the difference.
	b.Run("c=32/sink=memory", func(b *testing.B) {
		benchListener(b, 32, newFakeSink())
	})
}

func benchListener(b *testing.B, c int, sink callbacks.EventSink) {
	{
		{
			h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets}, sink)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			stored := serve(b, callbacks.NewServer("", h))
			nostore := serve(b, &http.Server{Handler: http.HandlerFunc(noStore)})

			b.ResetTimer()
			cpu0 := cpuTime(b)
			base := generateLoad(nostore, c, b.N)
			cpu1 := cpuTime(b)
			lat := generateLoad(stored, c, b.N)
			cpu2 := cpuTime(b)
			b.StopTimer()
			for _, r := range []loadResult{base, lat} {
				if r.failed > 0 {
					b.Fatalf("%d of %d requests failed", r.failed, b.N)
				}
			}
			st := h.Stats()
			b.ReportMetric(lat.rate(), "callbacks/s")
			b.ReportMetric(base.rate(), "nostore/s")
			b.ReportMetric(lat.rate()/base.rate(), "ratio")
			b.ReportMetric(ms(lat.quantile(0.50)), "p50_ms")
			b.ReportMetric(ms(lat.quantile(0.99)), "p99_ms")
			b.ReportMetric(ms(base.quantile(0.99)), "nostore_p99_ms")
			// CPU per request of this process (load generator included),
			// which other processes on the machine disturb less than rates.
			b.ReportMetric(float64((cpu2-cpu1)/time.Microsecond)/float64(b.N), "cpu_us/callback")
			b.ReportMetric(float64((cpu1-cpu0)/time.Microsecond)/float64(b.N), "nostore_cpu_us/req")
			if b.N >= 100 && st.Replays == 0 {
				b.Errorf("no replays among %d callbacks: the duplicates are not duplicates", b.N)
			}
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Verified+st.Replays)/float64(st.Batches), "events/commit")
			}
		}
	}
}

// noStore is the ceiling's handler: it reads the body and answers what
// the listener answers a fresh callback, checking and storing nothing.
func noStore(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

// serve runs srv on a loopback port until the benchmark ends and returns
// its callback URL.
func serve(b *testing.B, srv *http.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + callbacks.DefaultPath
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadResult is one generateLoad run.
type loadResult struct {
	lat     []time.Duration // sorted
	elapsed time.Duration
	failed  int64 // requests not answered 200
}

func (r loadResult) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r loadResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

// generateLoad sends n signed callbacks from c goroutines, each with its
// own keep-alive connection, and returns their latencies and the wall time.
func generateLoad(url string, c, n int) loadResult {
	var next, fails atomic.Int64
	lats := make([][]time.Duration, c)
	run := rand.Int64()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{
				Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
				Timeout:   30 * time.Second,
			}
			defer client.CloseIdleConnections()
			buf := make([]byte, 0, 512)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				k := i
				if i%10 == 9 {
					k = i - 5 // a re-delivery of a recent callback
				}
				// A re-delivery has the same body, so the same dedup key.
				buf = fmt.Appendf(buf[:0], `{"internal_id":"crm-%d-%d","external_id":"lead-%d","event":"status_changed","status":"interested","reason":null,"timestamp":%d,"extra":{"campaign":"launch","sub_id":"s-%d"}}`,
					run, k, k, start.Unix(), k%97)
				body := bytes.Clone(buf)
				req, _ := crm.NewSignedCallback(url, body, testSecrets[0], time.Now())
				t0 := time.Now()
				res, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil || res.StatusCode != 200 {
					fails.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := loadResult{elapsed: time.Since(start), failed: fails.Load()}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r
}
