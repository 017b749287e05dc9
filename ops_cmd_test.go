package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// opsHarness is a store of one backend, filled by the test through its
// own handle, and the environment that points leadwatch's commands at it.
// The scenarios below run on SQLite here and on PostgreSQL in
// pg_ops_test.go.
type opsHarness struct {
	db   store.Store
	env  map[string]string
	t0   time.Time // the seeding handle's clock: every seeded write happens at t0
	outs []string  // every stdout and stderr, for checks across a scenario
}

// opsBackend opens a fresh store whose clock is fixed at now, returning
// the handle and the location leadwatch opens it by.
type opsBackend func(t *testing.T, now func() time.Time) (db store.Store, location string)

func sqliteOps(t *testing.T, now func() time.Time) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ops.db")
	return storetest.OpenPath(t, path, store.Options{Now: now}), path
}

func newOpsHarness(t *testing.T, backend opsBackend) *opsHarness {
	t.Helper()
	// A second in the past, so the leads are due before any command runs
	// with the real clock.
	t0 := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	db, loc := backend(t, func() time.Time { return t0 })
	h := &opsHarness{db: db, env: map[string]string{"LEADWATCH_DB": loc}, t0: t0}
	// A postgres:// location carries testPassword: no command may print it.
	t.Cleanup(func() {
		for _, o := range h.outs {
			if strings.Contains(o, testPassword) {
				t.Errorf("a command printed the database password:\n%s", o)
			}
		}
	})
	return h
}

// cli runs one command line against the harness's store.
func (h *opsHarness) cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	code, out, errOut := runCLI(t, h.env, stdin, args...)
	h.outs = append(h.outs, out, errOut)
	return code, out, errOut
}

// leadSpec is one lead of a hand-built campaign: its payload's fields and
// the state it is driven to ("" stays queued).
type leadSpec struct {
	ext, source, funnel, subID, country string
	state                               crm.State
	reason, crmID                       string
}

func (s leadSpec) payload() []byte {
	p := fmt.Sprintf(`{"external_id":%q,"phone":"+380501234567"`, s.ext)
	for _, f := range []struct{ k, v string }{{"source", s.source}, {"funnel", s.funnel}, {"sub_id", s.subID}, {"country", s.country}} {
		if f.v != "" {
			p += fmt.Sprintf(",%q:%q", f.k, f.v)
		}
	}
	return []byte(p + "}")
}

// seed enqueues the leads and drives each to its state as the dispatcher
// would (Claim, then Record of one attempt at t0); retry_wait leads wait
// an hour.
func (h *opsHarness) seed(t *testing.T, specs ...leadSpec) {
	t.Helper()
	ctx := context.Background()
	var payloads [][]byte
	want := map[string]leadSpec{}
	for _, s := range specs {
		payloads = append(payloads, s.payload())
		want[s.ext] = s
	}
	_, errs, err := h.db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("enqueue %s: %v", specs[i].ext, e)
		}
	}
	claimed, err := h.db.Claim(ctx, "seed", h.t0, time.Hour, len(specs)+1000)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	var back []int64
	for _, l := range claimed {
		s, ok := want[l.ExternalID]
		if !ok || s.state == "" || s.state == crm.StateQueued {
			back = append(back, l.ID)
			continue
		}
		status := map[crm.State]int{crm.StateRetryWait: 503, crm.StateFailed: 401}[s.state]
		if status == 0 {
			status = 200
		}
		r := crm.AttemptResult{
			Attempt: crm.Attempt{LeadID: l.ID, Kind: crm.KindSend, Number: l.Attempts, IdempotencyKey: l.IdempotencyKey,
				StartedAt: h.t0, HTTPStatus: status, Outcome: s.state},
			CRMID:  s.crmID,
			Reason: s.reason,
		}
		if s.state == crm.StateRetryWait {
			r.NextAttemptAt = h.t0.Add(time.Hour)
		}
		if err := h.db.Record(ctx, "seed", r); err != nil {
			t.Fatalf("record %s: %v", l.ExternalID, err)
		}
	}
	if len(back) > 0 {
		if err := h.db.Release(ctx, "seed", back); err != nil {
			t.Fatalf("release: %v", err)
		}
	}
}

// lead is ext as the store has it now.
func (h *opsHarness) lead(t *testing.T, ext string) crm.Lead {
	t.Helper()
	l, err := h.db.Lead(context.Background(), ext)
	if err != nil {
		t.Fatalf("lead %s: %v", ext, err)
	}
	return l
}

