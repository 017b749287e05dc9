package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReadLeadsJSONL(t *testing.T) {
	in := "\ufeff\n" + `{"external_id":"a","phone":"+380501234567"}` + "\r\n" +
		"\n" +
		`{"external_id":"b","phone":"+3805` + "\n" + // truncated
		`  {"external_id":"c","phone":"+48512345678", "x": [1, 2]}  ` + "\n"
	leads, err := readLeads(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(leads) != 3 {
		t.Fatalf("got %d leads: %+v", len(leads), leads)
	}
	if leads[0].err != nil || string(leads[0].payload) != `{"external_id":"a","phone":"+380501234567"}` || leads[0].line != 2 {
		t.Errorf("lead 0: %+v", leads[0])
	}
	if leads[1].err == nil || !strings.Contains(leads[1].err.Error(), "line 4") {
		t.Errorf("truncated line not reported by number: %+v", leads[1])
	}
	// Bytes kept as given, inner spacing and key order included.
	if string(leads[2].payload) != `{"external_id":"c","phone":"+48512345678", "x": [1, 2]}` || leads[2].line != 5 {
		t.Errorf("lead 2: %q line %d", leads[2].payload, leads[2].line)
	}
}

func TestReadLeadsCSV(t *testing.T) {
	in := "external_id,phone,country,first_name\n" +
		"a,+380501234567,UA,Олена\n" +
		"b,+48512345678,PL\n" + // missing column
		"\"c\",\"+49151234567\",,\"Jo, \"\"Jr\"\"\"\n"
	leads, err := readLeads(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(leads) != 3 {
		t.Fatalf("got %d leads", len(leads))
	}
	if leads[0].err != nil || string(leads[0].payload) != `{"external_id":"a","phone":"+380501234567","country":"UA","first_name":"Олена"}` {
		t.Errorf("row a: %q %v", leads[0].payload, leads[0].err)
	}
	if leads[1].err == nil || !strings.Contains(leads[1].err.Error(), "line 3: 3 fields, the header has 4") {
		t.Errorf("row b: %v", leads[1].err)
	}
	var c map[string]string
	if err := json.Unmarshal(leads[2].payload, &c); err != nil || c["first_name"] != `Jo, "Jr"` || c["country"] != "" || leads[2].line != 4 {
		t.Errorf("row c: %q %v line %d", leads[2].payload, err, leads[2].line)
	}
	if _, has := c["country"]; has {
		t.Errorf("empty cell kept: %q", leads[2].payload)
	}
}

func TestReadLeadsEdges(t *testing.T) {
	if _, err := readLeads(strings.NewReader("\n\n")); err == nil {
		t.Error("empty input accepted")
	}
	if _, err := readLeads(strings.NewReader("a,,b\n1,2,3\n")); err == nil || !strings.Contains(err.Error(), "column 2 has no name") {
		t.Errorf("unnamed column: %v", err)
	}
	// A 5 MiB lead is read whole (the store decides whether to keep it).
	big := `{"external_id":"big","phone":"+380501234567","blob":"` + strings.Repeat("x", 5<<20) + `"}`
	leads, err := readLeads(strings.NewReader(big + "\n"))
	if err != nil || len(leads) != 1 || len(leads[0].payload) != len(big) {
		t.Fatalf("big lead: %v, %d leads", err, len(leads))
	}
	// A line past the bound is reported and skipped; the lines after it
	// still count.
	huge := `{"external_id":"ok","phone":"+380501234567"}` + "\n" + `{"x":"` + strings.Repeat("y", maxLeadLine) + `"}` + "\n" +
		`{"external_id":"ok2","phone":"+380501234568"}`
	leads, err = readLeads(bytes.NewReader([]byte(huge)))
	if err != nil || len(leads) != 3 || leads[0].err != nil || leads[1].err == nil ||
		!strings.Contains(leads[1].err.Error(), "line 2: longer than") || leads[2].err != nil || leads[2].line != 3 ||
		string(leads[2].payload) != `{"external_id":"ok2","phone":"+380501234568"}` {
		t.Fatalf("huge line: %v, %d leads", err, len(leads))
	}
}
