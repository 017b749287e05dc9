package ui

import (
	"context"
	"errors"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The fake's finding and Sources methods (the views' tests extend them).

func (f *fakeSource) FindLead(ctx context.Context, id string) (crm.Lead, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leads {
		if l.ExternalID == id {
			return l, nil
		}
	}
	for _, l := range f.leads {
		if l.CRMID != "" && l.CRMID == id {
			return l, nil
		}
	}
	return crm.Lead{}, crm.ErrNotFound
}

func (f *fakeSource) CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (int, bool, error) {
	q.Limit, q.Offset = 1<<30, 0
	rows, err := f.Leads(ctx, q)
	if err != nil {
		return 0, false, err
	}
	if limit > 0 && len(rows) >= limit {
		return limit, true, nil
	}
	return len(rows), false, nil
}

func (f *fakeSource) Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error) {
	return nil, nil
}

var _ = errors.New
var _ = time.Second
