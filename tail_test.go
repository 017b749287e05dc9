package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// tailBackend is one store the tail tests run against: its location (for
// --db) and an open handle to write with, as another process would.
type tailBackend struct {
	loc string
	db  store.Store
}

// forEachBackend runs f against a fresh SQLite file and, when
// LEADWATCH_TEST_POSTGRES is set, a fresh PostgreSQL database.
func forEachBackend(t *testing.T, f func(t *testing.T, b tailBackend)) {
	t.Run("SQLite", func(t *testing.T) {
		loc := filepath.Join(t.TempDir(), "tail.db")
		f(t, tailBackend{loc, storetest.OpenPath(t, loc, store.Options{})})
	})
	t.Run("Postgres", func(t *testing.T) {
		loc := storetest.Postgres(t)
		db, err := postgres.Open(context.Background(), loc, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f(t, tailBackend{loc, db})
	})
}

// The callbacks every tail test starts with: timestamps sent as numbers
// (one too long for a float64) and as strings (digits and RFC 3339).
var tailBodies = []string{
	`{"internal_id":"crm-1","external_id":"L-1","event":"status_changed","status":"new","timestamp":1764200000}`,
	`{"internal_id":"crm-1","external_id":"L-1","event":"status_changed","status":"ftd","timestamp":"1764200001"}`,
	`{"internal_id":"crm-2","external_id":"L-2","event":"lead_created","status":"new","timestamp":"2025-11-27T10:00:00Z"}`,
	`{"internal_id":"crm-3","external_id":"L-3","event":"status_changed","status":"interested","timestamp":1764200000123456789}`,
}

// tailWant is how each of tailBodies comes out in tail --json and export:
// its internal_id/status pair and its timestamp, typed.
var tailWant = []struct {
	key string
	ts  any // json.Number or string
}{
	{"crm-1/new", json.Number("1764200000")},
	{"crm-1/ftd", "1764200001"},
	{"crm-2/new", "2025-11-27T10:00:00Z"},
	{"crm-3/interested", json.Number("1764200000123456789")},
}

// saveBodies parses and stores bodies as the listener does.
func saveBodies(t *testing.T, db store.Store, bodies ...string) {
	t.Helper()
	evs := make([]crm.CallbackEvent, len(bodies))
	for i, b := range bodies {
		ev, err := crm.ParseCallback([]byte(b))
		if err != nil {
			t.Fatalf("parse %s: %v", b, err)
		}
		evs[i] = ev
	}
	fresh, err := db.SaveCallbacks(context.Background(), evs)
	if err != nil || slices.Contains(fresh, false) {
		t.Fatalf("save callbacks: %v %v", fresh, err)
	}
}

func saveRefusal(t *testing.T, db store.Store, detail string) {
	t.Helper()
	if err := db.SaveRefusal(context.Background(), crm.Refusal{RemoteAddr: "192.0.2.7:4000", HTTPStatus: 403,
		Code: crm.CodeBadSignature, Detail: detail, Head: []byte(`{"internal_id":"forged","phone":"+380501234567"`)}); err != nil {
		t.Fatal(err)
	}
}

// savePolled stores a status learned by a lookup (docs/protocol.md §6)
// for a new lead ext, as reconcile does.
func savePolled(t *testing.T, db store.Store, ext, status string) {
	t.Helper()
	ctx := context.Background()
	l, err := db.Enqueue(ctx, []byte(`{"external_id":"`+ext+`","phone":"+380501234567"}`), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := crm.PolledStatus{LeadID: l.ID, ExternalID: ext, InternalID: "crm-" + ext, Status: status, PolledAt: time.Now()}
	p.RawBody = crm.PolledEvent(p)
	if changed, err := db.SavePolled(ctx, p); err != nil || !changed {
		t.Fatalf("save polled: %v %v", changed, err)
	}
}

// tailProc is a running `leadwatch tail`, its stdout read line by line.
type tailProc struct {
	lines  chan string
	cancel context.CancelFunc
	done   chan int
	errb   *lockedBuffer
}

func startTail(t *testing.T, loc string, args ...string) *tailProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &tailProc{lines: make(chan string, 100), cancel: cancel, done: make(chan int, 1), errb: &lockedBuffer{}}
	go func() {
		p.done <- run(ctx, append([]string{"tail", "--db", loc}, args...), env{stdout: pw, stderr: p.errb, getenv: func(string) string { return "" }})
		pw.Close()
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// next is the next line tail prints; it fails t if none comes within 20 s
// (a deadline for a hung tail, not a pause: a line ends the wait at once).
func (p *tailProc) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("tail ended early: %s", p.errb.String())
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("tail printed nothing in 20 s: %s", p.errb.String())
	}
	return ""
}

// nextJSON is the next line as an object, numbers kept as json.Number.
func (p *tailProc) nextJSON(t *testing.T) map[string]any {
	t.Helper()
	line := p.next(t)
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("tail line %q: %v", line, err)
	}
	return m
}

