package crm

import (
	"errors"
	"strconv"
	"time"
)

// CallbackEvent is one verified status callback from CartelCRM
// (docs/protocol.md §3).
type CallbackEvent struct {
	ID         int64
	DedupKey   string // "{internal_id}:{event}:{timestamp}"
	InternalID string // the CRM's id of the lead
	ExternalID string // our lead's id, when the CRM sends it
	Event      string
	Status     string
	Reason     string
	Timestamp  string    // as sent: a string, or a number's exact digits
	EventTime  time.Time // Timestamp read as unix seconds/ms or RFC 3339; zero if neither
	ReceivedAt time.Time
	Skew       time.Duration // ReceivedAt minus X-Timestamp
	RawBody    []byte        // the exact bytes that were signed; nil when read in a list
	SecretIdx  int           // which configured callback secret verified it
	LeadID     int64         // the lead it matched; 0 when unmatched
	// Kind is KindCallback for a verified callback, KindPolled for a
	// status leadwatch learned by a lookup (docs/protocol.md §6), whose
	// RawBody is the status_polled event leadwatch wrote. "" reads as
	// KindCallback.
	Kind string
	// TimestampNumber says the CRM sent timestamp as a JSON number (its
	// digits are in Timestamp); false for a string.
	TimestampNumber bool
}

// Callback row kinds.
const (
	KindCallback = "callback"
	KindPolled   = "polled"
)

// Refusal is a callback that failed verification: counted and shown, never
// trusted.
type Refusal struct {
	ID         int64
	At         time.Time
	RemoteAddr string
	HTTPStatus int
	Code       string // the error answered: bad_signature, timestamp_out_of_range, ...
	Detail     string // the precise reason, e.g. "clock skew of 412 s"
	Head       []byte // the first bytes of the body
}

// Callback answer codes (docs/protocol.md §3).
const (
	CodeBodyTooLarge     = "body_too_large"
	CodeTimestampRange   = "timestamp_out_of_range"
	CodeBadSignature     = "bad_signature"
	CodeInvalidPayload   = "invalid_payload"
	CodeUnavailable      = "unavailable"
	CodeMethodNotAllowed = "method_not_allowed"
)

// ErrInvalidPayload is wrapped by ParseCallback's errors.
var ErrInvalidPayload = errors.New("invalid callback payload")

// ParseCallback reads the fields of a verified callback body, parsing it
// once: the body must be exactly one JSON object, naming none of the
// fields it reads twice (see scanCallback). internal_id, event and
// timestamp must be strings or numbers; numbers keep their exact digits so
// the dedup key is the one the CRM meant. The raw body is kept as given.
func ParseCallback(raw []byte) (CallbackEvent, error) {
	var ev CallbackEvent
	vals, err := scanCallback(raw)
	if err != nil {
		return ev, err
	}
	if ev.InternalID, err = scalar(vals[fieldInternalID], "internal_id", true); err != nil {
		return ev, err
	}
	if ev.Event, err = scalar(vals[fieldEvent], "event", true); err != nil {
		return ev, err
	}
	if ev.Timestamp, err = scalar(vals[fieldTimestamp], "timestamp", true); err != nil {
		return ev, err
	}
	// A string token starts with its quote; scalar took anything else as
	// a number's digits. Export and tail write it back as the CRM sent it.
	ev.TimestampNumber = vals[fieldTimestamp][0] != '"'
	// Optional fields: a wrong type is kept in the raw body but not used.
	ev.ExternalID, _ = scalar(vals[fieldExternalID], "external_id", false)
	ev.Status, _ = scalar(vals[fieldStatus], "status", false)
	ev.Reason, _ = scalar(vals[fieldReason], "reason", false)
	ev.DedupKey = ev.InternalID + ":" + ev.Event + ":" + ev.Timestamp
	ev.EventTime = parseEventTime(ev.Timestamp)
	ev.RawBody = raw
	return ev, nil
}

// parseEventTime reads unix seconds, unix milliseconds or RFC 3339.
func parseEventTime(s string) time.Time {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n > 1e11 && n < 1e14:
			return time.UnixMilli(n).UTC()
		case n > 0 && n <= 1e11:
			return time.Unix(n, 0).UTC()
		}
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// CallbackBody is the JSON the sandbox sends and tests build callbacks from.
type CallbackBody struct {
	InternalID string `json:"internal_id"`
	ExternalID string `json:"external_id,omitempty"`
	Event      string `json:"event"`
	Status     string `json:"status,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Timestamp  int64  `json:"timestamp"`
}
