package crm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcome is the classification of one submission attempt (docs/protocol.md §1,
// "Outcome of one attempt"). State is the final state the attempt settles,
// or StateRetryWait when it should be tried again.
type Outcome struct {
	State         State
	HTTPStatus    int // 0 when no answer came
	CRMID         string
	Reason        string
	Replay        bool          // the CRM answered with a stored response
	RateLimited   bool          // a 429
	RetryAfter    time.Duration // the Retry-After header, when HasRetryAfter
	HasRetryAfter bool
}

// Retryable reports whether the attempt should be tried again.
func (o Outcome) Retryable() bool { return o.State == StateRetryWait }

// Classify decides what one attempt's answer means: the body first (a
// LeadResponse with a known status is final, whatever the HTTP code), the
// HTTP code second. transportErr is the error of a request that got no
// answer (refused, reset, timed out); it is always retryable because the
// idempotency key makes a second try safe.
func Classify(status int, header http.Header, body []byte, transportErr error, now time.Time) Outcome {
	o := Outcome{HTTPStatus: status}
	if transportErr != nil {
		o.State = StateRetryWait
		o.Reason = "network: " + transportErr.Error()
		return o
	}
	if lr, ok := parseLeadResponse(body); ok {
		o.State = State(lr.Status)
		o.Replay = lr.Replay
		if lr.ID != nil {
			o.CRMID = *lr.ID
		}
		if lr.Reason != nil {
			o.Reason = *lr.Reason
		}
		return o
	}
	code := errorCode(body)
	switch {
	case status == http.StatusTooManyRequests:
		o.State = StateRetryWait
		o.RateLimited = true
		o.RetryAfter, o.HasRetryAfter = ParseRetryAfter(header.Get("Retry-After"), now)
		o.Reason = describe(status, code)
	case status >= 500:
		o.State = StateRetryWait
		// A 503 may say when to come back; honouring it is polite and
		// costs nothing.
		o.RetryAfter, o.HasRetryAfter = ParseRetryAfter(header.Get("Retry-After"), now)
		o.Reason = describe(status, code)
	case status == http.StatusConflict && code == ErrCodeRequestInProgress:
		o.State = StateRetryWait
		o.Reason = describe(status, code)
	case status == http.StatusConflict:
		o.State = StateDuplicate
		o.Reason = describe(status, code)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		o.State = StateValidationError
		o.Reason = describe(status, code)
	case status >= 400:
		// 401, 403, 404, …: the key, the secret, the clock or the base URL
		// is wrong. Retrying cannot help; the operator must.
		o.State = StateFailed
		o.Reason = describe(status, code)
	case status >= 300:
		o.State = StateFailed
		o.Reason = fmt.Sprintf("HTTP %d redirect to %q: check the CRM base URL", status, header.Get("Location"))
	default:
		// A 2xx (or 1xx) whose body is not a LeadResponse: we cannot tell
		// whether the lead was taken. The same key makes asking again safe.
		o.State = StateRetryWait
		o.Reason = fmt.Sprintf("HTTP %d with an unreadable body", status)
	}
	return o
}

func parseLeadResponse(body []byte) (LeadResponse, bool) {
	var lr LeadResponse
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return lr, false
	}
	if err := json.Unmarshal(body, &lr); err != nil {
		return lr, false
	}
	switch lr.Status {
	case StatusAccepted, StatusDuplicate, StatusValidationError, StatusRejected:
		return lr, true
	}
	return lr, false
}

// errorCode returns the "error" field of a JSON error body, or "".
func errorCode(body []byte) string {
	var e ErrorResponse
	if json.Unmarshal(bytes.TrimSpace(body), &e) != nil {
		return ""
	}
	return e.Error
}

func describe(status int, code string) string {
	if code != "" {
		return fmt.Sprintf("HTTP %d %s", status, code)
	}
	return fmt.Sprintf("HTTP %d %s", status, strings.ToLower(http.StatusText(status)))
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3). A date in the past means "now". Negative numbers,
// fractions and garbage are rejected (ok is false) so the caller falls back
// to its own delay.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d = t.Sub(now); d < 0 {
		d = 0
	}
	return d, true
}

// Transport errors worth naming in the UI.
var errResponseTooLarge = errors.New("response too large")
