package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Operator actions, the Sources report and the pulse: not yet implemented
// on this backend.

func (db *DB) Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error) {
	return nil, errors.ErrUnsupported
}

func (db *DB) RetryAllNow(ctx context.Context) (int, error) { return 0, errors.ErrUnsupported }

func (db *DB) Pause(ctx context.Context, p crm.Pause) (int, error) { return 0, errors.ErrUnsupported }

func (db *DB) Resume(ctx context.Context, p crm.Pause) (int, error) { return 0, errors.ErrUnsupported }

func (db *DB) Pauses(ctx context.Context) ([]crm.Pause, error) { return nil, errors.ErrUnsupported }

func (db *DB) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	return crm.Lead{}, errors.ErrUnsupported
}

func (db *DB) CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (int, bool, error) {
	return 0, false, errors.ErrUnsupported
}

func (db *DB) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	return nil, errors.ErrUnsupported
}

func (db *DB) Pulse(ctx context.Context, now time.Time) (crm.Pulse, error) {
	return crm.Pulse{}, errors.ErrUnsupported
}
