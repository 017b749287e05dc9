package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// parsed is a callback as the listener hands it over: crm.ParseCallback
// of the body.
func parsed(tb testing.TB, body string) crm.CallbackEvent {
	tb.Helper()
	ev, err := crm.ParseCallback([]byte(body))
	if err != nil {
		tb.Fatalf("parse %s: %v", body, err)
	}
	return ev
}

// TestDedupTriple: the dedup key is the triple (internal_id, event,
// timestamp) compared part by part and byte for byte, not the string they
// join into.
func TestDedupTriple(t *testing.T) {
	ctx := context.Background()
	ev := func(internal, event, ts string) crm.CallbackEvent {
		return crm.CallbackEvent{InternalID: internal, Event: event, Timestamp: ts,
			DedupKey: internal + ":" + event + ":" + ts, RawBody: []byte(`{}`)}
	}
	tests := []struct {
		name       string
		first, two crm.CallbackEvent
		wantTwo    bool // the second is a different event
	}{
		{"ColonInInternalID", ev("a:b", "c", "1"), ev("a", "b:c", "1"), true},
		{"ColonInEvent", ev("a", "b:c", "1"), ev("a", "b", "c:1"), true},
		// Invalid UTF-8 is kept as sent, not folded into U+FFFD.
		{"InvalidUTF8", ev("\xff", "e", "1"), ev("\xfe", "e", "1"), true},
		{"NULByte", ev("a\x00b", "e", "1"), ev("a\x00c", "e", "1"), true},
		{"CaseMatters", ev("A", "e", "1"), ev("a", "e", "1"), true},
		{"SameTriple", ev("a", "e", "1"), ev("a", "e", "1"), false},
		// A number keeps its digits: 1 and "1" are one event, 1.0 another.
		{"NumberIsItsDigits",
			parsed(t, `{"internal_id":"n","event":"e","timestamp":1}`),
			parsed(t, `{"internal_id":"n","event":"e","timestamp":"1"}`), false},
		{"NumberSpelling",
			parsed(t, `{"internal_id":"n","event":"e","timestamp":1}`),
			parsed(t, `{"internal_id":"n","event":"e","timestamp":1.0}`), true},
		{"NumericInternalID",
			parsed(t, `{"internal_id":42,"event":"e","timestamp":1}`),
			parsed(t, `{"internal_id":"42","event":"e","timestamp":1}`), false},
	}
	for _, tt := range tests {
		for _, together := range []bool{false, true} {
			name := tt.name + "/Apart"
			if together {
				name = tt.name + "/OneBatch"
			}
			t.Run(name, func(t *testing.T) {
				db, _ := MustOpen(t)
				var fresh []bool
				if together {
					got, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{tt.first, tt.two})
					if err != nil {
						t.Fatal(err)
					}
					fresh = got
				} else {
					for _, e := range []crm.CallbackEvent{tt.first, tt.two} {
						got, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{e})
						if err != nil {
							t.Fatal(err)
						}
						fresh = append(fresh, got...)
					}
				}
				if !fresh[0] || fresh[1] != tt.wantTwo {
					t.Fatalf("fresh %v, want [true %v]", fresh, tt.wantTwo)
				}
				stored, err := db.CallbacksAfter(ctx, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				want := 1
				if tt.wantTwo {
					want = 2
				}
				if len(stored) != want {
					t.Fatalf("%d rows stored, want %d", len(stored), want)
				}
				for i, s := range stored {
					e := []crm.CallbackEvent{tt.first, tt.two}[i]
					if s.InternalID != e.InternalID || s.Event != e.Event || s.Timestamp != e.Timestamp {
						t.Errorf("row %d is (%q, %q, %q), want (%q, %q, %q)", i, s.InternalID, s.Event, s.Timestamp,
							e.InternalID, e.Event, e.Timestamp)
					}
					// The joined form stays the display and export form.
					if s.DedupKey != e.InternalID+":"+e.Event+":"+e.Timestamp {
						t.Errorf("row %d dedup key %q", i, s.DedupKey)
					}
				}
				// Each one stored is recognised when it comes again.
				again, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{tt.first, tt.two})
				if err != nil {
					t.Fatal(err)
				}
				if again[0] || again[1] {
					t.Errorf("re-delivery answered fresh: %v", again)
				}
			})
		}
	}
}

