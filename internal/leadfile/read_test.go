package leadfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadJSONL(t *testing.T) {
	in := "\ufeff\n" + `{"external_id":"a","phone":"+380501234567"}` + "\r\n" +
		"\n" +
		`{"external_id":"b","phone":"+3805` + "\n" + // truncated: the store's check refuses it
		`  {"external_id":"c","phone":"+48512345678", "x": [1, 2]}  ` + "\n"
	leads, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(leads) != 3 {
		t.Fatalf("got %d leads: %+v", len(leads), leads)
	}
	if leads[0].Err != nil || string(leads[0].Payload) != `{"external_id":"a","phone":"+380501234567"}` || leads[0].Line != 2 {
		t.Errorf("lead 0: %+v", leads[0])
	}
	// Framed, not judged: the line goes on with its number.
	if leads[1].Err != nil || leads[1].Line != 4 || string(leads[1].Payload) != `{"external_id":"b","phone":"+3805` {
		t.Errorf("truncated line: %+v", leads[1])
	}
	// Bytes kept as given, inner spacing and key order included.
	if string(leads[2].Payload) != `{"external_id":"c","phone":"+48512345678", "x": [1, 2]}` || leads[2].Line != 5 {
		t.Errorf("lead 2: %q line %d", leads[2].Payload, leads[2].Line)
	}
}

func TestReadCSV(t *testing.T) {
	in := "external_id,phone,country,first_name\n" +
		"a,+380501234567,UA,Олена\n" +
		"b,+48512345678,PL\n" + // missing column
		"\"c\",\"+49151234567\",,\"Jo, \"\"Jr\"\"\"\n" +
		"d,+380501234568,UA,\"two\r\nlines\"\r\n" + // a quoted newline is data
		"e,+380501234569,UA,Ivan\n"
	leads, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(leads) != 5 {
		t.Fatalf("got %d leads: %+v", len(leads), leads)
	}
	if leads[0].Err != nil || string(leads[0].Payload) != `{"external_id":"a","phone":"+380501234567","country":"UA","first_name":"Олена"}` {
		t.Errorf("row a: %q %v", leads[0].Payload, leads[0].Err)
	}
	if leads[1].Err == nil || leads[1].Line != 3 || leads[1].Err.Error() != "3 fields, the header has 4" {
		t.Errorf("row b: line %d %v", leads[1].Line, leads[1].Err)
	}
	var c map[string]string
	if err := json.Unmarshal(leads[2].Payload, &c); err != nil || c["first_name"] != `Jo, "Jr"` || leads[2].Line != 4 {
		t.Errorf("row c: %q %v line %d", leads[2].Payload, err, leads[2].Line)
	}
	if _, has := c["country"]; has {
		t.Errorf("empty cell kept: %q", leads[2].Payload)
	}
	var d map[string]string
	if err := json.Unmarshal(leads[3].Payload, &d); err != nil || d["first_name"] != "two\nlines" || leads[3].Line != 5 {
		t.Errorf("row d: %q %v line %d", leads[3].Payload, err, leads[3].Line)
	}
	if leads[4].Err != nil || leads[4].Line != 7 {
		t.Errorf("row e after a two-line record: %+v", leads[4])
	}
}

// TestReadCSVQuoteErrors: a stray quote is reported at the line where the
// field it opens starts, in line order, and the lines it would swallow are
// read as the leads they are.
func TestReadCSVQuoteErrors(t *testing.T) {
	const header = "external_id,phone,country\n"
	good := func(n int) string { return fmt.Sprintf("l%d,+38050123456%d,UA\n", n, n%10) }
	file := func(line7 string, last int) string {
		var b strings.Builder
		b.WriteString(header)
		for n := 2; n <= last; n++ {
			if n == 7 {
				b.WriteString(line7)
			} else {
				b.WriteString(good(n))
			}
		}
		return b.String()
	}
	tests := []struct {
		name  string
		line7 string
		last  int    // the file's last line
		want  string // line 7's error
	}{
		// The quote opens a field that runs to the end of the file.
		{"UnclosedAtEnd", "l7,\"+380501234567,UA\n", 8, "never closed"},
		{"UnclosedMidFile", "l7,\"+380501234567,UA\n", 12, "never closed"},
		// A later quote closes it, and what follows is not a comma.
		{"ClosedByALaterQuote", "l7,\"+380501234567,UA\n", 12, `extraneous or missing "`},
		{"BareQuote", "l7,+3805\"01234567,UA\n", 9, `bare "`},
		{"TextAfterClosingQuote", "l7,\"+380\"501234567,UA\n", 9, `extraneous or missing "`},
		// The swallowed lines make one record with the wrong field count.
		{"SwallowedIntoOneField", "l7,\"+380501234567\n", 9, "4 fields, the header has 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := file(tt.line7, tt.last)
			if tt.name == "ClosedByALaterQuote" {
				in = strings.Replace(in, "l10,", "\"l10\"x,", 1)
			}
			if tt.name == "SwallowedIntoOneField" {
				in = strings.Replace(in, "l8,+380501234568,UA", "l8\",+380501234568,UA", 1)
			}
			leads, err := Read(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			for _, l := range leads {
				lines = append(lines, l.Line)
			}
			if len(leads) != tt.last-1 {
				t.Fatalf("got leads on lines %v, want one per line 2..%d:\n%s", lines, tt.last, in)
			}
			for i, l := range leads {
				n := i + 2
				if l.Line != n {
					t.Fatalf("lead %d is on line %d, want %d (lines %v)", i, l.Line, n, lines)
				}
				switch {
				case n == 7:
					if l.Err == nil || !strings.Contains(l.Err.Error(), tt.want) {
						t.Errorf("line 7: %v, want an error mentioning %q", l.Err, tt.want)
					}
				case tt.name == "ClosedByALaterQuote" && n == 10,
					tt.name == "SwallowedIntoOneField" && n == 8:
					if l.Err == nil {
						t.Errorf("line %d has its own stray quote, read as %q", n, l.Payload)
					}
				default:
					var m map[string]string
					if l.Err != nil || json.Unmarshal(l.Payload, &m) != nil || m["external_id"] != fmt.Sprintf("l%d", n) {
						t.Errorf("line %d lost or changed beside the bad one: %q %v", n, l.Payload, l.Err)
					}
				}
			}
		})
	}
}

