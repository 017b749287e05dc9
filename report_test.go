package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// reportCampaign seeds a hand-built campaign whose numbers are known:
//
//	fb:    4 sent (2 accepted, 1 duplicate, 1 rejected) + 1 queued; one
//	       accepted lead got its first status 3 s after acceptance, then ftd
//	junk:  3 sent (2 validation_error, 1 failed)
//	(none): 1 sent, accepted, no status
func reportCampaign(t *testing.T, h *opsHarness) {
	t.Helper()
	h.seed(t,
		leadSpec{ext: "fb-1", source: "fb", subID: "s-1", funnel: "quiz", country: "UA", state: crm.StateAccepted, crmID: "crm-fb1"},
		leadSpec{ext: "fb-2", source: "fb", subID: "s-1", funnel: "quiz", country: "UA", state: crm.StateAccepted, crmID: "crm-fb2"},
		leadSpec{ext: "fb-3", source: "fb", subID: "s-2", country: "PL", state: crm.StateRejected, reason: "country blocked", crmID: "crm-fb3"},
		leadSpec{ext: "fb-4", source: "fb", subID: "s-2", country: "PL", state: crm.StateDuplicate, crmID: "crm-fb1"},
		leadSpec{ext: "fb-5", source: "fb", subID: "s-1"},
		leadSpec{ext: "j-1", source: "junk", state: crm.StateValidationError, reason: "phone: invalid"},
		leadSpec{ext: "j-2", source: "junk", state: crm.StateValidationError, reason: "phone: invalid"},
		leadSpec{ext: "j-3", source: "junk", state: crm.StateFailed, reason: "HTTP 401"},
		leadSpec{ext: "n-1", state: crm.StateAccepted, crmID: "crm-n1"},
	)
	var evs []crm.CallbackEvent
	for _, c := range []struct {
		status string
		after  time.Duration
	}{{"new", 3 * time.Second}, {"ftd", 10 * time.Second}} {
		at := h.t0.Add(c.after)
		ev, err := crm.ParseCallback(fmt.Appendf(nil,
			`{"internal_id":"crm-fb1","external_id":"fb-1","event":"status_changed","status":%q,"timestamp":%d}`, c.status, at.Unix()))
		if err != nil {
			t.Fatal(err)
		}
		ev.ReceivedAt = at
		evs = append(evs, ev)
	}
	if _, err := h.db.SaveCallbacks(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// reportJSONKeys are the keys of every object of report --format json.
var reportJSONKeys = []string{
	"accepted", "accepted_rate", "duplicate", "duplicate_rate", "failed", "failed_rate", "ftd", "ftd_rate",
	"invalid_rate", "median_first_status_ms", "rejected", "rejected_rate", "sent", "validation_error", "with_status",
}

func TestReportCommand(t *testing.T) { testReport(t, sqliteOps) }

func testReport(t *testing.T, backend opsBackend) {
	h := newOpsHarness(t, backend)
	code, out, errOut := h.cli(t, "", "report", "--format", "json")
	if code != 0 || out != "[]\n" {
		t.Fatalf("report of an empty store: exit %d %q %s", code, out, errOut)
	}
	if code, out, _ := h.cli(t, "", "report"); code != 0 || out != "no leads in this window\n" {
		t.Errorf("table of an empty store: exit %d %q", code, out)
	}
	reportCampaign(t, h)

	t.Run("JSON", func(t *testing.T) {
		code, out, errOut := h.cli(t, "", "report", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("not one JSON array: %v\n%s", err, out)
		}
		if len(rows) != 3 {
			t.Fatalf("%d rows, want fb, junk and the leads without a source:\n%s", len(rows), out)
		}
		for _, r := range rows {
			var keys []string
			for k := range r {
				if k != "source" {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			if _, ok := r["source"]; !ok || strings.Join(keys, ",") != strings.Join(reportJSONKeys, ",") {
				t.Errorf("row keys: source=%v and %v, want source and %v", r["source"], keys, reportJSONKeys)
			}
		}
		want := []map[string]any{
			{"source": "fb", "sent": 4.0, "accepted": 2.0, "duplicate": 1.0, "rejected": 1.0, "validation_error": 0.0, "failed": 0.0,
				"ftd": 1.0, "with_status": 1.0, "accepted_rate": 0.5, "duplicate_rate": 0.25, "rejected_rate": 0.25,
				"invalid_rate": 0.0, "failed_rate": 0.0, "ftd_rate": 0.5,
				// One lead in the (2 s, 5 s] bucket: the middle of the bucket.
				"median_first_status_ms": 3500.0},
			{"source": "junk", "sent": 3.0, "accepted": 0.0, "validation_error": 2.0, "failed": 1.0, "ftd": 0.0, "with_status": 0.0,
				"accepted_rate": 0.0, "invalid_rate": 2.0 / 3, "failed_rate": 1.0 / 3, "ftd_rate": 0.0, "median_first_status_ms": nil},
			{"source": "", "sent": 1.0, "accepted": 1.0, "accepted_rate": 1.0, "with_status": 0.0, "median_first_status_ms": nil},
		}
		for i, w := range want {
			for k, v := range w {
				if got := rows[i][k]; got != v {
					t.Errorf("row %d (%v) %s = %v, want %v", i, rows[i]["source"], k, got, v)
				}
			}
		}
		// The window is read at minute resolution: the last hour holds it all.
		code, since, _ := h.cli(t, "", "report", "--format", "json", "--since", "1h")
		if code != 0 || since != out {
			t.Errorf("--since 1h: exit %d\n%s\nwant the whole store's\n%s", code, since, out)
		}
	})
	t.Run("BySubID", func(t *testing.T) {
		code, out, errOut := h.cli(t, "", "report", "--by", "sub_id", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var got []string
		for _, r := range rows {
			if _, ok := r["source"]; ok {
				t.Errorf("a sub_id row has a source key: %v", r)
			}
			got = append(got, fmt.Sprintf("%v:%v", r["sub_id"], r["sent"]))
		}
		// Sent descending, then by value.
		if strings.Join(got, " ") != ":4 s-1:2 s-2:2" {
			t.Errorf("sub_id rows %v, want [:4 s-1:2 s-2:2]", got)
		}
	})
	t.Run("CSV", func(t *testing.T) {
		code, out, errOut := h.cli(t, "", "report", "--format", "csv", "--by", "source")
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 4 {
			t.Fatalf("csv: %v\n%s", err, out)
		}
		if got := strings.Join(recs[0], ","); got != "source,"+strings.Join(reportKeys, ",") {
			t.Errorf("header %s", got)
		}
		wantRows := []string{
			"fb,4,2,1,1,0,0,1,1,0.5,0.25,0.25,0,0,0.5,3500",
			"junk,3,0,0,0,2,1,0,0,0,0,0,0.6666666666666666,0.3333333333333333,0,",
			",1,1,0,0,0,0,0,0,1,0,0,0,0,0,",
		}
		for i, w := range wantRows {
			if got := strings.Join(recs[i+1], ","); got != w {
				t.Errorf("row %d: %s\nwant   %s", i+1, got, w)
			}
		}
	})
	t.Run("Table", func(t *testing.T) {
		code, out, errOut := h.cli(t, "", "report")
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("table:\n%s", out)
		}
		if h := strings.Join(strings.Fields(lines[0]), " "); h != "SOURCE SENT ACCEPTED DUPLICATE REJECTED INVALID WITH STATUS FTD FTD RATE MEDIAN 1ST STATUS" {
			t.Errorf("header %q", h)
		}
		want := []string{
			"fb 4 50.0% 25.0% 25.0% 0.0% 1 1 50.0% 4s",
			"junk 3 0.0% 0.0% 0.0% 66.7% 0 0 0.0% -",
			"(none) 1 100.0% 0.0% 0.0% 0.0% 0 0 0.0% -",
		}
		for i, w := range want {
			if got := strings.Join(strings.Fields(lines[i+1]), " "); got != w {
				t.Errorf("row %d: %q, want %q", i+1, got, w)
			}
		}
		// Numbers right-aligned: every line ends in the same column.
		for _, l := range lines[1:] {
			if len([]rune(l)) != len([]rune(lines[0])) {
				t.Errorf("ragged table:\n%s", out)
				break
			}
		}
	})
}

func TestRoughDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "<1s",
		999 * time.Millisecond:                "<1s",
		3500 * time.Millisecond:               "4s",
		42 * time.Second:                      "42s",
		59*time.Second + 600*time.Millisecond: "1m",
		3*time.Minute + 10*time.Second:        "3m10s",
		20 * time.Minute:                      "20m",
		59*time.Minute + 59*time.Second + 700*time.Millisecond: "1h",
		2*time.Hour + 5*time.Minute + 20*time.Second:           "2h5m",
		2*time.Hour + 10*time.Minute:                           "2h10m",
		24 * time.Hour:                                         "24h",
	} {
		if got := roughDuration(d); got != want {
			t.Errorf("roughDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
