// Package leadfile reads the lead files `leadwatch submit` takes (JSONL, or
// CSV with a header row) and writes what `leadwatch export` and `leadwatch
// tail --json` print (JSONL or CSV). It is its own package because file
// framing has rules of its own (line numbers that match the file, one bad
// line never hiding a good one) that deserve tests away from the command
// line.
//
// It frames, it does not judge: a payload read here is checked once, by
// the store's enqueue (crm.CheckLead), so a lead is never validated twice
// on the way in.
package leadfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxLine bounds one input line (and one CSV record spread over several
// lines). A lead is a few hundred bytes; the bound only stops a runaway
// file from being read into memory whole.
const MaxLine = 8 << 20

// ErrNoLeads is returned by Read for an input with nothing but blank lines.
var ErrNoLeads = errors.New("no leads in input")

// Lead is one lead read from a file, or why the line it starts on cannot
// be read.
type Lead struct {
	Line    int    // 1-based line of the file where the lead starts
	Payload []byte // the lead's JSON object; nil when Err is set
	Err     error  // why the line is unusable; its message does not repeat the line
}

// Read reads JSONL (one object a line) or CSV with a header row, told apart
// by the first non-blank byte: '{' is JSONL, anything else CSV. A leading
// UTF-8 byte order mark is skipped. JSONL lines are kept byte for byte
// (only surrounding blanks are trimmed); CSV rows become objects with the
// header's keys in the header's order, empty cells left out.
//
// The leads come back in line order. A bad line is one Lead with Err set
// and never costs the lines around it. The error is for the input as a
// whole (nothing but blank lines, an unusable CSV header, a read failure);
// the leads read before a read failure are returned with it.
func Read(r io.Reader) ([]Lead, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	ls := &lines{r: br}
	for {
		l, ok, err := ls.next()
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, ErrNoLeads
		}
		first := bytes.TrimLeft(l.text, " \t\r")
		if len(first) == 0 && !l.tooLong {
			continue // leading blank lines are skipped, and counted
		}
		ls.unread([]line{l})
		if len(first) > 0 && first[0] == '{' {
			return readJSONL(ls)
		}
		return readCSV(ls)
	}
}

// line is one physical line of the input, newline excluded.
type line struct {
	n       int // 1-based
	text    []byte
	tooLong bool // over MaxLine: text is only the line's first bytes
}

// lines hands out the input's physical lines in order. Lines given back
// with unread come out again first: a CSV record that turns out bad is
// re-read line by line from the line after its start.
type lines struct {
	r       *bufio.Reader
	n       int
	back    []line // unread lines, next first
	readErr error  // the reader's error once it is reached
}

// next returns the next line; ok is false at the end of the input or at
// a read failure (then err is set).
func (ls *lines) next() (l line, ok bool, err error) {
	if len(ls.back) > 0 {
		l, ls.back = ls.back[0], ls.back[1:]
		return l, true, nil
	}
	if ls.readErr != nil {
		return line{}, false, ls.err()
	}
	text, tooLong, err := readLine(ls.r, MaxLine)
	if err != nil {
		ls.readErr = err
		// A line cut by a read failure is not a line; nothing after the
		// last newline is not one either.
		if !errors.Is(err, io.EOF) || (len(text) == 0 && !tooLong) {
			return line{}, false, ls.err()
		}
	}
	ls.n++
	return line{n: ls.n, text: text, tooLong: tooLong}, true, nil
}

// err is the read failure, or nil at a clean end of input.
func (ls *lines) err() error {
	if errors.Is(ls.readErr, io.EOF) {
		return nil
	}
	return fmt.Errorf("line %d: %w", ls.n+1, ls.readErr)
}

// unread puts ls back in front of the lines still to come.
func (ls *lines) unread(back []line) {
	ls.back = append(back[:len(back):len(back)], ls.back...)
}

