package crm

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestScanCallbackDuplicates: a field ParseCallback reads, named twice at
// the top level, even through escapes, is refused; nested keys and keys it
// does not read are not its business.
func TestScanCallbackDuplicates(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantKey string // "" = no duplicate
	}{
		{"None", `{"internal_id":"a","event":"b","timestamp":1}`, ""},
		{"Plain", `{"internal_id":"a","event":"b","timestamp":1,"internal_id":"c"}`, "internal_id"},
		{"Escaped", `{"event":"b","\u0065vent":"c"}`, "event"},
		{"EscapedSolidus", `{"timestamp":1, "time\/stamp":2}`, ""},
		{"WhitespaceEverywhere", " {\n\t\"status\" : 1 ,\r\n \"status\":2 } ", "status"},
		{"NestedIsNotTopLevel", `{"x":{"internal_id":1,"internal_id":2},"internal_id":3}`, ""},
		{"InArray", `{"x":[{"event":1},{"event":2}],"event":3}`, ""},
		{"BracesInStrings", `{"x":"}{\"event\":","event":"e","y":"]","event":"f"}`, "event"},
		{"UninterpretedDuplicate", `{"extra":1,"extra":2}`, ""},
		{"FirstOfTwoReported", `{"reason":1,"event":2,"event":3,"reason":4}`, "event"},
		{"Empty", `{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scanCallback([]byte(tt.body))
			switch {
			case tt.wantKey == "" && err != nil:
				t.Errorf("scanCallback = %v, want no error", err)
			case tt.wantKey != "" && (!errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), `duplicate key "`+tt.wantKey+`"`)):
				t.Errorf("scanCallback = %v, want duplicate key %q", err, tt.wantKey)
			}
			if ref := refDuplicateField([]byte(tt.body)); ref != tt.wantKey {
				t.Errorf("reference = %q; the test table is wrong", ref)
			}
		})
	}
}

// TestParseCallbackSyntax: what is not exactly one JSON object is refused,
// with encoding/json's words where it has some; what is one is taken, in
// every shape the grammar allows.
func TestParseCallbackSyntax(t *testing.T) {
	const fields = `"internal_id":"a","event":"e","timestamp":1`
	bad := []struct{ name, body, want string }{
		{"Empty", ``, "not a JSON object"},
		{"Blank", " \n\t", "not a JSON object"},
		{"Array", `[{` + fields + `}]`, "not a JSON object"},
		{"String", `"{}"`, "not a JSON object"},
		{"VerticalTabIsNotJSONSpace", "\v{" + fields + "}", "not a JSON object"},
		{"TrailingBrace", `{` + fields + `}}`, "trailing data after the object (offset 45)"},
		{"TrailingBracket", `{` + fields + `}]`, "trailing data"},
		{"TrailingObject", `{` + fields + `} {}`, "trailing data"},
		{"TrailingWord", `{` + fields + "}\nnull", "trailing data"},
		{"TrailingBeforeDuplicate", `{` + fields + `,"event":"f"}}`, "trailing data"},
		{"Truncated", `{` + fields, "unexpected end of JSON input"},
		{"TruncatedString", `{"internal_id":"a`, "unexpected end of JSON input"},
		{"TruncatedNested", `{"x":[1,{"y":`, "unexpected end of JSON input"},
		{"UnquotedKey", `{internal_id: a}`, "invalid character 'i' looking for beginning of object key string"},
		{"MissingColon", `{"a" 1}`, "invalid character '1' after object key"},
		{"MissingComma", `{"a":1 "b":2}`, `invalid character '"' after object key:value pair`},
		{"TrailingComma", `{"a":1,}`, "invalid character '}' looking for beginning of object key string"},
		{"ArrayTrailingComma", `{"a":[1,]}`, "invalid character ']' looking for beginning of value"},
		{"ArrayMissingComma", `{"a":[1 2]}`, "invalid character '2' after array element"},
		{"ControlInString", "{\"a\":\"x\ny\"}", `invalid character '\n' in string literal`},
		{"BadEscape", `{"a":"\x"}`, "invalid character 'x' in string escape code"},
		{"ShortUnicodeEscape", `{"a":"\u12G4"}`, `invalid character 'G' in \u hexadecimal character escape`},
		{"LeadingZero", `{"a":01}`, "invalid character '1' after object key:value pair"},
		{"BareMinus", `{"a":-}`, "invalid character '}' in numeric literal"},
		{"NoFraction", `{"a":1.}`, "after decimal point in numeric literal"},
		{"NoExponent", `{"a":1e+}`, "in exponent of numeric literal"},
		{"Plus", `{"a":+1}`, "invalid character '+' looking for beginning of value"},
		{"BadLiteral", `{"a":tru}`, "in literal true (expecting 'e')"},
		{"SingleQuotes", `{'a':1}`, `invalid character '\'' looking for beginning of object key string`},
		{"TooDeep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, "exceeded max depth"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCallback([]byte(tt.body))
			if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCallback = %v, want %q", err, tt.want)
			}
			if json.Valid([]byte(tt.body)) && bytes.HasPrefix(bytes.TrimLeft([]byte(tt.body), " \t\r\n"), []byte("{")) && refDuplicateField([]byte(tt.body)) == "" {
				t.Fatal("encoding/json takes this body: the test table is wrong")
			}
		})
	}
	good := []struct{ name, body string }{
		{"Spaces", " \r\n\t{ \"internal_id\" : \"a\" , \"event\":\"e\",\"timestamp\":1 } \n"},
		{"AllValueKinds", `{` + fields + `,"x":[true,false,null,-0,1.5e-3,2E+10,"\"\\\/\b\f\n\r\t\u00e9",{},[]]}`},
		{"NestedDeep", `{` + fields + `,"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`},
		{"InvalidUTF8InString", "{" + fields + ",\"x\":\"\xff\xfe\"}"},
		{"EmptyKey", `{"":1,` + fields + `}`},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCallback([]byte(tt.body)); err != nil {
				t.Fatalf("ParseCallback = %v", err)
			}
			if !json.Valid([]byte(tt.body)) {
				t.Fatal("encoding/json refuses this body: the test table is wrong")
			}
		})
	}
}

