// Package store is leadwatch's storage contract: the Store interface every
// command, the dispatcher, the listener and the dashboard use, the sentinel
// errors callers branch on, the options and statistics types, and the
// helpers that do not depend on a backend. Two backends implement it:
// store/sqlite (the embedded default, modernc.org/sqlite) and
// store/postgres (PostgreSQL over pgx, for several instances on one
// database). store/storetest is the one black-box suite both pass.
//
// The contract holds without a global write lock: a claim hands a lead to
// one worker, Record and Release write only while the caller still holds
// the lease (crm.ErrLeaseLost otherwise), and every read-then-write runs
// under a row lock or as a guarded update. Which backend a location opens
// is Backend's decision; main opens it.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Store is an open leadwatch database. It satisfies crm.Outbox,
// callbacks.EventSink, callbacks.HealthChecker and ui.Source, and is safe
// for concurrent use; several Stores (in one process or several) may share
// one database.
type Store interface {
	// The outbox (crm.Outbox).
	Enqueue(ctx context.Context, payload []byte, opt EnqueueOptions) (crm.Lead, error)
	EnqueueBatch(ctx context.Context, payloads [][]byte, opt EnqueueOptions) ([]crm.Lead, []error, error)
	Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Lead, error)
	Record(ctx context.Context, owner string, r crm.AttemptResult) error
	Release(ctx context.Context, owner string, ids []int64) error
	NextDue(ctx context.Context) (time.Time, bool, error)
	Resubmit(ctx context.Context, externalID string, payload []byte) (crm.Resubmission, error)

	// Operator actions. Act applies a to each lead named (a result per
	// id, in order; a lead not found or in a state a does not apply to is
	// a result with Err, not an error); RetryAllNow makes every
	// retry_wait lead due now and says how many. Pause records the rule
	// and holds the leads it covers (how many); Resume drops it and
	// releases them; Pauses lists the rules in force, oldest first. A
	// pause is race-free against concurrent enqueues and attempts in
	// other instances: a lead enqueued or retried after Pause returns is
	// held.
	Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error)
	RetryAllNow(ctx context.Context) (int, error)
	Pause(ctx context.Context, p crm.Pause) (held int, err error)
	Resume(ctx context.Context, p crm.Pause) (released int, err error)
	Pauses(ctx context.Context) ([]crm.Pause, error)

	// Reconciliation (crm.ReconcileStore): status lookups of accepted
	// leads without news, their results stored as polled statuses
	// (callbacks rows of kind polled, docs/protocol.md §6).
	ClaimLookups(ctx context.Context, q crm.ReconcileQuery) ([]crm.Lead, error)
	SavePolled(ctx context.Context, p crm.PolledStatus) (changed bool, err error)

	// Forwarding (docs/protocol.md §5). StartForwarding makes the queue
	// live: the first call puts a cursor at the newest stored callback
	// (history is not forwarded; replay it), later calls do nothing.
	StartForwarding(ctx context.Context) error
	// ClaimDeliveries first moves callbacks stored after the cursor into
	// the queue (one pending delivery each, in id order, the cursor
	// advanced in the same transaction), then leases up to limit due
	// deliveries to owner until now+lease: pending with next_at <= now, or
	// in_flight whose lease expired; never one whose lead has an earlier
	// delivery (lower callback id) still pending or in flight (order per
	// lead; unmatched callbacks have no order constraint; failed ones do
	// not block). Safe across instances, like Claim.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Delivery, error)
	// RecordDeliveries stores outcomes of owner's claimed deliveries (one
	// attempt row each, then delivered / failed / pending at NextAt) in one
	// transaction; a delivery whose lease owner changed is skipped and
	// reported in lost (crm.ErrLeaseLost semantics, per id).
	RecordDeliveries(ctx context.Context, owner string, rs []crm.DeliveryResult) (lost []int64, err error)
	// ReleaseDeliveries hands claimed deliveries back (pending, due now).
	ReleaseDeliveries(ctx context.Context, owner string, ids []int64) error
	// Replay queues stored callbacks again (a new delivery each, Replay
	// set, same webhook-id): those with the ids given, or when ids is
	// empty every callback received since since. Says how many.
	Replay(ctx context.Context, ids []int64, since time.Time) (int, error)
	ForwardStats(ctx context.Context) (crm.ForwardStats, error)
	// ForwardAttempts lists a lead's deliveries' attempts oldest first
	// (the timeline); ForwardAttemptsAfter pages all attempts by id (tail
	// --all).
	ForwardAttempts(ctx context.Context, externalID string) ([]crm.ForwardAttempt, error)
	ForwardAttemptsAfter(ctx context.Context, afterID int64, limit int) ([]crm.ForwardAttempt, error)

	// Callbacks (callbacks.EventSink).
	SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error)
	SaveRefusal(ctx context.Context, r crm.Refusal) error
	Ping(ctx context.Context) error
	Health(ctx context.Context) (code string, err error)

	// Reads (ui.Source and the commands).
	Lead(ctx context.Context, externalID string) (crm.Lead, error)
	LeadDetail(ctx context.Context, externalID string) (crm.LeadDetail, error)
	Leads(ctx context.Context, q crm.LeadQuery) ([]crm.Lead, error)
	// FindLead is the lead whose external_id is id, else the one whose
	// CRM id is id (the newest if several); ErrNotFound when neither.
	FindLead(ctx context.Context, id string) (crm.Lead, error)
	// CountLeads counts the leads q matches (Limit, Offset and the
	// keyset bounds ignored), stopping at limit: capped is true when
	// there are at least limit.
	CountLeads(ctx context.Context, q crm.LeadQuery, limit int) (n int, capped bool, err error)
	States(ctx context.Context, externalIDs []string) (map[string]crm.State, error)
	Counts(ctx context.Context) (crm.Counts, error)
	Throughput(ctx context.Context, since time.Time, bucket time.Duration) (crm.Throughput, error)
	// Report is the Sources view: one row per value of q.By among the
	// leads created since q.Since, by Sent descending then Value. It
	// reads pre-aggregated per-minute rows, never the leads.
	Report(ctx context.Context, q crm.ReportQuery) ([]crm.ReportRow, error)
	// Pulse is recent traffic as every instance wrote it (crm.Pulse).
	Pulse(ctx context.Context, now time.Time) (crm.Pulse, error)
	Callback(ctx context.Context, id int64) (crm.CallbackEvent, error)
	Callbacks(ctx context.Context, q crm.EventQuery) ([]crm.CallbackEvent, error)
	CallbacksAfter(ctx context.Context, afterID int64, limit int) ([]crm.CallbackEvent, error)
	Refusals(ctx context.Context, q crm.EventQuery) ([]crm.Refusal, error)
	// TailCallbacks is what `leadwatch tail` prints next: up to limit
	// callbacks matching q with an id above afterID, oldest first, and
	// next, the cursor for the following call. A call examines at most
	// TailSpan ids; next moves past the rows examined, matched or not, so
	// a filter that matches nothing never makes a poll read a row twice.
	// It is afterID when there is nothing new. Like CallbacksAfter it
	// never steps past a row that may still commit below it.
	TailCallbacks(ctx context.Context, q TailQuery, afterID int64, limit int) (evs []crm.CallbackEvent, next int64, err error)
	// TailStart is the cursor from which TailCallbacks returns the
	// newest n callbacks matching q, looking back at most
	// EventScanWindow rows; with n 0 it is the newest id (only what
	// comes next).
	TailStart(ctx context.Context, q TailQuery, n int) (int64, error)
	// RefusalsAfter returns up to limit refusals with an id above
	// afterID, oldest first: what `leadwatch tail --all` prints next.
	RefusalsAfter(ctx context.Context, afterID int64, limit int) ([]crm.Refusal, error)
	ExportLeads(ctx context.Context, fn func(crm.Lead) error) error
	ExportCallbacks(ctx context.Context, fn func(crm.CallbackEvent) error) error

	// Watch returns a channel that receives a value (coalesced) after
	// something in the database changed, in this process or another; it is
	// closed when ctx ends or the Store closes. How changes are learned is
	// the backend's business.
	Watch(ctx context.Context) <-chan struct{}

	// Maintenance.
	Prune(ctx context.Context, before time.Time) (PruneStats, error)
	Backup(ctx context.Context, path string) error
	Forget(ctx context.Context, externalID string) (ForgetStats, error)

	// Fill appends a synthetic campaign (for benchmarks, budget checks and
	// demos): leads leads and callbacks callbacks over the last 24 hours.
	Fill(ctx context.Context, leads, callbacks int) error

	// Location names the database for people: the file path for SQLite,
	// the URL without its password for PostgreSQL. It is safe to print.
	Location() string

	Close() error
}

