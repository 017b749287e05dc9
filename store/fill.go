package store

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// The synthetic campaign both backends' Fill write: the traffic it draws
// from and, lead by lead, what happened to it (PickFillLead). The backends
// keep only the writing, so a benchmark or demo sees the same launch on
// SQLite and on PostgreSQL.

// FillWindow is how far back from now a synthetic campaign reaches: its
// leads and callbacks fall in the FillWindow before now.
const FillWindow = 24 * time.Hour

// The traffic a synthetic campaign draws from: 8 sources, each with 5 of
// the 40 sub_ids (a sub_id belongs to one source, as an ad set belongs to
// one network), 4 funnels and 10 countries. The last source, "junk",
// sends mostly leads the CRM rejects or refuses as invalid.
var (
	FillSources   = [...]string{"facebook", "google", "tiktok", "taboola", "native-ads", "newsletter", "affiliate-x", "junk"}
	FillFunnels   = [...]string{"quiz", "landing", "webinar", "calculator"}
	FillCountries = [...]string{"DE", "AT", "CH", "FR", "IT", "ES", "NL", "PL", "GB", "SE"}
)

// fillSubIDs is how many sub_ids each source has.
const fillSubIDs = 5

// FillLead is one synthetic lead as PickFillLead drew it. Times are Unix
// milliseconds; zero means unset (no first status, not in flight, …).
type FillLead struct {
	Seq        int64  // its number in the campaign, from 1: its row id when the store started empty
	ExternalID string // FillExternalID(Seq)
	CRMID      string // "crm-<Seq>" for accepted and duplicate leads

	Source, SubID, Funnel, Country string

	State     crm.State
	CreatedAt int64
	UpdatedAt int64

	Attempts       int
	HTTPStatus     int // of the last attempt; 0 when none was answered
	Reason         string
	NextAttemptAt  int64 // queued, retry_wait and in_flight leads
	LeaseOwner     string
	LeaseExpiresAt int64 // in_flight leads

	// Accepted leads: when, and for about 60% of them the first status
	// the CRM reported; about 8% of all accepted reach ftd. A status not
	// reached by now is left out rather than moved to now, so no pile of
	// leads shares the fill's last instant.
	AcceptedAt    int64
	FirstStatusAt int64
	FTDAt         int64

	// The one send attempt, for every lead but queued and in-flight ones
	// (Sent): when it started and how long it took.
	AttemptStartedAt  int64
	AttemptDurationUS int64
}

// FillExternalID names the seq-th synthetic lead (1-based).
func FillExternalID(seq int64) string { return "fill-" + strconv.FormatInt(seq, 10) }

// Sent reports whether the lead has had its send attempt (a queued lead
// has not; an in-flight one is in it).
func (l *FillLead) Sent() bool { return l.State != crm.StateQueued && l.State != crm.StateInFlight }

// Payload is the lead's body as a seller would have sent it: the fields
// the columns hold, so CheckLead reads back the same source, funnel,
// sub_id and country.
func (l *FillLead) Payload() []byte {
	return []byte(`{"external_id":"` + l.ExternalID + `","phone":"+4915112345678","country":"` + l.Country +
		`","source":"` + l.Source + `","funnel":"` + l.Funnel + `","sub_id":"` + l.SubID + `"}`)
}

// IdempotencyKey is a key of the shape the enqueue gate makes, unique per
// lead.
func (l *FillLead) IdempotencyKey() string {
	return l.ExternalID + "-" + strconv.FormatInt(l.CreatedAt, 10) + "-00000000"
}

