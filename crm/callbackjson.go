package crm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// numCallbackFields is how many top-level keys ParseCallback reads.
const numCallbackFields = 6

// callbackFields are the top-level keys ParseCallback reads, in the order
// of the indexes below (a function, so no package-level variable can be
// changed by accident). Every other key is only kept in the raw body, so a
// duplicate of it changes nothing leadwatch decides.
func callbackFields() [numCallbackFields]string {
	return [...]string{"internal_id", "event", "timestamp", "external_id", "status", "reason"}
}

const (
	fieldInternalID = iota
	fieldEvent
	fieldTimestamp
	fieldExternalID
	fieldStatus
	fieldReason
)

// maxDepth bounds nesting, as encoding/json does, so that a body of a
// megabyte of brackets cannot run the scanner's stack up.
const maxDepth = 10000

// callbackValues are the raw values of callbackFields in one body: each
// the JSON token as sent, nil when the key is absent.
type callbackValues [numCallbackFields][]byte

// scanCallback checks in one pass that body is exactly one JSON object
// (RFC 8259; only JSON whitespace around it) and returns the raw values of
// its top-level callbackFields. A field named twice at the top level,
// compared after JSON unescaping ("internal\u005fid" is internal_id), is
// an error: parsers disagree on which of two equal keys wins (encoding/json
// and JavaScript keep the last, others the first), so such a body has no
// single dedup key. A body that is not one valid object is reported as
// such before any duplicate in it.
func scanCallback(body []byte) (callbackValues, error) {
	var vals callbackValues
	s := jsonScanner{b: body}
	s.ws()
	if !s.eat('{') {
		return vals, fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
	}
	var seen [numCallbackFields]bool
	dup := -1
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			if s.i >= len(s.b) {
				return vals, s.errEOF()
			}
			if s.b[s.i] != '"' {
				return vals, s.errChar("looking for beginning of object key string")
			}
			start := s.i
			escaped, err := s.str()
			if err != nil {
				return vals, err
			}
			field := fieldIndex(body[start:s.i], escaped)
			s.ws()
			if !s.eat(':') {
				return vals, s.errChar("after object key")
			}
			s.ws()
			start = s.i
			if err := s.value(1); err != nil {
				return vals, err
			}
			if field >= 0 {
				if seen[field] && dup < 0 {
					dup = field
				}
				seen[field] = true
				vals[field] = body[start:s.i]
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return vals, s.errChar("after object key:value pair")
		}
	}
	s.ws()
	if s.i < len(s.b) {
		// {...}} and {...}] included: one object, then something else.
		return vals, fmt.Errorf("%w: trailing data after the object (offset %d)", ErrInvalidPayload, s.i)
	}
	if dup >= 0 {
		return vals, fmt.Errorf("%w: duplicate key %q", ErrInvalidPayload, callbackFields()[dup])
	}
	return vals, nil
}

// fieldIndex returns the index in callbackFields() of the key whose string
// token (quotes included) is tok, or -1. A key without escapes is compared
// as it is, without allocating; an escaped one is decoded first.
func fieldIndex(tok []byte, escaped bool) int {
	key := tok[1 : len(tok)-1]
	if escaped {
		var s string
		if json.Unmarshal(tok, &s) != nil {
			return -1
		}
		key = []byte(s)
	}
	switch string(key) {
	case "internal_id":
		return fieldInternalID
	case "event":
		return fieldEvent
	case "timestamp":
		return fieldTimestamp
	case "external_id":
		return fieldExternalID
	case "status":
		return fieldStatus
	case "reason":
		return fieldReason
	}
	return -1
}

// jsonScanner validates JSON byte by byte, as encoding/json's scanner
// does, without building values.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// errChar reports the byte at s.i as unexpected, in encoding/json's words.
func (s *jsonScanner) errChar(context string) error {
	if s.i >= len(s.b) {
		return s.errEOF()
	}
	return fmt.Errorf("%w: invalid character %s %s (offset %d)", ErrInvalidPayload, quoteChar(s.b[s.i]), context, s.i)
}

func (s *jsonScanner) errEOF() error {
	return fmt.Errorf("%w: unexpected end of JSON input", ErrInvalidPayload)
}