// wantLines fails t unless s holds each line, whole.
func wantLines(t *testing.T, what, s string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("%s lacks the line %q:\n%s", what, l, s)
		}
	}
}

// TestOpsUsage: the new commands' wrong arguments are usage errors (exit
// 2, one line and the hint), decided before any store is opened.
func TestOpsUsage(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.db")
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"RetryNowNothing", []string{"retry-now", "--db", typo}, "need EXTERNAL_ID… or --all"},
		{"RetryNowAllAndIDs", []string{"retry-now", "--all", "x-1", "--db", typo}, `--all takes no EXTERNAL_ID (got "x-1")`},
		{"RetryNowBadFlag", []string{"retry-now", "--every"}, "unknown flag: --every"},
		{"HoldNothing", []string{"hold", "--db", typo}, "need at least one EXTERNAL_ID"},
		{"CancelNothing", []string{"cancel"}, "need at least one EXTERNAL_ID"},
		{"ReleaseNothing", []string{"release"}, "need at least one EXTERNAL_ID"},
		{"PauseBoth", []string{"pause", "--source", "fb", "--sub-id", "7"}, "--source and --sub-id are exclusive"},
		{"PauseEmpty", []string{"pause", "--sub-id", ""}, "--sub-id needs a value"},
		{"PauseArgument", []string{"pause", "fb"}, `unexpected argument "fb"`},
		{"ResumeNothing", []string{"resume", "--db", typo}, "need --source S or --sub-id S"},
		{"ResumeBoth", []string{"resume", "--sub-id", "7", "--source", "fb"}, "--source and --sub-id are exclusive"},
		{"ResubmitNothing", []string{"resubmit", "--db", typo}, "need one EXTERNAL_ID, or --state S"},
		{"ResubmitIDAndState", []string{"resubmit", "x-1", "--state", "failed"}, "EXTERNAL_ID and --state are exclusive"},
		{"ResubmitTwoIDs", []string{"resubmit", "x-1", "x-2"}, "need one EXTERNAL_ID, or --state S"},
		{"ResubmitStatePayload", []string{"resubmit", "--state", "failed", "--payload", "p.json"}, "--payload goes with one EXTERNAL_ID"},
		{"ResubmitReasonAlone", []string{"resubmit", "x-1", "--reason", "401"}, "--reason goes with --state"},
		{"ResubmitStateNotFinal", []string{"resubmit", "--state", "queued", "--db", typo}, `--state is duplicate, validation_error, rejected or failed, not "queued"`},
		{"ReportBy", []string{"report", "--by", "city"}, `--by is source, funnel, sub_id or country, not "city"`},
		{"ReportFormat", []string{"report", "--format", "xml"}, `--format is table, json or csv, not "xml"`},
		{"ReportSince", []string{"report", "--since", "30"}, `--since: "30" is not a duration`},
		{"ReportArgument", []string{"report", "source"}, `unexpected argument "source"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "", tt.args...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != 2 || !strings.Contains(errOut, tt.stderr) || len(lines) != 2 ||
				lines[1] != "Run 'leadwatch "+tt.args[0]+" --help' for usage." {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2, %q and the hint", code, errOut, tt.stderr)
			}
			if out != "" {
				t.Errorf("stdout: %q", out)
			}
		})
	}
	// A missing store is a runtime failure, and is not created.
	for _, args := range [][]string{
		{"retry-now", "--all"}, {"hold", "x"}, {"release", "x"}, {"cancel", "x"}, {"pause"},
		{"pause", "--source", "fb"}, {"resume", "--source", "fb"}, {"resubmit", "--state", "failed"}, {"report"},
	} {
		code, _, errOut := runCLI(t, nil, "", append(args, "--db", typo)...)
		if code != 1 || !strings.Contains(errOut, "no such file") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v on a missing store: exit %d %q", args, code, errOut)
		}
	}
	if _, err := os.Stat(typo); err == nil {
		t.Errorf("a command created the store it was pointed at")
	}
}

func TestRetryNowCommand(t *testing.T) { testRetryNow(t, sqliteOps) }

func testRetryNow(t *testing.T, backend opsBackend) {
	t.Run("IDs", func(t *testing.T) {
		h := newOpsHarness(t, backend)
		h.seed(t,
			leadSpec{ext: "w-1", state: crm.StateRetryWait, reason: "HTTP 503"},
			leadSpec{ext: "w-2", state: crm.StateRetryWait, reason: "HTTP 503"},
			leadSpec{ext: "q-1"},
			leadSpec{ext: "a-1", state: crm.StateAccepted, crmID: "crm-a1"},
		)
		before := h.lead(t, "w-1")
		code, out, errOut := h.cli(t, "", "retry-now", "w-1", "q-1", "nope", "a-1")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
		}
		if out != "w-1: retry_wait → due now (same key)\n" {
			t.Errorf("stdout %q", out)
		}
		wantLines(t, "stderr", errOut,
			"leadwatch retry-now: q-1: queued, and retry-now applies only to retry_wait leads",
			"leadwatch retry-now: nope: not found",
			"leadwatch retry-now: a-1: accepted, and retry-now applies only to retry_wait leads",
			"leadwatch: 3 of 4 lead(s) not made due now")
		after := h.lead(t, "w-1")
		if after.State != crm.StateRetryWait || after.IdempotencyKey != before.IdempotencyKey || after.Attempts != before.Attempts ||
			after.NextAttemptAt.After(time.Now()) {
			t.Errorf("w-1 after retry-now: %s key %s attempts %d due %s (before: key %s attempts %d)",
				after.State, after.IdempotencyKey, after.Attempts, after.NextAttemptAt, before.IdempotencyKey, before.Attempts)
		}
		if w2 := h.lead(t, "w-2"); !w2.NextAttemptAt.After(time.Now().Add(30 * time.Minute)) {
			t.Errorf("w-2, not named, is due at %s", w2.NextAttemptAt)
		}
		// The lead it made due is what a sender claims next, same key.
		got, err := h.db.Claim(context.Background(), "sender", time.Now(), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		var claimed []string
		for _, l := range got {
			claimed = append(claimed, l.ExternalID)
			if l.ExternalID == "w-1" && l.IdempotencyKey != before.IdempotencyKey {
				t.Errorf("w-1 claimed with key %s, want %s", l.IdempotencyKey, before.IdempotencyKey)
			}
		}
		if strings.Join(claimed, ",") != "w-1,q-1" && strings.Join(claimed, ",") != "q-1,w-1" {
			t.Errorf("claimed %v, want w-1 and q-1", claimed)
		}
	})
	t.Run("All", func(t *testing.T) {
		h := newOpsHarness(t, backend)
		h.seed(t,
			leadSpec{ext: "w-1", state: crm.StateRetryWait},
			leadSpec{ext: "w-2", state: crm.StateRetryWait},
			leadSpec{ext: "f-1", state: crm.StateFailed, reason: "HTTP 401"},
		)
		code, out, errOut := h.cli(t, "", "retry-now", "--all")
		if code != 0 || !strings.HasPrefix(out, "made 2 retry-waiting lead(s) due now") || errOut != "" {
			t.Fatalf("retry-now --all: exit %d\n%s%s", code, out, errOut)
		}
		for _, ext := range []string{"w-1", "w-2"} {
			if l := h.lead(t, ext); l.State != crm.StateRetryWait || l.NextAttemptAt.After(time.Now()) {
				t.Errorf("%s after --all: %s due %s", ext, l.State, l.NextAttemptAt)
			}
		}
		if l := h.lead(t, "f-1"); l.State != crm.StateFailed {
			t.Errorf("f-1 after --all: %s", l.State)
		}
	})
}

func TestHoldReleaseCancelCommands(t *testing.T) { testHoldReleaseCancel(t, sqliteOps) }

func testHoldReleaseCancel(t *testing.T, backend opsBackend) {
	h := newOpsHarness(t, backend)
	h.seed(t,
		leadSpec{ext: "q-1"},
		leadSpec{ext: "q-2"},
		leadSpec{ext: "w-1", state: crm.StateRetryWait},
		leadSpec{ext: "a-1", state: crm.StateAccepted, crmID: "crm-a1"},
	)
	keys := map[string]string{}
	for _, ext := range []string{"q-1", "q-2", "w-1"} {
		keys[ext] = h.lead(t, ext).IdempotencyKey
	}

	code, out, errOut := h.cli(t, "", "hold", "q-1", "w-1")
	if code != 0 || out != "q-1: queued → held\nw-1: retry_wait → held\n" || errOut != "" {
		t.Fatalf("hold: exit %d\n%s%s", code, out, errOut)
	}
	for _, ext := range []string{"q-1", "w-1"} {
		if l := h.lead(t, ext); l.State != crm.StateHeld || l.Hold != crm.HoldOperator || l.IdempotencyKey != keys[ext] {
			t.Errorf("%s after hold: %s hold %q key %s", ext, l.State, l.Hold, l.IdempotencyKey)
		}
	}
	// A held lead is not sent.
	got, err := h.db.Claim(context.Background(), "sender", time.Now().Add(2*time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ExternalID != "q-2" {
		t.Errorf("claimed %v with q-1 and w-1 held, want only q-2", got)
	}
	if err := h.db.Release(context.Background(), "sender", []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}

	code, out, errOut = h.cli(t, "", "hold", "a-1", "q-1")
	if code != 1 || out != "" {
		t.Fatalf("hold of an accepted and a held lead: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "stderr", errOut,
		"leadwatch hold: a-1: accepted, and hold applies only to queued or retry_wait leads",
		"leadwatch hold: q-1: held, and hold applies only to queued or retry_wait leads",
		"leadwatch: 2 of 2 lead(s) not held")

	// Flags after the ids, and --db instead of the environment.
	code, out, errOut = runCLI(t, nil, "", "release", "q-1", "--db", h.env["LEADWATCH_DB"])
	if code != 0 || out != "q-1: held → queued\n" {
		t.Fatalf("release: exit %d\n%s%s", code, out, errOut)
	}
	if l := h.lead(t, "q-1"); l.State != crm.StateQueued || l.Hold != "" || l.NextAttemptAt.After(time.Now()) {
		t.Errorf("q-1 after release: %s hold %q due %s", l.State, l.Hold, l.NextAttemptAt)
	}

	code, out, errOut = h.cli(t, "", "cancel", "q-2", "w-1")
	if code != 0 || out != "q-2: queued → failed\nw-1: held → failed\n" {
		t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
	}
	for _, ext := range []string{"q-2", "w-1"} {
		if l := h.lead(t, ext); l.State != crm.StateFailed || l.Reason != crm.CanceledReason {
			t.Errorf("%s after cancel: %s %q", ext, l.State, l.Reason)
		}
	}
	code, _, errOut = h.cli(t, "", "release", "q-2")
	if code != 1 || !strings.Contains(errOut, "q-2: failed, and release applies only to held leads") {
		t.Errorf("release of a canceled lead: exit %d %s", code, errOut)
	}
	// A canceled lead comes back with its key: it is failed, unchanged.
	code, out, errOut = h.cli(t, "", "resubmit", "q-2")
	if code != 0 || !strings.Contains(out, "with the same idempotency key "+keys["q-2"]) {
		t.Errorf("resubmit of a canceled lead: exit %d\n%s%s", code, out, errOut)
	}
}

func TestPauseResumeCommands(t *testing.T) { testPauseResume(t, sqliteOps) }

func testPauseResume(t *testing.T, backend opsBackend) {
	h := newOpsHarness(t, backend)
	h.seed(t,
		leadSpec{ext: "fb-1", source: "fb"},
		leadSpec{ext: "fb-2", source: "fb", state: crm.StateRetryWait},
		leadSpec{ext: "fb-3", source: "fb", state: crm.StateAccepted, crmID: "crm-fb3"},
		leadSpec{ext: "s7-1", source: "tt", subID: "s-7"},
		leadSpec{ext: "o-1", source: "google"},
	)
	code, out, errOut := h.cli(t, "", "pause")
	if code != 0 || out != "no pauses in force\n" {
		t.Fatalf("pause alone: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = h.cli(t, "", "pause", "--source", "fb")
	if code != 0 || !strings.HasPrefix(out, `paused source "fb": 2 queued or retry-waiting lead(s) held`) {
		t.Fatalf("pause --source: exit %d\n%s%s", code, out, errOut)
	}
	for _, ext := range []string{"fb-1", "fb-2"} {
		if l := h.lead(t, ext); l.State != crm.StateHeld || l.Hold != crm.HoldSource {
			t.Errorf("%s after pause: %s hold %q", ext, l.State, l.Hold)
		}
	}
	if l := h.lead(t, "fb-3"); l.State != crm.StateAccepted {
		t.Errorf("fb-3, accepted, after pause: %s", l.State)
	}
	if l := h.lead(t, "o-1"); l.State != crm.StateQueued {
		t.Errorf("o-1, another source, after pause: %s", l.State)
	}
	code, out, errOut = h.cli(t, "", "pause", "--source", "fb")
	if code != 0 || !strings.HasPrefix(out, `source "fb" was already paused (since `) {
		t.Errorf("pausing twice: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = h.cli(t, "", "pause", "--sub-id", "s-7")
	if code != 0 || !strings.HasPrefix(out, `paused sub_id "s-7": 1 queued`) {
		t.Fatalf("pause --sub-id: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = h.cli(t, "", "pause")
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(rows) != 3 || !strings.HasPrefix(rows[0], "FIELD") ||
		!strings.HasPrefix(rows[1], "source  fb ") || !strings.HasPrefix(rows[2], "sub_id  s-7") {
		t.Errorf("pause lists, oldest first: exit %d\n%s%s", code, out, errOut)
	}
	// Released by hand, held again by the pause.
	code, out, errOut = h.cli(t, "", "release", "fb-1")
	if code != 0 || out != `fb-1: held → held (still held by the pause of its source "fb")`+"\n" {
		t.Errorf("release of a paused lead: exit %d\n%s%s", code, out, errOut)
	}
	// New leads of a paused source are held as they arrive.
	code, _, errOut = h.cli(t, `{"external_id":"fb-4","phone":"+380501234567","source":"fb"}`+"\n", "submit", "-")
	if code != 0 {
		t.Fatalf("submit: exit %d %s", code, errOut)
	}
	if l := h.lead(t, "fb-4"); l.State != crm.StateHeld || l.Hold != crm.HoldSource {
		t.Errorf("fb-4, enqueued while fb is paused: %s hold %q", l.State, l.Hold)
	}

	code, out, errOut = h.cli(t, "", "resume", "--source", "fb")
	if code != 0 || !strings.HasPrefix(out, `resumed source "fb": 3 held lead(s) back in the queue`) {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
	}
	for _, ext := range []string{"fb-1", "fb-2", "fb-4"} {
		if l := h.lead(t, ext); l.State != crm.StateQueued || l.Hold != "" {
			t.Errorf("%s after resume: %s hold %q", ext, l.State, l.Hold)
		}
	}
	code, out, errOut = h.cli(t, "", "resume", "--source", "fbb")
	if code != 1 || out != "" || errOut != "leadwatch: source \"fbb\" is not paused ('leadwatch pause' lists the pauses)\n" {
		t.Errorf("resume of a source not paused: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = h.cli(t, "", "resume", "--sub-id", "s-7")
	if code != 0 || !strings.HasPrefix(out, `resumed sub_id "s-7": 1 held lead(s)`) {
		t.Errorf("resume --sub-id: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := h.cli(t, "", "pause"); code != 0 || out != "no pauses in force\n" {
		t.Errorf("pauses after both resumed: exit %d %q", code, out)
	}
}

func TestResubmitBulk(t *testing.T) { testResubmitBulk(t, sqliteOps) }

func testResubmitBulk(t *testing.T, backend opsBackend) {
	h := newOpsHarness(t, backend)
	h.seed(t,
		leadSpec{ext: "f-1", state: crm.StateFailed, reason: "HTTP 401: invalid API key"},
		leadSpec{ext: "f-2", state: crm.StateFailed, reason: "http 401: Invalid API key"},
		leadSpec{ext: "f-3", state: crm.StateFailed, reason: "gave up after 5 attempts: HTTP 503"},
		leadSpec{ext: "r-1", state: crm.StateRejected, reason: "country blocked", crmID: "crm-r1"},
		leadSpec{ext: "r-2", state: crm.StateRejected, reason: "duplicate phone in 24h", crmID: "crm-r2"},
		leadSpec{ext: "a-1", state: crm.StateAccepted, crmID: "crm-a1"},
	)
	keys := map[string]string{}
	for _, ext := range []string{"f-1", "f-2", "f-3", "r-1", "r-2"} {
		keys[ext] = h.lead(t, ext).IdempotencyKey
	}

	// stdin is not a terminal: no question, straight to work.
	code, out, errOut := h.cli(t, "y\n", "resubmit", "--state", "failed", "--reason", "HTTP 401")
	if code != 0 || errOut != "" {
		t.Fatalf("resubmit --state failed --reason: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "stdout", out,
		`2 failed lead(s) with "HTTP 401" in the reason; each keeps its idempotency key (unchanged failed leads: the CRM replays a lead it already took instead of creating a second)`,
		"re-queued 2 lead(s) (2 with the same key, 0 with a new key), 0 not; a running leadwatch (dashboard or serve) sends them")
	for _, ext := range []string{"f-1", "f-2"} {
		if l := h.lead(t, ext); l.State != crm.StateQueued || l.IdempotencyKey != keys[ext] {
			t.Errorf("%s after bulk resubmit: %s key %s, want queued with %s", ext, l.State, l.IdempotencyKey, keys[ext])
		}
	}
	if l := h.lead(t, "f-3"); l.State != crm.StateFailed {
		t.Errorf("f-3, another reason, after bulk resubmit: %s", l.State)
	}

	code, out, errOut = h.cli(t, "", "resubmit", "--state", "rejected")
	if code != 0 || errOut != "" {
		t.Fatalf("resubmit --state rejected: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "stdout", out,
		"2 rejected lead(s); each gets a new idempotency key (a final outcome starts over at the CRM)",
		"re-queued 2 lead(s) (0 with the same key, 2 with a new key), 0 not; a running leadwatch (dashboard or serve) sends them")
	for _, ext := range []string{"r-1", "r-2"} {
		if l := h.lead(t, ext); l.State != crm.StateQueued || l.IdempotencyKey == keys[ext] || l.IdempotencyKey == "" {
			t.Errorf("%s after bulk resubmit: %s key %s, want queued with a new key (not %s)", ext, l.State, l.IdempotencyKey, keys[ext])
		}
	}
	if l := h.lead(t, "a-1"); l.State != crm.StateAccepted {
		t.Errorf("a-1 after bulk resubmits: %s", l.State)
	}

	code, out, errOut = h.cli(t, "", "resubmit", "--state", "validation_error", "--reason", "phone")
	if code != 0 || out != `0 validation_error lead(s) with "phone" in the reason: nothing to resubmit`+"\n" {
		t.Errorf("resubmit of nothing: exit %d\n%s%s", code, out, errOut)
	}
}

// TestResubmitBulkPages: more leads than one page are all resubmitted,
// once each, and no more than were counted.
func TestResubmitBulkPages(t *testing.T) {
	h := newOpsHarness(t, sqliteOps)
	var specs []leadSpec
	n := 2*bulkPage + 7
	for i := range n {
		specs = append(specs, leadSpec{ext: fmt.Sprintf("p-%04d", i), state: crm.StateDuplicate, crmID: fmt.Sprintf("crm-%d", i)})
	}
	h.seed(t, specs...)
	code, out, errOut := h.cli(t, "", "resubmit", "--state", "duplicate")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("re-queued %d lead(s) (0 with the same key, %d with a new key), 0 not", n, n)) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	c, err := h.db.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.States[crm.StateQueued] != n || c.States[crm.StateDuplicate] != 0 {
		t.Errorf("after: %v", c.States)
	}
}

// TestStatusExplainsUnknown: a lead the CRM never created is still "not
// found" (exit 1), with what the store knows of it on stderr first; a
// lead the store does not know either gets the one line alone.
func TestStatusExplainsUnknown(t *testing.T) { testStatusExplainsUnknown(t, sqliteOps) }

func testStatusExplainsUnknown(t *testing.T, backend opsBackend) {
	h := newOpsHarness(t, backend)
	envVars, _ := cliEnv(t, sandbox.Config{})
	envVars["LEADWATCH_DB"] = h.env["LEADWATCH_DB"]
	h.env = envVars
	h.seed(t,
		leadSpec{ext: "q-1"},
		leadSpec{ext: "f-1", state: crm.StateFailed, reason: "HTTP 401:\ninvalid API key"},
	)
	code, out, errOut := h.cli(t, "", "status", "f-1")
	if code != 1 || out != "" {
		t.Fatalf("status f-1: exit %d\n%s%s", code, out, errOut)
	}
	want := "leadwatch status: f-1 is not at the CRM; leadwatch's store has it: state failed (HTTP 401: invalid API key), 1 attempt(s), no CRM id\n" +
		"leadwatch: status of \"f-1\": not found\n"
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	code, _, errOut = h.cli(t, "", "status", "q-1")
	if code != 1 || !strings.Contains(errOut, "store has it: state queued, 0 attempt(s), no CRM id\n") {
		t.Errorf("status q-1: exit %d\n%s", code, errOut)
	}
	code, _, errOut = h.cli(t, "", "status", "never-seen")
	if code != 1 || errOut != "leadwatch: status of \"never-seen\": not found\n" {
		t.Errorf("status of a lead nobody knows: exit %d\n%s", code, errOut)
	}
	// No store at all: the same one line, and none is created.
	missing := filepath.Join(t.TempDir(), "none.db")
	envVars["LEADWATCH_DB"] = missing
	code, _, errOut = runCLI(t, envVars, "", "status", "f-1")
	if code != 1 || errOut != "leadwatch: status of \"f-1\": not found\n" {
		t.Errorf("status without a store: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("status created the store")
	}
}

// TestCompletionListsNewCommands: the completion scripts ask leadwatch
// for its commands, and bash, given the script, offers the new ones.
func TestCompletionListsNewCommands(t *testing.T) {
	newCmds := []string{"retry-now", "hold", "release", "cancel", "pause", "resume", "report"}
	code, out, _ := runCLI(t, nil, "", "__complete", "")
	if code != 0 {
		t.Fatalf("__complete: exit %d", code)
	}
	for _, c := range newCmds {
		if !strings.Contains(out, "\n"+c+"\t") {
			t.Errorf("__complete lacks %s:\n%s", c, out)
		}
	}
	code, out, _ = runCLI(t, nil, "", "__complete", "report", "--by", "")
	if code != 0 || !strings.Contains(out, "sub_id\n") || !strings.Contains(out, "country\n") {
		t.Errorf("__complete report --by: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "", "__complete", "resubmit", "--state", "")
	if code != 0 || !strings.Contains(out, "failed\n") || strings.Contains(out, "queued\n") {
		t.Errorf("__complete resubmit --state: exit %d\n%s", code, out)
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the completion script in")
	}
	bin := leadwatchBinary(t)
	script := filepath.Join(t.TempDir(), "leadwatch.bash")
	code, out, _ = runCLI(t, nil, "", "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	// What bash does on "leadwatch <TAB>": the script's function with the
	// words so far, then the candidates it left in COMPREPLY. The script
	// reads the words with the bash-completion package's
	// _get_comp_words_by_ref; a minimal one stands in for it.
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c",
		`_get_comp_words_by_ref() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }; `+
			`source "$1"; COMP_WORDS=(leadwatch ""); COMP_CWORD=1; COMP_LINE="leadwatch "; COMP_POINT=${#COMP_LINE}; `+
			`__start_leadwatch; printf '%s\n' "${COMPREPLY[@]}"`, "bash", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion: %v\n%s", err, got)
	}
	words := map[string]bool{}
	for _, w := range strings.Fields(string(got)) {
		words[w] = true
	}
	for _, c := range append(newCmds, "submit", "resubmit") {
		if !words[c] {
			t.Errorf("bash completes %q without %s", got, c)
		}
	}
}

