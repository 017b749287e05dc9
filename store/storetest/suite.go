package storetest

// suite.go is the black-box suite every store backend passes: Run drives a
// backend through the store.Store interface only, and the Harness supplies
// what only the backend can do (open a fresh database, open a second Store
// on it, and the optional fault hooks). The subtests live in suite_*.go by
// topic; each opens its own database unless it says why it shares one.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Opener opens another Store on the same database as the one New returned,
// as a second process would; the Store is closed when the test ends. An
// error is returned, not failed, so tests can check refusals (ErrTooNew).
type Opener func(opt store.Options) (store.Store, error)

// Harness is what a backend gives the suite.
type Harness struct {
	// Name names the backend in the subtests' names
	// (TestStore/sqlite/Claim/lease_expiry).
	Name string

	// New opens a new, empty database (its own file, or its own PostgreSQL
	// database) with opt, returns a Store on it, closed when t ends, and
	// an Opener for more Stores on the same database. It fails t when the
	// database cannot be opened.
	New func(t *testing.T, opt store.Options) (store.Store, Opener)

	// The hooks below do what only the backend can; a nil hook skips the
	// subtests that need it, with the reason.

	// MakeNewer marks s's database as migrated by a newer leadwatch (a
	// schema version past this build's).
	MakeNewer func(t *testing.T, s store.Store)
	// MakeReadOnly makes s's database refuse writes to Stores opened
	// after it (a file or database that cannot be written, not
	// Options.ReadOnly). It may t.Skip when the platform cannot (root
	// ignores file modes).
	MakeReadOnly func(t *testing.T, s store.Store)
	// DiskFull makes s's writes fail as a full disk would, soon if not at
	// once (SQLite: a page limit, so a write that fits in free pages may
	// still land); undo gives the space back.
	DiskFull func(t *testing.T, s store.Store) (undo func())
	// HoldLock holds, from a connection of its own, the lock s's writes
	// need, so that a Store opened with a short Options.BusyTimeout fails
	// them with ErrBusy; release lets go.
	HoldLock func(t *testing.T, s store.Store) (release func())
	// StallCallback makes a SaveCallbacks of an event whose internal_id is
	// internalID stop inside its transaction after its row is inserted
	// (its id taken), until resume is called; stalled reports whether one
	// is stopped there now. PostgreSQL only: SQLite has one writer, so
	// callback ids commit in id order.
	StallCallback func(t *testing.T, s store.Store, internalID string) (stalled func() bool, resume func())
}

// Run runs the whole suite on the backend h describes, as the subtest
// h.Name. Under -short the heavy parts (big payloads, bulk fills, many
// workers) shrink or skip.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Name == "" {
		t.Fatal("storetest: Harness.New and Harness.Name are required")
	}
	t.Run(h.Name, func(t *testing.T) { run(t, h) })
}

func run(t *testing.T, h Harness) {
	t.Run("Open", func(t *testing.T) { testOpen(t, h) })
	t.Run("Enqueue", func(t *testing.T) { testEnqueue(t, h) })
	t.Run("Claim", func(t *testing.T) { testClaim(t, h) })
	t.Run("Resubmit", func(t *testing.T) { testResubmit(t, h) })
	t.Run("Callbacks", func(t *testing.T) { testCallbacks(t, h) })
	t.Run("Refusals", func(t *testing.T) { testRefusals(t, h) })
	t.Run("Counts", func(t *testing.T) { testCounts(t, h) })
	t.Run("Panes", func(t *testing.T) { testPanes(t, h) })
	t.Run("Throughput", func(t *testing.T) { testThroughput(t, h) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, h) })
	t.Run("Export", func(t *testing.T) { testExport(t, h) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, h) })
	t.Run("Act", func(t *testing.T) { testAct(t, h) })
	t.Run("Pause", func(t *testing.T) { testPauses(t, h) })
	t.Run("Find", func(t *testing.T) { testFind(t, h) })
	t.Run("Report", func(t *testing.T) { testReport(t, h) })
	t.Run("Traffic", func(t *testing.T) { testTraffic(t, h) })
	t.Run("Reconcile", func(t *testing.T) { testReconcile(t, h) })
	t.Run("Forward", func(t *testing.T) { testForward(t, h) })
	t.Run("TailOrder", func(t *testing.T) { testTailOrder(t, h) })
}

