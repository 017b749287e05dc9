// Package crm speaks the CartelCRM protocol (docs/protocol.md): request signing
// and verification, the HTTP client, the classification of each attempt's
// outcome, the retry policy, and the Dispatcher that drains the outbox.
//
// It knows nothing of storage: the Dispatcher consumes the small Outbox
// interface, which the store package satisfies.
package crm

import (
	"net/url"
	"time"
)

// Paths of the CartelCRM API.
const (
	PathLeads = "/v1/inbound/leads"
)

// StatusPath returns the status lookup path for externalID, path-escaped.
func StatusPath(externalID string) string {
	return PathLeads + "/" + url.PathEscape(externalID) + "/status"
}

// Lead response statuses (LeadResponse.Status).
const (
	StatusAccepted        = "accepted"
	StatusDuplicate       = "duplicate"
	StatusValidationError = "validation_error"
	StatusRejected        = "rejected"
)

// LeadResponse is CartelCRM's answer to a lead submission.
type LeadResponse struct {
	ID         *string  `json:"id"`
	Status     string   `json:"status"`
	Reason     *string  `json:"reason"`
	DurationMS *float64 `json:"duration_ms,omitempty"`
	Replay     bool     `json:"replay,omitempty"`
}

// StatusResponse is CartelCRM's answer to a status lookup (docs/protocol.md §2).
type StatusResponse struct {
	ExternalID string    `json:"external_id"`
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	Reason     *string   `json:"reason"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ErrorResponse is the body of CartelCRM's (and the listener's) error
// answers, e.g. {"error":"request_in_progress"}.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Error codes CartelCRM answers with.
const (
	ErrCodeUnauthorized       = "unauthorized"
	ErrCodeBadSignature       = "bad_signature"
	ErrCodeTimestampRange     = "timestamp_out_of_range"
	ErrCodeRequestInProgress  = "request_in_progress"
	ErrCodeKeyReused          = "idempotency_key_reused"
	ErrCodeNotFound           = "not_found"
	ErrCodeInvalidJSON        = "invalid_json"
	ErrCodeMissingIdempotency = "idempotency_key_required"
)
