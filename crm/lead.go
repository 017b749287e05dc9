package crm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// State is where a lead stands in the outbox.
type State string

// Lead states. The first three are live (the dispatcher still owns the
// lead); the rest are final until an operator resubmits.
const (
	StateQueued          State = "queued"
	StateInFlight        State = "in_flight"
	StateRetryWait       State = "retry_wait"
	StateAccepted        State = "accepted"
	StateDuplicate       State = "duplicate"
	StateValidationError State = "validation_error"
	StateRejected        State = "rejected"
	StateFailed          State = "failed"
	// StateHeld: kept from being sent until released, by an operator
	// (Lead.Hold "operator") or because its source or sub_id is paused
	// (Lead.Hold "source" or "sub_id"). Not final; not claimed.
	StateHeld State = "held"
)

// States lists every state in display order.
var States = []State{
	StateQueued, StateInFlight, StateRetryWait, StateHeld, StateAccepted,
	StateDuplicate, StateValidationError, StateRejected, StateFailed,
}

// Final reports whether s is an outcome the dispatcher will not change.
func (s State) Final() bool {
	switch s {
	case StateAccepted, StateDuplicate, StateValidationError, StateRejected, StateFailed:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Resubmittable reports whether an operator may put a lead in state s back
// into the queue.
func (s State) Resubmittable() bool {
	switch s {
	case StateFailed, StateRejected, StateValidationError, StateDuplicate:
		return true
	}
	return false
}

// Lead is one lead as the outbox keeps it.
type Lead struct {
	ID             int64
	ExternalID     string
	Payload        []byte // the exact bytes sent and signed
	IdempotencyKey string
	State          State
	CRMID          string
	CRMStatus      string // the lead's latest status from a callback
	Reason         string
	PhoneInvalid   bool // the phone is not valid E.164; sent anyway unless strict
	Attempts       int  // HTTP attempts made under the current key
	NextAttemptAt  time.Time
	LastHTTPStatus int
	LastError      string
	LastDelay      time.Duration
	LastDelayWhy   string
	LeaseOwner     string
	LeaseExpiresAt time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// The traffic source fields of the payload (LeadFields), kept in
	// columns for the Sources view, the report and pauses.
	Source, Funnel, SubID, Country string
	// Hold says why a held lead is held: HoldOperator, HoldSource or
	// HoldSubID; "" for a lead in any other state.
	Hold string
	// AcceptedAt is when the CRM accepted the lead (zero before);
	// FirstStatusAt when its first status callback arrived (zero before).
	AcceptedAt    time.Time
	FirstStatusAt time.Time
}

// Why a lead is held (Lead.Hold).
const (
	HoldOperator = "operator" // hold (dashboard or `leadwatch hold`)
	HoldSource   = "source"   // its source is paused
	HoldSubID    = "sub_id"   // its sub_id is paused
)

// AttemptKind tells a send from an operator's action in a lead's history.
type AttemptKind string

// Attempt kinds.
const (
	KindSend     AttemptKind = "send"
	KindResubmit AttemptKind = "resubmit"
)

// Attempt is one row of a lead's history: an HTTP attempt, or a resubmission
// (with the payload as it was before, when it was edited).
type Attempt struct {
	ID             int64
	LeadID         int64
	Kind           AttemptKind
	Number         int
	IdempotencyKey string
	StartedAt      time.Time
	Duration       time.Duration
	HTTPStatus     int    // 0 when no answer came
	ResponseBody   []byte // capped
	Error          string // network error text, if any
	Outcome        State  // the lead's state after this row
	Delay          time.Duration
	DelayWhy       string // e.g. "Retry-After 3s", "backoff 2^2 s, jittered"
	Note           string // resubmit: what changed and which key is used
	PrevPayload    []byte // resubmit with an edit: the payload before it
}

// ErrInvalidLead is wrapped by every error CheckLead returns.
var ErrInvalidLead = errors.New("invalid lead")

// DefaultMaxLeadBytes is CheckLead's size limit when LeadCheck.MaxBytes is
// zero. A lead is a small JSON object; a multi-megabyte one is almost
// always a mistake (a whole file on one line), and every retry would
// resend it.
const DefaultMaxLeadBytes = 1 << 20

// LeadFields are the fields the outbox needs from a payload.
type LeadFields struct {
	ExternalID string
	Phone      string
	Country    string
	// Source, Funnel and SubID name the traffic source, as the payload's
	// source, funnel and sub_id give them: a string as it is, a number as
	// its JSON text, anything else (or absent) "". Never an error: they
	// are the CRM's to judge. Each is cut to MaxGroupValue bytes.
	Source, Funnel, SubID string
	// PhoneInvalid: the phone is not valid E.164. Without LeadCheck.Strict
	// the lead is kept flagged and sent anyway: the CRM has the last word.
	PhoneInvalid bool
}

// LeadCheck tunes CheckLead. The zero value is the lenient check with the
// default size limit.
type LeadCheck struct {
	// Strict refuses a phone that is not valid E.164 instead of flagging
	// it (LeadFields.PhoneInvalid).
	Strict bool
	// MaxBytes refuses larger payloads; DefaultMaxLeadBytes when zero or
	// less.
	MaxBytes int
}

// CheckLead is the one check a lead passes before it enters the outbox,
// whoever offers it (a submit file, the editor, the store): the payload is
// at most MaxBytes, exactly one JSON object, with a non-empty string
// external_id free of control characters, a string phone, and country a
// string when present. The phone's E.164 validity is judged with
// libphonenumber's metadata: an invalid one is an error when Strict, else
// only flagged. It returns the fields the outbox keeps; every error wraps
// ErrInvalidLead. The CRM does the full validation.
func CheckLead(payload []byte, opt LeadCheck) (LeadFields, error) {
	var f LeadFields
	if err := CheckLeadSize(payload, opt.MaxBytes); err != nil {
		return f, err
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return f, fmt.Errorf("%w: not a JSON object", ErrInvalidLead)
	}
	// Unmarshal refuses anything after the object, so a line holding two
	// leads is not taken for the first one.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return f, fmt.Errorf("%w: %v", ErrInvalidLead, err)
	}
	str := func(key string, required bool) (string, error) {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			if required {
				return "", fmt.Errorf("%w: %s is required", ErrInvalidLead, key)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: %s must be a string", ErrInvalidLead, key)
		}
		if required && s == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrInvalidLead, key)
		}
		return s, nil
	}
	var err error
	if f.ExternalID, err = str("external_id", true); err != nil {
		return f, err
	}
	// The id travels in the Idempotency-Key header and the status URL;
	// a control character would make every attempt fail locally.
	if strings.ContainsFunc(f.ExternalID, unicode.IsControl) {
		return f, fmt.Errorf("%w: external_id contains a control character", ErrInvalidLead)
	}
	if f.Phone, err = str("phone", true); err != nil {
		return f, err
	}
	if f.Country, err = str("country", false); err != nil {
		return f, err
	}
	f.Source, f.Funnel, f.SubID = groupValue(m["source"]), groupValue(m["funnel"]), groupValue(m["sub_id"])
	if !phoneValidE164(f.Phone) {
		if opt.Strict {
			return f, fmt.Errorf("%w: phone %q is not valid E.164", ErrInvalidLead, f.Phone)
		}
		f.PhoneInvalid = true
	}
	return f, nil
}