// clock is the fake clock tests move by hand (Options.Now): lease expiry
// and retry schedules are tested without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// Now is the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// open opens a fresh database with a fake clock (and opt's other fields).
func open(t *testing.T, h Harness, opt store.Options) (store.Store, *clock, Opener) {
	t.Helper()
	clk := newClock()
	if opt.Now == nil {
		opt.Now = clk.Now
	}
	s, reopen := h.New(t, opt)
	return s, clk, reopen
}

// mustReopen opens a second Store on the database, failing t on error.
func mustReopen(t *testing.T, reopen Opener, opt store.Options) store.Store {
	t.Helper()
	s, err := reopen(opt)
	if err != nil {
		t.Fatalf("open a second store on the database: %v", err)
	}
	return s
}

func payload(ext string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":"DE"}`, ext))
}

// bigPayload is a valid lead of about size bytes.
func bigPayload(ext string, size int) []byte {
	p := []byte(`{"external_id":"` + ext + `","phone":"+4915112345678","notes":"`)
	for len(p) < size-2 {
		p = append(p, 'x')
	}
	return append(p, '"', '}')
}

func mustEnqueue(tb testing.TB, s store.Store, ext string) crm.Lead {
	tb.Helper()
	l, err := s.Enqueue(context.Background(), payload(ext), store.EnqueueOptions{})
	if err != nil {
		tb.Fatalf("enqueue %s: %v", ext, err)
	}
	return l
}

func mustLead(tb testing.TB, s store.Store, ext string) crm.Lead {
	tb.Helper()
	l, err := s.Lead(context.Background(), ext)
	if err != nil {
		tb.Fatalf("lead %s: %v", ext, err)
	}
	return l
}

func mustDetail(tb testing.TB, s store.Store, ext string) crm.LeadDetail {
	tb.Helper()
	d, err := s.LeadDetail(context.Background(), ext)
	if err != nil {
		tb.Fatalf("lead detail %s: %v", ext, err)
	}
	return d
}

// claimOne claims the lead ext as the dispatcher would, under owner: it
// claims the due leads one at a time, oldest first, until ext comes, and
// releases the others it took (Release rewrites their updated_at, so
// tests that order by it drive their leads oldest first). It returns the
// claimed lead.
func claimOne(tb testing.TB, s store.Store, clk *clock, owner, ext string) crm.Lead {
	tb.Helper()
	ctx := context.Background()
	var others []int64
	defer func() {
		if len(others) > 0 {
			if err := s.Release(ctx, owner, others); err != nil {
				tb.Errorf("release the leads taken before %s: %v", ext, err)
			}
		}
	}()
	for range 1000 {
		got, err := s.Claim(ctx, owner, clk.Now(), time.Minute, 1)
		if err != nil {
			tb.Fatalf("claim %s: %v", ext, err)
		}
		if len(got) == 0 {
			tb.Fatalf("claim %s: not due (no due lead left)", ext)
		}
		if got[0].ExternalID == ext {
			return got[0]
		}
		others = append(others, got[0].ID)
	}
	tb.Fatalf("claim %s: not among the first 1000 due leads", ext)
	return crm.Lead{}
}

// sendAttempt claims ext and records r as its attempt (r's LeadID is
// filled in).
func sendAttempt(tb testing.TB, s store.Store, clk *clock, ext string, r crm.AttemptResult) {
	tb.Helper()
	l := claimOne(tb, s, clk, "setter", ext)
	r.Attempt.LeadID = l.ID
	if err := s.Record(context.Background(), "setter", r); err != nil {
		tb.Fatalf("record %s: %v", ext, err)
	}
}

