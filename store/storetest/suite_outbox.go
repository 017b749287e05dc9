package storetest

// suite_outbox.go: the outbox side (enqueue and its refusals, claim,
// leases, record, release, the retry schedule, resubmit).

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

func testEnqueue(t *testing.T, h Harness) {
	ctx := context.Background()
	// One database for the table: the cases do not interfere (distinct
	// external ids), and DUP-1 is there for the duplicate case.
	s, clk, _ := open(t, h, store.Options{})
	mustEnqueue(t, s, "DUP-1")
	tests := []struct {
		name      string
		payload   string
		strict    bool
		wantErr   error
		wantBadPh bool
	}{
		{name: "good", payload: `{"external_id":"G-1","phone":"+4915112345678","extra":{"a":[1,2]}}`},
		{name: "spaces_kept_verbatim", payload: "  {\"phone\": \"+14155552671\",  \"external_id\": \"G-2\"}\n"},
		{name: "not_json", payload: `external_id=1`, wantErr: store.ErrInvalid},
		{name: "broken_json", payload: `{"external_id":"X"`, wantErr: crm.ErrInvalidLead},
		{name: "missing_phone", payload: `{"external_id":"X"}`, wantErr: store.ErrInvalid},
		{name: "empty_external_id", payload: `{"external_id":"","phone":"+4915112345678"}`, wantErr: store.ErrInvalid},
		{name: "duplicate", payload: string(payload("DUP-1")), wantErr: store.ErrDuplicate},
		{name: "bad_phone_flagged", payload: `{"external_id":"P-1","phone":"0151 1234"}`, wantBadPh: true},
		{name: "national_format_flagged", payload: `{"external_id":"P-2","phone":"015112345678"}`, wantBadPh: true},
		{name: "bad_phone_strict", payload: `{"external_id":"P-3","phone":"+49 151 1234"}`, strict: true, wantErr: store.ErrInvalid},
		{name: "good_phone_strict", payload: `{"external_id":"P-4","phone":"+447911123456"}`, strict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := s.Enqueue(ctx, []byte(tt.payload), store.EnqueueOptions{Strict: tt.strict})
			if tt.wantErr != nil {
				wantErr(t, "enqueue", err, tt.wantErr)
				// An invalid lead is both the store's and crm's sentinel,
				// whichever a caller knows.
				if (errors.Is(err, store.ErrInvalid) || errors.Is(err, crm.ErrInvalidLead)) &&
					!(errors.Is(err, store.ErrInvalid) && errors.Is(err, crm.ErrInvalidLead)) {
					t.Fatalf("err = %v wraps only one of store.ErrInvalid and crm.ErrInvalidLead", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(l.Payload) != tt.payload {
				t.Errorf("payload changed: %q", l.Payload)
			}
			if l.ID == 0 || l.State != crm.StateQueued || l.Attempts != 0 || !l.NextAttemptAt.Equal(clk.Now()) {
				t.Errorf("lead = %+v", l)
			}
			if l.IdempotencyKey == "" || l.PhoneInvalid != tt.wantBadPh {
				t.Errorf("key %q phone invalid %v, want %v", l.IdempotencyKey, l.PhoneInvalid, tt.wantBadPh)
			}
			got := mustLead(t, s, l.ExternalID)
			if got.ID != l.ID || got.IdempotencyKey != l.IdempotencyKey || string(got.Payload) != tt.payload || got.PhoneInvalid != tt.wantBadPh {
				t.Errorf("stored lead = %+v", got)
			}
		})
	}
	t.Run("duplicate_names_state", func(t *testing.T) {
		_, err := s.Enqueue(ctx, payload("DUP-1"), store.EnqueueOptions{})
		if err == nil || err.Error() != "external_id already in the outbox: DUP-1 is already there (queued)" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not_found", func(t *testing.T) {
		_, err := s.Lead(ctx, "nope")
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, crm.ErrNotFound) {
			t.Fatalf("err = %v, want store.ErrNotFound (crm.ErrNotFound)", err)
		}
	})
	t.Run("payload_limit", func(t *testing.T) {
		_, err := s.Enqueue(ctx, bigPayload("BIG", 5<<20), store.EnqueueOptions{})
		if !errors.Is(err, store.ErrInvalid) || !errors.Is(err, crm.ErrInvalidLead) {
			t.Fatalf("5 MiB lead: err = %v, want store.ErrInvalid and crm.ErrInvalidLead", err)
		}
		if _, err := s.Lead(ctx, "BIG"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused lead stored anyway: %v", err)
		}
		if testing.Short() {
			t.Skip("-short: the 5 MiB lead stored whole is skipped")
		}
		big, _, _ := open(t, h, store.Options{MaxPayload: 8 << 20})
		p := bigPayload("BIG", 5<<20)
		if _, err := big.Enqueue(ctx, p, store.EnqueueOptions{}); err != nil {
			t.Fatalf("5 MiB lead with MaxPayload 8 MiB: %v", err)
		}
		if l := mustLead(t, big, "BIG"); string(l.Payload) != string(p) {
			t.Fatalf("stored %d bytes of %d", len(l.Payload), len(p))
		}
	})
	t.Run("batch", func(t *testing.T) {
		mustEnqueue(t, s, "OLD")
		before := mustCounts(t, s).States[crm.StateQueued]
		payloads := [][]byte{
			payload("B-1"),
			[]byte(`{"external_id":"B-2"}`), // no phone
			payload("OLD"),                  // already stored
			payload("B-3"),
			payload("B-1"), // repeated within the batch
			[]byte(`nonsense`),
		}
		leads, errs, err := s.EnqueueBatch(ctx, payloads, store.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(leads) != len(payloads) || len(errs) != len(payloads) {
			t.Fatalf("%d leads, %d errors for %d payloads", len(leads), len(errs), len(payloads))
		}
		want := []error{nil, store.ErrInvalid, store.ErrDuplicate, nil, store.ErrDuplicate, store.ErrInvalid}
		for i, w := range want {
			if w == nil && (errs[i] != nil || leads[i].ID == 0) {
				t.Errorf("item %d: err %v lead %+v", i, errs[i], leads[i])
			}
			if w != nil && !errors.Is(errs[i], w) {
				t.Errorf("item %d: err %v, want %v", i, errs[i], w)
			}
		}
		if got := mustCounts(t, s).States[crm.StateQueued]; got != before+2 {
			t.Errorf("queued = %d, want %d", got, before+2)
		}
		assertCounts(t, s, "batch")
	})
	t.Run("batch_as_stored", func(t *testing.T) {
		// 70 leads: more than one statement of any backend's, with
		// duplicates within the batch, of a stored lead, and a paused
		// source. Each returned lead is the row as Lead reads it, and the
		// ids follow the batch's order (Claim's order of arrival).
		db, _, _ := open(t, h, store.Options{})
		mustEnqueue(t, db, "AS-OLD")
		if _, err := db.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "paused"}); err != nil {
			t.Fatal(err)
		}
		var ps [][]byte
		for i := range 70 {
			switch {
			case i == 5:
				ps = append(ps, payload("AS-04"))
			case i == 63 || i == 64: // in the same statement as AS-62, and in the next one
				ps = append(ps, payload("AS-62"))
			case i == 40:
				ps = append(ps, payload("AS-OLD"))
			case i%7 == 3:
				ps = append(ps, fmt.Appendf(nil, `{"external_id":"AS-%02d","phone":"12","source":"paused","sub_id":7}`, i))
			default:
				ps = append(ps, payload(fmt.Sprintf("AS-%02d", i)))
			}
		}
		leads, errs, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var last int64
		for i, l := range leads {
			if i == 5 || i == 63 || i == 64 || i == 40 {
				if !errors.Is(errs[i], store.ErrDuplicate) || l.ID != 0 {
					t.Errorf("item %d: err %v lead %+v, want a duplicate", i, errs[i], l)
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("item %d: %v", i, errs[i])
			}
			if got := mustLead(t, db, l.ExternalID); !reflect.DeepEqual(got, l) {
				t.Errorf("item %d returned\n%+v\nstored\n%+v", i, l, got)
			}
			if held := i%7 == 3; held != (l.State == crm.StateHeld && l.Hold == crm.HoldSource && l.PhoneInvalid && l.SubID == "7") {
				t.Errorf("item %d: state %s hold %q phone invalid %v sub_id %q", i, l.State, l.Hold, l.PhoneInvalid, l.SubID)
			}
			if l.ID <= last {
				t.Errorf("item %d: id %d after %d, want batch order", i, l.ID, last)
			}
			last = l.ID
		}
		assertCounts(t, db, "batch_as_stored")
	})
	t.Run("batch_checked", func(t *testing.T) {
		// Fields checked by the caller are taken as they are; the size
		// limit is the store's all the same.
		db, _, _ := open(t, h, store.Options{MaxPayload: 300})
		ps := [][]byte{payload("CK-1"), bigPayload("CK-2", 400)}
		fields := make([]crm.LeadFields, len(ps))
		for i, p := range ps {
			f, err := store.CheckPayload(p, false, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			fields[i] = f
		}
		if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{Checked: fields[:1]}); err == nil {
			t.Fatal("one checked lead for two payloads: no error")
		}
		if _, err := db.Lead(ctx, "CK-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused batch stored a lead: %v", err)
		}
		fields[0].Source = "from-the-caller"
		leads, errs, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{Checked: fields})
		if err != nil {
			t.Fatal(err)
		}
		if errs[0] != nil || leads[0].Source != "from-the-caller" || mustLead(t, db, "CK-1").Source != "from-the-caller" {
			t.Errorf("checked lead: err %v lead %+v", errs[0], leads[0])
		}
		if !errors.Is(errs[1], store.ErrInvalid) || !errors.Is(errs[1], crm.ErrInvalidLead) ||
			!strings.Contains(errs[1].Error(), "over the 300-byte limit") {
			t.Errorf("checked lead over the store's limit: %v", errs[1])
		}
	})
	t.Run("states", func(t *testing.T) {
		db, _, _ := open(t, h, store.Options{})
		var ps [][]byte
		var exts []string
		for i := range 1203 { // more than any backend's chunk of parameters, twice
			ext := fmt.Sprintf("S-%04d", i)
			exts = append(exts, ext)
			ps = append(ps, payload(ext))
		}
		if _, errs, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil || errors.Join(errs...) != nil {
			t.Fatalf("enqueue: %v %v", err, errors.Join(errs...))
		}
		got, err := db.States(ctx, append(exts, "missing"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(exts) || got["S-0000"] != crm.StateQueued || got["S-1202"] != crm.StateQueued {
			t.Fatalf("States: %d entries, want %d", len(got), len(exts))
		}
		if _, ok := got["missing"]; ok {
			t.Fatal("an unknown id has a state")
		}
		if got, err := db.States(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("no ids: %v %v", got, err)
		}
	})
}

func mustCounts(t *testing.T, s store.Store) crm.Counts {
	t.Helper()
	c, err := s.Counts(context.Background())
	if err != nil {
		t.Fatalf("counts: %v", err)
	}
	return c
}

func testClaim(t *testing.T, h Harness) {
	t.Run("record_release", func(t *testing.T) { testClaimRecordRelease(t, h) })
	t.Run("next_due", func(t *testing.T) {
		ctx := context.Background()
		s, clk, _ := open(t, h, store.Options{})
		if _, ok, err := s.NextDue(ctx); ok || err != nil {
			t.Fatalf("empty store: ok %v err %v", ok, err)
		}
		a := mustEnqueue(t, s, "A")
		due, ok, err := s.NextDue(ctx)
		if err != nil || !ok || !due.Equal(clk.Now()) {
			t.Fatalf("queued: due %v ok %v err %v, want %v", due, ok, err, clk.Now())
		}
		if _, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 1); err != nil {
			t.Fatal(err)
		}
		if due, ok, _ = s.NextDue(ctx); !ok || !due.Equal(clk.Now().Add(time.Minute)) {
			t.Fatalf("in flight: due %v, want the lease expiry", due)
		}
		next := clk.Now().Add(10 * time.Second)
		if err := s.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: a.ID, Outcome: crm.StateRetryWait}, NextAttemptAt: next}); err != nil {
			t.Fatal(err)
		}
		if due, ok, _ = s.NextDue(ctx); !ok || !due.Equal(next) {
			t.Fatalf("retry: due %v, want %v", due, next)
		}
		if got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 1); err != nil || len(got) != 0 {
			t.Fatalf("claimed a retry before it was due: %+v, %v", got, err)
		}
		clk.Advance(10 * time.Second)
		got, err := s.Claim(ctx, "w", clk.Now(), time.Minute, 1)
		if err != nil || len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 2 {
			t.Fatalf("retry when due: %+v, %v", got, err)
		}
	})
	t.Run("lease_expiry", func(t *testing.T) {
		ctx := context.Background()
		s, clk, _ := open(t, h, store.Options{})
		l := mustEnqueue(t, s, "A")
		first, err := s.Claim(ctx, "dead-worker", clk.Now(), time.Minute, 1)
		if err != nil || len(first) != 1 {
			t.Fatal(first, err)
		}
		if got, _ := s.Claim(ctx, "w2", clk.Now().Add(30*time.Second), time.Minute, 1); len(got) != 0 {
			t.Fatalf("lease not expired yet but retaken: %+v", got)
		}
		clk.Advance(2 * time.Minute)
		second, err := s.Claim(ctx, "w2", clk.Now(), time.Minute, 1)
		if err != nil || len(second) != 1 {
			t.Fatal(second, err)
		}
		if second[0].ID != l.ID || second[0].IdempotencyKey != l.IdempotencyKey || second[0].Attempts != 2 || second[0].LeaseOwner != "w2" {
			t.Fatalf("retaken = %+v, want the same key, attempt 2, owner w2", second[0])
		}
		err = s.Record(ctx, "dead-worker", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}})
		wantErr(t, "record by the expired owner", err, crm.ErrLeaseLost)
		err = s.Release(ctx, "dead-worker", []int64{l.ID})
		wantErr(t, "release by the expired owner", err, crm.ErrLeaseLost)
		if err := s.Record(ctx, "w2", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}}); err != nil {
			t.Fatal(err)
		}
		d := mustDetail(t, s, "A")
		if len(d.Attempts) != 1 || d.Attempts[0].Number != 2 || d.Attempts[0].IdempotencyKey != l.IdempotencyKey {
			t.Fatalf("attempts = %+v", d.Attempts)
		}
	})
	t.Run("concurrent_two_stores", func(t *testing.T) { testConcurrentClaim(t, h) })
}

