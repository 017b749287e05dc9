package callbacks

import (
	"context"
	"fmt"

	"github.com/leadwatch/leadwatch/crm"
)

// pending is one verified event waiting for its group commit.
type pending struct {
	ev  crm.CallbackEvent
	ctx context.Context
	// done carries the commit result. It has room for one value so the
	// committer never blocks on a request that stopped waiting.
	done chan commitResult
}

type commitResult struct {
	fresh bool
	err   error
}

// commit hands ev to the group committer and waits for the commit of its
// batch. It reports whether ev was new (false: a replay). It never reports
// success for an event that was not committed: when ctx ends first it
// returns ctx's error, and the event may or may not have been stored, which
// the dedup key makes harmless when the CRM retries.
//
// The wait is bounded by twice CommitTimeout (the batch before ours may be
// committing first): a sink that hangs without honouring its context must
// not hold requests, nor their connections, forever.
func (h *Handler) commit(ctx context.Context, ev crm.CallbackEvent) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*h.cfg.CommitTimeout)
	defer cancel()
	p := &pending{ev: ev, ctx: ctx, done: make(chan commitResult, 1)}
	h.mu.RLock()
	if h.closed {
		h.mu.RUnlock()
		return false, errClosed
	}
	select {
	case h.queue <- p:
	case <-ctx.Done():
		h.mu.RUnlock()
		return false, ctx.Err()
	}
	h.mu.RUnlock()
	select {
	case res := <-p.done:
		return res.fresh, res.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// runCommitter is the single writer of events. It blocks for the first
// pending event, then takes whatever else is already queued, up to
// MaxBatch, without waiting for more: at low load a batch is one event and
// costs no added latency; under load the events that queued up during one
// commit form the next batch, so the number of transactions (fsyncs) stays
// bounded while throughput grows with concurrency.
func (h *Handler) runCommitter() {
	defer h.wg.Done()
	batch := make([]*pending, 0, h.cfg.MaxBatch)
	b := newBatcher(h.cfg.MaxBatch)
	for p := range h.queue {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < h.cfg.MaxBatch {
			select {
			case q, ok := <-h.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		h.commitBatch(b, batch)
		clear(batch) // let finished requests' bodies be collected
	}
}

// batcher holds the committer's reusable scratch space.
type batcher struct {
	evs  []crm.CallbackEvent
	slot []int // per pending: index into evs, or -1 when skipped
	dup  []bool
	seen map[string]int
}

func newBatcher(max int) *batcher {
	return &batcher{
		evs:  make([]crm.CallbackEvent, 0, max),
		slot: make([]int, 0, max),
		dup:  make([]bool, 0, max),
		seen: make(map[string]int, max),
	}
}

// commitBatch stores one batch in one sink transaction and tells every
// request in it the outcome. Requests whose client is already gone are left
// out (the CRM retries them). An event whose dedup key appears earlier in
// the same batch is not sent to the sink: it is a replay of that earlier
// one, answered once the batch has committed.
func (h *Handler) commitBatch(b *batcher, batch []*pending) {
	b.evs = b.evs[:0]
	b.slot = b.slot[:0]
	b.dup = b.dup[:0]
	clear(b.seen)
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			b.slot = append(b.slot, -1)
			b.dup = append(b.dup, false)
			continue
		}
		if len(batch) > 1 {
			if j, ok := b.seen[p.ev.DedupKey]; ok {
				b.slot = append(b.slot, j)
				b.dup = append(b.dup, true)
				continue
			}
			b.seen[p.ev.DedupKey] = len(b.evs)
		}
		b.slot = append(b.slot, len(b.evs))
		b.dup = append(b.dup, false)
		b.evs = append(b.evs, p.ev)
	}

	var fresh []bool
	var err error
	if len(b.evs) > 0 {
		h.batches.Add(1)
		fresh, err = h.save(b.evs)
	}
	for i, p := range batch {
		switch {
		case b.slot[i] < 0:
			p.done <- commitResult{err: p.ctx.Err()}
		case err != nil:
			p.done <- commitResult{err: err}
		case b.dup[i]:
			p.done <- commitResult{fresh: false}
		default:
			p.done <- commitResult{fresh: fresh[b.slot[i]]}
		}
	}
	clear(b.evs)
}

// save runs one SaveCallbacks under CommitTimeout and checks the sink kept
// its side of the contract: one answer per event.
// A panicking sink is turned into a failed commit: otherwise it would take
// the committer down and leave every waiting request hanging.
func (h *Handler) save(evs []crm.CallbackEvent) (fresh []bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.CommitTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			fresh, err = nil, fmt.Errorf("sink panicked: %v", p)
			h.log.Error("group commit failed; answering 503", "events", len(evs), "err", err)
		}
	}()
	fresh, err = h.sink.SaveCallbacks(ctx, evs)
	if err == nil && len(fresh) != len(evs) {
		err = fmt.Errorf("sink answered %d results for %d events", len(fresh), len(evs))
	}
	if err != nil {
		h.log.Error("group commit failed; answering 503", "events", len(evs), "err", err)
		return nil, err
	}
	return fresh, nil
}
