package store

import (
	"fmt"

	"github.com/leadwatch/leadwatch/crm"
)

// WrapErr is sentinel carried with the driver error behind it. Its message
// is the sentinel's, which is written for people; the driver's text is kept
// in the chain for logs and errors.As. errors.Is matches both the sentinel
// and the cause.
func WrapErr(sentinel, cause error) error { return &sentinelError{sentinel: sentinel, cause: cause} }

// CauseErr is WrapErr the other way round: the cause's message (it already
// says what is wrong, e.g. crm's "invalid lead: phone is required") under a
// sentinel of the store's. errors.Is matches both.
func CauseErr(sentinel, cause error) error { return &causeError{sentinel: sentinel, cause: cause} }

// sentinelError is WrapErr's error: the sentinel's message.
type sentinelError struct {
	sentinel error
	cause    error
}

func (e *sentinelError) Error() string   { return e.sentinel.Error() }
func (e *sentinelError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// causeError is CauseErr's error: the cause's message.
type causeError struct {
	sentinel error
	cause    error
}

func (e *causeError) Error() string   { return e.cause.Error() }
func (e *causeError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// CheckPayload is the enqueue gate every backend applies, crm.CheckLead
// under the store's size limit (Options.MaxPayload as maxBytes; crm's
// default when zero or less). Its errors wrap both ErrInvalid and
// crm.ErrInvalidLead, with crm's reason as the message.
func CheckPayload(payload []byte, strict bool, maxBytes int) (crm.LeadFields, error) {
	f, err := crm.CheckLead(payload, crm.LeadCheck{Strict: strict, MaxBytes: maxBytes})
	if err != nil {
		return f, CauseErr(ErrInvalid, err)
	}
	return f, nil
}

// CheckBatch is the enqueue gate of a batch, as every backend applies it:
// each payload's fields and check error (CheckPayload), or, when the
// caller checked them already (opt.Checked), its fields with only the size
// limit applied again. err is for a Checked that does not hold one entry
// per payload.
func CheckBatch(payloads [][]byte, opt EnqueueOptions, maxBytes int) (fields []crm.LeadFields, errs []error, err error) {
	errs = make([]error, len(payloads))
	if opt.Checked == nil {
		fields = make([]crm.LeadFields, len(payloads))
		for i, p := range payloads {
			fields[i], errs[i] = CheckPayload(p, opt.Strict, maxBytes)
		}
		return fields, errs, nil
	}
	if len(opt.Checked) != len(payloads) {
		return nil, nil, fmt.Errorf("enqueue: %d checked leads for %d payloads", len(opt.Checked), len(payloads))
	}
	for i, p := range payloads {
		if err := crm.CheckLeadSize(p, maxBytes); err != nil {
			errs[i] = CauseErr(ErrInvalid, err)
		}
	}
	return opt.Checked, errs, nil
}
