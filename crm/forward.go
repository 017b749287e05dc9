package crm

import (
	"strconv"
	"time"
)

// Forwarding hands every verified, first-seen callback and every polled
// status on to the user's app (docs/protocol.md §5): a durable queue in
// the store, one delivery per stored callback row, claimed by one
// instance at a time like a lead, delivered at least once in stored order
// per lead.

// DeliveryState is where a delivery stands.
type DeliveryState string

// Delivery states.
const (
	DeliveryPending   DeliveryState = "pending"   // due at NextAt
	DeliveryInFlight  DeliveryState = "in_flight" // claimed; the lease says until when
	DeliveryDelivered DeliveryState = "delivered" // the app answered 2xx
	DeliveryFailed    DeliveryState = "failed"    // gave up after max_attempts; replayable
)

// Delivery is one callback row to hand to the app.
type Delivery struct {
	ID         int64
	CallbackID int64
	LeadID     int64  // 0 when the callback matched no lead
	ExternalID string // the lead's, "" when unmatched
	// WebhookID is the Standard Webhooks webhook-id: stable per stored
	// callback, the same on every retry and replay ("cb_<callback id>").
	WebhookID string
	Body      []byte // the callback's raw body, byte for byte
	State     DeliveryState
	Attempts  int // attempts made before this claim
	Replay    bool
	CreatedAt time.Time
	NextAt    time.Time
	LastError string
}

// DeliveryResult is one attempt's outcome, as the forwarder decided it:
// Delivered on a 2xx; otherwise Final (gave up) or NextAt (retry then).
type DeliveryResult struct {
	ID        int64
	At        time.Time // when the attempt started
	Status    int       // the app's HTTP status; 0 when none (network error, timeout)
	Head      []byte    // the first bytes of the app's answer
	Latency   time.Duration
	Error     string // why it was not delivered; "" when delivered
	Delivered bool
	Final     bool
	NextAt    time.Time
}

// ForwardAttempt is a recorded delivery attempt, for the lead's timeline
// and tail --all.
type ForwardAttempt struct {
	ID         int64 // the attempt row's id (increasing)
	DeliveryID int64
	CallbackID int64
	ExternalID string
	WebhookID  string
	DeliveryResult
}

// ForwardStats is the queue as the header and `leadwatch forward` show it.
type ForwardStats struct {
	Enabled   bool // a forwarder has ever started on this store
	Pending   int  // due or waiting to retry
	InFlight  int
	Failed    int
	Delivered int
	// Lag is how many stored callbacks are not yet in the queue (stored
	// after the forwarder's cursor).
	Lag           int
	OldestPending time.Time
	LastError     string // the newest failed attempt's error, "" if none
	LastErrorAt   time.Time
	LastDelivered time.Time
}

// WebhookIDPrefix starts every webhook-id; WebhookID is the one of a
// stored callback, the same on every retry and replay.
const WebhookIDPrefix = "cb_"

// WebhookID is the Standard Webhooks webhook-id of the callback row id.
func WebhookID(callbackID int64) string {
	return WebhookIDPrefix + strconv.FormatInt(callbackID, 10)
}
