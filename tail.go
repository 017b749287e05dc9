package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/leadfile"
	"github.com/leadwatch/leadwatch/store"
)

// The kinds of record tail prints besides the rows of the callbacks
// table (crm.KindCallback, crm.KindPolled), which come from their own.
const (
	tailRefused = "refused"
	tailForward = "forward"
)

// tailPage is how many rows of one kind a poll reads at once: a round
// prints at most this many of each, merged by time.
const tailPage = 500

// tailOptions are tail's flags.
type tailOptions struct {
	asJSON bool
	all    bool // refusals, polled statuses and forward results too
	last   int  // start with the last N of each kind
	q      store.TailQuery
}

func tailCmd(e env) *cobra.Command {
	var o storeFlags
	var t tailOptions
	c := &cobra.Command{
		Use:   "tail [--json] [--all] [-n N]",
		Short: "follow verified callbacks (NDJSON with --json; --all adds refusals, polled statuses, forwards)",
		Long: `Follow verified callbacks as they are stored, from any process sharing the database.

--all adds refused callbacks (with the code answered and the reason), statuses
learned by reconcile (polled) and the results of forwarding to the app; each
line is marked with its kind, and with --json each object has a "kind":
callback, polled, refused or forward.

--event, --status and --external-id keep only records whose field equals
the value, byte for byte. Refusals have no trusted fields, so any filter
leaves them out; forward results have an external_id, so only --external-id
keeps them; --event status_polled asks for polled statuses.

In --json, timestamp has the type the CRM sent: a number stays a number.`,
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if t.last < 0 {
				return usageErrorf("-n is a count, not %d", t.last)
			}
			return cmdTail(cmd.Context(), e, o, t)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().BoolVar(&t.asJSON, "json", false, "one JSON object a line (NDJSON)")
	c.Flags().BoolVar(&t.all, "all", false, "also refused callbacks, polled statuses and forward results")
	c.Flags().IntVarP(&t.last, "lines", "n", 10, "show the last `N` stored records (of each kind) first")
	c.Flags().StringVar(&t.q.Event, "event", "", "only callbacks whose event is `E`")
	c.Flags().StringVar(&t.q.Status, "status", "", "only callbacks whose status is `S`")
	c.Flags().StringVar(&t.q.ExternalID, "external-id", "", "only records of the lead `ID`")
	return readsEnv(c, storeEnv)
}

// tailer follows each kind tail prints with its own cursor.
type tailer struct {
	db  store.Store
	fw  bool // forward results are followed
	opt tailOptions

	cbAfter, refAfter, fwAfter int64
	refusals                   bool
}

func newTailer(db store.Store, opt tailOptions) *tailer {
	t := &tailer{db: db, opt: opt}
	if !opt.all {
		t.opt.q.Kind = crm.KindCallback
	}
	// A polled row's event column is empty (its identity must never be
	// a callback's); the name is its body's. Asking for that name is
	// asking for the polled kind.
	if opt.q.Event == crm.EventStatusPolled {
		t.opt.q.Event, t.opt.q.Kind = "", crm.KindPolled
	}
	// A refusal is a body nothing vouches for: it cannot match a filter
	// on what it claims to be.
	t.refusals = opt.all && !opt.q.Filters()
	t.fw = opt.all && opt.q.Event == "" && opt.q.Status == ""
	return t
}

// start sets every cursor so the first round prints the last n of each
// kind.
func (t *tailer) start(ctx context.Context) error {
	n := t.opt.last
	var err error
	if t.cbAfter, err = t.db.TailStart(ctx, t.opt.q, n); err != nil {
		return err
	}
	if t.refusals {
		if t.refAfter, err = cursorStart(ctx, n, t.refusalIDs); err != nil {
			return err
		}
	}
	if t.fw {
		if t.fwAfter, err = cursorStart(ctx, n, t.forwardIDs); err != nil {
			return err
		}
	}
	return nil
}

// idPage is one forward read of a kind tail follows: the ids of up to
// limit rows above after, in id order, and which of them the filters keep.
// The store bounds these reads so that a row still committing below one
// returned is never passed over (PostgreSQL's horizon), which is why the
// cursors start from them and not from a newest-first list.
type idPage func(ctx context.Context, after int64, limit int) (ids []int64, keep []bool, err error)

func (t *tailer) refusalIDs(ctx context.Context, after int64, limit int) ([]int64, []bool, error) {
	rs, err := t.db.RefusalsAfter(ctx, after, limit)
	ids, keep := make([]int64, len(rs)), make([]bool, len(rs))
	for i, r := range rs {
		ids[i], keep[i] = r.ID, true
	}
	return ids, keep, err
}

func (t *tailer) forwardIDs(ctx context.Context, after int64, limit int) ([]int64, []bool, error) {
	as, err := t.db.ForwardAttemptsAfter(ctx, after, limit)
	ids, keep := make([]int64, len(as)), make([]bool, len(as))
	for i, a := range as {
		ids[i], keep[i] = a.ID, t.keepsForward(a)
	}
	return ids, keep, err
}

// cursorStart is the cursor from which the last n rows of a kind that the
// filters keep are followed. The store reads such rows only forward, by
// id, so the newest id is found by a binary search of one-row reads (about
// 2 log2 of it), then the last n in windows below it, doubled until they
// hold n or reach EventScanWindow ids: never a pass over every row.
func cursorStart(ctx context.Context, n int, read idPage) (int64, error) {
	after := func(id int64) (bool, error) {
		ids, _, err := read(ctx, id, 1)
		return len(ids) > 0, err
	}
	// top is the newest id: there is a row above lo, none above hi.
	lo, hi := int64(0), int64(1024)
	for {
		more, err := after(hi)
		if err != nil {
			return 0, err
		}
		if !more {
			break
		}
		lo, hi = hi, hi*2
	}
	if more, err := after(lo); err != nil || !more {
		return lo, err // lo is 0: no row yet
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		more, err := after(mid)
		if err != nil {
			return 0, err
		}
		if more {
			lo = mid
		} else {
			hi = mid
		}
	}
	top := hi
	if n <= 0 {
		return top, nil
	}
	for window := int64(max(n, 100)); ; window *= 2 {
		from := max(0, top-window)
		var kept []int64
		for cur := from; cur < top; {
			ids, keep, err := read(ctx, cur, tailPage)
			if err != nil {
				return 0, err
			}
			if len(ids) == 0 {
				break
			}
			for i, id := range ids {
				if id <= top && keep[i] {
					kept = append(kept, id)
				}
			}
			cur = ids[len(ids)-1]
		}
		if len(kept) >= n {
			return kept[len(kept)-n] - 1, nil
		}
		if from == 0 || window >= store.EventScanWindow {
			return from, nil // fewer than n: all of them
		}
	}
}

func (t *tailer) keepsForward(a crm.ForwardAttempt) bool {
	return t.opt.q.ExternalID == "" || a.ExternalID == t.opt.q.ExternalID
}

// tailRecord is one line to print.
type tailRecord struct {
	at   time.Time
	json leadfile.Record
	line string
}

// round reads the next page of each kind, merged by time; empty when
// every kind is caught up.
func (t *tailer) round(ctx context.Context) ([]tailRecord, error) {
	var out []tailRecord
	// Callbacks: TailCallbacks may return nothing yet move on (a span
	// of rows the filter skipped); go on until it stays put.
	for {
		evs, next, err := t.db.TailCallbacks(ctx, t.opt.q, t.cbAfter, tailPage)
		if err != nil {
			return nil, err
		}
		moved := next != t.cbAfter
		t.cbAfter = next
		for _, ev := range evs {
			out = append(out, t.callbackRecord(ev))
		}
		if len(evs) > 0 || !moved {
			break
		}
	}
	if t.refusals {
		rs, err := t.db.RefusalsAfter(ctx, t.refAfter, tailPage)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out = append(out, refusalRecord(r))
			t.refAfter = r.ID
		}
	}
	for t.fw {
		as, err := t.db.ForwardAttemptsAfter(ctx, t.fwAfter, tailPage)
		if err != nil {
			return nil, err
		}
		kept := false
		for _, a := range as {
			if t.keepsForward(a) {
				out = append(out, forwardRecord(a))
				kept = true
			}
			t.fwAfter = a.ID
		}
		// A full page the filter emptied: the next may hold a match.
		if kept || len(as) < tailPage {
			break
		}
	}
	// Each kind comes oldest first; across kinds, by time (a callback
	// before the delivery of it).
	slices.SortStableFunc(out, func(a, b tailRecord) int { return a.at.Compare(b.at) })
	return out, nil
}

