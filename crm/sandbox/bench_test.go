package sandbox

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSubmit measures accepted leads per second over loopback with
// keep-alive connections, so the sandbox is known not to be the bottleneck
// of the sender's budget (docs/architecture.md: 2,000 leads/s at concurrency 32).
func BenchmarkSubmit(b *testing.B) {
	cfg := testConfig()
	cfg.StatusDelay = time.Hour // lifecycles wait; only submission is measured
	_, srv := startSandbox(b, cfg)
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(16) // with GOMAXPROCS 2: 32 senders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			ext := fmt.Sprintf("bench-%d", i)
			a := send(client, leadRequest(b, srv.URL, leadJSON(ext, fmt.Sprintf("+1%012d", i), nil), ext, time.Now()))
			if a.err != nil || a.code != http.StatusOK {
				b.Errorf("answer %s", a)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leads/s")
}
