package callbacks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/groupcommit"
)

// commitLinger caps how long a batch waits, under load, for the callbacks
// its clients are about to send (groupcommit.Options.Linger; at most half
// a commit in any case). Every commit costs an fsync, which on a shared
// disk takes milliseconds (p50 1.7 ms, p99 25 ms measured under load): at
// 32 connections, merging the clients into one batch per commit instead
// of two took the events per commit from about 15 to about 25, and
// `leadwatch serve` up by 10–60 % (the more the disk is contended, the
// more), on PostgreSQL too. 5 ms did no better than 2 ms, a fifth of the
// p99 budget.
const commitLinger = 2 * time.Millisecond

// newCommitter starts the single writer of events (a group commit, see
// package groupcommit). Its queue has room for a few batches: requests
// beyond it wait in Submit, their contexts still honoured, rather than
// pile up without bound.
func (h *Handler) newCommitter() *groupcommit.Batcher[crm.CallbackEvent, bool] {
	b := newBatcher(h.cfg.MaxBatch)
	return groupcommit.New(func(evs []crm.CallbackEvent) ([]bool, error) {
		return h.commitBatch(b, evs)
	}, groupcommit.Options{MaxBatch: h.cfg.MaxBatch, Queue: 4 * h.cfg.MaxBatch, Linger: commitLinger})
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
	fresh, err := h.commits.Do(ctx, ev)
	if errors.Is(err, groupcommit.ErrClosed) {
		err = errClosed
	}
	return fresh, err
}

// batcher holds the committer's reusable scratch space.
type batcher struct {
	evs  []crm.CallbackEvent
	slot []int  // per event of the batch: its index into evs
	dup  []bool // per event of the batch: a replay of an earlier one in it
	seen map[dedupKey]int
}

// dedupKey is an event's identity: its three parts compared one by one,
// never the joined CallbackEvent.DedupKey, in which ("a:b", "c") and
// ("a", "b:c") are the same string although they are two events.
type dedupKey struct{ internalID, event, timestamp string }

func keyOf(ev *crm.CallbackEvent) dedupKey {
	return dedupKey{ev.InternalID, ev.Event, ev.Timestamp}
}

func newBatcher(max int) *batcher {
	return &batcher{
		evs:  make([]crm.CallbackEvent, 0, max),
		slot: make([]int, 0, max),
		dup:  make([]bool, 0, max),
		seen: make(map[dedupKey]int, max),
	}
}

// commitBatch stores one batch in one sink transaction and returns, per
// event, whether it was fresh. An event whose dedup key appears earlier in
// the same batch is not sent to the sink: it is a replay of that earlier
// one, answered once the batch has committed. (Requests whose client is
// already gone never reach here: the batcher leaves them out, and the CRM
// retries them.)
func (h *Handler) commitBatch(b *batcher, batch []crm.CallbackEvent) ([]bool, error) {
	b.evs = b.evs[:0]
	b.slot = b.slot[:0]
	b.dup = b.dup[:0]
	clear(b.seen)
	for i := range batch {
		ev := &batch[i]
		if len(batch) > 1 {
			k := keyOf(ev)
			if j, ok := b.seen[k]; ok {
				b.slot = append(b.slot, j)
				b.dup = append(b.dup, true)
				continue
			}
			b.seen[k] = len(b.evs)
		}
		b.slot = append(b.slot, len(b.evs))
		b.dup = append(b.dup, false)
		b.evs = append(b.evs, *ev)
	}
	defer clear(b.evs) // let the bodies be collected

	h.batches.Add(1)
	saved, err := h.save(b.evs)
	if err != nil {
		return nil, err
	}
	fresh := make([]bool, len(batch))
	for i := range batch {
		fresh[i] = !b.dup[i] && saved[b.slot[i]]
	}
	return fresh, nil
}

// save runs one SaveCallbacks under CommitTimeout and checks the sink kept
// its side of the contract: one answer per event.
// A panicking sink is turned into a failed commit: otherwise it would take
// the committer down and leave every waiting request hanging.
func (h *Handler) save(evs []crm.CallbackEvent) (fresh []bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.CommitTimeout)
	defer cancel()
	if o := h.observe(); o != nil {
		// Deferred first, so it runs last: after a panic has become err.
		start := time.Now()
		defer func() { o.Committed(len(evs), time.Since(start), err) }()
	}
	defer func() {
		if p := recover(); p != nil {
			fresh, err = nil, fmt.Errorf("sink panicked: %v", p)
			h.rlog.Error("commit", "group commit failed; answering 503", "events", len(evs), "err", err)
		}
	}()
	fresh, err = h.sink.SaveCallbacks(ctx, evs)
	if err == nil && len(fresh) != len(evs) {
		err = fmt.Errorf("sink answered %d results for %d events", len(fresh), len(evs))
	}
	if err != nil {
		h.rlog.Error("commit", "group commit failed; answering 503", "events", len(evs), "err", err)
		return nil, err
	}
	return fresh, nil
}
