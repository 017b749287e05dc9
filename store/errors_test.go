package store

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
)

func TestWrapErr(t *testing.T) {
	cause := &fs.PathError{Op: "write", Path: "/x", Err: errors.New("no space left on device")}
	err := WrapErr(ErrDiskFull, cause)
	if err.Error() != ErrDiskFull.Error() {
		t.Errorf("message %q, want the sentinel's %q", err, ErrDiskFull)
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Error("errors.Is(err, ErrDiskFull) = false")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != cause {
		t.Error("errors.As does not find the cause")
	}
	if errors.Is(err, ErrBusy) {
		t.Error("errors.Is matches a sentinel it does not carry")
	}
}

func TestCauseErr(t *testing.T) {
	cause := errors.New("invalid lead: phone is required")
	err := CauseErr(ErrInvalid, cause)
	if err.Error() != cause.Error() {
		t.Errorf("message %q, want the cause's %q", err, cause)
	}
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, cause) {
		t.Error("errors.Is does not match both the sentinel and the cause")
	}
}

func TestCheckPayload(t *testing.T) {
	ok := []byte(`{"external_id":"a1","name":"Ann","phone":"+14155550100","email":"ann@example.com"}`)
	f, err := CheckPayload(ok, true, 0)
	if err != nil {
		t.Fatalf("valid payload refused: %v", err)
	}
	if f.ExternalID != "a1" {
		t.Errorf("external id %q, want a1", f.ExternalID)
	}

	_, err = CheckPayload(ok, false, len(ok)-1)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, crm.ErrInvalidLead) {
		t.Fatalf("oversized payload: %v, want ErrInvalid and crm.ErrInvalidLead", err)
	}
	if err.Error() == ErrInvalid.Error() || !strings.Contains(err.Error(), "invalid lead") {
		t.Errorf("message %q does not give crm's reason", err)
	}

	_, err = CheckPayload([]byte(`{"name":"no id"}`), false, 0)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, crm.ErrInvalidLead) {
		t.Errorf("payload without external_id: %v, want ErrInvalid and crm.ErrInvalidLead", err)
	}
}
