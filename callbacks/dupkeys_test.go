package callbacks

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

func TestDuplicateField(t *testing.T) {
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
		{"Empty", `{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, dup := duplicateField([]byte(tt.body))
			if key != tt.wantKey || dup != (tt.wantKey != "") {
				t.Errorf("duplicateField = %q, %v; want %q", key, dup, tt.wantKey)
			}
			if ref := refDuplicateField([]byte(tt.body)); ref != tt.wantKey {
				t.Errorf("reference = %q; the test table is wrong", ref)
			}
		})
	}
}

// FuzzDuplicateField compares the scanner with a slow reference built on
// encoding/json's tokenizer, on every valid JSON object.
func FuzzDuplicateField(f *testing.F) {
	f.Add([]byte(`{"internal_id":"a","x":{"internal_id":1},"internal\u005fid":2}`))
	f.Add([]byte(`{"x":"}{\"event\":","event":"e","y":"]","event":"f"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
			return
		}
		key, _ := duplicateField(body)
		if ref := refDuplicateField(body); key != ref {
			t.Fatalf("duplicateField = %q, reference %q", key, ref)
		}
	})
}

// refDuplicateField finds the first interpreted top-level key seen twice,
// walking encoding/json's tokens.
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
		key := tok.(string)
		if slices.Contains(interpretedFields[:], key) {
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
