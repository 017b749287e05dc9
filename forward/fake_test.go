package forward

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// fakeQueue is the store's delivery queue in memory, with the contract's
// rules: due deliveries claimed in id order under a lease, a lead's
// delivery never claimed while an earlier one of that lead is unfinished,
// records and releases only by the lease holder.
type fakeQueue struct {
	mu       sync.Mutex
	ds       []*fakeDelivery
	attempts []crm.DeliveryResult
	started  int
	claims   int
	changed  chan struct{}
	// failClaims fails that many claims, then claims work.
	failClaims int
}

type fakeDelivery struct {
	crm.Delivery
	owner string
	until time.Time
}

func newFakeQueue() *fakeQueue { return &fakeQueue{changed: make(chan struct{}, 1)} }

// add queues a delivery for body under lead (0: none); its id and
// webhook id follow the store's ("cb_<callback id>").
func (q *fakeQueue) add(lead int64, body string) int64 {
	q.mu.Lock()
	id := int64(len(q.ds) + 1)
	q.ds = append(q.ds, &fakeDelivery{Delivery: crm.Delivery{
		ID: id, CallbackID: id, LeadID: lead, WebhookID: fmt.Sprintf("cb_%d", id),
		ExternalID: fmt.Sprintf("L%d", lead), Body: []byte(body), State: crm.DeliveryPending,
	}})
	q.mu.Unlock()
	q.signal()
	return id
}

func (q *fakeQueue) signal() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

func (q *fakeQueue) StartForwarding(context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.started++
	return nil
}

func (q *fakeQueue) ClaimDeliveries(_ context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.claims++
	if q.failClaims > 0 {
		q.failClaims--
		return nil, fmt.Errorf("claim: database is locked")
	}
	var out []crm.Delivery
	blocked := map[int64]bool{}
	for _, d := range q.ds {
		if len(out) >= limit {
			break
		}
		if d.State == crm.DeliveryInFlight && now.After(d.until) {
			d.State = crm.DeliveryPending // lease expired
		}
		open := d.State == crm.DeliveryPending || d.State == crm.DeliveryInFlight
		due := d.State == crm.DeliveryPending && !d.NextAt.After(now)
		if d.LeadID != 0 && blocked[d.LeadID] {
			continue
		}
		if due {
			d.State, d.owner, d.until = crm.DeliveryInFlight, owner, now.Add(lease)
			out = append(out, d.Delivery)
			continue
		}
		if open && d.LeadID != 0 {
			blocked[d.LeadID] = true
		}
	}
	return out, nil
}

func (q *fakeQueue) RecordDeliveries(_ context.Context, owner string, rs []crm.DeliveryResult) ([]int64, error) {
	q.mu.Lock()
	var lost []int64
	for _, r := range rs {
		d := q.ds[r.ID-1]
		if d.State != crm.DeliveryInFlight || d.owner != owner {
			lost = append(lost, r.ID)
			continue
		}
		q.attempts = append(q.attempts, r)
		d.Attempts++
		d.LastError = r.Error
		d.owner = ""
		switch {
		case r.Delivered:
			d.State = crm.DeliveryDelivered
		case r.Final:
			d.State = crm.DeliveryFailed
		default:
			d.State, d.NextAt = crm.DeliveryPending, r.NextAt
		}
	}
	q.mu.Unlock()
	q.signal()
	return lost, nil
}

func (q *fakeQueue) ReleaseDeliveries(_ context.Context, owner string, ids []int64) error {
	q.mu.Lock()
	for _, id := range ids {
		d := q.ds[id-1]
		if d.State == crm.DeliveryInFlight && d.owner == owner {
			d.State, d.owner = crm.DeliveryPending, ""
		}
	}
	q.mu.Unlock()
	q.signal()
	return nil
}

func (q *fakeQueue) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-q.changed:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// count is how many deliveries are in state s.
func (q *fakeQueue) count(s crm.DeliveryState) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, d := range q.ds {
		if d.State == s {
			n++
		}
	}
	return n
}

// delivery is a copy of delivery id.
func (q *fakeQueue) delivery(id int64) crm.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ds[id-1].Delivery
}

// results is a copy of the recorded attempts.
func (q *fakeQueue) results() []crm.DeliveryResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]crm.DeliveryResult(nil), q.attempts...)
}