func testClaimRecordRelease(t *testing.T, h Harness) {
	ctx := context.Background()
	// One database: the steps build on each other.
	s, clk, _ := open(t, h, store.Options{})
	a := mustEnqueue(t, s, "A")
	clk.Advance(time.Second)
	b := mustEnqueue(t, s, "B")
	clk.Advance(time.Second)
	c := mustEnqueue(t, s, "C")

	t.Run("oldest_first", func(t *testing.T) {
		got, err := s.Claim(ctx, "w1", clk.Now(), 30*time.Second, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
			t.Fatalf("claimed %s, want [A B]", names(got))
		}
		for _, l := range got {
			if l.State != crm.StateInFlight || l.LeaseOwner != "w1" || l.Attempts != 1 ||
				!l.LeaseExpiresAt.Equal(clk.Now().Add(30*time.Second)) || l.IdempotencyKey == "" {
				t.Errorf("claimed lead = %+v", l)
			}
		}
	})
	t.Run("refusals", func(t *testing.T) {
		if _, err := s.Claim(ctx, "", clk.Now(), time.Minute, 1); err == nil {
			t.Error("claimed with an empty owner")
		}
		if _, err := s.Claim(ctx, "w1", clk.Now(), 0, 1); err == nil {
			t.Error("claimed with a zero lease")
		}
		if got, err := s.Claim(ctx, "w1", clk.Now(), time.Minute, 0); err != nil || len(got) != 0 {
			t.Errorf("limit 0 claimed %s, %v", names(got), err)
		}
	})
	t.Run("record_retry_wait", func(t *testing.T) {
		next := clk.Now().Add(4 * time.Second)
		err := s.Record(ctx, "w1", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: a.ID, StartedAt: clk.Now(), Duration: 1500 * time.Microsecond,
				HTTPStatus: 503, ResponseBody: []byte("busy"), Outcome: crm.StateRetryWait,
				Delay: 4 * time.Second, DelayWhy: "backoff 2^2 s"},
			NextAttemptAt: next,
		})
		if err != nil {
			t.Fatal(err)
		}
		l := mustLead(t, s, "A")
		if l.State != crm.StateRetryWait || !l.NextAttemptAt.Equal(next) || l.LeaseOwner != "" ||
			l.LastHTTPStatus != 503 || l.LastDelay != 4*time.Second || l.LastDelayWhy != "backoff 2^2 s" {
			t.Fatalf("lead = %+v", l)
		}
		d := mustDetail(t, s, "A")
		if len(d.Attempts) != 1 {
			t.Fatalf("attempts = %+v", d.Attempts)
		}
		at := d.Attempts[0]
		if at.Kind != crm.KindSend || at.Number != 1 || at.IdempotencyKey != a.IdempotencyKey || at.LeadID != a.ID ||
			at.Duration != 1500*time.Microsecond || string(at.ResponseBody) != "busy" || at.Outcome != crm.StateRetryWait ||
			at.HTTPStatus != 503 || !at.StartedAt.Equal(clk.Now()) {
			t.Errorf("attempt = %+v", at)
		}
	})
	t.Run("record_wrong_owner", func(t *testing.T) {
		err := s.Record(ctx, "w2", crm.AttemptResult{Attempt: crm.Attempt{LeadID: b.ID, Outcome: crm.StateAccepted}})
		wantErr(t, "record", err, crm.ErrLeaseLost)
		d := mustDetail(t, s, "B")
		if len(d.Attempts) != 0 || d.Lead.State != crm.StateInFlight {
			t.Fatalf("a lost lease wrote: %+v", d)
		}
	})
	t.Run("record_bad_outcome", func(t *testing.T) {
		err := s.Record(ctx, "w1", crm.AttemptResult{Attempt: crm.Attempt{LeadID: b.ID, Outcome: crm.StateQueued}})
		if err == nil {
			t.Fatal("recorded the outcome queued")
		}
		if l := mustLead(t, s, "B"); l.State != crm.StateInFlight {
			t.Fatalf("refused record changed the lead: %+v", l)
		}
	})
	t.Run("record_accepted_caps_body", func(t *testing.T) {
		big := make([]byte, store.MaxResponseBody+100)
		err := s.Record(ctx, "w1", crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: b.ID, HTTPStatus: 200, ResponseBody: big, Outcome: crm.StateAccepted},
			CRMID:   "crm-b",
		})
		if err != nil {
			t.Fatal(err)
		}
		d := mustDetail(t, s, "B")
		if d.Lead.State != crm.StateAccepted || d.Lead.CRMID != "crm-b" || !d.Lead.NextAttemptAt.IsZero() || d.Lead.LeaseOwner != "" {
			t.Errorf("lead = %+v", d.Lead)
		}
		if len(d.Attempts) != 1 || len(d.Attempts[0].ResponseBody) != store.MaxResponseBody {
			t.Errorf("attempts %d, body kept %d bytes, want %d", len(d.Attempts), len(d.Attempts[0].ResponseBody), store.MaxResponseBody)
		}
		err = s.Record(ctx, "w1", crm.AttemptResult{Attempt: crm.Attempt{LeadID: b.ID, Outcome: crm.StateAccepted}})
		wantErr(t, "second record of a final lead", err, crm.ErrLeaseLost)
	})
	t.Run("retry_not_due_yet", func(t *testing.T) {
		got, err := s.Claim(ctx, "w1", clk.Now(), 30*time.Second, 10)
		if err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("claimed %s, %v; want only C", names(got), err)
		}
	})
	t.Run("release", func(t *testing.T) {
		if err := s.Release(ctx, "w1", []int64{c.ID}); err != nil {
			t.Fatal(err)
		}
		l := mustLead(t, s, "C")
		if l.State != crm.StateQueued || l.Attempts != 0 || l.LeaseOwner != "" {
			t.Fatalf("released lead = %+v", l)
		}
		wantErr(t, "second release", s.Release(ctx, "w1", []int64{c.ID}), crm.ErrLeaseLost)
		if err := s.Release(ctx, "w1", nil); err != nil {
			t.Fatalf("release of nothing: %v", err)
		}
	})
	t.Run("release_retry_keeps_count", func(t *testing.T) {
		clk.Advance(5 * time.Second)
		got, err := s.Claim(ctx, "w1", clk.Now(), 30*time.Second, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("claimed %s, %v; want A and C", names(got), err)
		}
		for _, l := range got {
			if want := map[int64]int{a.ID: 2, c.ID: 1}[l.ID]; l.Attempts != want {
				t.Fatalf("%s attempts = %d, want %d", l.ExternalID, l.Attempts, want)
			}
		}
		if err := s.Release(ctx, "w1", []int64{a.ID, c.ID}); err != nil {
			t.Fatal(err)
		}
		l := mustLead(t, s, "A")
		if l.State != crm.StateRetryWait || l.Attempts != 1 || l.NextAttemptAt.After(clk.Now()) {
			t.Fatalf("released A = %+v", l)
		}
	})
	assertCounts(t, s, "claim, record and release")
}

