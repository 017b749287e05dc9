package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// sourcePayload is a lead's payload with its traffic source fields.
func sourcePayload(ext, source, funnel, subID, country string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":%q,"source":%q,"funnel":%q,"sub_id":%q}`,
		ext, country, source, funnel, subID))
}

// reportFromRows is the Sources report computed the slow way, from every
// lead's columns with crm.LatencyBucket, to compare source_stats with.
func reportFromRows(t *testing.T, db *DB, by string, since time.Time) []crm.ReportRow {
	t.Helper()
	rows, err := db.reader.Query(`SELECT ` + by + `, state, created_at, accepted_at, first_status_at, ftd_at FROM leads`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	groups := map[string]*crm.ReportRow{}
	for rows.Next() {
		var (
			value, state           string
			created                int64
			accepted, first, ftdAt sql.NullInt64
		)
		if err := rows.Scan(&value, &state, &created, &accepted, &first, &ftdAt); err != nil {
			t.Fatal(err)
		}
		if !since.IsZero() && created < ms(since.Truncate(time.Minute)) {
			continue
		}
		r := groups[value]
		if r == nil {
			r = &crm.ReportRow{Value: value}
			groups[value] = r
		}
		switch crm.State(state) {
		case crm.StateAccepted:
			r.Accepted++
		case crm.StateDuplicate:
			r.Duplicate++
		case crm.StateRejected:
			r.Rejected++
		case crm.StateValidationError:
			r.ValidationError++
		case crm.StateFailed:
			r.Failed++
		}
		if first.Valid {
			r.WithStatus++
			b := 0
			if accepted.Valid {
				b = crm.LatencyBucket(time.Duration(first.Int64-accepted.Int64) * time.Millisecond)
			}
			r.FirstStatus[b]++
		}
		if ftdAt.Valid {
			r.FTD++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []crm.ReportRow
	for _, r := range groups {
		r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
		if r.Sent+r.WithStatus+r.FTD > 0 {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Sent != out[j].Sent {
			return out[i].Sent > out[j].Sent
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// assertReport checks Report against the rows for every field, over the
// whole store and since each of sinces.
func assertReport(t *testing.T, db *DB, step string, sinces ...time.Time) {
	t.Helper()
	for _, by := range crm.GroupFields {
		for _, since := range append([]time.Time{{}}, sinces...) {
			got, err := db.Report(context.Background(), crm.ReportQuery{By: by, Since: since})
			if err != nil {
				t.Fatal(err)
			}
			want := reportFromRows(t, db, by, since)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after %s, report by %s since %v:\n got  %v\n want %v", step, by, since, got, want)
			}
		}
	}
}

// TestReportFollowsEveryChange drives leads through every write that
// moves a lead's numbers (records, callbacks linked at once and late,
// resubmits with and without an edit, operator actions, pauses, Forget,
// Prune, Fill) and checks the triggers' aggregates against the rows after
// each.
func TestReportFollowsEveryChange(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	start := clk.Now()
	for i := range 12 {
		src := []string{"fb", "gg", "junk"}[i%3]
		if _, err := db.Enqueue(ctx, sourcePayload(fmt.Sprintf("R-%d", i), src, "quiz", fmt.Sprintf("s%d", i%4), "DE"), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(20 * time.Second) // leads in several minutes
	}
	assertReport(t, db, "enqueue", start.Add(2*time.Minute))

	// A callback naming a lead by external_id before it is accepted: a
	// status before acceptance (bucket 0).
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{callback("crm-R-0", "R-0", "lead.created", "new", 1)}); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "early status")
	outcomes := []crm.State{crm.StateAccepted, crm.StateAccepted, crm.StateRejected, crm.StateValidationError,
		crm.StateDuplicate, crm.StateFailed, crm.StateAccepted, crm.StateAccepted}
	for i, st := range outcomes {
		setState(t, db, clk, fmt.Sprintf("R-%d", i), st, fmt.Sprintf("crm-R-%d", i))
		clk.Advance(time.Second)
	}
	assertReport(t, db, "records", start.Add(2*time.Minute))

	// Statuses linked at once: the first sets first_status_at, an FTD (any
	// case) sets ftd_at, later ones change neither.
	clk.Advance(90 * time.Second)
	evs := []crm.CallbackEvent{
		callback("crm-R-1", "", "lead.contacted", "contacted", 10),
		callback("crm-R-1", "", "lead.ftd", "FTD", 11),
		callback("crm-R-1", "", "lead.ftd2", "ftd", 12),
		callback("crm-R-6", "R-6", "lead.contacted", "contacted", 13),
		callback("crm-R-2", "", "lead.note", "", 14), // no status: not a status callback
		callback("crm-R-4", "", "lead.contacted", "contacted", 15),
	}
	for i := range evs {
		evs[i].ReceivedAt = clk.Now().Add(time.Duration(i) * time.Second)
	}
	if _, err := db.SaveCallbacks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "callbacks", start.Add(time.Minute))
	if n := queryInt(t, db, `SELECT COUNT(*) FROM leads WHERE ftd_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d leads with ftd_at, want 1", n)
	}

	// Late linking: callbacks naming a CRM id no lead has yet, then the
	// Record that learns it.
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{
		callback("crm-late", "", "lead.contacted", "contacted", 20),
		callback("crm-late", "", "lead.ftd", "ftd", 21),
	}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	setState(t, db, clk, "R-8", crm.StateAccepted, "crm-late")
	l, _ := db.Lead(ctx, "R-8")
	if l.FirstStatusAt.IsZero() || l.AcceptedAt.IsZero() {
		t.Fatalf("late linked lead: first status %v accepted %v", l.FirstStatusAt, l.AcceptedAt)
	}
	assertReport(t, db, "late link")

	// Resubmits: unchanged (the lead starts over), and edited to another
	// source.
	if l, _ := db.Lead(ctx, "R-4"); l.FirstStatusAt.IsZero() {
		t.Fatal("R-4 has no first status before its resubmit")
	}
	if _, err := db.Resubmit(ctx, "R-4", nil); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lead(ctx, "R-4"); !l.AcceptedAt.IsZero() || !l.FirstStatusAt.IsZero() {
		t.Fatalf("resubmitted lead keeps its times: %+v", l)
	}
	if _, err := db.Resubmit(ctx, "R-2", sourcePayload("R-2", "moved", "webinar", "s9", "AT")); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lead(ctx, "R-2"); l.Source != "moved" || l.Funnel != "webinar" || l.SubID != "s9" || l.Country != "AT" {
		t.Fatalf("edited resubmit: fields %q %q %q %q", l.Source, l.Funnel, l.SubID, l.Country)
	}
	assertReport(t, db, "resubmit")
	setState(t, db, clk, "R-2", crm.StateAccepted, "crm-R-2b")
	assertReport(t, db, "resent")

	// Operator actions and pauses on the leads not sent yet.
	if _, err := db.Act(ctx, crm.ActCancel, []string{"R-9", "R-10"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "junk"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Act(ctx, crm.ActCancel, []string{"R-11"}); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "cancel")

	if _, err := db.Forget(ctx, "R-6"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Forget(ctx, "R-4"); err != nil { // queued again: becomes failed
		t.Fatal(err)
	}
	assertReport(t, db, "forget")
	if _, err := db.Prune(ctx, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "prune")

	if err := db.Fill(ctx, 2000, 1500); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "fill", clk.Now().Add(-time.Hour), clk.Now().Add(-5*time.Minute))
	assertCounts(t, db) // not countStar: Prune deleted attempts the rollup counted
}

// TestFillReportAndCallbacks checks what Fill makes for the Sources view:
// the sources and their mix, and an ftd callback linked to every lead
// whose ftd_at is set (the status the column says it reached).
func TestFillReportAndCallbacks(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	if err := db.Fill(ctx, 20000, 10000); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "fill", clk.Now().Add(-time.Hour))
	rows, err := db.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(fillSources) {
		t.Fatalf("%d sources, want %d", len(rows), len(fillSources))
	}
	var total crm.ReportRow
	for _, r := range rows {
		total.Add(r)
		if r.Value == "junk" && r.AcceptedRate() > 0.2 {
			t.Errorf("junk accepts %.0f%%", 100*r.AcceptedRate())
		}
	}
	if rate := total.AcceptedRate(); rate < 0.65 || rate > 0.78 {
		t.Errorf("accepted rate %.2f, want about 0.7", rate)
	}
	if r := crm.Rate(total.WithStatus, total.Accepted); r < 0.5 || r > 0.7 {
		t.Errorf("%.2f of accepted leads have a status, want about 0.6", r)
	}
	if r := total.FTDRate(); r < 0.05 || r > 0.11 {
		t.Errorf("ftd rate %.3f, want about 0.08", r)
	}
	if _, ok := total.MedianFirstStatus(); !ok {
		t.Error("no median first status")
	}
	for _, by := range []string{crm.GroupFunnel, crm.GroupSubID, crm.GroupCountry} {
		rows, _ := db.Report(ctx, crm.ReportQuery{By: by})
		if want := map[string]int{crm.GroupFunnel: 4, crm.GroupSubID: 40, crm.GroupCountry: 10}[by]; len(rows) != want {
			t.Errorf("%d %s values, want %d", len(rows), by, want)
		}
	}
	ftdLeads := queryInt(t, db, `SELECT COUNT(*) FROM leads WHERE ftd_at IS NOT NULL`)
	linked := queryInt(t, db, `SELECT COUNT(DISTINCT c.lead_id) FROM callbacks c JOIN leads l ON l.id = c.lead_id
		WHERE lower(c.status) = 'ftd' AND c.received_at = l.ftd_at`)
	stray := queryInt(t, db, `SELECT COUNT(*) FROM callbacks c JOIN leads l ON l.id = c.lead_id
		WHERE lower(c.status) = 'ftd' AND l.ftd_at IS NULL`)
	if ftdLeads == 0 || linked != ftdLeads || stray != 0 {
		t.Errorf("%d ftd leads, %d with their ftd callback, %d ftd callbacks of other leads", ftdLeads, linked, stray)
	}
	if c, _ := db.Counts(ctx); c.CallbacksVerified != 10000 {
		t.Errorf("%d callbacks, want 10000", c.CallbacksVerified)
	}
	// A payload names what the columns hold.
	l, err := db.Lead(ctx, fillExternalID(7))
	if err != nil {
		t.Fatal(err)
	}
	f, err := crm.CheckLead(l.Payload, crm.LeadCheck{})
	if err != nil || f.Source != l.Source || f.Funnel != l.Funnel || f.SubID != l.SubID || f.Country != l.Country {
		t.Errorf("payload fields %+v (%v), columns %q %q %q %q", f, err, l.Source, l.Funnel, l.SubID, l.Country)
	}
}

// applyMigrations builds a database at p by running the embedded
// migrations up to version upTo by hand, as an older build left it.
func applyMigrations(t *testing.T, p string, upTo int) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", p+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:upTo] {
		body, err := fs.ReadFile(migrationFS, path.Join("migrations", fmt.Sprintf("%03d_%s.sql", m.Version, m.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%d: %v", m.Version, err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

// schemaObjects lists the indexes and triggers on table, by name.
func schemaObjects(t *testing.T, q interface {
	Query(string, ...any) (*sql.Rows, error)
}, table string) []string {
	t.Helper()
	rows, err := q.Query(`SELECT type || ' ' || name FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// TestMigrateOpsFromV4 migrates a store written by the version 4 schema,
// with traffic in it, and checks that every row, index and trigger is
// kept, the source fields are read from the payloads as crm.CheckLead
// reads them, and the counters, throughput and report agree with the
// rows.
func TestMigrateOpsFromV4(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "v4.db")
	raw := applyMigrations(t, p, 4)
	before := schemaObjects(t, raw, "leads")
	long := strings.Repeat("é", 150) // 300 bytes: cut to 200, at a rune boundary
	payloads := []string{
		`{"external_id":"M-1","phone":"+4915112345678","country":"DE","source":"fb","funnel":"quiz","sub_id":"s1"}`,
		`{"external_id":"M-2","phone":"+4915112345678","country":"AT","source":12,"funnel":1.50,"sub_id":-3e2}`,
		`{"external_id":"M-3","phone":"+4915112345678","source":true,"funnel":null,"sub_id":{"a":1}}`,
		`{"external_id":"M-4","phone":"+4915112345678","source":"` + long + `","sub_id":"a\u00e9\"b"}`,
		`{"external_id":"M-5","phone":"+4915112345678"}`,
		`{}`, // a forgotten lead
	}
	states := []string{"accepted", "accepted", "rejected", "queued", "failed", "accepted"}
	for i, pl := range payloads {
		if _, err := raw.Exec(`INSERT INTO leads (external_id, payload, idempotency_key, state, crm_id, created_at, updated_at, next_attempt_at)
			VALUES (?, ?, 'k', ?, ?, ?, ?, CASE WHEN ? = 'queued' THEN 1 END)`,
			fmt.Sprintf("M-%d", i+1), []byte(pl), states[i], fmt.Sprintf("crm-%d", i+1),
			1_700_000_000_000+int64(i)*90_000, 1_700_000_100_000+int64(i)*1000, states[i]); err != nil {
			t.Fatal(err)
		}
		if states[i] != "queued" {
			status := map[string]int{"accepted": 200, "rejected": 200, "failed": 0}[states[i]]
			if _, err := raw.Exec(`INSERT INTO attempts (lead_id, kind, number, idempotency_key, started_at, duration_us, http_status, outcome)
				VALUES (?, 'send', 1, 'k', ?, 250000, ?, ?)`, i+1, 1_700_000_050_000+int64(i)*1000, status, states[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range []struct {
		lead     any
		status   string
		received int64
	}{
		{1, "contacted", 1_700_000_120_000}, {1, "FTD", 1_700_000_200_000}, {2, "", 1_700_000_130_000},
		{2, "contacted", 1_700_000_140_000}, {nil, "ftd", 1_700_000_150_000},
	} {
		if _, err := raw.Exec(`INSERT INTO callbacks (dedup_key, internal_id, event, status, timestamp, received_at, raw_body, lead_id)
			VALUES (?, ?, 'e', ?, ?, ?, x'', ?)`, fmt.Sprint(i), fmt.Sprintf("c-%d", i), c.status, fmt.Sprint(i), c.received, c.lead); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO refusals (at, code) VALUES (1700000060000, 'bad_signature'), (1700000061000, 'bad_signature')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db := MustOpenPath(t, p, store.Options{})
	if v := queryInt(t, db, `SELECT MAX(version) FROM schema_migrations`); int(v) != SchemaVersion() {
		t.Fatalf("version %d, want %d", v, SchemaVersion())
	}
	after := schemaObjects(t, db.reader, "leads")
	for _, o := range before {
		if !slices.Contains(after, o) {
			t.Errorf("%s lost in the migration (now %v)", o, after)
		}
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM attempts`); n != 5 {
		t.Errorf("%d attempts after the migration, want 5 (a cascade?)", n)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM callbacks WHERE lead_id IS NOT NULL`); n != 4 {
		t.Errorf("%d linked callbacks after the migration, want 4", n)
	}
	if n := queryInt(t, db, `PRAGMA foreign_keys`); n != 1 {
		t.Errorf("foreign_keys %d after the migration, want 1", n)
	}
	for i, pl := range payloads {
		l, err := db.Lead(ctx, fmt.Sprintf("M-%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := crm.CheckLead([]byte(pl), crm.LeadCheck{})
		want.Country = crm.CutGroupValue(want.Country)
		if l.Source != want.Source || l.Funnel != want.Funnel || l.SubID != want.SubID || l.Country != want.Country {
			t.Errorf("M-%d: columns %q %q %q %q, CheckLead %q %q %q %q", i+1,
				l.Source, l.Funnel, l.SubID, l.Country, want.Source, want.Funnel, want.SubID, want.Country)
		}
	}
	l1, _ := db.Lead(ctx, "M-1")
	if !l1.AcceptedAt.Equal(fromMS(1_700_000_050_250)) || !l1.FirstStatusAt.Equal(fromMS(1_700_000_120_000)) {
		t.Errorf("M-1 accepted %v first status %v", l1.AcceptedAt, l1.FirstStatusAt)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM leads WHERE ftd_at IS NOT NULL`); n != 1 {
		t.Errorf("%d leads with ftd_at, want 1 (M-1)", n)
	}
	// The counters, throughput and report agree with the rows.
	assertCounts(t, db)
	countStar(t, db)
	assertReport(t, db, "migration", fromMS(1_700_000_090_000))
	for q, want := range map[string]int64{
		`SELECT SUM(answered) FROM throughput`:      4,
		`SELECT SUM(accepted) FROM throughput`:      3,
		`SELECT SUM(failed) FROM throughput`:        1,
		`SELECT SUM(refused) FROM throughput`:       2,
		`SELECT SUM(sent) FROM throughput_min`:      5,
		`SELECT SUM(callbacks) FROM throughput_min`: 5,
		`SELECT SUM(refused) FROM throughput_min`:   2,
	} {
		if got := queryInt(t, db, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	// The migrated table takes held leads and keeps counting them.
	if _, err := db.Act(ctx, crm.ActHold, []string{"M-4"}); err != nil {
		t.Fatal(err)
	}
	if c := assertCounts(t, db); c.States[crm.StateHeld] != 1 {
		t.Errorf("held %d, want 1", c.States[crm.StateHeld])
	}
}

// TestActGuard changes a lead between Act's read and its guarded write
// (a claim by another handle would): the action does not land on the new
// state, which it does not apply to.
func TestActGuard(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	l := mustEnqueue(t, db, "G-1")
	calls, herr := hookOnce(db, "act", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE leads SET state = 'in_flight', lease_owner = 'other', attempts = 1 WHERE id = ?`, l.ID)
		return err
	})
	res, err := db.Act(ctx, crm.ActHold, []string{"G-1"})
	if err != nil || *herr != nil {
		t.Fatal(err, *herr)
	}
	if calls.Load() != 1 || !errors.Is(res[0].Err, crm.ErrWrongState) || res[0].Before != crm.StateInFlight {
		t.Fatalf("hook ran %d times; result %+v, want wrong state in_flight", calls.Load(), res[0])
	}
	got, _ := db.Lead(ctx, "G-1")
	if got.State != crm.StateInFlight || got.LeaseOwner != "other" || got.Hold != "" {
		t.Fatalf("lead after the refused hold: %s owner %q hold %q", got.State, got.LeaseOwner, got.Hold)
	}
	assertCounts(t, db)
}

// TestPauseRecordRetry holds a lead whose attempt ends in a retry while
// its sub_id is paused, and holds a claimed lead released unsent.
func TestPauseRecordRetry(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	for _, ext := range []string{"P-1", "P-2"} {
		if _, err := db.Enqueue(ctx, sourcePayload(ext, "fb", "", "s7", ""), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Claim(ctx, "w", clk.Now(), time.Minute, 2)
	if err != nil || len(got) != 2 {
		t.Fatal(len(got), err)
	}
	if n, err := db.Pause(ctx, crm.Pause{Field: crm.GroupSubID, Value: "s7"}); err != nil || n != 0 {
		t.Fatalf("pause held %d, %v; want 0 (both in flight)", n, err)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: got[0].ID, Outcome: crm.StateRetryWait, HTTPStatus: 503},
		NextAttemptAt: clk.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Release(ctx, "w", []int64{got[1].ID}); err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		d, err := db.LeadDetail(ctx, l.ExternalID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Lead.State != crm.StateHeld || d.Lead.Hold != crm.HoldSubID || d.Lead.Reason != "paused: sub_id s7" ||
			!d.Lead.NextAttemptAt.IsZero() || d.Lead.LeaseOwner != "" {
			t.Errorf("%s: %s hold %q reason %q next %v owner %q", l.ExternalID, d.Lead.State, d.Lead.Hold, d.Lead.Reason,
				d.Lead.NextAttemptAt, d.Lead.LeaseOwner)
		}
		if l.ExternalID == "P-1" && (len(d.Attempts) != 1 || d.Attempts[0].Outcome != crm.StateRetryWait) {
			t.Errorf("P-1 attempts %+v, want one retry_wait", d.Attempts)
		}
	}
	if due, ok, err := db.NextDue(ctx); err != nil || ok {
		t.Fatalf("next due %v %v %v: held leads are not due", due, ok, err)
	}
	if n, err := db.Resume(ctx, crm.Pause{Field: crm.GroupSubID, Value: "s7"}); err != nil || n != 2 {
		t.Fatalf("resume released %d, %v; want 2", n, err)
	}
	assertCounts(t, db)
}

// TestThroughputMinutes checks the per-minute rollup against the seconds
// it sums, and a long Throughput read from it against the same window
// summed from the seconds.
func TestThroughputMinutes(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	if err := db.Fill(ctx, 3000, 3000); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := db.SaveRefusal(ctx, crm.Refusal{Code: crm.CodeBadSignature}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(40 * time.Second)
	}
	diff := queryInt(t, db, `SELECT COUNT(*) FROM (
		SELECT sec / 60 * 60 AS m, SUM(sent) s, SUM(callbacks) c, SUM(answered) a, SUM(accepted) ac, SUM(failed) f, SUM(refused) r
			FROM throughput GROUP BY m
		EXCEPT SELECT min, sent, callbacks, answered, accepted, failed, refused FROM throughput_min)`)
	if diff != 0 {
		t.Fatalf("%d minutes of throughput_min differ from their seconds", diff)
	}
	now := clk.Now()
	since := now.Add(-20*time.Hour - 17*time.Second)
	tp, err := db.Throughput(ctx, since, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Start.Equal(since.Truncate(time.Minute)) {
		t.Fatalf("start %v, want %v (a long window reads whole minutes)", tp.Start, since.Truncate(time.Minute))
	}
	for i := range tp.Sent {
		lo := tp.Start.Add(time.Duration(i) * tp.Bucket).Unix()
		var sent, cbs, acc, failed int
		db.reader.QueryRow(`SELECT COALESCE(SUM(sent), 0), COALESCE(SUM(callbacks), 0), COALESCE(SUM(accepted), 0),
			COALESCE(SUM(failed), 0) FROM throughput WHERE sec >= ? AND sec < ?`, lo, lo+300).Scan(&sent, &cbs, &acc, &failed)
		if tp.Sent[i] != sent || tp.Callbacks[i] != cbs || tp.Accepted[i] != acc || tp.Failed[i] != failed {
			t.Fatalf("bucket %d: %d %d %d %d, seconds say %d %d %d %d", i,
				tp.Sent[i], tp.Callbacks[i], tp.Accepted[i], tp.Failed[i], sent, cbs, acc, failed)
		}
	}
	// A short window keeps its second resolution.
	short, err := db.Throughput(ctx, now.Add(-time.Hour-17*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !short.Start.Equal(now.Add(-time.Hour - 17*time.Second)) {
		t.Fatalf("short window start %v", short.Start)
	}
	p, err := db.Pulse(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if p.RefusedMin != 1 || p.LastAttempt.IsZero() {
		t.Errorf("pulse %+v: want 1 refusal in the last minute and an attempt in the hour", p)
	}
}
