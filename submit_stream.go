package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/internal/leadfile"
	"github.com/leadwatch/leadwatch/store"
)

// streamBatch caps the lines one enqueue carries: a tracker that sends
// faster than the store commits gets its lines committed together, a
// hundred or so per fsync, without one batch holding back the report of
// its first line for long.
const streamBatch = 256

// streamLine is one line of a streamed submit: its payload, or why it is
// unusable; or, last, the input's read error (line 0).
type streamLine struct {
	n       int
	payload []byte
	err     error
}

// cmdSubmitStream is `leadwatch submit -`: standard input is often a pipe
// from a tracker that writes a lead whenever one arrives and never ends
// until the launch does, so each line is enqueued as soon as it arrives,
// not at EOF. Lines that arrive while a commit runs are enqueued together
// in the next one (store.EnqueueBatch), so a fast tracker costs a commit
// per batch, not per line.
//
// That is JSONL. CSV on standard input (a first non-blank byte other than
// '{') is read to its end as a file is: its records may span lines, and
// it comes from a file anyway, not from a tracker.
//
// Each refused line is reported (stderr, by number) as soon as its batch
// is enqueued, a warning for a phone that is not E.164 likewise; the
// summary and --wait follow at EOF. A store failure stops the command,
// naming the lines not stored; those enqueued before stay.
func cmdSubmitStream(ctx context.Context, e env, cfg config.Config, wait, strict bool) error {
	br := bufio.NewReaderSize(e.stdin, 64<<10)
	head, jsonl, err := sniffJSONL(br)
	if err != nil {
		return fmt.Errorf("read leads: %w", err)
	}
	if !jsonl {
		return submitCSVStdin(ctx, e, cfg, io.MultiReader(bytes.NewReader(head), br), wait, strict)
	}
	db, err := openStore(ctx, cfg, store.Options{Logger: discardLog()})
	if err != nil {
		return err
	}
	defer db.Close()

	lines := make(chan streamLine, streamBatch)
	go readStream(br, head, lines)

	var ids []string
	bad := 0
	batch := make([]streamLine, 0, streamBatch)
	for open := true; open; {
		// Block for the next line, then take whatever else has arrived,
		// without waiting for more.
		select {
		case <-ctx.Done():
			// The leads enqueued so far stay; say how many.
			fmt.Fprintf(e.stdout, "enqueued %d lead(s), refused %d\n", len(ids), bad)
			return fmt.Errorf("interrupted before the end of the input: %w", context.Cause(ctx))
		case l, ok := <-lines:
			if !ok {
				open = false
				break
			}
			batch = append(batch[:0], l)
		more:
			for len(batch) < streamBatch {
				select {
				case l, ok := <-lines:
					if !ok {
						open = false
						break more
					}
					batch = append(batch, l)
				default:
					break more
				}
			}
			got, refused, err := enqueueLines(ctx, e, db, batch, strict)
			if err != nil {
				fmt.Fprintf(e.stdout, "enqueued %d lead(s), refused %d\n", len(ids), bad)
				return err
			}
			ids = append(ids, got...)
			bad += refused
		}
	}
	if len(ids) == 0 && bad == 0 {
		return fmt.Errorf("read leads: %w", leadfile.ErrNoLeads)
	}
	return finishSubmit(ctx, e, cfg, db, ids, bad, wait)
}

