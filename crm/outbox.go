package crm

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned by Outbox.Record and Outbox.Release when the
// caller no longer holds the lead's lease (it expired and another worker
// took it). The attempt is not recorded; the other worker's is.
var ErrLeaseLost = errors.New("lease lost")

// ErrNotFound is returned when a lead (or a status) does not exist.
var ErrNotFound = errors.New("not found")

// Outbox is what the Dispatcher needs from storage. The store package
// satisfies it; several processes may share one outbox, and the lease is
// what keeps a lead with one sender at a time.
type Outbox interface {
	// Claim leases up to limit due leads to owner until now+lease, marking
	// them in_flight and counting the attempt about to be made, and returns
	// them (Lead.Attempts is the number of that attempt). Due means queued,
	// retry_wait with next_attempt_at <= now, or in_flight with an expired
	// lease (its sender died; the same key is reused, so the CRM replays).
	Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Lead, error)

	// Record stores one attempt and the lead's new state in one
	// transaction, and frees the lease; ErrLeaseLost if owner no longer
	// holds it.
	Record(ctx context.Context, owner string, r AttemptResult) error

	// Release gives leads back to the queue without an attempt (shutdown
	// before they were sent), undoing Claim's count.
	Release(ctx context.Context, owner string, ids []int64) error

	// NextDue returns when the earliest waiting lead becomes due: the
	// soonest next_attempt_at or lease expiry. ok is false when nothing
	// waits.
	NextDue(ctx context.Context) (due time.Time, ok bool, err error)
}

// AttemptResult is what one attempt did to a lead: the history row and the
// lead's new state.
type AttemptResult struct {
	Attempt       Attempt // Attempt.LeadID names the lead; Attempt.Outcome is its new state
	CRMID         string
	Reason        string
	NextAttemptAt time.Time // when Outcome is retry_wait
}

// Counts are the headline numbers of the dashboard.
type Counts struct {
	States             map[State]int
	CallbacksVerified  int
	CallbacksUnmatched int
	Refusals           int
	// Polled counts statuses learned by lookups (KindPolled rows), apart
	// from the callbacks above.
	Polled int
}

// LeadQuery selects leads for a pane. Only the rows shown are asked for.
type LeadQuery struct {
	States []State // none: every state
	Filter string  // case-insensitive substring of external_id, crm_id or reason
	// Reason, when set, is a case-insensitive substring the lead's reason
	// must contain as well (bulk resubmit --reason).
	Reason string
	Limit  int
	Offset int
	// Order: OrderDefault is by next_attempt_at ascending when the only
	// state is retry_wait, otherwise by updated_at descending (newest
	// first). OrderNewest and OrderOldest are by id (creation order),
	// with keyset paging by BeforeID / AfterID instead of Offset, so the
	// All leads pane pages over millions of rows at the cost of one page.
	Order LeadOrder
	// With OrderNewest: only leads with id < BeforeID (0: no bound).
	// With OrderOldest: only leads with id > AfterID.
	BeforeID, AfterID int64
}

// LeadOrder orders a LeadQuery.
type LeadOrder int

// Lead orders.
const (
	OrderDefault LeadOrder = iota
	OrderNewest            // id descending
	OrderOldest            // id ascending
)

// EventScanWindow bounds a filtered callbacks query (EventQuery.Filter):
// the filter is matched against the newest EventScanWindow callbacks
// only. The Status events pane shows the newest events; without the
// bound a filter that matches nothing (a word only the pane draws, a
// typo) reads every callback, raw bodies' pages included: seconds at a
// million rows.
const EventScanWindow = 20_000

// EventQuery selects callbacks or refusals, newest first.
type EventQuery struct {
	Filter  string // substring of external_id, internal_id, event or status (refusals: detail); callbacks: among the newest EventScanWindow
	Limit   int
	AfterID int64 // only rows with a larger id (for tail); 0 for all
}

// LeadDetail is one lead's whole story across both directions.
type LeadDetail struct {
	Lead      Lead
	Attempts  []Attempt       // oldest first
	Callbacks []CallbackEvent // oldest first, raw bodies included
	// Forwards are the attempts to deliver the lead's stored callbacks
	// to the app (docs/protocol.md §5), oldest first.
	Forwards []ForwardAttempt
}

// Throughput counts attempts sent and callbacks stored per bucket, oldest
// bucket first, for the header's sparklines.
type Throughput struct {
	Start     time.Time
	Bucket    time.Duration
	Sent      []int // attempts of kind send started
	Callbacks []int // verified callbacks stored
	Accepted  []int // attempts whose outcome was accepted
	Failed    []int // attempts whose outcome was failed (gave up)
}

// Resubmission reports what a resubmit did.
type Resubmission struct {
	Lead    Lead // as it now stands (queued)
	OldKey  string
	KeyKept bool // docs/protocol.md §1: unchanged payload of a failed lead
	Edited  bool
}