// readLine reads one line, newline excluded. A line over max bytes is
// read to its end but only its first bytes are kept (tooLong), enough to
// tell JSONL from CSV, so one runaway line neither fills memory nor hides
// the lines after it.
func readLine(r *bufio.Reader, max int) (text []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(text)+len(frag) > max+1 {
				tooLong = true
				head := make([]byte, 0, sniffLen)
				head = append(head, text[:min(len(text), sniffLen)]...)
				text = append(head, frag[:min(len(frag), sniffLen-len(head))]...)
			} else {
				text = append(text, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(text, []byte("\n")), tooLong, err
	}
}

// sniffLen is how much of a line over MaxLine is kept: enough to see
// its first non-blank byte.
const sniffLen = 1 << 10

func tooLongErr() error { return fmt.Errorf("longer than %d bytes", MaxLine) }

func readJSONL(ls *lines) ([]Lead, error) {
	var out []Lead
	for {
		l, ok, err := ls.next()
		if !ok {
			return out, err
		}
		switch trimmed := bytes.TrimSpace(l.text); {
		case l.tooLong:
			out = append(out, Lead{Line: l.n, Err: tooLongErr()})
		case len(trimmed) > 0:
			out = append(out, Lead{Line: l.n, Payload: trimmed})
		}
	}
}

func readCSV(ls *lines) ([]Lead, error) {
	rec, err := nextRecord(ls, 0)
	switch {
	case err != nil:
		return nil, err
	case rec.n == 0:
		return nil, ErrNoLeads
	case rec.err != nil:
		return nil, fmt.Errorf("line %d: reading the CSV header: %w", rec.n, rec.err)
	}
	header := rec.fields
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
		if header[i] == "" {
			return nil, fmt.Errorf("line %d: column %d has no name", rec.n, i+1)
		}
	}
	var out []Lead
	for {
		rec, err := nextRecord(ls, len(header))
		switch {
		case err != nil || rec.n == 0:
			return out, err
		case rec.err != nil:
			out = append(out, Lead{Line: rec.n, Err: rec.err})
		default:
			out = append(out, Lead{Line: rec.n, Payload: csvObject(header, rec.fields)})
		}
	}
}

// record is one CSV record, or why the line it starts on is bad.
type record struct {
	n      int // the line it starts on; 0 at the end of the input
	fields []string
	err    error
}

// nextRecord frames the next CSV record, which must have nfields fields
// unless nfields is 0. A record is one line, or more when a quoted field
// holds a newline. When a record that spans lines is bad (a stray quote
// opened a field that swallowed the lines after it), its error is
// reported at the line where it starts and the lines after that are read
// again as records of their own: a bad line is one error, not the loss of
// the lines it swallowed. That re-read is cheap: the swallowed lines sat
// inside a quoted field, so they cannot open a field of their own that
// runs on.
func nextRecord(ls *lines, nfields int) (record, error) {
	var first line
	for {
		l, ok, err := ls.next()
		if !ok {
			return record{}, err
		}
		if l.tooLong {
			return record{n: l.n, err: tooLongErr()}, nil
		}
		if len(bytes.TrimRight(l.text, "\r")) > 0 { // encoding/csv skips blank lines too
			first = l
			break
		}
	}
	text := append([]byte(nil), first.text...)
	var rest []line
	for quoteOpen(text) {
		l, ok, err := ls.next()
		if err != nil {
			return record{}, err
		}
		if !ok || l.tooLong || len(text)+1+len(l.text) > MaxLine {
			if ok {
				rest = append(rest, l)
			}
			ls.unread(rest)
			return record{n: first.n, err: errors.New(`a quoted field is never closed (a stray "?)`)}, nil
		}
		rest = append(rest, l)
		text = append(append(text, '\n'), l.text...)
	}
	fields, err := parseRecord(text)
	if err == nil && nfields > 0 && len(fields) != nfields {
		err = fmt.Errorf("%d fields, the header has %d", len(fields), nfields)
	}
	if err != nil {
		ls.unread(rest)
		return record{n: first.n, err: err}, nil
	}
	return record{n: first.n, fields: fields}, nil
}

// quoteOpen reports whether text ends inside a quoted field, following
// encoding/csv: a quote opens a field only as its first byte, and a
// doubled quote inside is a literal one. Other quote misuse is left for
// the parser to report.
func quoteOpen(text []byte) bool {
	inQuote, fieldStart := false, true
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inQuote && c == '"':
			if i+1 < len(text) && text[i+1] == '"' {
				i++
			} else {
				inQuote = false
			}
		case inQuote:
		case c == '"' && fieldStart:
			inQuote = true
		}
		fieldStart = !inQuote && c == ','
	}
	return inQuote
}

// parseRecord parses text as exactly one CSV record.
func parseRecord(text []byte) ([]string, error) {
	cr := csv.NewReader(bytes.NewReader(append(text, '\n')))
	cr.FieldsPerRecord = -1 // the caller compares with the header
	fields, err := cr.Read()
	if err == nil {
		// The framing and the parser agree on where a record ends; this
		// only guards that agreement.
		if _, err = cr.Read(); errors.Is(err, io.EOF) {
			return fields, nil
		} else if err == nil {
			err = errors.New("more than one record")
		}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, pe.Err
	}
	return nil, err
}

// csvObject encodes one row as a JSON object in header order. encoding/json
// would sort a map's keys; writing the object by hand keeps the operator's
// column order in the bytes that are signed and stored.
func csvObject(header, fields []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for i, v := range fields {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(header[i])
		s, _ := json.Marshal(v)
		b.Write(k)
		b.WriteByte(':')
		b.Write(s)
	}
	b.WriteByte('}')
	return b.Bytes()
}