// setState drives the lead ext to a final state st through Claim and
// Record, as the dispatcher would.
func setState(tb testing.TB, s store.Store, clk *clock, ext string, st crm.State, crmID string) crm.Lead {
	tb.Helper()
	sendAttempt(tb, s, clk, ext, crm.AttemptResult{
		Attempt: crm.Attempt{HTTPStatus: 200, Outcome: st, StartedAt: clk.Now()},
		CRMID:   crmID,
		Reason:  "set by test",
	})
	return mustLead(tb, s, ext)
}

// callback is a parsed callback event as the listener would store it.
func callback(internal, ext, event, status string, ts int64) crm.CallbackEvent {
	raw := fmt.Sprintf(`{"internal_id":%q,"external_id":%q,"event":%q,"status":%q,"timestamp":%d}`, internal, ext, event, status, ts)
	ev, err := crm.ParseCallback([]byte(raw))
	if err != nil {
		panic(err)
	}
	return ev
}

// countsString prints counts with zero states left out, so two Counts
// that differ only in which zero entries they carry compare equal.
func countsString(c crm.Counts) string {
	states := maps.Clone(c.States)
	maps.DeleteFunc(states, func(_ crm.State, n int) bool { return n == 0 })
	return fmt.Sprintf("states %v verified %d unmatched %d refusals %d polled %d",
		states, c.CallbacksVerified, c.CallbacksUnmatched, c.Refusals, c.Polled)
}

// rowCounts counts what the rows say, through the exports and the refusal
// list only: what Counts must equal.
func rowCounts(t *testing.T, s store.Store) crm.Counts {
	t.Helper()
	ctx := context.Background()
	c := crm.Counts{States: map[crm.State]int{}}
	if err := s.ExportLeads(ctx, func(l crm.Lead) error {
		c.States[l.State]++
		return nil
	}); err != nil {
		t.Fatalf("export leads: %v", err)
	}
	if err := s.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error {
		if ev.Kind == crm.KindPolled {
			c.Polled++ // a status lookup's, never a callback verified
			return nil
		}
		c.CallbacksVerified++
		if ev.LeadID == 0 {
			c.CallbacksUnmatched++
		}
		return nil
	}); err != nil {
		t.Fatalf("export callbacks: %v", err)
	}
	rs, err := s.Refusals(ctx, crm.EventQuery{Limit: 10000})
	if err != nil {
		t.Fatalf("refusals: %v", err)
	}
	c.Refusals = len(rs)
	return c
}

// assertCounts fails t unless Counts equals what the rows say; it returns
// the counts.
func assertCounts(t *testing.T, s store.Store, step string) crm.Counts {
	t.Helper()
	got, err := s.Counts(context.Background())
	if err != nil {
		t.Fatalf("after %s: counts: %v", step, err)
	}
	want := rowCounts(t, s)
	if countsString(got) != countsString(want) {
		t.Fatalf("after %s: Counts says %s, the rows say %s", step, countsString(got), countsString(want))
	}
	return got
}

// names lists the leads' external ids, in order.
func names(ls []crm.Lead) string {
	s := make([]string, 0, len(ls))
	for _, l := range ls {
		s = append(s, l.ExternalID)
	}
	return fmt.Sprint(s)
}

// ids lists the callbacks' ids, sorted.
func ids(evs []crm.CallbackEvent) []int64 {
	out := make([]int64, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// wantErr fails t unless err wraps want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// fewErrors says how many errors errs holds and quotes the first few.
func fewErrors(errs []error) string {
	const show = 5
	msg := fmt.Sprintf("%d errors", len(errs))
	for i, err := range errs {
		if i == show {
			msg += "\n\t…"
			break
		}
		msg += "\n\t" + err.Error()
	}
	return msg
}
