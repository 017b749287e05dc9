package leadfile

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Format is an export format.
type Format string

// The export formats.
const (
	JSONL Format = "jsonl" // one JSON object a line
	CSV   Format = "csv"   // a header row, then one row a record
)

// ParseFormat returns the format named s, or an error naming the choices.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case JSONL, CSV:
		return f, nil
	}
	return "", fmt.Errorf("the format is jsonl or csv, not %q", s)
}

// Record is one exported row. Its keys are ordered, so JSON objects and
// CSV columns come out in the same, stable order.
type Record struct {
	Keys   []string
	Values []any // one per key: nil, string, bool, int, int64, float64 or json.Number
}

// MarshalJSON writes the keys in their order (a map would sort them).
func (r Record) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range r.Keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(r.Values[i])
		if err != nil {
			return nil, fmt.Errorf("value of %s: %w", k, err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// LeadRecord is a lead as export writes it; the payload stays in the store.
func LeadRecord(l crm.Lead) Record {
	return Record{
		Keys: []string{"external_id", "state", "crm_id", "crm_status", "reason", "attempts", "idempotency_key", "phone_invalid", "next_attempt_at", "last_http_status", "created_at", "updated_at"},
		Values: []any{l.ExternalID, string(l.State), l.CRMID, l.CRMStatus, l.Reason, l.Attempts, l.IdempotencyKey, l.PhoneInvalid,
			rfc3339(l.NextAttemptAt), l.LastHTTPStatus, rfc3339(l.CreatedAt), rfc3339(l.UpdatedAt)},
	}
}

// CallbackRecord is a verified callback as export and tail --json write
// it; matched says whether it belongs to a lead leadwatch sent.
func CallbackRecord(ev crm.CallbackEvent) Record {
	return Record{
		Keys: []string{"id", "dedup_key", "internal_id", "event", "timestamp", "external_id", "status", "reason", "received_at", "skew_seconds", "matched"},
		Values: []any{ev.ID, ev.DedupKey, ev.InternalID, ev.Event, timestamp(ev), ev.ExternalID, ev.Status, ev.Reason,
			rfc3339(ev.ReceivedAt), ev.Skew.Seconds(), ev.LeadID != 0},
	}
}

// timestamp is the callback's timestamp as the CRM sent it: a number
// stays a number with its exact digits (json.Number, not a float64 that
// would round 1764237600123456789), a string a string. Digits that are
// not a JSON number (a row damaged by hand) go out as a string rather
// than fail the whole export.
func timestamp(ev crm.CallbackEvent) any {
	ts := ev.Timestamp
	if ev.TimestampNumber && ts != "" && (ts[0] == '-' || ts[0] >= '0' && ts[0] <= '9') && json.Valid([]byte(ts)) {
		return json.Number(ts)
	}
	return ts
}

// rfc3339 writes a time in UTC, and a zero time as null (an empty cell).
func rfc3339(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Writer writes records in one format; CSV gets a header row from the
// first record's keys.
type Writer struct {
	enc    *json.Encoder
	csv    *csv.Writer
	header bool
}

// NewWriter returns a Writer of format f to w.
func NewWriter(w io.Writer, f Format) *Writer {
	if f == CSV {
		return &Writer{csv: csv.NewWriter(w)}
	}
	return &Writer{enc: json.NewEncoder(w)}
}

// Write writes one record.
func (w *Writer) Write(r Record) error {
	if w.enc != nil {
		return w.enc.Encode(r)
	}
	if !w.header {
		if err := w.csv.Write(r.Keys); err != nil {
			return err
		}
		w.header = true
	}
	row := make([]string, len(r.Values))
	for i, v := range r.Values {
		row[i] = cell(v)
	}
	return w.csv.Write(row)
}

// cell is a value as CSV writes it: numbers as JSON writes them, null as
// an empty cell.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Flush writes out what CSV buffers and reports a write failure; JSONL
// writes each record through at once.
func (w *Writer) Flush() error {
	if w.csv != nil {
		w.csv.Flush()
		return w.csv.Error()
	}
	return nil
}