// TestResubmitBulkPastScanWindow: matches far apart, with over 100,000
// leads between them (past the window a store examines for one filtered
// page), are all resubmitted.
func TestResubmitBulkPastScanWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("enqueues 110,000 leads")
	}
	h := newOpsHarness(t, sqliteOps)
	ctx := context.Background()
	enqueue := func(exts ...string) {
		t.Helper()
		var payloads [][]byte
		for _, e := range exts {
			payloads = append(payloads, leadSpec{ext: e}.payload())
		}
		if _, errs, err := h.db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{}); err != nil || errs[0] != nil {
			t.Fatalf("enqueue: %v %v", err, errs[0])
		}
	}
	cancel := func(exts ...string) {
		t.Helper()
		enqueue(exts...)
		res, err := h.db.Act(ctx, crm.ActCancel, exts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("cancel %s: %v", r.ExternalID, r.Err)
			}
		}
	}
	cancel("c-1", "c-2")
	var between []string
	for i := range 110_000 {
		between = append(between, fmt.Sprintf("b-%06d", i))
	}
	enqueue(between...)
	cancel("c-3", "c-4")
	code, out, errOut := h.cli(t, "", "resubmit", "--state", "failed", "--reason", "CANCELED BY")
	if code != 0 || !strings.Contains(out, "re-queued 4 lead(s) (4 with the same key, 0 with a new key), 0 not") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, ext := range []string{"c-1", "c-2", "c-3", "c-4"} {
		if l := h.lead(t, ext); l.State != crm.StateQueued {
			t.Errorf("%s: %s", ext, l.State)
		}
	}
}