// PickFillLead draws the seq-th lead of a synthetic campaign whose window
// ends at now: created at a uniform time in the FillWindow before now,
// last updated up to a minute later; its traffic (junk for 8% of the
// leads), its state (fillState) and what goes with the state. For a given
// state of r the answer is the same, and r advances the same way, on
// every backend: a fill seeded alike is the same campaign.
func PickFillLead(r *rand.Rand, seq int64, now time.Time) FillLead {
	end := now.UnixMilli()
	l := FillLead{Seq: seq, ExternalID: FillExternalID(seq)}
	l.CreatedAt = end - int64(FillWindow/time.Millisecond) + r.Int64N(int64(FillWindow/time.Millisecond))
	l.UpdatedAt = min(l.CreatedAt+r.Int64N(60000), end)

	src := r.IntN(len(FillSources) - 1)
	if r.IntN(100) < 8 {
		src = len(FillSources) - 1
	}
	l.Source = FillSources[src]
	l.SubID = fillSubID(src*fillSubIDs + r.IntN(fillSubIDs))
	l.Funnel = FillFunnels[r.IntN(len(FillFunnels))]
	l.Country = FillCountries[r.IntN(len(FillCountries))]

	l.State = fillState(r, src == len(FillSources)-1)
	switch l.State {
	case crm.StateQueued:
		l.NextAttemptAt, l.UpdatedAt = l.CreatedAt, l.CreatedAt
	case crm.StateRetryWait:
		l.Attempts, l.HTTPStatus = 1+r.IntN(4), 503
		l.NextAttemptAt = end + r.Int64N(600000)
	case crm.StateInFlight:
		l.Attempts, l.LeaseOwner = 1, "fill-worker"
		l.LeaseExpiresAt = end + 30000
		l.NextAttemptAt = l.LeaseExpiresAt
	case crm.StateAccepted, crm.StateDuplicate:
		l.Attempts, l.HTTPStatus, l.CRMID = 1, 200, "crm-"+strconv.FormatInt(seq, 10)
	case crm.StateValidationError:
		l.Attempts, l.HTTPStatus, l.Reason = 1, 422, "phone: invalid format"
	case crm.StateRejected:
		l.Attempts, l.HTTPStatus, l.Reason = 1, 200, "blocked country"
	case crm.StateFailed:
		l.Attempts, l.HTTPStatus, l.Reason = 5, 503, "gave up after 5 attempts"
	}
	if l.State == crm.StateAccepted {
		// One draw decides both: under 60 a first status 5 s to 30 min
		// after the acceptance, under 8 (of those) also an ftd within
		// two hours of it.
		l.AcceptedAt = l.UpdatedAt
		if p := r.IntN(100); p < 60 {
			if first := l.AcceptedAt + 5000 + r.Int64N(30*60000-5000); first <= end {
				l.FirstStatusAt = first
				if ftd := first + r.Int64N(2*3600000); p < 8 && ftd <= end {
					l.FTDAt = ftd
				}
			}
		}
	}
	if l.Sent() {
		l.AttemptStartedAt = l.UpdatedAt - r.Int64N(1000)
		l.AttemptDurationUS = 20000 + r.Int64N(100000)
	}
	return l
}

// fillSubID names sub_id k (0-based): "sub-01" … "sub-40".
func fillSubID(k int) string {
	if k < 9 {
		return "sub-0" + strconv.Itoa(k+1)
	}
	return "sub-" + strconv.Itoa(k+1)
}

// fillSettled are the states of the leads the CRM has answered for good,
// and fillMix, per thousand leads of an ordinary source (row 0) and of
// the junk one (row 1), how many fall in each of them or an earlier one:
// about 70% of the leads sent are accepted overall, the junk source's
// mostly rejected or invalid. The other 120 of every thousand are still
// to be sent (fillState).
var (
	fillSettled = [...]crm.State{crm.StateAccepted, crm.StateDuplicate, crm.StateValidationError,
		crm.StateRejected, crm.StateFailed}
	fillMix = [2][len(fillSettled)]int{
		{680, 740, 790, 840, 880},
		{100, 150, 500, 850, 880},
	}
)

// fillState picks a state with a launch-like distribution (fillMix); of
// the leads still to be sent, most are queued, some wait for a retry and
// a few are in flight.
func fillState(r *rand.Rand, junk bool) crm.State {
	p := r.IntN(1000)
	mix := fillMix[0]
	if junk {
		mix = fillMix[1]
	}
	for k, upTo := range mix {
		if p < upTo {
			return fillSettled[k]
		}
	}
	switch {
	case p < 950:
		return crm.StateQueued
	case p < 990:
		return crm.StateRetryWait
	default:
		return crm.StateInFlight
	}
}
