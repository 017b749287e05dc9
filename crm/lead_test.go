package crm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseLead(t *testing.T) {
	tests := []struct {
		name, body, err string
		id              string
	}{
		{"Minimal", `{"external_id":"a","phone":"+380501234567"}`, "", "a"},
		{"ExtraKeysKept", ` {"external_id":"a","phone":"x","any":{"deep":[1]}} `, "", "a"},
		{"NotObject", `[1]`, "not a JSON object", ""},
		{"Empty", ``, "not a JSON object", ""},
		{"Truncated", `{"external_id":"a"`, "invalid lead", ""},
		{"NoID", `{"phone":"+380501234567"}`, "external_id is required", ""},
		{"NullID", `{"external_id":null,"phone":"1"}`, "external_id is required", ""},
		{"EmptyID", `{"external_id":"","phone":"1"}`, "external_id is empty", ""},
		{"NumberID", `{"external_id":5,"phone":"1"}`, "external_id must be a string", ""},
		{"ControlInID", `{"external_id":"a\nb","phone":"1"}`, "control character", ""},
		{"NoPhone", `{"external_id":"a"}`, "phone is required", ""},
		{"CountryNotString", `{"external_id":"a","phone":"1","country":1}`, "country must be a string", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseLead([]byte(tt.body))
			if tt.err == "" {
				if err != nil || f.ExternalID != tt.id {
					t.Fatalf("ParseLead = %+v, %v", f, err)
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