func TestReadEdges(t *testing.T) {
	if _, err := Read(strings.NewReader("\n\n")); !errors.Is(err, ErrNoLeads) {
		t.Errorf("empty input: %v", err)
	}
	if _, err := Read(strings.NewReader("a,,b\n1,2,3\n")); err == nil || !strings.Contains(err.Error(), "line 1: column 2 has no name") {
		t.Errorf("unnamed column: %v", err)
	}
	if _, err := Read(strings.NewReader("\"external_id,phone\n")); err == nil || !strings.Contains(err.Error(), "line 1: reading the CSV header") {
		t.Errorf("broken header: %v", err)
	}
	// A 5 MiB lead is read whole (the store decides whether to keep it).
	big := `{"external_id":"big","phone":"+380501234567","blob":"` + strings.Repeat("x", 5<<20) + `"}`
	leads, err := Read(strings.NewReader(big + "\n"))
	if err != nil || len(leads) != 1 || len(leads[0].Payload) != len(big) {
		t.Fatalf("big lead: %v, %d leads", err, len(leads))
	}
	// A line past the bound is reported and skipped; the lines after it
	// still count.
	huge := `{"external_id":"ok","phone":"+380501234567"}` + "\n" + `{"x":"` + strings.Repeat("y", MaxLine) + `"}` + "\n" +
		`{"external_id":"ok2","phone":"+380501234568"}`
	leads, err = Read(bytes.NewReader([]byte(huge)))
	if err != nil || len(leads) != 3 || leads[0].Err != nil || leads[1].Err == nil || leads[1].Line != 2 ||
		!strings.Contains(leads[1].Err.Error(), "longer than") || leads[2].Err != nil || leads[2].Line != 3 ||
		string(leads[2].Payload) != `{"external_id":"ok2","phone":"+380501234568"}` {
		t.Fatalf("huge line: %v, %d leads", err, len(leads))
	}
	// Even as the first line, where it also tells the format.
	leads, err = Read(strings.NewReader(huge[strings.IndexByte(huge, '\n')+1:]))
	if err != nil || len(leads) != 2 || leads[0].Line != 1 || leads[0].Err == nil || leads[1].Err != nil {
		t.Fatalf("huge first line: %v, %+v", err, summary(leads))
	}
	// The same in CSV, inside a quoted field that would otherwise swallow it.
	hugeCSV := "external_id,phone\nok,+380501234567\nq,\"+3805\n" + strings.Repeat("y", MaxLine+1) + "\nok2,+380501234568\n"
	leads, err = Read(strings.NewReader(hugeCSV))
	if err != nil || len(leads) != 4 || leads[0].Err != nil || leads[1].Line != 3 || leads[1].Err == nil ||
		leads[2].Line != 4 || leads[2].Err == nil || !strings.Contains(leads[2].Err.Error(), "longer than") ||
		leads[3].Line != 5 || leads[3].Err != nil {
		t.Fatalf("huge CSV line: %v, %+v", err, summary(leads))
	}
}

// TestReadFailure: a read failure midway keeps the leads before it and
// names the line it cut.
func TestReadFailure(t *testing.T) {
	in := io.MultiReader(strings.NewReader(`{"external_id":"a","phone":"+380501234567"}`+"\n"+`{"external_id":"b"`),
		iotest.ErrReader(errors.New("disk on fire")))
	leads, err := Read(in)
	if err == nil || !strings.Contains(err.Error(), "line 2: disk on fire") {
		t.Fatalf("err = %v", err)
	}
	if len(leads) != 1 || leads[0].Line != 1 {
		t.Fatalf("leads before the failure: %+v", summary(leads))
	}
}

// summary is leads without their payloads, for failure messages.
func summary(leads []Lead) []string {
	var out []string
	for _, l := range leads {
		out = append(out, fmt.Sprintf("%d:%d bytes:%v", l.Line, len(l.Payload), l.Err))
	}
	return out
}
