package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// testTailOrder: two Stores on one database (two instances) write
// refusals, and forward results, from several goroutines each while a
// tail follows the kind by its cursor as tail --all does (each read after
// the last id returned, woken by Watch). Once the writers are done the
// tail must have returned every stored row, once, in id order: a row that
// committed after a larger id was read is not passed over. (SQLite
// commits one writer at a time; PostgreSQL hands ids out before commit,
// and store/postgres's tests hold such a transaction open on purpose.)
func testTailOrder(t *testing.T, h Harness) {
	t.Run("Refusals", func(t *testing.T) {
		tailOrder(t, h, nil, func(s store.Store, i int) error {
			return s.SaveRefusal(context.Background(), crm.Refusal{Code: "bad_signature", HTTPStatus: 401, Detail: fmt.Sprint(i)})
		}, func(s store.Store, after int64) ([]int64, error) {
			rs, err := s.RefusalsAfter(context.Background(), after, 100)
			ids := make([]int64, len(rs))
			for i, r := range rs {
				ids[i] = r.ID
			}
			return ids, err
		})
	})
	t.Run("ForwardAttempts", func(t *testing.T) {
		var ds []crm.Delivery
		tailOrder(t, h, func(s store.Store, clk *clock, n int) {
			startForwarding(t, s)
			evs := make([]crm.CallbackEvent, n)
			for i := range evs {
				evs[i] = callback(fmt.Sprint("crm-", i), "", "status_changed", "new", 1)
			}
			if _, err := s.SaveCallbacks(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, "every callback to be queued and claimed", func() bool {
				ds = append(ds, claimDeliveries(t, s, "a", clk.Now(), n)...)
				return len(ds) == n
			})
		}, func(s store.Store, i int) error {
			lost, err := s.RecordDeliveries(context.Background(), "a", []crm.DeliveryResult{delivered(ds[i].ID, ds[i].CreatedAt)})
			if err == nil && len(lost) > 0 {
				err = fmt.Errorf("delivery %d: lease lost", ds[i].ID)
			}
			return err
		}, func(s store.Store, after int64) ([]int64, error) {
			as, err := s.ForwardAttemptsAfter(context.Background(), after, 100)
			ids := make([]int64, len(as))
			for i, a := range as {
				ids[i] = a.ID
			}
			return ids, err
		})
	})
}

// tailOrder runs testTailOrder for one kind: setup (if any) prepares n
// writes, write(s, i) is the i-th of them on Store s, read is the kind's
// page after a cursor, as ids.
func tailOrder(t *testing.T, h Harness, setup func(s store.Store, clk *clock, n int),
	write func(s store.Store, i int) error, read func(s store.Store, after int64) ([]int64, error)) {
	const writers = 4 // per Store
	per := 40
	if testing.Short() {
		per = 10
	}
	s1, clk, reopen := open(t, h, store.Options{})
	s2 := mustReopen(t, reopen, store.Options{Now: clk.Now})
	n := 2 * writers * per
	if setup != nil {
		setup(s1, clk, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := s2.Watch(ctx)

	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := range 2 * writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []store.Store{s1, s2}[w%2]
			for i := w * per; i < (w+1)*per; i++ {
				if err := write(s, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()

	var cursor int64
	var got []int64
	next := func() {
		t.Helper()
		ids, err := read(s2, cursor)
		if err != nil {
			t.Fatalf("read after %d: %v", cursor, err)
		}
		for _, id := range ids {
			if id <= cursor {
				t.Fatalf("read after %d returned id %d", cursor, id)
			}
			got = append(got, id)
			cursor = id
		}
	}
	for following := true; following; {
		next()
		select {
		case <-changes:
		case <-written:
			following = false
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("a writer: %v", err)
	}
	poll.Until(t, fmt.Sprintf("the tail to return the %d rows written", n), func() bool {
		next()
		return len(got) >= n
	})
	var all []int64
	for after := int64(0); ; {
		page, err := read(s1, after)
		if err != nil {
			t.Fatalf("read after %d: %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, all) {
		t.Fatalf("the tail returned %d rows %v; want every row stored, in id order: %d rows %v", len(got), got, len(all), all)
	}
}
