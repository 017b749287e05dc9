package ui

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The fake's forwarding: the queue's stats as a test sets them, the
// delivery attempts of each lead for its timeline, and every Replay
// call recorded. Off (Enabled false) until a test turns it on, as on a
// store no forwarder ever started on.

// replayCall is one recorded Source.Replay.
type replayCall struct {
	IDs   []int64
	Since time.Time
}

// fakeForward is the fake's forwarding record, one per fake, guarded by
// the fake's mutex (like fakeOps).
type fakeForward struct {
	stats     crm.ForwardStats
	statsErr  error
	forwards  map[string][]crm.ForwardAttempt // by external_id
	replays   []replayCall
	replayErr error
}

var fakeForwardOf sync.Map // *fakeSource → *fakeForward

// fwd is f's forwarding record; the caller holds f.mu.
func (f *fakeSource) fwd() *fakeForward {
	o, _ := fakeForwardOf.LoadOrStore(f, &fakeForward{forwards: map[string][]crm.ForwardAttempt{}})
	return o.(*fakeForward)
}

func (f *fakeSource) ForwardStats(ctx context.Context) (crm.ForwardStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fwd().stats, f.fwd().statsErr
}

// Replay counts the ids the fake holds, as the store queues only stored
// callbacks; an empty ids replays every callback received since since.
func (f *fakeSource) Replay(ctx context.Context, ids []int64, since time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fw := f.fwd()
	fw.replays = append(fw.replays, replayCall{slices.Clone(ids), since})
	if fw.replayErr != nil {
		return 0, fw.replayErr
	}
	n := 0
	for _, c := range f.callbacks {
		if (len(ids) == 0 && !c.ReceivedAt.Before(since)) || slices.Contains(ids, c.ID) {
			n++
		}
	}
	fw.stats.Pending += n
	return n, nil
}

// setForward makes ForwardStats answer fs from now on.
func (f *fakeSource) setForward(fs crm.ForwardStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fwd().stats = fs
}

// setForwards gives the lead externalID these delivery attempts.
func (f *fakeSource) setForwards(externalID string, as []crm.ForwardAttempt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fwd().forwards[externalID] = as
}

// forwardsOf is the lead's delivery attempts; the caller holds f.mu.
func (f *fakeSource) forwardsOf(externalID string) []crm.ForwardAttempt {
	return f.fwd().forwards[externalID]
}

// replayCalls is a copy of the recorded Replay calls.
func (f *fakeSource) replayCalls() []replayCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fwd().replays)
}