// TestParseCallbackValues: the fields as read, escapes and odd bytes
// decoded as encoding/json decodes them, but for bytes that are not UTF-8,
// which are kept as sent.
func TestParseCallbackValues(t *testing.T) {
	ev, err := ParseCallback([]byte("{\"internal_id\":\"c\\u00e9-1\",\"event\":\"e\\n\",\"timestamp\":-1.50e3,\"status\":\"\xff\",\"reason\":7,\"external_id\":{}}"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.InternalID != "cé-1" || ev.Event != "e\n" || ev.Timestamp != "-1.50e3" || ev.Status != "\xff" || ev.Reason != "7" || ev.ExternalID != "" {
		t.Fatalf("%+v", ev)
	}
	if ev.DedupKey != "cé-1:e\n:-1.50e3" {
		t.Fatalf("dedup key %q", ev.DedupKey)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"internal_id":null,"event":"e","timestamp":1}`, "internal_id is required"},
		{`{"internal_id":"","event":"e","timestamp":1}`, "internal_id is empty"},
		{`{"internal_id":true,"event":"e","timestamp":1}`, "internal_id must be a string or a number"},
		{`{"internal_id":"a","event":["e"],"timestamp":1}`, "event must be a string or a number"},
		{`{"internal_id":"a","event":"e"}`, "timestamp is required"},
	} {
		if _, err := ParseCallback([]byte(tt.body)); !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCallback(%s) = %v, want %q", tt.body, err, tt.want)
		}
	}
}

// FuzzParseCallback compares the one-pass parser with a slow reference
// built on encoding/json (validity, a map of raw values, a token walk for
// duplicates): the same bodies are taken, with the same fields.
func FuzzParseCallback(f *testing.F) {
	f.Add([]byte(`{"internal_id":"a","x":{"internal_id":1},"internal\u005fid":2,"event":"e","timestamp":1}`))
	f.Add([]byte(`{"x":"}{\"event\":","event":"e","y":"]","event":"f"}`))
	f.Add([]byte(`{"internal_id":123456789012345678901,"event":"status_changed","timestamp":1764200000,"external_id":"e-1"}`))
	f.Add([]byte(`{"internal_id":"a","event":"e","timestamp":"2026-11-27T10:00:00Z","status":null}}`))
	f.Add([]byte(`{"internal_id":"a","event":"e","timestamp":1,"reason":"\ud800"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseCallback(body)
		want, ok := refParseCallback(body)
		if (err == nil) != ok {
			t.Fatalf("ParseCallback error %v, reference takes it: %v", err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("error %v does not wrap ErrInvalidPayload", err)
			}
			return
		}
		if !wellFormedStrings(body) {
			// encoding/json turns invalid UTF-8 and lone surrogates into
			// U+FFFD; ParseCallback keeps them apart on purpose
			// (TestParseCallbackKeepsIllFormedStringsApart).
			return
		}
		if got.InternalID != want.InternalID || got.Event != want.Event || got.Timestamp != want.Timestamp ||
			got.ExternalID != want.ExternalID || got.Status != want.Status || got.Reason != want.Reason ||
			got.DedupKey != want.DedupKey || !got.EventTime.Equal(want.EventTime) || !bytes.Equal(got.RawBody, body) {
			t.Fatalf("ParseCallback = %+v\nreference     %+v", got, want)
		}
	})
}

