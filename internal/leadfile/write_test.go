package leadfile

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

func TestWriter(t *testing.T) {
	created := time.Date(2025, 11, 27, 10, 0, 0, 500, time.FixedZone("EET", 2*3600))
	leads := []crm.Lead{
		{ExternalID: "a", State: crm.StateAccepted, CRMID: "crm_1", Attempts: 2, IdempotencyKey: "a-1", CreatedAt: created, UpdatedAt: created},
		{ExternalID: `b,"q"`, State: crm.StateRetryWait, PhoneInvalid: true, LastHTTPStatus: 503},
	}
	write := func(t *testing.T, f Format) string {
		t.Helper()
		var b bytes.Buffer
		w := NewWriter(&b, f)
		for _, l := range leads {
			if err := w.Write(LeadRecord(l)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	t.Run("JSONL", func(t *testing.T) {
		out := write(t, JSONL)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := `{"external_id":"a","state":"accepted","crm_id":"crm_1","crm_status":"","reason":"","attempts":2,` +
			`"idempotency_key":"a-1","phone_invalid":false,"next_attempt_at":null,"last_http_status":0,` +
			`"created_at":"2025-11-27T08:00:00.0000005Z","updated_at":"2025-11-27T08:00:00.0000005Z"}`
		if len(lines) != 2 || lines[0] != want {
			t.Fatalf("jsonl:\n%s\nwant first line\n%s", out, want)
		}
	})
	t.Run("CSV", func(t *testing.T) {
		out := write(t, CSV)
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if len(rows) != 3 || rows[0] != strings.Join(LeadRecord(crm.Lead{}).Keys, ",") ||
			rows[2] != `"b,""q""",retry_wait,,,,0,,true,,503,,` {
			t.Fatalf("csv:\n%s", out)
		}
	})
	t.Run("Callback", func(t *testing.T) {
		var b bytes.Buffer
		w := NewWriter(&b, CSV)
		ev := crm.CallbackEvent{ID: 7, InternalID: "crm_9", Event: "status_changed", Skew: 1500 * time.Millisecond}
		if err := w.Write(CallbackRecord(ev)); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		if !strings.Contains(b.String(), "\n7,,crm_9,status_changed,") || !strings.HasSuffix(b.String(), ",1.5,false\n") {
			t.Fatalf("callback csv:\n%s", b.String())
		}
	})
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"jsonl", "csv"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "jsonl or csv") {
		t.Errorf("xml: %v", err)
	}
}