func (t *tailer) callbackRecord(ev crm.CallbackEvent) tailRecord {
	kind := cmp.Or(ev.Kind, crm.KindCallback)
	if kind == crm.KindPolled && ev.Event == "" {
		ev.Event = crm.EventStatusPolled
	}
	line := formatCallback(ev)
	if t.opt.all {
		line = ev.ReceivedAt.Local().Format("15:04:05") + "  " + kindLabel(kind) + callbackFields(ev)
	}
	return tailRecord{at: ev.ReceivedAt, json: withKind(kind, leadfile.CallbackRecord(ev)), line: line}
}

// kindLabel is the kind column of --all's lines, refusals in capitals so
// they stand out.
func kindLabel(kind string) string {
	if kind == tailRefused {
		kind = "REFUSED"
	}
	return fmt.Sprintf("%-8s  ", kind)
}

func withKind(kind string, r leadfile.Record) leadfile.Record {
	return leadfile.Record{Keys: append([]string{"kind"}, r.Keys...), Values: append([]any{kind}, r.Values...)}
}

// refusalRecord leaves out the body's first bytes: they are unverified
// and may hold a lead's personal data (forget erases them in the store).
func refusalRecord(r crm.Refusal) tailRecord {
	line := fmt.Sprintf("%s  %s%d %s  %s  from %s", r.At.Local().Format("15:04:05"), kindLabel(tailRefused),
		r.HTTPStatus, r.Code, orDash(r.Detail), orDash(r.RemoteAddr))
	return tailRecord{at: r.At, line: line, json: leadfile.Record{
		Keys:   []string{"kind", "id", "at", "remote_addr", "http_status", "code", "detail"},
		Values: []any{tailRefused, r.ID, rfc3339OrNil(r.At), r.RemoteAddr, r.HTTPStatus, r.Code, r.Detail},
	}}
}

