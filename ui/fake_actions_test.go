package ui

import (
	"context"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The fake's operator actions and pulse (the actions' tests extend them).

func (f *fakeSource) Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error) {
	return nil, nil
}

func (f *fakeSource) RetryAllNow(ctx context.Context) (int, error) { return 0, nil }

func (f *fakeSource) Pause(ctx context.Context, p crm.Pause) (int, error) { return 0, nil }

func (f *fakeSource) Resume(ctx context.Context, p crm.Pause) (int, error) { return 0, nil }

func (f *fakeSource) Pauses(ctx context.Context) ([]crm.Pause, error) { return nil, nil }

func (f *fakeSource) Pulse(ctx context.Context, now time.Time) (crm.Pulse, error) {
	return crm.Pulse{}, nil
}
