package callbacks

import (
	"bytes"
	"encoding/json"
)

// interpretedFields are the top-level keys the listener reads
// (crm.ParseCallback); every other key is only kept in the raw body, so a
// duplicate of it changes nothing we decide.
var interpretedFields = [...]string{"internal_id", "event", "timestamp", "external_id", "status", "reason"}

// duplicateField reports the first interpreted top-level key that occurs
// more than once in body, comparing keys after JSON unescaping (so
// "internal\u005fid" is internal_id, as encoding/json sees it). body must
// already be a valid JSON object (ParseCallback accepted it); on anything
// unexpected the scan stops and reports no duplicate, leaving the verdict
// to ParseCallback.
func duplicateField(body []byte) (string, bool) {
	var seen [len(interpretedFields)]bool
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return "", false
	}
	for {
		s.ws()
		if s.eat('}') || s.i >= len(s.b) {
			return "", false
		}
		raw, ok := s.str()
		if !ok {
			return "", false
		}
		if i := fieldIndex(raw); i >= 0 {
			if seen[i] {
				return interpretedFields[i], true
			}
			seen[i] = true
		}
		s.ws()
		if !s.eat(':') || !s.value() {
			return "", false
		}
		s.ws()
		if !s.eat(',') {
			return "", false
		}
	}
}

// fieldIndex returns the index in interpretedFields of the key whose JSON
// string token contents are raw, or -1. Keys without a backslash are
// compared as they are, which costs no allocation; escaped ones are
// decoded first.
func fieldIndex(raw []byte) int {
	key := raw
	if bytes.IndexByte(raw, '\\') >= 0 {
		var s string
		q := make([]byte, 0, len(raw)+2)
		q = append(append(append(q, '"'), raw...), '"')
		if json.Unmarshal(q, &s) != nil {
			return -1
		}
		key = []byte(s)
	}
	for i, f := range interpretedFields {
		if string(key) == f {
			return i
		}
	}
	return -1
}

// scanner walks already-validated JSON just enough to find top-level keys.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string token and returns its contents without the quotes.
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			raw := s.b[start:s.i]
			s.i++
			return raw, true
		default:
			s.i++
		}
	}
	return nil, false
}

// value skips one JSON value of any kind.
func (s *scanner) value() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		// A number, true, false or null: runs to the next delimiter.
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			s.i++
		}
		return true
	}
}