// Kind names a backend.
type Kind string

// The backends.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// ErrUnknownScheme means a location looked like a URL whose scheme names
// no backend.
var ErrUnknownScheme = errors.New("unknown database URL scheme (want a file path, postgres:// or postgresql://)")

// Backend says which backend opens location: a postgres:// or
// postgresql:// URL is PostgreSQL, anything else without a scheme is a
// SQLite file path. A location with another scheme ("mysql://…",
// "file:…" is a path) is ErrUnknownScheme, quoted without its userinfo.
func Backend(location string) (Kind, error) {
	scheme, _, ok := strings.Cut(location, "://")
	if !ok {
		return SQLite, nil
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return Postgres, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownScheme, RedactLocation(location))
}

// Redacted stands in for a password in what is printed.
const Redacted = "REDACTED"

// RedactSecret is msg with every occurrence of secret replaced by
// Redacted: for driver errors that may quote a connection string.
func RedactSecret(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, Redacted)
}

// RedactLocation is location fit to print: a URL loses its password (and
// any password= query parameter); a path is returned as it is.
func RedactLocation(location string) string {
	if !strings.Contains(location, "://") {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return "(unparsable database URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, Redacted)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Sentinel errors callers branch on with errors.Is. Every error a DB method
// returns for one of these conditions wraps the sentinel; driver errors stay
// in the chain for logs.
var (
	// ErrNotFound is crm.ErrNotFound, so errors.Is works whether the caller
	// knows the store or only the crm contract.
	ErrNotFound = crm.ErrNotFound

	// ErrDuplicate means the external_id is already in the outbox.
	ErrDuplicate = errors.New("external_id already in the outbox")

	// ErrNotResubmittable means the lead's state does not allow a resubmit.
	ErrNotResubmittable = errors.New("lead cannot be resubmitted")

	// ErrInvalid means the payload was refused at enqueue or resubmit. The
	// error also wraps crm.ErrInvalidLead when crm.CheckLead gave the
	// reason, which is every case but an edit that changes external_id.
	ErrInvalid = errors.New("invalid lead")

	// ErrBusy means another connection held the database locked past the
	// busy timeout. Nothing of the operation was stored; retrying later is
	// safe.
	ErrBusy = errors.New("database is locked by another connection (busy timeout exceeded)")

	// ErrReadOnly means the database was opened read-only, or its file
	// cannot be written.
	ErrReadOnly = errors.New("database is read-only")

	// ErrDiskFull means the disk (or the database's page limit) is full.
	// Nothing of the operation was stored.
	ErrDiskFull = errors.New("database or disk is full")

	// ErrReplaced means the database file was removed or replaced (renamed
	// over) while this handle had it open: the path no longer names the
	// file being written, so a commit would land in a file nobody will open
	// again. Every write after it was noticed fails with ErrReplaced; only a
	// restart (a new Open) reaches the file now at the path.
	ErrReplaced = errors.New("database file was removed or replaced while open")

	// ErrTooNew means the database file was migrated by a newer leadwatch
	// than this one; opening it could corrupt data this version does not
	// understand.
	ErrTooNew = errors.New("database was written by a newer version of leadwatch")
)

// Defaults for Options.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultMaxRefusals = 10000
	DefaultMaxPayload  = crm.DefaultMaxLeadBytes
	// MaxResponseBody caps the response body kept per attempt.
	MaxResponseBody = 64 << 10
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Now is the clock; time.Now when nil. Tests inject a fake one.
	Now func() time.Time
	// BusyTimeout is how long a statement waits for another connection's
	// lock before failing with ErrBusy; DefaultBusyTimeout when zero.
	BusyTimeout time.Duration
	// MaxRefusals bounds the refusals table; the oldest are dropped.
	// DefaultMaxRefusals when zero.
	MaxRefusals int
	// MaxPayload refuses leads whose payload is larger (ErrInvalid); it is
	// crm.CheckLead's LeadCheck.MaxBytes. DefaultMaxPayload when zero.
	MaxPayload int
	// Logger receives migrations and warnings; discarded when nil.
	Logger *slog.Logger
	// ReadOnly opens an existing database without writing to it (no
	// migrations; every write fails with ErrReadOnly).
	ReadOnly bool
	// FileCheckInterval is how often the handle checks, besides after each
	// commit, that its path still names the file it opened (ErrReplaced);
	// DefaultFileCheckInterval when zero.
	FileCheckInterval time.Duration
	// ProbeMaxAge is how old Health's write probe may be before it runs
	// another; DefaultProbeMaxAge when zero.
	ProbeMaxAge time.Duration
}

// Health codes: the fixed vocabulary of Health, which /healthz passes on
// as its reason. They name a condition, never carry error text: the
// listener faces the internet, the text goes to the log.
const (
	HealthReplaced    = "store_replaced"
	HealthDiskFull    = "disk_full"
	HealthReadOnly    = "read_only"
	HealthUnreachable = "unreachable"
)

// Defaults for the health options.
const (
	// DefaultFileCheckInterval is how often an idle handle checks that its
	// path still names the file it opened. Busy handles also check after
	// every commit.
	DefaultFileCheckInterval = time.Second
	// DefaultProbeMaxAge is how old a write probe may be before Health runs
	// another.
	DefaultProbeMaxAge = 2 * time.Second
)

// PruneStats counts what Prune dropped.
type PruneStats struct {
	// RawBodies is how many callbacks lost their raw body. The rows, their
	// parsed fields and dedup keys stay.
	RawBodies int64
	// Attempts is how many attempt rows of leads in a final state were
	// deleted (the lead keeps its outcome, reason and last HTTP answer).
	Attempts int64
	// Refusals is how many refusals were deleted.
	Refusals int64
	// ForwardAttempts is how many attempt rows of delivered forwards were
	// deleted (each delivery keeps its last).
	ForwardAttempts int64
	// Bytes is the size of the bodies dropped: raw bodies, the deleted
	// attempts' response bodies and previous payloads, refusal heads and
	// forward attempts' heads.
	Bytes int64
}

// ForgetStats counts what Forget erased.
type ForgetStats struct {
	// Withdrawn is true when the lead was still to be sent (queued,
	// retry_wait, in_flight): it is now failed and will not be sent; an
	// attempt in flight records nothing (its lease is gone).
	Withdrawn bool
	// Attempts is how many attempts lost a response body or previous
	// payload.
	Attempts int64
	// Callbacks is how many callbacks naming the lead lost their raw body
	// and reason.
	Callbacks int64
	// Refusals is how many refusals lost their first bytes because they
	// named the lead (its external_id, phone or email).
	Refusals int64
	// Checkpointed is true when the WAL was checkpointed and truncated
	// afterwards, so the erased bytes are gone from the files, not only
	// from the database. False when another process's reader held old
	// pages; the bytes leave the WAL when it is next checkpointed and
	// overwritten.
	Checkpointed bool
}

// TailQuery filters TailCallbacks and TailStart: each field set must equal
// the callback's byte for byte; "" matches any.
type TailQuery struct {
	Event      string
	Status     string
	ExternalID string
	// Kind keeps crm.KindCallback or crm.KindPolled rows only; "" both.
	Kind string
}

// Filters says whether q narrows by a field, kind aside.
func (q TailQuery) Filters() bool { return q.Event != "" || q.Status != "" || q.ExternalID != "" }

// LateLinkSlack is how long before a lead was created a callback may have
// arrived and still be linked to it late, when the attempt that learns
// the lead's CRM id is recorded after the callback naming that id: a
// margin for the clocks of the process that stored the lead and the one
// that received the callback. A callback is about a CRM lead that our
// send created (or a duplicate of one), so none arrives long before the
// lead; an unmatched callback older than that names some other sender's
// lead and stays unmatched. The bound keeps the link a walk of the
// callbacks received since the lead's creation, not of every callback
// the CRM id ever had.
const LateLinkSlack = time.Minute

// TailSpan is how many ids one TailCallbacks call examines at most: a
// bound on one query's work when a filter skips most rows.
const TailSpan = 10000

// EnqueueOptions tune Enqueue.
type EnqueueOptions struct {
	// Strict refuses a lead whose phone is not valid E.164 instead of
	// storing it flagged (Lead.PhoneInvalid) for the CRM to judge.
	Strict bool
	// Checked, when not nil, holds each payload's fields as CheckPayload
	// returned them (under Strict, with any size limit): the caller
	// checked them already, where that costs the single writer nothing
	// (the intake checks each lead in its own request). The store then
	// applies only its size limit again (CheckBatch). One per payload.
	Checked []crm.LeadFields
}