// sniffJSONL reads the leading blank lines and the first line with
// anything on it (a UTF-8 byte order mark skipped) and says whether the
// input is JSONL. head is every byte it consumed, for the CSV reader to
// read again from the start, so its line numbers stay the input's; it
// ends with the first line's newline, or mid-line at a full buffer. An
// input of blank lines only is leadfile.ErrNoLeads.
func sniffJSONL(br *bufio.Reader) (head []byte, jsonl bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		head = append(head, frag...)
		// A line's first bytes say what it is: head may stop mid-line
		// (a full buffer), and readStream reads the rest of it.
		text := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
		if len(text) > 0 {
			return head, text[0] == '{', nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			return nil, false, leadfile.ErrNoLeads
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// readStream sends the JSONL lines of head and then br on out, as they
// arrive, numbered from 1, and closes out at the end of the input; a read
// failure is sent last, as line 0. head holds whole lines (sniffJSONL's),
// the last one possibly without its newline when the input ended there.
func readStream(br *bufio.Reader, head []byte, out chan<- streamLine) {
	defer close(out)
	n := 0
	emit := func(text []byte, tooLong bool) {
		n++
		switch trimmed := bytes.TrimSpace(text); {
		case tooLong:
			out <- streamLine{n: n, err: fmt.Errorf("longer than %d bytes", leadfile.MaxLine)}
		case len(trimmed) > 0:
			out <- streamLine{n: n, payload: bytes.Clone(trimmed)}
		}
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	for len(head) > 0 {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		if !found && len(line) > 0 {
			// The first lead's line goes on in br (sniffJSONL stopped
			// at a full buffer), or the input ended without a newline.
			more, tooLong, err := readStreamLine(br, leadfile.MaxLine-len(line))
			emit(append(line, more...), tooLong)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					out <- streamLine{err: fmt.Errorf("line %d: %w", n+1, err)}
				}
				return
			}
			break
		}
		emit(line, false)
		head = rest
	}
	for {
		text, tooLong, err := readStreamLine(br, leadfile.MaxLine)
		if err != nil {
			if len(text) > 0 || tooLong {
				emit(text, tooLong) // the last line, without its newline
			}
			if !errors.Is(err, io.EOF) {
				out <- streamLine{err: fmt.Errorf("line %d: %w", n+1, err)}
			}
			return
		}
		emit(text, tooLong)
	}
}

// readStreamLine reads one line, newline excluded; a line over max bytes
// is read to its end but kept only as tooLong, so one runaway line neither
// fills memory nor hides the lines after it. It returns as soon as the
// newline has arrived: it never waits for more input than its line.
func readStreamLine(br *bufio.Reader, max int) (text []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(text)+len(frag) > max+1 {
				tooLong, text = true, nil
			} else {
				text = append(text, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			return bytes.TrimSuffix(text, []byte("\n")), tooLong, nil
		}
		return text, tooLong, err
	}
}

// enqueueLines enqueues one batch of streamed lines and reports each
// refused one, and each warning, in line order. It returns the external
// ids stored and how many lines were refused; err is a store failure, and
// then nothing of the batch was stored.
func enqueueLines(ctx context.Context, e env, db store.Store, batch []streamLine, strict bool) (ids []string, bad int, err error) {
	var payloads [][]byte
	for _, l := range batch {
		if l.err == nil {
			payloads = append(payloads, l.payload)
		}
	}
	var errs []error
	stored := make([]enqueuedLead, 0, len(payloads))
	if len(payloads) > 0 {
		leads, es, err := db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{Strict: strict})
		if err != nil {
			return nil, 0, fmt.Errorf("enqueue: %w (%s not stored)", err, lineRange(batch))
		}
		errs = es
		for _, l := range leads {
			stored = append(stored, enqueuedLead{l.ExternalID, l.PhoneInvalid})
		}
	}
	j := 0
	for _, l := range batch {
		lineErr := l.err
		if l.n == 0 {
			// The input's read failure, after its last line.
			fmt.Fprintf(e.stderr, "leadwatch submit: %v\n", lineErr)
			bad++
			continue
		}
		if lineErr == nil {
			lineErr = errs[j]
			if lineErr == nil {
				ids = append(ids, stored[j].id)
				if stored[j].phoneInvalid {
					fmt.Fprintf(e.stderr, "leadwatch submit: line %d: warning: phone is not valid E.164; sending anyway (use --strict to refuse)\n", l.n)
				}
			}
			j++
		}
		if lineErr != nil {
			fmt.Fprintf(e.stderr, "leadwatch submit: line %d: %v\n", l.n, lineErr)
			bad++
		}
	}
	return ids, bad, nil
}

// enqueuedLead is what the report needs of an enqueued lead.
type enqueuedLead struct {
	id           string
	phoneInvalid bool
}

// lineRange names a batch's lines for an error: "line 7", "lines 7–12".
func lineRange(batch []streamLine) string {
	first, last := 0, 0
	for _, l := range batch {
		if l.n == 0 {
			continue
		}
		if first == 0 {
			first = l.n
		}
		last = l.n
	}
	if first == last {
		return fmt.Sprintf("line %d", first)
	}
	return fmt.Sprintf("lines %d–%d", first, last)
}

// submitCSVStdin is submit of CSV on standard input: read to the end, as
// a file (leadfile.Read), then enqueued in one batch.
func submitCSVStdin(ctx context.Context, e env, cfg config.Config, in io.Reader, wait, strict bool) error {
	leads, readErr := leadfile.Read(in)
	if readErr != nil && len(leads) == 0 {
		return fmt.Errorf("read leads: %w", readErr)
	}
	db, err := openStore(ctx, cfg, store.Options{Logger: discardLog()})
	if err != nil {
		return err
	}
	defer db.Close()
	batch := make([]streamLine, 0, len(leads)+1)
	for _, l := range leads {
		batch = append(batch, streamLine{n: l.Line, payload: l.Payload, err: l.Err})
	}
	if readErr != nil {
		batch = append(batch, streamLine{err: readErr})
	}
	ids, bad, err := enqueueLines(ctx, e, db, batch, strict)
	if err != nil {
		return fmt.Errorf("enqueue: %w (nothing was stored)", errors.Unwrap(err))
	}
	return finishSubmit(ctx, e, cfg, db, ids, bad, wait)
}

// finishSubmit prints a submit's summary and, with --wait, sends the
// leads and waits for their outcomes; its error says what went wrong.
func finishSubmit(ctx context.Context, e env, cfg config.Config, db store.Store, ids []string, bad int, wait bool) error {
	fmt.Fprintf(e.stdout, "enqueued %d lead(s), refused %d\n", len(ids), bad)
	var problems []string
	if bad > 0 {
		problems = append(problems, fmt.Sprintf("%d line(s) refused", bad))
	}
	if wait && len(ids) > 0 {
		outcomes, err := sendAndWait(ctx, e, cfg, db, ids)
		if err != nil {
			return err
		}
		if n := notTaken(outcomes); n > 0 {
			problems = append(problems, fmt.Sprintf("%d lead(s) not taken by the CRM (neither accepted nor duplicate)", n))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
