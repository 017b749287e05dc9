package crm_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// benchDispatch enqueues b.N leads and times a dispatcher draining them
// through sender, reporting leads/s and wall time per lead.
func benchDispatch(b *testing.B, sender func(b *testing.B) crm.Sender, concurrency int) {
	db := storetest.Open(b, store.Options{})
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = lead(fmt.Sprintf("bench-%07d", i), fmt.Sprintf("+3805%08d", i), "UA")
	}
	for start := 0; start < len(payloads); start += 1000 {
		if _, _, err := db.EnqueueBatch(context.Background(), payloads[start:min(start+1000, len(payloads))], store.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	out := &countingOutbox{DB: db, want: int64(b.N), all: make(chan struct{})}
	d := crm.NewDispatcher(out, sender(b), crm.DispatcherConfig{Concurrency: concurrency, Policy: fastPolicy})
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	start := time.Now()
	go func() { _ = d.Run(ctx); close(done) }()
	<-out.all
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "leads/s")
}

// countingOutbox is the store, closing all once want attempts are
// recorded: the end of a benchmark run, without polling for it.
type countingOutbox struct {
	*sqlite.DB
	want     int64
	recorded atomic.Int64
	all      chan struct{}
}

func (o *countingOutbox) Record(ctx context.Context, owner string, r crm.AttemptResult) error {
	err := o.DB.Record(ctx, owner, r)
	if err == nil && o.recorded.Add(1) == o.want {
		close(o.all)
	}
	return err
}

// BenchmarkDispatchSandbox32 is the sender end to end: claim, sign, HTTP to
// the loopback sandbox, classify, record, at concurrency 32. Budget:
// ≥ 2,000 leads/s.
func BenchmarkDispatchSandbox32(b *testing.B) {
	benchDispatch(b, func(b *testing.B) crm.Sender {
		return newClient(b, sandbox.StartTest(b, sandbox.Config{}).URL)
	}, 32)
}

// instantCRM signs and classifies like the client but answers at once, so
// what remains is leadwatch's own per-lead overhead: claim, sign, classify,
// persist the attempt. Budget: ≤ 200 µs a lead.
type instantCRM struct{ secret []byte }

var acceptedBody = []byte(`{"id":"crm_1","status":"accepted","reason":null,"duration_ms":1}`)

func (s instantCRM) Submit(_ context.Context, body []byte, key string) crm.Result {
	_ = crm.Sign(s.secret, body)
	return crm.Result{StatusCode: 200, Body: acceptedBody, Outcome: crm.Classify(200, http.Header{}, acceptedBody, nil, time.Now())}
}

func BenchmarkDispatchOverhead(b *testing.B) {
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			benchDispatch(b, func(*testing.B) crm.Sender { return instantCRM{secret: []byte(sandbox.TestHMACSecret)} }, c)
		})
	}
}
