package crm

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrWrongState means an operator action does not apply to the lead in
// the state it is in (retry-now on an accepted lead, cancel of a lead in
// flight). ActionResult.Err wraps it with the state.
var ErrWrongState = errors.New("action does not apply to the lead's state")

// Action is an operator action on leads, from the dashboard or the
// command line. Each writes to the store; every sender sharing it picks
// the change up.
type Action string

// Actions.
const (
	// ActRetryNow makes a retry_wait lead due now, with the same key.
	ActRetryNow Action = "retry-now"
	// ActHold keeps a queued or retry_wait lead from being sent (held,
	// Hold "operator"); attempts and key are kept.
	ActHold Action = "hold"
	// ActRelease puts a held lead back in the queue, due now, whatever
	// held it (a lead whose source is still paused is held again by the
	// pause).
	ActRelease Action = "release"
	// ActCancel ends a queued, retry_wait or held lead as failed with
	// reason "canceled by operator"; it will not be sent. Resubmit brings
	// it back (an unchanged payload keeps its key).
	ActCancel Action = "cancel"
)

// CanceledReason is the reason a canceled lead keeps.
const CanceledReason = "canceled by operator"

// Applies reports whether a applies to a lead in state s.
func (a Action) Applies(s State) bool {
	switch a {
	case ActRetryNow:
		return s == StateRetryWait
	case ActHold:
		return s == StateQueued || s == StateRetryWait
	case ActRelease:
		return s == StateHeld
	case ActCancel:
		return s == StateQueued || s == StateRetryWait || s == StateHeld
	}
	return false
}

// ActionResult is what an action did to one lead.
type ActionResult struct {
	ExternalID string
	Before     State // "" when the lead was not found
	After      State // the state now (Before when Err is set)
	// Err is nil when the action was applied; it wraps ErrNotFound or
	// ErrWrongState otherwise.
	Err error
}

// WrongState is the ActionResult.Err for a lead in state s.
func WrongState(a Action, s State) error {
	return fmt.Errorf("%w: %s does not apply to a %s lead", ErrWrongState, a, s)
}

// Pause stops sending for the leads of one source or one sub_id: their
// queued and retry_wait leads become held (Hold "source" or "sub_id"),
// new ones are held as they are enqueued, and a lead whose attempt ends
// in a retry is held instead of waiting. Resume releases what the pause
// held (unless another pause still holds it).
type Pause struct {
	Field string // GroupSource or GroupSubID
	Value string
	At    time.Time // when it was paused (as Pauses lists it)
}

// Validate checks that p names a field a pause applies to.
func (p Pause) Validate() error {
	if p.Field != GroupSource && p.Field != GroupSubID {
		return fmt.Errorf("pause: field must be %s or %s, not %q", GroupSource, GroupSubID, p.Field)
	}
	return nil
}

// The fields the Sources view and the report group by.
const (
	GroupSource  = "source"
	GroupFunnel  = "funnel"
	GroupSubID   = "sub_id"
	GroupCountry = "country"
)

// GroupFields lists the group fields in the order the view cycles them.
var GroupFields = []string{GroupSource, GroupFunnel, GroupSubID, GroupCountry}

// ValidGroup reports whether f is one of GroupFields.
func ValidGroup(f string) bool {
	for _, g := range GroupFields {
		if f == g {
			return true
		}
	}
	return false
}

// ReportQuery selects the Sources view's rows.
type ReportQuery struct {
	By string // one of GroupFields
	// Since: only leads created at or after it, read at minute resolution
	// (truncated to the minute); zero for the whole store.
	Since time.Time
}

// ReportRow is one group's numbers: the leads created in the window
// whose source field has this Value ("" for none), by the state they are
// in now. Sent is the leads with a final outcome (Accepted + Duplicate +
// Rejected + ValidationError + Failed); rates are over Sent, the FTD rate
// over Accepted.
type ReportRow struct {
	Value           string
	Sent            int
	Accepted        int
	Duplicate       int
	Rejected        int
	ValidationError int
	Failed          int
	// WithStatus is how many leads got at least one status (callback);
	// FTD how many reached the status "ftd" at some point.
	WithStatus int
	FTD        int
	// FirstStatus counts, per LatencyBounds bucket, the time from
	// acceptance to the first status callback of each lead in WithStatus.
	FirstStatus [LatencyBuckets]int
}