// TestResubmitBulkAsksAtATerminal: with a terminal on stdin (script(1)
// gives the built binary one, and the test plays the person at it), bulk
// resubmit asks first, and anything but yes leaves every lead as it was.
func TestResubmitBulkAsksAtATerminal(t *testing.T) {
	scriptCmd, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run leadwatch on a terminal")
	}
	h := newOpsHarness(t, sqliteOps)
	h.seed(t,
		leadSpec{ext: "f-1", state: crm.StateFailed, reason: "HTTP 401"},
		leadSpec{ext: "f-2", state: crm.StateFailed, reason: "HTTP 401"},
	)
	bin := leadwatchBinary(t)
	onTerminal := func(answer string) (int, string) {
		t.Helper()
		line := fmt.Sprintf("%s resubmit --state failed --db %s", bin, h.env["LEADWATCH_DB"])
		cmd := exec.Command(scriptCmd, "--quiet", "--return", "--command", line, "/dev/null")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		outPipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		chunks := make(chan string)
		go func() {
			defer close(chunks)
			buf := make([]byte, 4096)
			for {
				n, err := outPipe.Read(buf)
				if n > 0 {
					chunks <- string(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		// Answer as a terminal would: the colour query the TUI libraries
		// send at start (a dark background, the cursor at the top), then
		// the question, once it is asked.
		var screen strings.Builder
		queried, asked := false, false
		deadline := time.After(60 * time.Second)
	read:
		for {
			select {
			case c, ok := <-chunks:
				if !ok {
					break read
				}
				screen.WriteString(c)
				if !queried && strings.Contains(screen.String(), "\x1b[6n") {
					queried = true
					io.WriteString(in, "\x1b]11;rgb:0000/0000/0000\x1b\\\x1b[1;1R")
				}
				if !asked && strings.Contains(screen.String(), "Resubmit 2 leads? [y/N] ") {
					asked = true
					io.WriteString(in, answer)
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("no end in 60 s; the terminal shows:\n%s", screen.String())
			}
		}
		in.Close()
		err = cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("script: %v\n%s", err, screen.String())
		}
		return cmd.ProcessState.ExitCode(), screen.String()
	}
	code, out := onTerminal("n\r")
	if code != 1 || !strings.Contains(out, "Resubmit 2 leads? [y/N]") || !strings.Contains(out, "not confirmed: nothing resubmitted") {
		t.Fatalf("answering n: exit %d\n%s", code, out)
	}
	for _, ext := range []string{"f-1", "f-2"} {
		if l := h.lead(t, ext); l.State != crm.StateFailed {
			t.Errorf("%s after answering n: %s", ext, l.State)
		}
	}
	code, out = onTerminal("y\r")
	if code != 0 || !strings.Contains(out, "re-queued 2 lead(s) (2 with the same key") {
		t.Fatalf("answering y: exit %d\n%s", code, out)
	}
	for _, ext := range []string{"f-1", "f-2"} {
		if l := h.lead(t, ext); l.State != crm.StateQueued {
			t.Errorf("%s after answering y: %s", ext, l.State)
		}
	}
}

// TestOpsHelp: each new command's help goes to stdout and says what it
// needs; pause's says that alone it lists the pauses.
func TestOpsHelp(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		want []string
	}{
		{"retry-now", []string{"leadwatch retry-now [EXTERNAL_ID…|--all]", "--all ", "keeps its idempotency key", "Environment:\n  LEADWATCH_DB "}},
		{"hold", []string{"leadwatch hold EXTERNAL_ID…", "leadwatch release"}},
		{"release", []string{"leadwatch release EXTERNAL_ID…", "still\npaused"}},
		{"cancel", []string{"leadwatch cancel EXTERNAL_ID…", crm.CanceledReason}},
		{"pause", []string{"leadwatch pause [--source S | --sub-id S]", "Without a flag,\npause lists the pauses in force", "--sub-id S "}},
		{"resume", []string{"leadwatch resume --source S | --sub-id S", "--source S "}},
		{"resubmit", []string{"--state S", "--reason TEXT", "asks before it starts when standard input is a terminal"}},
		{"report", []string{"--by FIELD", "--since D", "--format FORMAT", "18-bucket histogram", "one array of objects"}},
	} {
		t.Run(tt.cmd, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "", tt.cmd, "--help")
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range append(tt.want, "--db FILE", "--config FILE") {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "CARTELCRM_API_KEY") {
				t.Errorf("help lists the CRM's settings, which the command does not read:\n%s", out)
			}
		})
	}
}
