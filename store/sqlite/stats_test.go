package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// TestStatsDecode checks the Go unpacking of a contribution against the
// layout the triggers write (migration 007).
func TestStatsDecode(t *testing.T) {
	for _, c := range []struct {
		code int64
		want map[int]int64 // column of statsCounters -> 1
	}{
		{0, nil},
		{1, map[int]int64{0: 1}},
		{5, map[int]int64{4: 1}},
		{1 + 8, map[int]int64{0: 1, 5: 1, 7: 1}}, // accepted, status in h0
		{1 + 18*8 + 256, map[int]int64{0: 1, 5: 1, 6: 1, 24: 1}}, // h17 and ftd
		{256, map[int]int64{6: 1}},                               // ftd alone
	} {
		var want [statsColumns]int64
		for i, n := range c.want {
			want[i] = n
		}
		if got := statsDecode(c.code); got != want {
			t.Errorf("statsDecode(%d) = %v, want %v", c.code, got, want)
		}
	}
}

// TestStatsLatencyBounds sets first statuses at every latency bound, a
// millisecond either side, before the acceptance and without one, and
// checks Report against the rows with the deltas unfolded (Report's
// unpacking) and folded (the fold's): the triggers' bucket is
// crm.LatencyBucket's.
func TestStatsLatencyBounds(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	var lat []int64
	for _, b := range crm.LatencyBounds {
		ms := b.Milliseconds()
		lat = append(lat, ms-1, ms, ms+1)
	}
	lat = append(lat, -5000, 0)
	const accepted = 1_700_000_000_000
	for i, d := range lat {
		l := mustEnqueue(t, db, fmt.Sprintf("LB-%d", i))
		acc := any(int64(accepted))
		if i == len(lat)-1 {
			acc = nil // a status on a lead whose acceptance is unknown: bucket 0
		}
		// One UPDATE per lead, as a callback linked late makes: the lead's
		// final state, its times and a source of its own.
		if _, err := db.writer.ExecContext(ctx, `UPDATE leads SET state = 'accepted', accepted_at = ?,
				first_status_at = ?, ftd_at = CASE WHEN ? % 2 = 0 THEN ? END WHERE id = ?`,
			acc, accepted+d, i, accepted+d, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM stats_deltas`); n == 0 {
		t.Fatal("no deltas to read unfolded (folded already?)")
	}
	assertReport(t, db, "statuses, unfolded")
	if _, err := db.foldStats(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM stats_deltas`); n != 0 {
		t.Fatalf("%d deltas left after the fold", n)
	}
	assertReport(t, db, "statuses, folded")
	rows, err := db.Report(ctx, crm.ReportQuery{By: crm.GroupCountry})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].WithStatus != len(lat) {
		t.Fatalf("report %+v, want one row with %d statuses", rows, len(lat))
	}
}