// CheckLeadSize is CheckLead's size limit alone: an error wrapping
// ErrInvalidLead when payload is over maxBytes (DefaultMaxLeadBytes when
// zero or less).
func CheckLeadSize(payload []byte, maxBytes int) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxLeadBytes
	}
	if len(payload) > maxBytes {
		return fmt.Errorf("%w: payload is %d bytes, over the %d-byte limit", ErrInvalidLead, len(payload), maxBytes)
	}
	return nil
}

// MaxGroupValue bounds a source, funnel, sub_id or country kept for
// grouping: longer values are cut (at a UTF-8 boundary).
const MaxGroupValue = 200

// groupValue is a source field as the Sources view groups it: a string as
// it is, a number as its JSON text, anything else "".
func groupValue(raw json.RawMessage) string {
	var s string
	switch {
	case len(raw) == 0:
		return ""
	case raw[0] == '"':
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		s = string(raw)
	default:
		return ""
	}
	return CutGroupValue(s)
}

// CutGroupValue cuts s to MaxGroupValue bytes at a UTF-8 boundary.
func CutGroupValue(s string) string {
	if len(s) <= MaxGroupValue {
		return s
	}
	s = s[:MaxGroupValue]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1] // a rune cut in two
	}
	return s
}

// phoneValidE164 reports whether phone is written in E.164 ("+" and up to
// 15 digits, no spaces) and is a valid number for its country. The shape
// is checked first: it is cheap, and libphonenumber would accept spaces,
// dashes and national forms that the CRM refuses.
func phoneValidE164(phone string) bool {
	if len(phone) < 3 || len(phone) > 16 || phone[0] != '+' {
		return false
	}
	for _, c := range phone[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	num, err := phonenumbers.Parse(phone, "")
	if err != nil {
		return false
	}
	return phonenumbers.IsValidNumber(num) && phonenumbers.Format(num, phonenumbers.E164) == phone
}

// NewIdempotencyKey makes a fresh key for a lead, in the seed's
// "{external_id}-{unix ms}" shape with a random suffix so two keys made in
// the same millisecond still differ.
func NewIdempotencyKey(externalID string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return externalID + "-" + strconv.FormatInt(now.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:])
}

// KeepsKey applies docs/protocol.md §1's key rule to a resubmission: an unchanged
// payload of a failed lead keeps its key (the CRM may have it in flight or
// stored); a final outcome or an edited payload gets a new key.
func KeepsKey(state State, oldPayload, newPayload []byte) bool {
	return state == StateFailed && (newPayload == nil || bytes.Equal(oldPayload, newPayload))
}
