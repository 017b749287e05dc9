package sandbox

import "sync/atomic"

// Stats are the sandbox's counters, as GET /_sandbox/stats shows them.
// Counters only grow; the fields marked gauge go up and down.
type Stats struct {
	Requests            int64 `json:"requests"` // lead and status requests, whatever their answer
	Accepted            int64 `json:"accepted"`
	Duplicates          int64 `json:"duplicates"`
	ValidationErrors    int64 `json:"validation_errors"`
	Rejected            int64 `json:"rejected"`
	IdempotentReplays   int64 `json:"idempotent_replays"`
	KeyConflicts        int64 `json:"key_conflicts"`         // 422 idempotency_key_reused
	InProgressConflicts int64 `json:"in_progress_conflicts"` // 409 request_in_progress
	Faults503           int64 `json:"faults_503"`
	Faults429           int64 `json:"faults_429"`
	FaultsDropped       int64 `json:"faults_dropped"`
	Unauthorized        int64 `json:"unauthorized"`
	StaleTimestamps     int64 `json:"stale_timestamps"`
	BadSignatures       int64 `json:"bad_signatures"`
	BadRequests         int64 `json:"bad_requests"` // 400 and 413: no key, not JSON, too large
	StatusLookups       int64 `json:"status_lookups"`
	StatusNotFound      int64 `json:"status_not_found"`
	InFlight            int64 `json:"in_flight"` // gauge: requests being processed (past the checks)
	Leads               int64 `json:"leads"`     // gauge: leads stored

	StatusChanges        int64 `json:"status_changes"` // lifecycle changes, "new" included
	CallbacksSent        int64 `json:"callbacks_sent"` // HTTP POSTs made, redeliveries and duplicates included
	CallbacksDelivered   int64 `json:"callbacks_delivered"`
	CallbacksRedelivered int64 `json:"callbacks_redelivered"` // POSTs that retried a failed one
	CallbacksFailed      int64 `json:"callbacks_failed"`      // callbacks given up after CallbackAttempts
	CallbacksDuplicated  int64 `json:"callbacks_duplicated"`  // injected: delivered a second time
	CallbacksBadSig      int64 `json:"callbacks_bad_sig"`     // injected: first sent with a wrong secret
	CallbacksStale       int64 `json:"callbacks_stale"`       // injected: first sent with a stale X-Timestamp
	CallbacksReordered   int64 `json:"callbacks_reordered"`   // injected: held back behind the next change
	CallbacksLost        int64 `json:"callbacks_lost"`        // injected: never sent at all
	CallbacksPending     int64 `json:"callbacks_pending"`     // gauge: lifecycles and deliveries running

	// LeadsCreatedPerExternalIDMax is the largest number of times any one
	// external_id was created. It must stay 1 (0 before the first lead):
	// anything more means a lead was created twice.
	LeadsCreatedPerExternalIDMax int64 `json:"leads_created_per_external_id_max"`

	// KeysPerExternalIDMax is the largest number of distinct
	// Idempotency-Keys any one external_id was sent under (faulted requests
	// included). A client that keeps its key across retries and restarts
	// keeps it at 1; a resubmission under a new key is the one honest way
	// past 1.
	KeysPerExternalIDMax int64 `json:"keys_per_external_id_max"`
}

// counters are the live counters behind Stats, atomic so the hot path and
// the delivery goroutines never wait on each other to count.
type counters struct {
	requests, accepted, duplicates, validationErrors, rejected  atomic.Int64
	replays, keyConflicts, inProgress                           atomic.Int64
	faults503, faults429, faultsDropped                         atomic.Int64
	unauthorized, stale, badSig, badRequests                    atomic.Int64
	statusLookups, statusNotFound, inFlight                     atomic.Int64
	statusChanges, cbSent, cbDelivered, cbRedelivered, cbFailed atomic.Int64
	cbDuplicated, cbBadSig, cbStale, cbReordered, cbLost        atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Sandbox) Stats() Stats {
	n := &s.n
	st := Stats{
		Requests:             n.requests.Load(),
		Accepted:             n.accepted.Load(),
		Duplicates:           n.duplicates.Load(),
		ValidationErrors:     n.validationErrors.Load(),
		Rejected:             n.rejected.Load(),
		IdempotentReplays:    n.replays.Load(),
		KeyConflicts:         n.keyConflicts.Load(),
		InProgressConflicts:  n.inProgress.Load(),
		Faults503:            n.faults503.Load(),
		Faults429:            n.faults429.Load(),
		FaultsDropped:        n.faultsDropped.Load(),
		Unauthorized:         n.unauthorized.Load(),
		StaleTimestamps:      n.stale.Load(),
		BadSignatures:        n.badSig.Load(),
		BadRequests:          n.badRequests.Load(),
		StatusLookups:        n.statusLookups.Load(),
		StatusNotFound:       n.statusNotFound.Load(),
		InFlight:             n.inFlight.Load(),
		StatusChanges:        n.statusChanges.Load(),
		CallbacksSent:        n.cbSent.Load(),
		CallbacksDelivered:   n.cbDelivered.Load(),
		CallbacksRedelivered: n.cbRedelivered.Load(),
		CallbacksFailed:      n.cbFailed.Load(),
		CallbacksDuplicated:  n.cbDuplicated.Load(),
		CallbacksBadSig:      n.cbBadSig.Load(),
		CallbacksStale:       n.cbStale.Load(),
		CallbacksReordered:   n.cbReordered.Load(),
		CallbacksLost:        n.cbLost.Load(),
	}
	s.mu.Lock()
	st.Leads = int64(len(s.byExternal))
	st.CallbacksPending = int64(s.pending)
	st.LeadsCreatedPerExternalIDMax = int64(s.createdMax)
	st.KeysPerExternalIDMax = int64(s.keysSeenMax)
	s.mu.Unlock()
	return st
}