func (p *tailProc) stop(t *testing.T) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	if code := <-p.done; code != 0 {
		t.Errorf("tail exit %d: %s", code, p.errb.String())
	}
}

// recordKey names a callback record by its internal_id and status.
func recordKey(m map[string]any) string {
	return m["internal_id"].(string) + "/" + m["status"].(string)
}

// checkTimestamps checks that each of tailBodies' records in recs (keyed
// by recordKey) has its timestamp of the type the CRM sent.
func checkTimestamps(t *testing.T, recs map[string]map[string]any) {
	t.Helper()
	for _, w := range tailWant {
		m, ok := recs[w.key]
		if !ok {
			t.Errorf("no record of %s", w.key)
			continue
		}
		if got := m["timestamp"]; got != w.ts {
			t.Errorf("%s: timestamp %#v (%T), want %#v (%T)", w.key, got, got, w.ts, w.ts)
		}
	}
}

// TestParseCallbackTimestampType: the parser tells a number from a string
// of the same digits; the dedup key does not.
func TestParseCallbackTimestampType(t *testing.T) {
	for i, b := range tailBodies {
		ev, err := crm.ParseCallback([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		_, isNum := tailWant[i].ts.(json.Number)
		if ev.TimestampNumber != isNum {
			t.Errorf("%s: TimestampNumber %v", b, ev.TimestampNumber)
		}
	}
	a, _ := crm.ParseCallback([]byte(`{"internal_id":"x","event":"e","timestamp":17}`))
	b, _ := crm.ParseCallback([]byte(`{"internal_id":"x","event":"e","timestamp":"17"}`))
	if a.DedupKey != b.DedupKey || a.Timestamp != "17" || b.Timestamp != "17" {
		t.Errorf("17 and \"17\": %q %q", a.DedupKey, b.DedupKey)
	}
}

// TestTailAll: tail --all --json prints callbacks, refusals and polled
// statuses, each with its kind, the refusal with its code and reason and
// without the body's bytes, the timestamps typed as sent; then follows
// each kind.
func TestTailAll(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b tailBackend) {
		saveBodies(t, b.db, tailBodies...)
		saveRefusal(t, b.db, "no configured secret matches")
		savePolled(t, b.db, "L-5", "interested")
		p := startTail(t, b.loc, "--all", "--json", "-n", "100")
		recs := map[string]map[string]any{}
		kinds := map[string]int{}
		var refused, polled map[string]any
		for range len(tailBodies) + 2 {
			m := p.nextJSON(t)
			kinds[m["kind"].(string)]++
			switch m["kind"] {
			case "callback":
				recs[recordKey(m)] = m
			case "refused":
				refused = m
			case "polled":
				polled = m
			}
		}
		if kinds["callback"] != len(tailBodies) || kinds["refused"] != 1 || kinds["polled"] != 1 {
			t.Fatalf("kinds %v", kinds)
		}
		checkTimestamps(t, recs)
		if polled["event"] != crm.EventStatusPolled || polled["status"] != "interested" || polled["external_id"] != "L-5" || polled["matched"] != true {
			t.Errorf("polled record %v", polled)
		}
		if refused["code"] != "bad_signature" || refused["detail"] != "no configured secret matches" ||
			refused["http_status"] != json.Number("403") || refused["remote_addr"] != "192.0.2.7:4000" {
			t.Errorf("refused record %v", refused)
		}
		if _, ok := refused["head"]; ok {
			t.Errorf("the refused record carries the unverified body: %v", refused)
		}
		// Followed: a refusal, then a callback, stored after tail started.
		saveRefusal(t, b.db, "clock skew of 412 s")
		if m := p.nextJSON(t); m["kind"] != "refused" || m["detail"] != "clock skew of 412 s" {
			t.Fatalf("live refusal: %v", m)
		}
		saveBodies(t, b.db, `{"internal_id":"crm-9","event":"status_changed","status":"callback","timestamp":"9"}`)
		if m := p.nextJSON(t); m["kind"] != "callback" || m["internal_id"] != "crm-9" || m["timestamp"] != "9" {
			t.Fatalf("live callback: %v", m)
		}
		savePolled(t, b.db, "L-6", "ftd")
		if m := p.nextJSON(t); m["kind"] != "polled" || m["external_id"] != "L-6" || m["status"] != "ftd" {
			t.Fatalf("live polled status: %v", m)
		}
	})
}

