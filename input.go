package main

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

// maxLeadLine bounds one input line. A lead is a few hundred bytes; the
// bound only stops a runaway file from being read into memory whole.
const maxLeadLine = 8 << 20

// inputLead is one lead read from a submit file, or why its line is bad.
type inputLead struct {
	line    int
	payload []byte
	err     error
}

// readLeads reads JSONL (one object a line) or CSV with a header row, by
// the first non-blank byte: '{' is JSONL, anything else CSV. JSONL lines
// are kept byte for byte (only surrounding blanks are trimmed); CSV rows
// become objects with the header's keys, empty cells left out. A bad line
// is reported with its number and does not stop the others.
func readLeads(r io.Reader) ([]inputLead, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	// Look past leading blank lines without consuming them, so that line
	// numbers stay those of the file.
	peek, err := br.Peek(br.Size())
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	first := bytes.TrimLeft(peek, " \t\r\n")
	switch {
	case len(first) == 0 && len(peek) < br.Size():
		return nil, errors.New("no leads in input")
	case len(first) > 0 && first[0] == '{':
		return readJSONL(br)
	}
	return readCSV(br)
}

func readJSONL(r *bufio.Reader) ([]inputLead, error) {
	var out []inputLead
	for n := 1; ; n++ {
		line, tooLong, err := readLine(r, maxLeadLine)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		switch trimmed := bytes.TrimSpace(line); {
		case tooLong:
			out = append(out, inputLead{line: n, err: fmt.Errorf("line %d: longer than %d bytes", n, maxLeadLine)})
		case len(trimmed) == 0:
		case !json.Valid(trimmed):
			out = append(out, inputLead{line: n, payload: trimmed, err: fmt.Errorf("line %d: not valid JSON (truncated or malformed)", n)})
		default:
			out = append(out, inputLead{line: n, payload: trimmed})
		}
		if err != nil { // io.EOF
			return out, nil
		}
	}
}

// readLine reads one line, newline excluded. A line over max bytes is
// read to its end but not kept (tooLong), so one runaway line neither
// fills memory nor hides the lines after it.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
	}
}

func readCSV(r io.Reader) ([]inputLead, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, so one bad row is one error
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: reading the CSV header: %w", err)
	}
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
		if header[i] == "" {
			return nil, fmt.Errorf("line 1: column %d has no name", i+1)
		}
	}
	var out []inputLead
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				out = append(out, inputLead{line: pe.Line, err: fmt.Errorf("line %d: %v", pe.Line, pe.Err)})
				continue
			}
			return out, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			out = append(out, inputLead{line: line, err: fmt.Errorf("line %d: %d fields, the header has %d", line, len(rec), len(header))})
			continue
		}
		out = append(out, inputLead{line: line, payload: csvObject(header, rec)})
	}
}

// csvObject encodes one row as a JSON object in header order. encoding/json
// would sort a map's keys; writing the object by hand keeps the operator's
// column order in the bytes that are signed and stored.
func csvObject(header, rec []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for i, v := range rec {
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