// TestSaveCallbacksChunks: batches of every size up to past the largest
// prepared chunk, with replays and events whose joined keys collide mixed
// in at every position, store each fresh event once, mark exactly the
// replays, link each event to its lead and keep the counters exact.
func TestSaveCallbacksChunks(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	for i := range 4 {
		l := mustEnqueue(t, db, fmt.Sprintf("CH-%d", i))
		if i%2 == 0 {
			continue // half the leads are named by external id only
		}
		if _, err := db.writer.Exec(`UPDATE leads SET crm_id = ? WHERE id = ?`, fmt.Sprintf("crm-%d", i), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	seq := 0
	total := 0
	for n := 1; n <= insertChunks[0]+3; n++ {
		var evs []crm.CallbackEvent
		var want []bool
		for i := range n {
			switch {
			case i%5 == 3 && seq > 0:
				evs = append(evs, evs[len(evs)-1]) // a replay of the one before
				want = append(want, false)
				continue
			case i%7 == 5:
				// Two events whose joined keys are the same string.
				seq++
				a := parsed(t, fmt.Sprintf(`{"internal_id":"x:%d","event":"e","timestamp":1}`, seq))
				b := parsed(t, fmt.Sprintf(`{"internal_id":"x","event":"%d:e","timestamp":1}`, seq))
				if a.DedupKey != b.DedupKey {
					t.Fatalf("%q and %q do not join alike", a.DedupKey, b.DedupKey)
				}
				evs = append(evs, a, b)
				want = append(want, true, true)
				total += 2
				continue
			}
			seq++
			lead := seq % 5 // 4: no such lead
			evs = append(evs, parsed(t, fmt.Sprintf(`{"internal_id":"crm-%d","external_id":"CH-%d","event":"e","status":"s%d","timestamp":%d}`,
				lead, lead, seq, seq)))
			want = append(want, true)
			total++
		}
		fresh, err := db.SaveCallbacks(ctx, evs)
		if err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		if fmt.Sprint(fresh) != fmt.Sprint(want) {
			t.Fatalf("batch of %d: fresh %v, want %v", n, fresh, want)
		}
	}
	all, err := db.CallbacksAfter(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != total {
		t.Fatalf("%d stored, want %d", len(all), total)
	}
	unmatched := 0
	for _, ev := range all {
		if ev.LeadID == 0 {
			unmatched++
			if ev.InternalID != "crm-4" && !strings.HasPrefix(ev.InternalID, "x") {
				t.Errorf("%s not linked", ev.DedupKey)
			}
		}
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbacksVerified != total || c.CallbacksUnmatched != unmatched {
		t.Errorf("counts %d verified, %d unmatched; rows %d, %d", c.CallbacksVerified, c.CallbacksUnmatched, total, unmatched)
	}
	// The newest status of each lead is its CRM status.
	for i := range 4 {
		d, err := db.LeadDetail(ctx, fmt.Sprintf("CH-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := db.reader.QueryRow(`SELECT status FROM callbacks WHERE lead_id = ?
			ORDER BY CAST(timestamp AS INTEGER) DESC LIMIT 1`, d.Lead.ID).Scan(&want); err != nil {
			t.Fatalf("lead CH-%d: %v", i, err)
		}
		if d.Lead.CRMStatus != want {
			t.Errorf("lead CH-%d: CRM status %q, newest event says %q", i, d.Lead.CRMStatus, want)
		}
	}
}

// TestInsertCallbacksParams: SaveCallbacks binds insertCallbackCols
// values per row, one per parameter of the statement.
func TestInsertCallbacksParams(t *testing.T) {
	for _, n := range insertChunks {
		if got := strings.Count(sqlInsertCallbacks(n), "?"); got != n*insertCallbackCols {
			t.Errorf("%d rows: %d parameters, want %d", n, got, n*insertCallbackCols)
		}
	}
}

// TestMigrateDedupFromV3 builds a store at schema version 3 with the old
// SQL (the embedded migrations 1–3, applied by hand, as an older build
// left it), with callbacks in it, then lets Open migrate it: every row is
// kept as it was, the counters still agree with the rows, and dedup is by
// the triple from then on.
func TestMigrateDedupFromV3(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "v3.db")
	raw, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v, name := range []string{"001_init.sql", "002_throughput.sql", "003_filter_index.sql"} {
		body, err := fs.ReadFile(migrationFS, path.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, v+1, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO leads (external_id, payload, idempotency_key, state, crm_id, created_at, updated_at)
		VALUES ('L-1', '{}', 'k', 'accepted', 'crm-1', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	old := []struct {
		internal, event, ts string
		lead                any
	}{
		{"a:b", "c", "1", nil},
		{"crm-1", "lead.created", "1700000000", 1},
		{"\xff", "e", "1", nil},
	}
	for i, o := range old {
		if _, err := raw.Exec(`INSERT INTO callbacks (dedup_key, internal_id, event, timestamp, received_at, raw_body, lead_id, skew_ms, secret_idx)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.internal+":"+o.event+":"+o.ts, o.internal, o.event, o.ts,
			int64(1_700_000_000_000+i*1000), []byte(fmt.Sprintf(`{"n":%d}`, i)), o.lead, 7, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db := MustOpenPath(t, p, store.Options{})
	var v int
	if err := db.reader.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != SchemaVersion() {
		t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion())
	}
	rows, err := db.CallbacksAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(old) {
		t.Fatalf("%d rows after the migration, want %d", len(rows), len(old))
	}
	for i, o := range old {
		got, err := db.Callback(ctx, rows[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		wantLead := int64(0)
		if o.lead != nil {
			wantLead = 1
		}
		if got.ID != int64(i+1) || got.InternalID != o.internal || got.Event != o.event || got.Timestamp != o.ts ||
			got.DedupKey != o.internal+":"+o.event+":"+o.ts || got.LeadID != wantLead || got.Skew != 7*time.Millisecond ||
			got.SecretIdx != 1 || string(got.RawBody) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("row %d after the migration: %+v", i, got)
		}
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbacksVerified != 3 || c.CallbacksUnmatched != 2 {
		t.Errorf("counts after the migration: %+v", c)
	}

	// The old rows are still recognised, by their parts; what the joined
	// key confused is now a new event.
	fresh, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{
		{InternalID: "a:b", Event: "c", Timestamp: "1"},
		{InternalID: "a", Event: "b:c", Timestamp: "1"},
		parsed(t, `{"internal_id":"crm-1","event":"lead.created","timestamp":1700000000}`),
		{InternalID: "\xfe", Event: "e", Timestamp: "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fresh) != "[false true false true]" {
		t.Errorf("fresh after the migration %v, want [false true false true]", fresh)
	}
	// Late linking finds the unlinked rows through an index (migration
	// 012's, in arrival order).
	var plan string
	if err := db.reader.QueryRow(`EXPLAIN QUERY PLAN `+sqlLinkLate, 1, "a", 0).Scan(new(int), new(int), new(int), &plan); err != nil {
		t.Fatal(err)
	}
	if plan != "SEARCH callbacks USING INDEX callbacks_unlinked (received_at>?)" {
		t.Errorf("late link: %s", plan)
	}
}
