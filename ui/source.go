package ui

import (
	"context"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Source is what the dashboard reads and changes. The store satisfies it;
// model tests use a small fake. List queries return what a row draws;
// the detail view fetches the rest (LeadDetail, Callback) when it opens.
type Source interface {
	Counts(ctx context.Context) (crm.Counts, error)
	Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error)
	Callbacks(ctx context.Context, q crm.EventQuery) ([]crm.CallbackEvent, error)
	Refusals(ctx context.Context, q crm.EventQuery) ([]crm.Refusal, error)
	// Callback is one callback with its raw body, which Callbacks leaves
	// out; crm.ErrNotFound when there is none.
	Callback(ctx context.Context, id int64) (crm.CallbackEvent, error)
	LeadDetail(ctx context.Context, externalID string) (crm.LeadDetail, error)
	Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error)
	Resubmit(ctx context.Context, externalID string, payload []byte) (crm.Resubmission, error)
	// Health is "" while the store can commit, else one of the store's
	// fixed codes (store_replaced, disk_full, read_only, unreachable) with
	// the detail. It must be cheap (the store caches it): every refresh
	// asks, since a store that stopped committing signals no change.
	Health(ctx context.Context) (code string, err error)

	// Finding leads (the All leads pane, the jump, filtered titles):
	// as store.Store documents them.
	FindLead(ctx context.Context, id string) (crm.Lead, error)
	CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (n int, capped bool, err error)
	// The Sources view.
	Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error)
	// Pulse is the CRM's and the listener's health as the store saw it,
	// for a dashboard whose own sender and listener are off.
	Pulse(ctx context.Context, now time.Time) (crm.Pulse, error)

	// Operator actions, written to the store so every sender sharing it
	// picks them up.
	Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error)
	RetryAllNow(ctx context.Context) (int, error)
	Pause(ctx context.Context, p crm.Pause) (held int, err error)
	Resume(ctx context.Context, p crm.Pause) (released int, err error)
	Pauses(ctx context.Context) ([]crm.Pause, error)

	// Forwarding to the user's app (docs/protocol.md §5), as store.Store
	// documents it: the queue for the header's forwarding line
	// (Enabled false, or errors.ErrUnsupported, draws none), and Replay,
	// which queues stored callbacks for the app again.
	ForwardStats(ctx context.Context) (crm.ForwardStats, error)
	Replay(ctx context.Context, ids []int64, since time.Time) (int, error)
}