// wellFormedStrings reports whether body is valid UTF-8 with no escaped
// surrogate, where ParseCallback and encoding/json decode alike.
func wellFormedStrings(body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	lower := bytes.ToLower(body)
	for _, p := range []string{`\ud8`, `\ud9`, `\uda`, `\udb`, `\udc`, `\udd`, `\ude`, `\udf`} {
		if bytes.Contains(lower, []byte(p)) {
			return false
		}
	}
	return true
}

// TestParseCallbackKeepsIllFormedStringsApart: ids that encoding/json
// would both decode to U+FFFD stay two ids (and two dedup keys), while
// escapes of well-formed text decode as usual.
func TestParseCallbackKeepsIllFormedStringsApart(t *testing.T) {
	id := func(t *testing.T, raw string) string {
		t.Helper()
		ev, err := ParseCallback([]byte(`{"internal_id":` + raw + `,"event":"e","timestamp":1}`))
		if err != nil {
			t.Fatalf("ParseCallback(%q): %v", raw, err)
		}
		return ev.InternalID
	}
	apart := [][2]string{
		{"\"\xff\"", "\"\xfe\""},
		{`"\ud800"`, `"\udbff"`},
		{`"\udc00"`, `"\ufffd"`},
		{"\"a\xff\"", `"a\ud800"`},
		{`"\ud800\u0041"`, `"\ud800A\u0000"`},
	}
	for _, p := range apart {
		if a, b := id(t, p[0]), id(t, p[1]); a == b {
			t.Errorf("%s and %s both decode to %q", p[0], p[1], a)
		}
	}
	same := [][2]string{
		{`"a\u0062"`, `"ab"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`"\/\"\\\b\f\n\r\t"`, `"/\"\\\b\f\n\r\t"`},
		{`"\u00e9"`, `"é"`},
	}
	for _, p := range same {
		if a, b := id(t, p[0]), id(t, p[1]); a != b {
			t.Errorf("%s = %q, %s = %q: want the same id", p[0], a, p[1], b)
		}
	}
	if got := id(t, "\"\xff\""); got != "\xff" {
		t.Errorf("invalid UTF-8 kept as %q, want the byte as sent", got)
	}
}

// refParseCallback is ParseCallback the slow way, as it was written before
// it parsed in one pass (plus the refusal of trailing data).
func refParseCallback(raw []byte) (CallbackEvent, bool) {
	var ev CallbackEvent
	if !json.Valid(raw) || !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) || refDuplicateField(raw) != "" {
		return ev, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ev, false
	}
	field := func(key string, required bool) (string, bool) {
		v, ok := m[key]
		if !ok || string(v) == "null" {
			return "", !required
		}
		switch v[0] {
		case '"':
			var s string
			if json.Unmarshal(v, &s) != nil || (required && s == "") {
				return "", false
			}
			return s, true
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return string(v), true
		}
		return "", false
	}
	var ok bool
	if ev.InternalID, ok = field("internal_id", true); !ok {
		return ev, false
	}
	if ev.Event, ok = field("event", true); !ok {
		return ev, false
	}
	if ev.Timestamp, ok = field("timestamp", true); !ok {
		return ev, false
	}
	ev.ExternalID, _ = field("external_id", false)
	ev.Status, _ = field("status", false)
	ev.Reason, _ = field("reason", false)
	ev.DedupKey = ev.InternalID + ":" + ev.Event + ":" + ev.Timestamp
	ev.EventTime = parseEventTime(ev.Timestamp)
	return ev, true
}

// refDuplicateField finds the first callback field seen twice at the top
// level, walking encoding/json's tokens.
func refDuplicateField(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		key, ok := tok.(string)
		if !ok {
			return ""
		}
		if fields := callbackFields(); slices.Contains(fields[:], key) {
			if seen[key] {
				return key
			}
			seen[key] = true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// BenchmarkParseCallback is the listener's payload check on a typical
// body: one pass that validates, reads the fields and refuses duplicates.
func BenchmarkParseCallback(b *testing.B) {
	body := []byte(`{"internal_id":"crm-123456","external_id":"lead-123456","event":"status_changed","status":"interested","reason":null,"timestamp":1790000000,"extra":{"campaign":"launch","sub_id":"s-42","tags":["a","b"]}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseCallback(body); err != nil {
			b.Fatal(err)
		}
	}
}
