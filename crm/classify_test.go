package crm

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		err    error
		want   Outcome
	}{
		{"Accepted", 200, nil, `{"id":"c-1","status":"accepted","reason":null,"duration_ms":12}`, nil,
			Outcome{State: StateAccepted, HTTPStatus: 200, CRMID: "c-1"}},
		{"AcceptedReplay", 200, nil, `{"id":"c-1","status":"accepted","reason":null,"replay":true}`, nil,
			Outcome{State: StateAccepted, HTTPStatus: 200, CRMID: "c-1", Replay: true}},
		{"DuplicateBody", 409, nil, `{"id":"c-0","status":"duplicate","reason":"phone_exists"}`, nil,
			Outcome{State: StateDuplicate, HTTPStatus: 409, CRMID: "c-0", Reason: "phone_exists"}},
		{"ValidationBody", 422, nil, `{"id":null,"status":"validation_error","reason":"phone: not E.164"}`, nil,
			Outcome{State: StateValidationError, HTTPStatus: 422, Reason: "phone: not E.164"}},
		{"Rejected", 200, nil, `{"id":null,"status":"rejected","reason":"geo_not_allowed"}`, nil,
			Outcome{State: StateRejected, HTTPStatus: 200, Reason: "geo_not_allowed"}},
		{"BodyWinsOverCode", 500, nil, `{"id":"c-2","status":"accepted","reason":null}`, nil,
			Outcome{State: StateAccepted, HTTPStatus: 500, CRMID: "c-2"}},
		{"RateLimitedSeconds", 429, h("Retry-After", "7"), `{"error":"rate_limited"}`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 429, RateLimited: true, RetryAfter: 7 * time.Second, HasRetryAfter: true, Reason: "HTTP 429 rate_limited"}},
		{"RateLimitedDate", 429, h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), ``, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 429, RateLimited: true, RetryAfter: 90 * time.Second, HasRetryAfter: true, Reason: "HTTP 429 too many requests"}},
		{"RateLimitedNoHeader", 429, nil, ``, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 429, RateLimited: true, Reason: "HTTP 429 too many requests"}},
		{"RateLimitedGarbageHeader", 429, h("Retry-After", "soon"), ``, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 429, RateLimited: true, Reason: "HTTP 429 too many requests"}},
		{"RateLimitedNegative", 429, h("Retry-After", "-5"), ``, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 429, RateLimited: true, Reason: "HTTP 429 too many requests"}},
		{"Unavailable", 503, nil, `{"error":"unavailable"}`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 503, Reason: "HTTP 503 unavailable"}},
		{"BadGatewayHTML", 502, nil, `<html>bad gateway</html>`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 502, Reason: "HTTP 502 bad gateway"}},
		{"InProgress", 409, nil, `{"error":"request_in_progress"}`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 409, Reason: "HTTP 409 request_in_progress"}},
		{"ConflictOther", 409, nil, `{"error":"exists"}`, nil,
			Outcome{State: StateDuplicate, HTTPStatus: 409, Reason: "HTTP 409 exists"}},
		{"BadRequest", 400, nil, `{"error":"invalid_json"}`, nil,
			Outcome{State: StateValidationError, HTTPStatus: 400, Reason: "HTTP 400 invalid_json"}},
		{"KeyReused", 422, nil, `{"error":"idempotency_key_reused"}`, nil,
			Outcome{State: StateValidationError, HTTPStatus: 422, Reason: "HTTP 422 idempotency_key_reused"}},
		{"Unauthorized", 401, nil, `{"error":"unauthorized"}`, nil,
			Outcome{State: StateFailed, HTTPStatus: 401, Reason: "HTTP 401 unauthorized"}},
		{"Forbidden", 403, nil, `{"error":"bad_signature"}`, nil,
			Outcome{State: StateFailed, HTTPStatus: 403, Reason: "HTTP 403 bad_signature"}},
		{"NotFound", 404, nil, ``, nil,
			Outcome{State: StateFailed, HTTPStatus: 404, Reason: "HTTP 404 not found"}},
		{"Redirect", 302, h("Location", "https://elsewhere/"), ``, nil,
			Outcome{State: StateFailed, HTTPStatus: 302, Reason: `HTTP 302 redirect to "https://elsewhere/": check the CRM base URL`}},
		{"OKGarbage", 200, nil, `not json`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 200, Reason: "HTTP 200 with an unreadable body"}},
		{"OKUnknownStatus", 200, nil, `{"status":"maybe"}`, nil,
			Outcome{State: StateRetryWait, HTTPStatus: 200, Reason: "HTTP 200 with an unreadable body"}},
		{"NetworkError", 0, nil, ``, errors.New("connection reset by peer"),
			Outcome{State: StateRetryWait, Reason: "network: connection reset by peer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.status, tt.header, []byte(tt.body), tt.err, now)
			if got != tt.want {
				t.Fatalf("Classify =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 120 ", 120 * time.Second, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{"Fri, 27 Nov 2026 11:59:00 GMT", 0, true}, // in the past: now
		{"Friday, 27-Nov-26 12:01:00 GMT", time.Minute, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"garbage", 0, false},
		{"", 0, false},
		{"99999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