// testConcurrentClaim: workers on two Stores on one database claim and
// record until nothing is due; no lead is handed out twice and all end
// accepted.
func testConcurrentClaim(t *testing.T, h Harness) {
	ctx := context.Background()
	s1, _, reopen := open(t, h, store.Options{Now: time.Now})
	s2 := mustReopen(t, reopen, store.Options{Now: time.Now})
	leads, workers := 300, 16
	if testing.Short() {
		leads, workers = 60, 6
	}
	var ps [][]byte
	for i := range leads {
		ps = append(ps, payload(fmt.Sprintf("C-%d", i)))
	}
	if _, errs, err := s1.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("enqueue: %v %v", err, errors.Join(errs...))
	}
	var (
		mu    sync.Mutex
		seen  = map[int64]string{}
		dupes []string
		errs  []error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range workers {
		s := s1
		if w%2 == 1 {
			s = s2
		}
		owner := fmt.Sprintf("w%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.Claim(ctx, owner, time.Now(), time.Hour, 3)
				if err != nil {
					fail(fmt.Errorf("claim by %s: %w", owner, err))
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, l := range got {
					if prev, ok := seen[l.ID]; ok {
						dupes = append(dupes, fmt.Sprintf("%d by %s and %s", l.ID, prev, owner))
					}
					seen[l.ID] = owner
				}
				mu.Unlock()
				for _, l := range got {
					if err := s.Record(ctx, owner, crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted}}); err != nil {
						fail(fmt.Errorf("record %d by %s: %w", l.ID, owner, err))
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%s", fewErrors(errs))
	}
	if len(dupes) > 0 {
		t.Fatalf("leads claimed twice: %v", dupes)
	}
	if len(seen) != leads {
		t.Fatalf("claimed %d leads, want %d", len(seen), leads)
	}
	if c := assertCounts(t, s2, "concurrent claims"); c.States[crm.StateAccepted] != leads {
		t.Fatalf("accepted = %d, want %d", c.States[crm.StateAccepted], leads)
	}
}

func testResubmit(t *testing.T, h Harness) {
	ctx := context.Background()
	// One database for the table: each case has its own lead.
	s, clk, _ := open(t, h, store.Options{})
	edit := func(ext string) []byte {
		return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915198765432","country":"DE"}`, ext))
	}
	tests := []struct {
		name     string
		state    crm.State // "" leaves it queued; in_flight claims it
		payload  func(ext string) []byte
		wantErr  error
		wantKept bool
	}{
		// PROTOCOL §1: only a failed lead resubmitted unchanged keeps its
		// key; a final outcome or an edited payload gets a new one.
		{name: "failed_unchanged_keeps_key", state: crm.StateFailed, wantKept: true},
		{name: "failed_same_payload_keeps_key", state: crm.StateFailed, payload: payload, wantKept: true},
		{name: "failed_edited_new_key", state: crm.StateFailed, payload: edit},
		{name: "rejected_new_key", state: crm.StateRejected},
		{name: "rejected_edited_new_key", state: crm.StateRejected, payload: edit},
		{name: "validation_error_edited_new_key", state: crm.StateValidationError, payload: edit},
		{name: "duplicate_new_key", state: crm.StateDuplicate},
		{name: "accepted_refused", state: crm.StateAccepted, wantErr: store.ErrNotResubmittable},
		{name: "in_flight_refused", state: crm.StateInFlight, wantErr: store.ErrNotResubmittable},
		{name: "queued_refused", wantErr: store.ErrNotResubmittable},
		{name: "edit_changes_external_id_refused", state: crm.StateFailed, wantErr: store.ErrInvalid,
			payload: func(string) []byte { return payload("SOMEONE-ELSE") }},
		{name: "edit_invalid_refused", state: crm.StateFailed, wantErr: store.ErrInvalid,
			payload: func(ext string) []byte { return []byte(`{"external_id":"` + ext + `"}`) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := fmt.Sprintf("R-%d", i)
			old := mustEnqueue(t, s, ext)
			switch tt.state {
			case "":
			case crm.StateInFlight:
				old = claimOne(t, s, clk, "w", ext)
			default:
				old = setState(t, s, clk, ext, tt.state, "")
			}
			var p []byte
			if tt.payload != nil {
				p = tt.payload(ext)
			}
			clk.Advance(time.Second)
			res, err := s.Resubmit(ctx, ext, p)
			if tt.wantErr != nil {
				wantErr(t, "resubmit", err, tt.wantErr)
				after := mustLead(t, s, ext)
				if after.State != old.State || after.IdempotencyKey != old.IdempotencyKey || string(after.Payload) != string(old.Payload) {
					t.Fatalf("refused resubmit changed the lead: %+v", after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.KeyKept != tt.wantKept || (res.Lead.IdempotencyKey == old.IdempotencyKey) != tt.wantKept || res.OldKey != old.IdempotencyKey {
				t.Fatalf("key kept %v (old %s new %s), want %v", res.KeyKept, old.IdempotencyKey, res.Lead.IdempotencyKey, tt.wantKept)
			}
			if res.Lead.IdempotencyKey == "" {
				t.Fatal("resubmitted lead has no key")
			}
			if res.Lead.State != crm.StateQueued || res.Lead.Attempts != 0 || !res.Lead.NextAttemptAt.Equal(clk.Now()) || res.Lead.Reason != "" {
				t.Fatalf("lead = %+v", res.Lead)
			}
			edited := p != nil && string(p) != string(old.Payload)
			if res.Edited != edited {
				t.Fatalf("edited = %v, want %v", res.Edited, edited)
			}
			d := mustDetail(t, s, ext)
			if d.Lead.IdempotencyKey != res.Lead.IdempotencyKey || d.Lead.State != crm.StateQueued {
				t.Fatalf("stored lead = %+v", d.Lead)
			}
			h := d.Attempts[len(d.Attempts)-1]
			if h.Kind != crm.KindResubmit || h.IdempotencyKey != res.Lead.IdempotencyKey || h.Note == "" {
				t.Fatalf("history row = %+v", h)
			}
			if edited {
				if string(h.PrevPayload) != string(old.Payload) || string(d.Lead.Payload) != string(p) {
					t.Fatalf("prev payload %q, payload %q", h.PrevPayload, d.Lead.Payload)
				}
			} else if h.PrevPayload != nil {
				t.Fatalf("prev payload kept for an unchanged resubmit: %q", h.PrevPayload)
			}
			// The next claim sends it under the key just decided.
			got := claimOne(t, s, clk, "w", ext)
			if got.IdempotencyKey != res.Lead.IdempotencyKey || got.Attempts != 1 {
				t.Fatalf("claimed after resubmit: %+v", got)
			}
			if err := s.Release(ctx, "w", []int64{got.ID}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("not_found", func(t *testing.T) {
		_, err := s.Resubmit(ctx, "nope", nil)
		wantErr(t, "resubmit", err, store.ErrNotFound)
	})
	assertCounts(t, s, "resubmits")
}
