package crm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckLead(t *testing.T) {
	big := `{"external_id":"a","phone":"+380501234567","pad":"` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name, body string
		opt        LeadCheck
		err        string // "" = accepted
		want       LeadFields
	}{
		{name: "Minimal", body: `{"external_id":"a","phone":"+380501234567"}`,
			want: LeadFields{ExternalID: "a", Phone: "+380501234567"}},
		{name: "ExtraKeysKept", body: ` {"external_id":"a","phone":"x","any":{"deep":[1]}} `,
			want: LeadFields{ExternalID: "a", Phone: "x", PhoneInvalid: true}},
		{name: "Country", body: `{"external_id":"a","phone":"+4915112345678","country":"DE"}`, opt: LeadCheck{Strict: true},
			want: LeadFields{ExternalID: "a", Phone: "+4915112345678", Country: "DE"}},
		{name: "NotObject", body: `[1]`, err: "not a JSON object"},
		{name: "Empty", body: ``, err: "not a JSON object"},
		{name: "Truncated", body: `{"external_id":"a"`, err: "invalid lead"},
		{name: "TwoObjects", body: `{"external_id":"a","phone":"1"} {"external_id":"b","phone":"1"}`, err: "after top-level value"},
		{name: "NoID", body: `{"phone":"+380501234567"}`, err: "external_id is required"},
		{name: "NullID", body: `{"external_id":null,"phone":"1"}`, err: "external_id is required"},
		{name: "EmptyID", body: `{"external_id":"","phone":"1"}`, err: "external_id is empty"},
		{name: "NumberID", body: `{"external_id":5,"phone":"1"}`, err: "external_id must be a string"},
		{name: "ControlInID", body: `{"external_id":"a\nb","phone":"1"}`, err: "control character"},
		{name: "NoPhone", body: `{"external_id":"a"}`, err: "phone is required"},
		{name: "CountryNotString", body: `{"external_id":"a","phone":"1","country":1}`, err: "country must be a string"},
		// The phone: flagged when lenient, refused when strict.
		{name: "PhoneSpacesFlagged", body: `{"external_id":"a","phone":"+49 151 1234"}`,
			want: LeadFields{ExternalID: "a", Phone: "+49 151 1234", PhoneInvalid: true}},
		{name: "PhoneSpacesStrict", body: `{"external_id":"a","phone":"+49 151 1234"}`, opt: LeadCheck{Strict: true},
			err: `phone "+49 151 1234" is not valid E.164`},
		{name: "PhoneNationalStrict", body: `{"external_id":"a","phone":"0501234567"}`, opt: LeadCheck{Strict: true}, err: "not valid E.164"},
		{name: "PhoneUnassignedStrict", body: `{"external_id":"a","phone":"+999123456789"}`, opt: LeadCheck{Strict: true}, err: "not valid E.164"},
		// The size limit: the default, and one set by the caller.
		{name: "OverLimit", body: big, opt: LeadCheck{MaxBytes: 64}, err: "payload is 152 bytes, over the 64-byte limit"},
		{name: "AtLimit", body: big, opt: LeadCheck{MaxBytes: len(big)}, want: LeadFields{ExternalID: "a", Phone: "+380501234567"}},
		{name: "OverDefaultLimit", body: `{"external_id":"a","phone":"1","pad":"` + strings.Repeat("x", DefaultMaxLeadBytes) + `"}`,
			err: "over the 1048576-byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CheckLead([]byte(tt.body), tt.opt)
			if tt.err == "" {
				if err != nil || f != tt.want {
					t.Fatalf("CheckLead = %+v, %v; want %+v", f, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidLead) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestKeepsKey(t *testing.T) {
	p := []byte(`{"a":1}`)
	tests := []struct {
		state State
		edit  []byte
		want  bool
	}{
		{StateFailed, nil, true},
		{StateFailed, []byte(`{"a":1}`), true},
		{StateFailed, []byte(`{"a":2}`), false},
		{StateRejected, nil, false},
		{StateValidationError, nil, false},
		{StateDuplicate, nil, false},
		{StateAccepted, nil, false},
	}
	for _, tt := range tests {
		if got := KeepsKey(tt.state, p, tt.edit); got != tt.want {
			t.Errorf("KeepsKey(%s, %s) = %v", tt.state, tt.edit, got)
		}
	}
}

func TestNewIdempotencyKey(t *testing.T) {
	now := time.UnixMilli(1795768000123)
	a, b := NewIdempotencyKey("lead-1", now), NewIdempotencyKey("lead-1", now)
	if a == b || !strings.HasPrefix(a, "lead-1-1795768000123-") {
		t.Fatalf("keys %q %q", a, b)
	}
}

func TestParseCallback(t *testing.T) {
	ev, err := ParseCallback([]byte(`{"internal_id":123456789012345678901,"event":"status_changed","timestamp":1764200000,"external_id":"e-1","status":"ftd","extra":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.DedupKey != "123456789012345678901:status_changed:1764200000" || ev.ExternalID != "e-1" || ev.Status != "ftd" ||
		!ev.EventTime.Equal(time.Unix(1764200000, 0)) {
		t.Fatalf("%+v", ev)
	}
	for _, bad := range []string{`[]`, `{"event":"e","timestamp":1}`, `{"internal_id":{},"event":"e","timestamp":1}`, `{"internal_id":"a","event":"e","timestamp":1} {}`} {
		if _, err := ParseCallback([]byte(bad)); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("ParseCallback(%s) = %v", bad, err)
		}
	}
	ms, _ := ParseCallback([]byte(`{"internal_id":"a","event":"e","timestamp":"2026-11-27T10:00:00Z"}`))
	if !ms.EventTime.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339 timestamp: %v", ms.EventTime)
	}
}