// TestTailDefault: without --all tail prints verified callbacks only,
// each with kind callback; refusals and polled statuses are not printed.
func TestTailDefault(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b tailBackend) {
		saveBodies(t, b.db, tailBodies...)
		saveRefusal(t, b.db, "no configured secret matches")
		savePolled(t, b.db, "L-5", "interested")
		p := startTail(t, b.loc, "--json", "-n", "100")
		recs := map[string]map[string]any{}
		for range tailBodies {
			m := p.nextJSON(t)
			if m["kind"] != "callback" {
				t.Fatalf("tail without --all printed %v", m)
			}
			recs[recordKey(m)] = m
		}
		checkTimestamps(t, recs)
		saveRefusal(t, b.db, "clock skew of 412 s")
		savePolled(t, b.db, "L-6", "ftd")
		saveBodies(t, b.db, `{"internal_id":"crm-9","event":"status_changed","status":"callback","timestamp":9}`)
		if m := p.nextJSON(t); m["internal_id"] != "crm-9" || m["timestamp"] != json.Number("9") {
			t.Fatalf("after a refusal and a callback, tail printed %v", m)
		}
	})
}

// TestTailFilters: --event, --status and --external-id keep only the
// records whose field equals the value, among those printed at start
// (-n) and those followed; a filter leaves refusals out even with --all.
func TestTailFilters(t *testing.T) {
	for i, c := range []struct {
		name string
		args []string
		want []string // recordKeys at start
		miss string   // a body stored live that must not be printed
		hit  string   // then one that must
	}{
		{"Event", []string{"--event", "lead_created"}, []string{"crm-2/new"},
			`{"internal_id":"m-%d","event":"status_changed","status":"new","timestamp":1}`,
			`{"internal_id":"h-%d","event":"lead_created","status":"new","timestamp":1}`},
		{"Status", []string{"--status", "ftd"}, []string{"crm-1/ftd"},
			`{"internal_id":"m-%d","event":"status_changed","status":"FTD","timestamp":1}`,
			`{"internal_id":"h-%d","event":"status_changed","status":"ftd","timestamp":1}`},
		{"ExternalID", []string{"--external-id", "L-1"}, []string{"crm-1/new", "crm-1/ftd"},
			`{"internal_id":"m-%d","external_id":"L-10","event":"status_changed","status":"new","timestamp":1}`,
			`{"internal_id":"h-%d","external_id":"L-1","event":"status_changed","status":"new","timestamp":1}`},
		{"AllExternalID", []string{"--all", "--external-id", "L-1"}, []string{"crm-1/new", "crm-1/ftd"},
			`{"internal_id":"m-%d","external_id":"L-2","event":"status_changed","status":"new","timestamp":1}`,
			`{"internal_id":"h-%d","external_id":"L-1","event":"status_changed","status":"new","timestamp":1}`},
		{"LastOne", []string{"--external-id", "L-1", "-n", "1"}, []string{"crm-1/ftd"},
			`{"internal_id":"m-%d","external_id":"L-3","event":"status_changed","status":"new","timestamp":1}`,
			`{"internal_id":"h-%d","external_id":"L-1","event":"status_changed","status":"new","timestamp":1}`},
		{"Combined", []string{"--event", "status_changed", "--status", "new"}, []string{"crm-1/new"},
			`{"internal_id":"m-%d","event":"lead_created","status":"new","timestamp":1}`,
			`{"internal_id":"h-%d","event":"status_changed","status":"new","timestamp":1}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b tailBackend) {
				saveBodies(t, b.db, tailBodies...)
				saveRefusal(t, b.db, "no configured secret matches")
				args := append([]string{"--json"}, c.args...)
				if !slices.Contains(args, "-n") {
					args = append(args, "-n", "100")
				}
				p := startTail(t, b.loc, args...)
				var got []string
				for range c.want {
					m := p.nextJSON(t)
					if m["kind"] != "callback" {
						t.Fatalf("printed %v", m)
					}
					got = append(got, recordKey(m))
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("at start %v, want %v", got, c.want)
				}
				// A refusal and a non-matching callback, then a matching
				// one: the matching one is the next line.
				saveRefusal(t, b.db, "live")
				saveBodies(t, b.db, fmt.Sprintf(c.miss, i))
				saveBodies(t, b.db, fmt.Sprintf(c.hit, i))
				if m := p.nextJSON(t); m["internal_id"] != fmt.Sprintf("h-%d", i) {
					t.Fatalf("followed %v, want h-%d", m, i)
				}
			})
		})
	}
}

// TestTailHuman: without --json, --all marks each line with its kind
// and a refusal's line has its code and reason.
func TestTailHuman(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b tailBackend) {
		saveBodies(t, b.db, tailBodies[:2]...)
		saveRefusal(t, b.db, "no configured secret matches")
		p := startTail(t, b.loc, "--all", "-n", "100")
		var lines []string
		for range 3 {
			lines = append(lines, p.next(t))
		}
		text := strings.Join(lines, "\n")
		if strings.Count(text, "  callback  status_changed ") != 2 ||
			!strings.Contains(text, "  REFUSED   403 bad_signature  no configured secret matches  from 192.0.2.7:4000") {
			t.Errorf("tail --all printed:\n%s", text)
		}
		if strings.Contains(text, "forged") || strings.Contains(text, "+380501234567") {
			t.Errorf("a refusal's body is printed:\n%s", text)
		}
		p.stop(t)
		// Without --all the lines are as before: no kind column.
		p = startTail(t, b.loc, "-n", "1")
		if l := p.next(t); strings.Contains(l, "callback  ") || !strings.Contains(l, "status_changed") || !strings.Contains(l, "crm=crm-1") {
			t.Errorf("tail printed %q", l)
		}
	})
}

// TestExportTimestampType: export callbacks writes each timestamp as the
// CRM sent it in JSONL; CSV has the digits either way.
func TestExportTimestampType(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b tailBackend) {
		saveBodies(t, b.db, tailBodies...)
		checkExport(t, b.loc)
		code, out, errOut := runCLI(t, nil, "", "export", "callbacks", "--format", "csv", "--db", b.loc)
		if code != 0 {
			t.Fatalf("export csv: %d %s", code, errOut)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(rows) != len(tailBodies)+1 {
			t.Fatalf("csv %v:\n%s", err, out)
		}
		col := slices.Index(rows[0], "timestamp")
		if rows[1][col] != "1764200000" || rows[4][col] != "1764200000123456789" || rows[2][col] != "1764200001" {
			t.Errorf("csv timestamps: %v", rows)
		}
	})
}

// checkExport runs export callbacks on loc and checks tailBodies'
// timestamp types.
func checkExport(t *testing.T, loc string) map[string]map[string]any {
	t.Helper()
	code, out, errOut := runCLI(t, nil, "", "export", "callbacks", "--db", loc)
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	recs := map[string]map[string]any{}
	d := json.NewDecoder(strings.NewReader(out))
	d.UseNumber()
	for d.More() {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("export: %v\n%s", err, out)
		}
		recs[recordKey(m)] = m
	}
	checkTimestamps(t, recs)
	return recs
}

// TestTimestampTypeMigration: the migration that adds the timestamp's
// type learns it, for rows stored before it, from the raw body; a row
// whose body was pruned, is not JSON, or (PostgreSQL) is not UTF-8 stays
// a string and does not fail the migration. The test undoes the
// migration on a store written by this build and opens it again.
func TestTimestampTypeMigration(t *testing.T) {
	bodies := append(slices.Clone(tailBodies),
		`{"internal_id":"p-1","event":"status_changed","status":"pruned","timestamp":5}`,
		`{"internal_id":"p-2","event":"status_changed","status":"notjson","timestamp":6}`,
		`{"internal_id":"p-3","event":"status_changed","status":"notutf8","timestamp":7}`)
	damage := []struct{ iid, body string }{{"p-1", ""}, {"p-2", `{"timestamp":6,`}, {"p-3", "{\"timestamp\":7,\"x\":\"\xff\"}"}}
	check := func(t *testing.T, loc string) {
		recs := checkExport(t, loc)
		for _, k := range []string{"p-1/pruned", "p-2/notjson"} {
			if _, ok := recs[k]["timestamp"].(string); !ok {
				t.Errorf("%s: timestamp %#v, want the string it falls back to", k, recs[k]["timestamp"])
			}
		}
	}
	t.Run("SQLite", func(t *testing.T) {
		loc := filepath.Join(t.TempDir(), "mig.db")
		db := storetest.OpenPath(t, loc, store.Options{})
		saveBodies(t, db, bodies...)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open("sqlite", loc)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, d := range damage {
			if _, err := raw.Exec(`UPDATE callbacks SET raw_body = ? WHERE internal_id = ?`, []byte(d.body), d.iid); err != nil {
				t.Fatal(err)
			}
		}
		undoMigration(t, func(q string) error { _, err := raw.Exec(q); return err }, 10,
			`DROP TABLE source_stats_coarse`) // 011
		raw.Close()
		db2 := storetest.OpenPath(t, loc, store.Options{})
		db2.Close()
		check(t, loc)
	})
	t.Run("Postgres", func(t *testing.T) {
		loc := storetest.Postgres(t)
		ctx := context.Background()
		db, err := postgres.Open(ctx, loc, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		saveBodies(t, db, bodies...)
		db.Close()
		conn, err := pgx.Connect(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, d := range damage {
			if _, err := conn.Exec(ctx, `UPDATE callbacks SET raw_body = $1 WHERE internal_id = $2`, []byte(d.body), d.iid); err != nil {
				t.Fatal(err)
			}
		}
		undoMigration(t, func(q string) error { _, err := conn.Exec(ctx, q); return err }, 6,
			`DROP TABLE source_stats_coarse`,                                                         // 007
			`ALTER TABLE refusals DROP COLUMN txid`, `ALTER TABLE forward_attempts DROP COLUMN txid`) // 008
		db, err = postgres.Open(ctx, loc, store.Options{})
		if err != nil {
			t.Fatalf("migrate again: %v", err)
		}
		db.Close()
		recs := checkExport(t, loc)
		if recs["p-3/notutf8"]["timestamp"] != "7" {
			t.Errorf("a body that is not UTF-8: timestamp %#v", recs["p-3/notutf8"]["timestamp"])
		}
		check(t, loc)
	})
}

// undoMigration takes the store back to before migration version (the
// one adding ts_number): the later migrations' objects dropped (later),
// ts_number dropped, version and the later ones forgotten. It then looks
// as a store written before it, and migrates again on open.
func undoMigration(t *testing.T, exec func(string) error, version int, later ...string) {
	t.Helper()
	// The migrations after it are undone first (later: their objects), so
	// the store is at version-1 and migrates again from there.
	qs := append(later, `ALTER TABLE callbacks DROP COLUMN ts_number`,
		`DELETE FROM schema_migrations WHERE version >= `+strconv.Itoa(version))
	for _, q := range qs {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestTailCursorOutOfOrderPostgres: PostgreSQL hands ids out before
// commit. With a filter that skips the committed larger id, the cursor
// TailCallbacks returns must still not pass the smaller uncommitted one:
// once that commits, it is returned, not lost.
func TestTailCursorOutOfOrderPostgres(t *testing.T) {
	loc := storetest.Postgres(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, loc, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	insert := `INSERT INTO callbacks (dedup_key, internal_id, event, timestamp, received_at, raw_body)
		VALUES ($1, $1, $2, '1', 0, '') RETURNING id`
	begin := func() pgx.Tx {
		conn, err := pgx.Connect(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	txA, txB := begin(), begin()
	var idA, idB int64
	if err := txA.QueryRow(ctx, insert, "a", "wanted").Scan(&idA); err != nil {
		t.Fatal(err)
	}
	if err := txB.QueryRow(ctx, insert, "b", "other").Scan(&idB); err != nil {
		t.Fatal(err)
	}
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	q := store.TailQuery{Event: "wanted"}
	evs, next, err := db.TailCallbacks(ctx, q, 0, 10)
	if err != nil || len(evs) != 0 || next >= idA {
		t.Fatalf("with id %d uncommitted: %v, next %d, %v; want nothing and the cursor below it", idA, evs, next, err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	cursor := next
	var got []int64
	poll.Until(t, "the smaller id to be returned", func() bool {
		evs, next, err := db.TailCallbacks(ctx, q, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			got = append(got, ev.ID)
		}
		cursor = next
		return len(got) > 0
	})
	if !slices.Equal(got, []int64{idA}) || cursor < idB {
		t.Fatalf("returned %v, cursor %d; want [%d] and the cursor at %d", got, cursor, idA, idB)
	}
}

// TestTailForward: tail --all prints the results of forwarding to the
// app (kind forward: delivered, retry with its next time, failed), keeps
// them with --external-id and leaves them out with --status, and follows
// them.
func TestTailForward(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b tailBackend) {
		ctx := context.Background()
		for _, ext := range []string{"L-1", "L-2"} {
			if _, err := b.db.Enqueue(ctx, []byte(`{"external_id":"`+ext+`","phone":"+380501234567"}`), store.EnqueueOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.db.StartForwarding(ctx); err != nil {
			t.Fatal(err)
		}
		saveBodies(t, b.db, tailBodies[0], tailBodies[2]) // L-1, L-2
		now := time.Now()
		ds, err := b.db.ClaimDeliveries(ctx, "tail-test", now, time.Minute, 10)
		if err != nil || len(ds) != 2 {
			t.Fatalf("claim: %v %v", ds, err)
		}
		byExt := map[string]crm.Delivery{}
		for _, d := range ds {
			byExt[d.ExternalID] = d
		}
		retryAt := now.Add(time.Minute)
		if lost, err := b.db.RecordDeliveries(ctx, "tail-test", []crm.DeliveryResult{
			{ID: byExt["L-1"].ID, At: now, Status: 204, Latency: 3 * time.Millisecond, Delivered: true},
			{ID: byExt["L-2"].ID, At: now, Status: 503, Latency: time.Millisecond, Error: "HTTP 503", NextAt: retryAt},
		}); err != nil || len(lost) != 0 {
			t.Fatalf("record: %v %v", lost, err)
		}

		p := startTail(t, b.loc, "--all", "--json", "-n", "100")
		fw := map[string]map[string]any{}
		for range 4 {
			m := p.nextJSON(t)
			if m["kind"] == "forward" {
				fw[m["external_id"].(string)] = m
			}
		}
		d1, d2 := fw["L-1"], fw["L-2"]
		if d1["outcome"] != "delivered" || d1["http_status"] != json.Number("204") || d1["latency_ms"] != json.Number("3") ||
			d1["webhook_id"] != byExt["L-1"].WebhookID || d1["next_at"] != nil || d1["error"] != "" {
			t.Errorf("delivered record %v", d1)
		}
		next, _ := d2["next_at"].(string)
		if at, err := time.Parse(time.RFC3339Nano, next); err != nil || at.UnixMilli() != retryAt.UnixMilli() ||
			d2["outcome"] != "retry" || d2["http_status"] != json.Number("503") || d2["error"] != "HTTP 503" {
			t.Errorf("retry record %v, want next_at %s", d2, retryAt.UTC())
		}
		// The retry fails for good, stored after tail started.
		again, err := b.db.ClaimDeliveries(ctx, "tail-test", retryAt, time.Minute, 10)
		if err != nil || len(again) != 1 {
			t.Fatalf("claim the retry: %v %v", again, err)
		}
		if _, err := b.db.RecordDeliveries(ctx, "tail-test", []crm.DeliveryResult{
			{ID: again[0].ID, At: retryAt, Error: "connection refused", Final: true}}); err != nil {
			t.Fatal(err)
		}
		if m := p.nextJSON(t); m["kind"] != "forward" || m["outcome"] != "failed" || m["http_status"] != json.Number("0") ||
			m["external_id"] != "L-2" || m["error"] != "connection refused" {
			t.Fatalf("live forward record %v", m)
		}
		p.stop(t)

		// --external-id keeps a lead's callbacks and forwards.
		p = startTail(t, b.loc, "--all", "--json", "--external-id", "L-2", "-n", "100")
		var kinds []string
		for range 3 {
			m := p.nextJSON(t)
			if m["external_id"] != "L-2" {
				t.Fatalf("--external-id L-2 printed %v", m)
			}
			kinds = append(kinds, m["kind"].(string))
		}
		if slices.Sort(kinds); !slices.Equal(kinds, []string{"callback", "forward", "forward"}) {
			t.Errorf("--external-id L-2: kinds %v", kinds)
		}
		p.stop(t)
		// --status leaves forwards out: the next line after the one
		// matching callback is a live one.
		p = startTail(t, b.loc, "--all", "--json", "--status", "new", "-n", "100")
		for range 2 {
			if m := p.nextJSON(t); m["kind"] != "callback" {
				t.Fatalf("--status new printed %v", m)
			}
		}
		saveBodies(t, b.db, `{"internal_id":"crm-7","event":"status_changed","status":"new","timestamp":7}`)
		if m := p.nextJSON(t); m["kind"] != "callback" || m["internal_id"] != "crm-7" {
			t.Fatalf("--status new printed %v", m)
		}
		// The human line of a forward.
		p.stop(t)
		p = startTail(t, b.loc, "--all", "--external-id", "L-1", "-n", "100")
		text := p.next(t) + "\n" + p.next(t)
		if !strings.Contains(text, "  forward   delivered 204  L-1  callback=") || !strings.Contains(text, "  callback  status_changed ") {
			t.Errorf("tail --all lines:\n%s", text)
		}
	})
}

// BenchmarkTailPoll is one follow poll of tail on a store of 50,000
// callbacks with a filter that matches none of them: Caught is a poll
// with nothing new (what every change signal costs), Span one that walks
// a full TailSpan of new rows the filter skips. The ratio is the point: a
// caught-up poll must not read the table.
func BenchmarkTailPoll(b *testing.B) {
	db := storetest.OpenPath(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ctx := context.Background()
	if err := db.Fill(ctx, 1000, 50000); err != nil {
		b.Fatal(err)
	}
	q := store.TailQuery{ExternalID: "no-such-lead", Kind: crm.KindCallback}
	top, err := db.TailStart(ctx, q, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Caught", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if evs, next, err := db.TailCallbacks(ctx, q, top, tailPage); err != nil || len(evs) != 0 || next != top {
				b.Fatalf("%v %d %v", evs, next, err)
			}
		}
	})
	b.Run("Span", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, next, err := db.TailCallbacks(ctx, q, top-store.TailSpan, tailPage); err != nil || next != top {
				b.Fatalf("%d %v", next, err)
			}
		}
	})
}

// fakeForwards is a store whose forward attempts are ids, for
// forwardStart's search: nothing else is called.
type fakeForwards struct {
	store.Store
	ids   []int64 // increasing, with gaps
	ext   func(id int64) string
	reads int
}

func (f *fakeForwards) ForwardAttemptsAfter(_ context.Context, after int64, limit int) ([]crm.ForwardAttempt, error) {
	f.reads++
	i, _ := slices.BinarySearch(f.ids, after+1)
	var out []crm.ForwardAttempt
	for ; i < len(f.ids) && len(out) < limit; i++ {
		out = append(out, crm.ForwardAttempt{ID: f.ids[i], ExternalID: f.ext(f.ids[i])})
	}
	return out, nil
}

// TestTailForwardStart: the cursor from which the last n forward
// attempts follow, found without reading them all: no attempts, fewer
// than n, ids with gaps, a filter that matches rarely, n 0.
func TestTailForwardStart(t *testing.T) {
	var ids []int64
	for id := int64(1); id <= 300000; id += 1 + id%3 { // gaps of 0 to 2
		ids = append(ids, id)
	}
	everyTenth := func(id int64) string {
		if id%10 == 0 {
			return "L-10"
		}
		return "L-x"
	}
	for _, c := range []struct {
		name string
		ids  []int64
		q    store.TailQuery
		n    int
		want func(ids []int64, kept []int64) int64
	}{
		{"Empty", nil, store.TailQuery{}, 10, func([]int64, []int64) int64 { return 0 }},
		{"FewerThanN", ids[:5], store.TailQuery{}, 10, func([]int64, []int64) int64 { return 0 }},
		{"LastN", ids, store.TailQuery{}, 10, func(ids, _ []int64) int64 { return ids[len(ids)-10] - 1 }},
		{"NZero", ids, store.TailQuery{}, 0, func(ids, _ []int64) int64 { return ids[len(ids)-1] }},
		{"Filtered", ids, store.TailQuery{ExternalID: "L-10"}, 50, func(_, kept []int64) int64 { return kept[len(kept)-50] - 1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeForwards{ids: c.ids, ext: everyTenth}
			var kept []int64
			for _, id := range c.ids {
				if c.q.ExternalID == "" || everyTenth(id) == c.q.ExternalID {
					kept = append(kept, id)
				}
			}
			tl := newTailer(f, tailOptions{all: true, q: c.q})
			got, err := cursorStart(context.Background(), c.n, tl.forwardIDs)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(c.ids, kept); got != want {
				t.Errorf("cursor %d, want %d", got, want)
			}
			if f.reads > 200 {
				t.Errorf("%d reads of attempts (of %d): a search should take a few dozen", f.reads, len(c.ids))
			}
		})
	}
}

// TestTailNegativeLines: -n below 0 is a usage error (exit 2).
func TestTailNegativeLines(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "n.db")
	storetest.OpenPath(t, loc, store.Options{})
	if code, _, errOut := runCLI(t, nil, "", "tail", "--db", loc, "-n", "-1"); code != 2 || !strings.Contains(errOut, "-n is a count") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
