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
