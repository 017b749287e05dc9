package ui

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The fake's operator actions and pulse. Actions apply to the fake's
// leads by crm.Action.Applies, as the store does, and are recorded.

// actCall is one recorded Source.Act.
type actCall struct {
	Action crm.Action
	IDs    []string
}

// fakeOps is what the fake records of the actions and answers for the
// pulse. It lives beside the fake (fake_test.go is shared by the
// dashboard's other tests), one per fake, guarded by the fake's mutex.
type fakeOps struct {
	acts      []actCall
	retryAll  int // RetryAllNow calls
	pauseReqs []crm.Pause
	actErr    error      // Act fails as a whole
	pulse     *crm.Pulse // nil: Pulse is unsupported, as a store without one
	pulseErr  error
}

var fakeOpsOf sync.Map // *fakeSource → *fakeOps

// ops is f's record; the caller holds f.mu.
func (f *fakeSource) ops() *fakeOps {
	o, _ := fakeOpsOf.LoadOrStore(f, &fakeOps{})
	return o.(*fakeOps)
}

func (f *fakeSource) Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops().acts = append(f.ops().acts, actCall{a, slices.Clone(externalIDs)})
	if f.ops().actErr != nil {
		return nil, f.ops().actErr
	}
	var out []crm.ActionResult
	for _, id := range externalIDs {
		i := slices.IndexFunc(f.leads, func(l crm.Lead) bool { return l.ExternalID == id })
		if i < 0 {
			out = append(out, crm.ActionResult{ExternalID: id, Err: crm.ErrNotFound})
			continue
		}
		l := &f.leads[i]
		r := crm.ActionResult{ExternalID: id, Before: l.State, After: l.State}
		if !a.Applies(l.State) {
			r.Err = crm.WrongState(a, l.State)
			out = append(out, r)
			continue
		}
		switch a {
		case crm.ActRetryNow:
			l.NextAttemptAt = t0
		case crm.ActHold:
			l.State, l.Hold = crm.StateHeld, crm.HoldOperator
		case crm.ActRelease:
			l.State, l.Hold, l.NextAttemptAt = crm.StateQueued, "", t0
		case crm.ActCancel:
			l.State, l.Hold, l.Reason = crm.StateFailed, "", crm.CanceledReason
		}
		r.After = l.State
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeSource) RetryAllNow(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops().retryAll++
	n := 0
	for i := range f.leads {
		if f.leads[i].State == crm.StateRetryWait {
			f.leads[i].NextAttemptAt = t0
			n++
		}
	}
	return n, nil
}

func (f *fakeSource) Pause(ctx context.Context, p crm.Pause) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops().pauseReqs = append(f.ops().pauseReqs, p)
	return 0, nil
}

func (f *fakeSource) Resume(ctx context.Context, p crm.Pause) (int, error) { return 0, nil }

func (f *fakeSource) Pauses(ctx context.Context) ([]crm.Pause, error) { return nil, nil }

func (f *fakeSource) Pulse(ctx context.Context, now time.Time) (crm.Pulse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops().pulse == nil {
		return crm.Pulse{}, errors.ErrUnsupported
	}
	return *f.ops().pulse, f.ops().pulseErr
}

// setPulse makes Pulse answer p from now on.
func (f *fakeSource) setPulse(p crm.Pulse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops().pulse = &p
}

// actCalls is a copy of the recorded Act calls.
func (f *fakeSource) actCalls() []actCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops().acts)
}

// leadState is the fake's lead's state now.
func (f *fakeSource) leadState(id string) crm.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leads {
		if l.ExternalID == id {
			return l.State
		}
	}
	return ""
}