func forwardRecord(a crm.ForwardAttempt) tailRecord {
	outcome := "delivered"
	switch {
	case a.Delivered:
	case a.Final:
		outcome = "failed"
	default:
		outcome = "retry"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s%-9s %s  %s  callback=%d", a.At.Local().Format("15:04:05"), kindLabel(tailForward), outcome,
		httpStatus(a.Status), orDash(a.ExternalID), a.CallbackID)
	if a.Latency > 0 {
		fmt.Fprintf(&b, " %s", a.Latency.Round(time.Millisecond))
	}
	if a.Error != "" {
		fmt.Fprintf(&b, "  %s", a.Error)
	}
	if outcome == "retry" && !a.NextAt.IsZero() {
		fmt.Fprintf(&b, "  next %s", a.NextAt.Local().Format("15:04:05"))
	}
	return tailRecord{at: a.At, line: b.String(), json: leadfile.Record{
		Keys: []string{"kind", "id", "at", "delivery_id", "callback_id", "external_id", "webhook_id", "outcome",
			"http_status", "latency_ms", "error", "next_at"},
		Values: []any{tailForward, a.ID, rfc3339OrNil(a.At), a.DeliveryID, a.CallbackID, a.ExternalID, a.WebhookID, outcome,
			a.Status, a.Latency.Milliseconds(), a.Error, nextAt(a)},
	}}
}

func nextAt(a crm.ForwardAttempt) any {
	if a.Delivered || a.Final {
		return nil
	}
	return rfc3339OrNil(a.NextAt)
}

// httpStatus is an answer's status, "---" when there was none (a network
// error or a timeout).
func httpStatus(code int) string {
	if code == 0 {
		return "---"
	}
	return fmt.Sprint(code)
}

func rfc3339OrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func cmdTail(ctx context.Context, e env, o storeFlags, opt tailOptions) error {
	db, err := o.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	t := newTailer(db, opt)
	if err := t.start(ctx); err != nil {
		return err
	}
	changes := db.Watch(ctx)
	for {
		for {
			recs, err := t.round(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if len(recs) == 0 {
				break
			}
			if err := writeTail(e.stdout, recs, opt.asJSON); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
}

func writeTail(w io.Writer, recs []tailRecord, asJSON bool) error {
	enc := json.NewEncoder(w)
	for _, r := range recs {
		var err error
		if asJSON {
			err = enc.Encode(r.json)
		} else {
			_, err = fmt.Fprintln(w, r.line)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// formatCallback is tail's line for a verified callback.
func formatCallback(ev crm.CallbackEvent) string {
	return ev.ReceivedAt.Local().Format("15:04:05") + "  " + callbackFields(ev)
}

func callbackFields(ev crm.CallbackEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %-24s %-14s crm=%s", ev.Event, orDash(ev.ExternalID), orDash(ev.Status), orDash(ev.InternalID))
	if ev.Skew != 0 {
		fmt.Fprintf(&b, " skew=%s", ev.Skew)
	}
	if ev.LeadID == 0 {
		b.WriteString("  [unmatched]")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