// quoteChar formats c as encoding/json's errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// value skips one JSON value at depth (the top-level object is depth 0).
func (s *jsonScanner) value(depth int) error {
	if s.i >= len(s.b) {
		return s.errEOF()
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.errChar("looking for beginning of value")
}

func (s *jsonScanner) object(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: exceeded max depth", ErrInvalidPayload)
	}
	s.i++ // '{'
	s.ws()
	if s.eat('}') {
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) {
			return s.errEOF()
		}
		if s.b[s.i] != '"' {
			return s.errChar("looking for beginning of object key string")
		}
		if _, err := s.str(); err != nil {
			return err
		}
		s.ws()
		if !s.eat(':') {
			return s.errChar("after object key")
		}
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return nil
		}
		return s.errChar("after object key:value pair")
	}
}

func (s *jsonScanner) array(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: exceeded max depth", ErrInvalidPayload)
	}
	s.i++ // '['
	s.ws()
	if s.eat(']') {
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat(']') {
			return nil
		}
		return s.errChar("after array element")
	}
}

// str skips a string token starting at its opening quote and reports
// whether it holds an escape. Like encoding/json it takes any byte but a
// control character, the quote and the backslash literally, invalid UTF-8
// included (unquote keeps those bytes).
func (s *jsonScanner) str() (escaped bool, err error) {
	s.i++ // '"'
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return escaped, s.errEOF()
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.b) {
						return escaped, s.errEOF()
					}
					if !isHex(s.b[s.i]) {
						return escaped, s.errChar("in \\u hexadecimal character escape")
					}
					s.i++
				}
			default:
				return escaped, s.errChar("in string escape code")
			}
		case c < 0x20:
			return escaped, s.errChar("in string literal")
		default:
			s.i++
		}
	}
	return escaped, s.errEOF()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number skips a number token: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return s.errChar("in numeric literal")
	}
	if s.eat('.') {
		if !s.digits() {
			return s.errChar("after decimal point in numeric literal")
		}
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if !s.digits() {
			return s.errChar("in exponent of numeric literal")
		}
	}
	return nil
}

// digits skips [0-9]* and reports whether there was at least one.
func (s *jsonScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *jsonScanner) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if s.i >= len(s.b) {
			return s.errEOF()
		}
		if s.b[s.i] != word[j] {
			return s.errChar("in literal " + word + " (expecting " + quoteChar(word[j]) + ")")
		}
		s.i++
	}
	return nil
}

// scalar returns the raw value tok as text when it is a JSON string or
// number; nil tok or null is absent. Numbers keep their exact digits.
func scalar(tok []byte, key string, required bool) (string, error) {
	if tok == nil || string(tok) == "null" {
		if required {
			return "", fmt.Errorf("%w: %s is required", ErrInvalidPayload, key)
		}
		return "", nil
	}
	switch tok[0] {
	case '"':
		s, err := unquote(tok)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrInvalidPayload, key, err)
		}
		if required && s == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrInvalidPayload, key)
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(tok), nil
	}
	return "", fmt.Errorf("%w: %s must be a string or a number", ErrInvalidPayload, key)
}

// unquote decodes a string token the scanner accepted. Unlike
// encoding/json it is injective: bytes that are not valid UTF-8 are kept as
// they were sent, and an escaped surrogate that is not half of a pair is
// written as its three-byte generalized UTF-8 form, where encoding/json
// turns both into U+FFFD (so "\xff" and "\xfe" would be one id, one
// dedup key). A well-formed string decodes exactly as encoding/json does.
func unquote(tok []byte) (string, error) {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); {
		c := inner[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		// The scanner has checked every escape, so the bytes are there.
		switch e := inner[i+1]; e {
		case 'u':
			r := hex4(inner[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if r < 0xdc00 && i+6 <= len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
					if lo := hex4(inner[i+2 : i+6]); lo >= 0xdc00 && lo <= 0xdfff {
						out = utf8.AppendRune(out, utf16.DecodeRune(r, lo))
						i += 6
						continue
					}
				}
				out = append(out, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
				continue
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, unescape(e))
			i += 2
		}
	}
	return string(out), nil
}

// unescape is the byte a one-letter JSON escape stands for.
func unescape(e byte) byte {
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return e // '"', '\\', '/'
}

// hex4 reads four hex digits the scanner has checked.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= 'a':
			c -= 'a' - 10
		case c >= 'A':
			c -= 'A' - 10
		default:
			c -= '0'
		}
		r = r<<4 | rune(c)
	}
	return r
}