// Rate is n/d, 0 when d is 0.
func Rate(n, d int) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// AcceptedRate and the others are the row's rates (0–1).
func (r ReportRow) AcceptedRate() float64  { return Rate(r.Accepted, r.Sent) }
func (r ReportRow) DuplicateRate() float64 { return Rate(r.Duplicate, r.Sent) }
func (r ReportRow) RejectedRate() float64  { return Rate(r.Rejected, r.Sent) }
func (r ReportRow) InvalidRate() float64   { return Rate(r.ValidationError, r.Sent) }
func (r ReportRow) FailedRate() float64    { return Rate(r.Failed, r.Sent) }
func (r ReportRow) FTDRate() float64       { return Rate(r.FTD, r.Accepted) }

// Add adds o's counts to r (Value stays r's).
func (r *ReportRow) Add(o ReportRow) {
	r.Sent += o.Sent
	r.Accepted += o.Accepted
	r.Duplicate += o.Duplicate
	r.Rejected += o.Rejected
	r.ValidationError += o.ValidationError
	r.Failed += o.Failed
	r.WithStatus += o.WithStatus
	r.FTD += o.FTD
	for i := range r.FirstStatus {
		r.FirstStatus[i] += o.FirstStatus[i]
	}
}

// LatencyBuckets is the number of buckets of ReportRow.FirstStatus.
const LatencyBuckets = 18

// LatencyBounds are the buckets' upper bounds (inclusive); the last
// bucket holds everything longer than the one before it.
var LatencyBounds = [LatencyBuckets - 1]time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	20 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
	5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// LatencyBucket is the FirstStatus bucket a latency d falls in (a
// negative d, a status before the acceptance was recorded, is bucket 0).
func LatencyBucket(d time.Duration) int {
	return sort.Search(len(LatencyBounds), func(i int) bool { return d <= LatencyBounds[i] })
}

// MedianFirstStatus is the median time from acceptance to the first
// status, read from the histogram: the middle lead's bucket, interpolated
// linearly inside it (the last bucket, unbounded, reports its lower
// bound). ok is false when no lead has a status.
func (r ReportRow) MedianFirstStatus() (d time.Duration, ok bool) {
	total := 0
	for _, n := range r.FirstStatus {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	half := float64(total) / 2
	seen := 0
	for i, n := range r.FirstStatus {
		if n == 0 || float64(seen+n) < half {
			seen += n
			continue
		}
		lo := time.Duration(0)
		if i > 0 {
			lo = LatencyBounds[i-1]
		}
		if i == len(LatencyBounds) {
			return lo, true
		}
		hi := LatencyBounds[i]
		frac := (half - float64(seen)) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	return LatencyBounds[len(LatencyBounds)-1], true
}

// Pulse is the store's view of recent traffic, read from its per-second
// counts, for a dashboard attached to a store that others feed (whose own
// sender and listener are off): the CRM's and the listener's health from
// what every instance wrote. Times are at one-second resolution and look
// back one hour at most (zero: nothing in that hour).
type Pulse struct {
	LastAttempt  time.Time // the latest second with an attempt started
	LastAnswered time.Time // the latest second with an attempt the CRM answered (any HTTP status)
	// Unanswered is how many attempts got no answer (network error,
	// timeout) since LastAnswered: the consecutive failures.
	Unanswered int
	// Over the last minute: attempts started, those that got no answer,
	// leads accepted, verified callbacks stored, callbacks refused.
	AttemptsMin, UnansweredMin, AcceptedMin int
	LastCallback                            time.Time // the latest second with a verified callback stored
	CallbacksMin, RefusedMin                int
}