// TestStatsMigrateFrom006 builds a store with migrations 1-6 (the
// aggregates kept by 006's upserting triggers), writes leads through
// every change those triggers count, and lets Open migrate it: the report
// must be the rows' at once (007 moves nothing), and the new triggers
// must go on from there, unfolded and folded.
func TestStatsMigrateFrom006(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "v6.db")
	raw := applyMigrations(t, p, 6)
	const t0 = 1_700_000_000_000
	for i := range 40 {
		state := []string{"accepted", "duplicate", "rejected", "validation_error", "failed", "queued", "retry_wait", "in_flight"}[i%8]
		if _, err := raw.Exec(`INSERT INTO leads (external_id, payload, idempotency_key, state, created_at, updated_at,
				source, funnel, sub_id, country, accepted_at)
			VALUES (?, x'7b7d', ?, 'queued', ?, ?, ?, 'quiz', ?, ?, NULL)`,
			fmt.Sprintf("V6-%d", i), fmt.Sprintf("k%d", i), t0+int64(i)*45_000, t0, []string{"fb", "gg", "tt"}[i%3],
			fmt.Sprintf("s%d", i%5), []string{"DE", "UA"}[i%2]); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`UPDATE leads SET state = ?, accepted_at = CASE WHEN ? = 'accepted' THEN ? END
			WHERE external_id = ?`, state, state, t0+int64(i)*45_000+500, fmt.Sprintf("V6-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`UPDATE leads SET first_status_at = accepted_at + 7000 WHERE state = 'accepted' AND id % 3 = 0`,
		`UPDATE leads SET ftd_at = accepted_at + 90000 WHERE state = 'accepted' AND id % 2 = 0`,
		`UPDATE leads SET source = 'moved' WHERE id = 9`,
		`DELETE FROM leads WHERE id = 17`,
	} {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	if n, err := rawCount(raw, `SELECT COUNT(*) FROM source_stats`); err != nil || n == 0 {
		t.Fatalf("006 kept %d source_stats rows (%v)", n, err)
	}
	raw.Close()

	db := MustOpenPath(t, p, store.Options{Now: newClock().Now})
	if v := queryInt(t, db, `SELECT MAX(version) FROM schema_migrations`); int(v) != SchemaVersion() {
		t.Fatalf("version %d after the migration, want %d", v, SchemaVersion())
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'stats_delta'`); n != 0 {
		t.Fatal("006's stats_delta view survived the migration")
	}
	// Windows read from the minutes and from 011's coarse spans, which
	// the migration summed from 006's minutes.
	sinces := []time.Time{fromMS(t0 + 20*45_000), fromMS(t0 - 7*3_600_000), fromMS(t0 + 7*60_000)}
	assertReport(t, db, "the migration", sinces...)
	// The same kinds of change through 007's triggers, on leads 006
	// counted: a status, an ftd, a move, a delete, a resubmission.
	for _, stmt := range []string{
		`UPDATE leads SET first_status_at = accepted_at + 700000 WHERE state = 'accepted' AND first_status_at IS NULL`,
		`UPDATE leads SET ftd_at = accepted_at + 3600000 WHERE state = 'accepted' AND ftd_at IS NULL AND id % 4 = 1`,
		`UPDATE leads SET sub_id = 'moved', created_at = created_at + 3600000 WHERE id IN (2, 3, 4)`,
		`DELETE FROM leads WHERE id = 25`,
		`UPDATE leads SET state = 'queued', accepted_at = NULL, first_status_at = NULL, ftd_at = NULL WHERE id = 33`,
	} {
		if _, err := db.writer.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
		assertReport(t, db, stmt, sinces...)
	}
	if _, err := db.foldStats(ctx); err != nil {
		t.Fatal(err)
	}
	assertReport(t, db, "the fold", sinces...)
}

// rawCount is one integer from a *sql.DB opened outside the package's
// handles.
func rawCount(raw *sql.DB, q string) (int64, error) {
	var n int64
	err := raw.QueryRow(q).Scan(&n)
	return n, err
}

// TestStatsFoldTwoHandles writes leads through two handles on one file
// while both fold, from their loops and from goroutines calling foldStats
// after every write: a delta folded twice, or deleted without being
// added, shows in the report.
func TestStatsFoldTwoHandles(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "shared.db")
	clk := newClock()
	// Two handles hammer one file's write lock here, and SQLite's busy
	// wait is not fair: under the race detector, beside the package's
	// other tests on two cores, one handle has waited past the default
	// 5 s. What this test checks is the folds' sums, so it waits longer.
	opt := store.Options{Now: clk.Now, BusyTimeout: time.Minute}
	a := MustOpenPath(t, p, opt)
	b := MustOpenPath(t, p, opt)
	stop := make(chan struct{})
	var folders sync.WaitGroup
	folds := make([]int, 4)
	errs := make(chan error, 6)
	// Each folder folds when a writer kicks it (all four at once, so folds
	// of both handles meet), and the loops fold on their own meanwhile.
	kicks := make([]chan struct{}, 4)
	kick := func() {
		for _, k := range kicks {
			select {
			case k <- struct{}{}:
			default:
			}
		}
	}
	for i, db := range []*DB{a, b, a, b} {
		kicks[i] = make(chan struct{}, 1)
		folders.Add(1)
		go func() {
			defer folders.Done()
			for {
				select {
				case <-stop:
					return
				case <-kicks[i]:
				}
				n, err := db.foldStats(ctx)
				if err != nil {
					errs <- err
					return
				}
				folds[i] += n
			}
		}()
	}
	var writers sync.WaitGroup
	for w, db := range []*DB{a, b} {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for round := range 8 {
				ps := make([][]byte, 20)
				for i := range ps {
					ps[i] = sourcePayload(fmt.Sprintf("F%d-%d-%d", w, round, i), []string{"fb", "gg"}[i%2], "quiz",
						fmt.Sprintf("s%d", i%3), "DE")
				}
				if _, _, err := db.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
					errs <- err
					return
				}
				owner := fmt.Sprintf("w%d", w)
				leads, err := db.Claim(ctx, owner, clk.Now(), time.Hour, 20)
				if err != nil {
					errs <- err
					return
				}
				for i, l := range leads {
					out := []crm.State{crm.StateAccepted, crm.StateRejected, crm.StateFailed}[i%3]
					if err := db.Record(ctx, owner, crm.AttemptResult{CRMID: "crm-" + l.ExternalID,
						Attempt: crm.Attempt{LeadID: l.ID, Outcome: out, HTTPStatus: 200}}); err != nil {
						errs <- err
						return
					}
					kick()
				}
				var evs []crm.CallbackEvent
				for i, l := range leads {
					if i%3 == 0 {
						evs = append(evs, callback("crm-"+l.ExternalID, "", "status_changed", []string{"contacted", "ftd"}[i%2], 1_700_000_000))
					}
				}
				if _, err := db.SaveCallbacks(ctx, evs); err != nil {
					errs <- err
					return
				}
				kick()
			}
		}()
	}
	writers.Wait()
	close(stop)
	folders.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, n := range folds {
		total += n
	}
	if total == 0 {
		t.Fatal("the folding goroutines folded nothing")
	}
	// Whatever the loops left unfolded, both handles answer the rows.
	assertReport(t, a, "two handles folding")
	assertReport(t, b, "two handles folding")
	if n := queryInt(t, a, `SELECT COUNT(*) FROM leads WHERE first_status_at IS NOT NULL`); n == 0 {
		t.Fatal("no lead got a status: the callbacks did not link")
	}
	// And the loops fold what is left, without being asked.
	poll.Until(t, "the fold loops to empty stats_deltas", func() bool {
		return queryInt(t, a, `SELECT COUNT(*) FROM stats_deltas`) == 0
	})
	assertReport(t, a, "the loops' fold")
}

// TestReportCoarseAgrees checks a window's report read from the coarse
// spans (migration 011) against the leads, for windows starting on every
// kind of boundary and between them over a Filled day and more: what Fill
// summed, and what the fold added from live writes in the same minutes.
func TestReportCoarseAgrees(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	if err := db.Fill(ctx, 3000, 1000); err != nil {
		t.Fatal(err)
	}
	// Live leads over the last 25 hours' end, through the triggers and
	// the fold, in the minutes Fill wrote too.
	clk.Advance(-30 * time.Minute)
	for i := range 40 {
		if _, err := db.Enqueue(ctx, sourcePayload(fmt.Sprintf("C-%d", i), []string{"fb", "gg"}[i%2], "quiz",
			fmt.Sprintf("s%d", i%3), "DE"), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(47 * time.Second)
	}
	leads, err := db.Claim(ctx, "t", clk.Now(), time.Hour, 40)
	if err != nil || len(leads) != 40 {
		t.Fatal(len(leads), err)
	}
	for i, l := range leads {
		out := []crm.State{crm.StateAccepted, crm.StateRejected}[i%2]
		if err := db.Record(ctx, "t", crm.AttemptResult{CRMID: "crm-" + l.ExternalID,
			Attempt: crm.Attempt{LeadID: l.ID, Outcome: out, HTTPStatus: 200}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.foldStats(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, `SELECT COUNT(DISTINCT span) FROM source_stats_coarse`); n != int64(len(store.ReportSpans)) {
		t.Fatalf("source_stats_coarse has %d spans, want %d", n, len(store.ReportSpans))
	}
	now := clk.Now()
	var sinces []time.Time
	for d := time.Duration(0); d <= 25*time.Hour; d += 37 * time.Minute {
		sinces = append(sinces, now.Add(-d))
	}
	sinces = append(sinces, now.Truncate(time.Hour), now.Truncate(10*time.Minute), now.Truncate(24*time.Hour),
		now.Add(-24*time.Hour).Truncate(time.Hour).Add(-time.Minute), now.Add(-5*time.Minute))
	assertReport(t, db, "coarse spans", sinces...)
}
