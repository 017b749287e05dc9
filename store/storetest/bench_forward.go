package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// BenchForwardClaimRecord measures the store's side of forwarding: one op
// claims batch deliveries and records them delivered (two commits), from
// a queue of Fill's callbacks replayed (about 20 per lead, so the order
// check has blocked deliveries to pass over, as a busy campaign does). It
// reports deliveries/s; the queue is refilled outside the timer.
func BenchForwardClaimRecord(b *testing.B, s store.Store, batch int) {
	ctx := context.Background()
	const leads, callbacks = 2000, 40000
	if err := s.Fill(ctx, leads, callbacks); err != nil {
		b.Fatal(err)
	}
	if err := s.StartForwarding(ctx); err != nil {
		b.Fatal(err)
	}
	refill := func() {
		if _, err := s.Replay(ctx, nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	refill()
	head := []byte(`{"ok":true}`)
	rs := make([]crm.DeliveryResult, 0, batch)
	done := 0
	for b.Loop() {
		now := time.Now()
		ds, err := s.ClaimDeliveries(ctx, "bench", now, time.Minute, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) < batch {
			b.StopTimer()
			if len(ds) > 0 {
				recordAll(b, s, ds, now, head)
			}
			refill()
			b.StartTimer()
			continue
		}
		rs = rs[:0]
		for _, d := range ds {
			rs = append(rs, crm.DeliveryResult{ID: d.ID, At: now, Status: 200, Head: head, Latency: time.Millisecond, Delivered: true})
		}
		if lost, err := s.RecordDeliveries(ctx, "bench", rs); err != nil || len(lost) > 0 {
			b.Fatal(fmt.Sprint("record: lost ", lost, " ", err))
		}
		done += len(ds)
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "deliveries/s")
}

func recordAll(b *testing.B, s store.Store, ds []crm.Delivery, now time.Time, head []byte) {
	rs := make([]crm.DeliveryResult, len(ds))
	for i, d := range ds {
		rs[i] = crm.DeliveryResult{ID: d.ID, At: now, Status: 200, Head: head, Delivered: true}
	}
	if lost, err := s.RecordDeliveries(context.Background(), "bench", rs); err != nil || len(lost) > 0 {
		b.Fatal(fmt.Sprint("record: lost ", lost, " ", err))
	}
}

// BenchForwardStats measures ForwardStats on a store Fill gave n
// callbacks, with a queue of 10,000 deliveries, some attempts recorded,
// and lag made as large as it gets by rewind (which puts the cursor back
// to the first callback: the backend's own business). The per-op cost at
// 10,000 and at 1,000,000 callbacks, in one run, is the figure: equal
// means the header's refresh does not grow with the store.
func BenchForwardStats(b *testing.B, s store.Store, n int, rewind func()) {
	ctx := context.Background()
	if err := s.Fill(ctx, 1000, n); err != nil {
		b.Fatal(err)
	}
	if err := s.StartForwarding(ctx); err != nil {
		b.Fatal(err)
	}
	// Fill spreads the callbacks evenly over the window: the newest
	// 10,000 are the last 10,000/n of it.
	since := time.Now().Add(-time.Duration(float64(store.FillWindow) * 10000 / float64(n)))
	if _, err := s.Replay(ctx, nil, since); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	ds, err := s.ClaimDeliveries(ctx, "bench", now, time.Minute, 100)
	if err != nil || len(ds) == 0 {
		b.Fatal(len(ds), err)
	}
	recordAll(b, s, ds[:len(ds)/2], now, []byte("ok"))
	rewind()
	st, err := s.ForwardStats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if st.Lag < n/2 || st.Pending == 0 || st.LastDelivered.IsZero() {
		b.Fatalf("setup: stats %+v, want a large lag, pending deliveries and a delivery", st)
	}
	for b.Loop() {
		if _, err := s.ForwardStats(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
