package callbacks

import (
	"context"

	"github.com/leadwatch/leadwatch/crm"
)

// EventSink is where verified callbacks and refusals go. The store
// satisfies it.
type EventSink interface {
	// SaveCallbacks stores evs durably in one transaction (a group commit)
	// and reports, for each, whether it was new; false means its dedup key
	// was already stored (a replay). Each stored event is linked to the lead
	// it names, by external_id or by internal_id = the lead's CRM id. On
	// error nothing of the batch is stored.
	SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) (fresh []bool, err error)

	// SaveRefusal stores a refused callback, dropping the oldest refusals
	// past the store's bound.
	SaveRefusal(ctx context.Context, r crm.Refusal) error

	// Ping reports whether the store can take events.
	Ping(ctx context.Context) error
}

// HealthChecker is what /healthz asks, when the sink implements it, rather
// than Ping: whether the store can commit right now, judged by its last
// commit and a recent write probe. It must be cheap (cached), since every
// /healthz request calls it.
type HealthChecker interface {
	// Health returns "" when the store can commit, else one of the fixed
	// codes below; err is the detail, for the log only.
	Health(ctx context.Context) (code string, err error)
}

// The fixed codes of HealthChecker, shown as /healthz's "reason". Any other
// code is shown as HealthUnreachable: only these go on the wire.
const (
	HealthStoreReplaced = "store_replaced" // the database file was removed or replaced under the open handle
	HealthDiskFull      = "disk_full"
	HealthReadOnly      = "read_only"
	HealthUnreachable   = "unreachable" // the store does not answer, or fails otherwise
	// HealthDraining is not the store's: the instance was told to stop
	// and waits for the balancer to take it out (Handler.SetDraining).
	HealthDraining = "draining"
)
