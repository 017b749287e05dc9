package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// sourcedJSON is a valid lead payload naming a source and a sub_id.
func sourcedJSON(ext, source, subID string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+4915112345678","country":"DE","source":%q,"sub_id":%q}`,
		ext, source, subID))
}

// TestOpsHoldRacesClaim: an operator holds 300 leads one Act at a time
// while another instance (its own pool) claims them as fast as it can. A
// lead is never both claimed and held: each is either claimed (and Act
// saw in_flight, a wrong state) or held (and never handed to the claimer).
func TestOpsHoldRacesClaim(t *testing.T) {
	db, u := openTest(t, store.Options{})
	other, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const n = 300
	enqueueN(t, db, "race", n)
	ctx := context.Background()

	var (
		claimed = map[string]bool{}
		done    atomic.Bool
		wg      sync.WaitGroup
		cerr    error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			got, err := other.Claim(ctx, "claimer", time.Now(), time.Hour, 3)
			if err != nil {
				cerr = err
				return
			}
			for _, l := range got {
				claimed[l.ExternalID] = true
			}
			if len(got) == 0 {
				return // every lead is held or claimed
			}
		}
	}()
	held := map[string]bool{}
	for i := n - 1; i >= 0; i-- { // from the back: the claimer works from the front
		ext := fmt.Sprintf("race-%d", i)
		res, err := db.Act(ctx, crm.ActHold, []string{ext})
		if err != nil {
			t.Fatal(err)
		}
		r := res[0]
		switch {
		case r.Err == nil:
			if r.Before != crm.StateQueued || r.After != crm.StateHeld {
				t.Fatalf("%s: applied %s -> %s, want queued -> held", ext, r.Before, r.After)
			}
			held[ext] = true
		case errors.Is(r.Err, crm.ErrWrongState):
			if r.Before != crm.StateInFlight {
				t.Fatalf("%s: refused from %s, want in_flight", ext, r.Before)
			}
		default:
			t.Fatalf("%s: %v", ext, r.Err)
		}
	}
	done.Store(true)
	wg.Wait()
	if cerr != nil {
		t.Fatal(cerr)
	}
	for i := range n {
		ext := fmt.Sprintf("race-%d", i)
		l, err := db.Lead(ctx, ext)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case held[ext] && claimed[ext]:
			t.Fatalf("%s was both held and claimed", ext)
		case held[ext]:
			if l.State != crm.StateHeld || l.Hold != crm.HoldOperator || l.LeaseOwner != "" {
				t.Fatalf("%s held by Act but is %s (hold %q, lease %q)", ext, l.State, l.Hold, l.LeaseOwner)
			}
		case claimed[ext]:
			if l.State != crm.StateInFlight || l.Hold != "" {
				t.Fatalf("%s claimed but is %s (hold %q)", ext, l.State, l.Hold)
			}
		default:
			t.Fatalf("%s neither held nor claimed: %s", ext, l.State)
		}
	}
	if len(held) == 0 || len(claimed) == 0 {
		t.Logf("no real race this run: %d held, %d claimed", len(held), len(claimed))
	}
}

// TestOpsPauseRacesEnqueue: four goroutines enqueue leads of one source
// through other instances while Pause runs. Every lead of the source that
// exists after Pause returned is held (none queued, whichever side
// committed first), and every lead enqueued after Pause returned comes
// back held from Enqueue itself.
func TestOpsPauseRacesEnqueue(t *testing.T) {
	db, u := openTest(t, store.Options{})
	ctx := context.Background()
	const writers, batches, size = 4, 20, 10
	var (
		paused  atomic.Bool
		started = make(chan struct{}, writers)
		wg      sync.WaitGroup
		errc    = make(chan error, writers)
	)
	for w := range writers {
		s, err := Open(ctx, u, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				after := paused.Load() // Pause had returned before this batch began
				ps := make([][]byte, size)
				for i := range ps {
					ps[i] = sourcedJSON(fmt.Sprintf("p-%d-%d-%d", w, b, i), "hot", "s1")
				}
				leads, errs, err := s.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
				if err != nil {
					errc <- err
					return
				}
				for i, l := range leads {
					if errs[i] != nil {
						errc <- errs[i]
						return
					}
					if after && (l.State != crm.StateHeld || l.Hold != crm.HoldSource || l.Reason != "paused: source hot") {
						errc <- fmt.Errorf("%s enqueued after Pause returned: %s (hold %q, reason %q)", l.ExternalID, l.State, l.Hold, l.Reason)
						return
					}
				}
				if b == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range writers {
		<-started // every writer is under way
	}
	if _, err := db.Pause(ctx, crm.Pause{Field: crm.GroupSource, Value: "hot"}); err != nil {
		t.Fatal(err)
	}
	paused.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	var queued, held int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'queued'),
		count(*) FILTER (WHERE state = 'held' AND hold = 'source') FROM leads WHERE source = 'hot'`).Scan(&queued, &held); err != nil {
		t.Fatal(err)
	}
	if queued != 0 || held != writers*batches*size {
		t.Fatalf("%d queued, %d held of %d leads of a paused source; want none queued", queued, held, writers*batches*size)
	}
	if got, err := db.Claim(ctx, "w", time.Now(), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claim on a paused source: %d leads, %v; want none", len(got), err)
	}
}

// TestOpsSourceDeltasDoNotBlock: two transactions on their own
// connections change leads of one source (so the same report groups) at
// once; the second, with a lock timeout of 50 ms, commits while the first
// is still open: the report's counters are appended, never a row both
// update. Report then counts both.
func TestOpsSourceDeltasDoNotBlock(t *testing.T) {
	db, u := openTest(t, store.Options{})
	ctx := context.Background()
	for _, ext := range []string{"d-1", "d-2"} {
		if _, err := db.Enqueue(ctx, sourcedJSON(ext, "same", "sub"), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	c1, c2 := connect(), connect()
	accept := `UPDATE leads SET state = 'accepted', accepted_at = 1, updated_at = 1 WHERE external_id = $1`
	tx1, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	if _, err := tx1.Exec(ctx, accept, "d-1"); err != nil {
		t.Fatal(err)
	}
	tx2, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(ctx)
	if _, err := tx2.Exec(ctx, `SET LOCAL lock_timeout = '50ms'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, accept, "d-2"); err != nil {
		t.Fatalf("second writer of one source while the first is open: %v", err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatalf("commit the second writer: %v", err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, fold := range []bool{false, true} {
		if fold {
			if err := db.fold(ctx); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := db.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Value != "same" || rows[0].Accepted != 2 || rows[0].Sent != 2 {
			t.Fatalf("report (folded %v) = %+v, want one row: same, 2 accepted", fold, rows)
		}
	}
	var deltas int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM source_deltas`).Scan(&deltas); err != nil || deltas != 0 {
		t.Fatalf("%d source deltas left after a fold, %v", deltas, err)
	}
}

// TestOpsMigrationConvertsExisting: a database at schema 2 with leads,
// attempts, callbacks and refusals is converted by migration 003: the
// source columns come from the payloads (string, number, other, a payload
// that is not JSON, a long value cut), accepted_at, first_status_at and
// ftd_at from the history, the report and the throughput counters from
// the rows.
func TestOpsMigrationConvertsExisting(t *testing.T) {
	u := storetest.Postgres(t)
	ctx := context.Background()
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	long := ""
	for range 70 {
		long += "äb" // 3 bytes a pair: 210 bytes, cut to 200
	}
	setup := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`}
	for _, m := range ms[:2] {
		setup = append(setup, m.SQL, fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', 0)`, m.Version, m.Name))
	}
	setup = append(setup,
		`INSERT INTO leads (id, external_id, payload, idempotency_key, state, crm_id, created_at, updated_at) VALUES
			(1, 'm-1', convert_to('{"external_id":"m-1","source":"google","funnel":7,"sub_id":{"x":1},"country":"DE"}', 'UTF8'), 'k1', 'accepted', 'c-1', 60000, 61000),
			(2, 'm-2', '\xfffe'::bytea, 'k2', 'rejected', '', 60500, 62000),
			(3, 'm-3', convert_to('{"external_id":"m-3","source":"`+long+`","sub_id":-1.5e3}', 'UTF8'), 'k3', 'queued', '', 120000, 120000),
			(4, 'm-4', convert_to('{"external_id":"m-4","source":"google"}', 'UTF8'), 'k4', 'accepted', 'c-4', 60000, 65000)`,
		`INSERT INTO attempts (lead_id, kind, number, idempotency_key, started_at, http_status, outcome) VALUES
			(1, 'send', 1, 'k1', 61000, 200, 'accepted'), (2, 'send', 1, 'k2', 62000, 200, 'rejected'),
			(4, 'send', 1, 'k4', 64000, 0, 'retry_wait'), (4, 'send', 2, 'k4', 65000, 200, 'accepted')`,
		`INSERT INTO callbacks (dedup_key, internal_id, event, status, timestamp, received_at, raw_body, lead_id) VALUES
			('c-1:a:1', 'c-1', 'a', 'new', '1', 64000, '', 1), ('c-1:b:2', 'c-1', 'b', 'FTD', '2', 90000, '', 1),
			('c-4:a:1', 'c-4', 'a', '', '1', 70000, '', 4)`,
		`INSERT INTO refusals (at, code) VALUES (61500, 'bad_signature')`,
	)
	for _, q := range setup {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.80s: %v", q, err)
		}
	}
	db, err := Open(ctx, u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cut := crm.CutGroupValue(long)
	want := map[string]crm.Lead{
		"m-1": {Source: "google", Funnel: "7", Country: "DE", AcceptedAt: fromMS(61000), FirstStatusAt: fromMS(64000)},
		"m-2": {},
		"m-3": {Source: cut, SubID: "-1.5e3"},
		"m-4": {Source: "google", AcceptedAt: fromMS(65000)},
	}
	for ext, w := range want {
		l, err := db.Lead(ctx, ext)
		if err != nil {
			t.Fatal(err)
		}
		if l.Source != w.Source || l.Funnel != w.Funnel || l.SubID != w.SubID || l.Country != w.Country ||
			!l.AcceptedAt.Equal(w.AcceptedAt) || !l.FirstStatusAt.Equal(w.FirstStatusAt) || l.Hold != "" {
			t.Errorf("%s: %q %q %q %q accepted %v first status %v; want %q %q %q %q %v %v", ext,
				l.Source, l.Funnel, l.SubID, l.Country, l.AcceptedAt, l.FirstStatusAt,
				w.Source, w.Funnel, w.SubID, w.Country, w.AcceptedAt, w.FirstStatusAt)
		}
	}
	rows, err := db.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
	if err != nil {
		t.Fatal(err)
	}
	var fs [crm.LatencyBuckets]int
	fs[crm.LatencyBucket(3*time.Second)] = 1
	wantRows := []crm.ReportRow{
		{Value: "google", Sent: 2, Accepted: 2, WithStatus: 1, FTD: 1, FirstStatus: fs},
		{Value: "", Sent: 1, Rejected: 1},
	}
	if fmt.Sprint(rows) != fmt.Sprint(wantRows) {
		t.Errorf("report after the migration:\n%+v\nwant\n%+v", rows, wantRows)
	}
	// Minute buckets: m-1 and m-4 were created in the minute at 60 s.
	since, err := db.Report(ctx, crm.ReportQuery{By: crm.GroupSource, Since: fromMS(60000)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(since) != fmt.Sprint(wantRows) {
		t.Errorf("report since the first minute:\n%+v\nwant\n%+v", since, wantRows)
	}
	p, err := db.Pulse(ctx, time.UnixMilli(70000))
	if err != nil {
		t.Fatal(err)
	}
	if p.LastAttempt.Unix() != 65 || p.LastAnswered.Unix() != 65 || p.AttemptsMin != 4 || p.UnansweredMin != 1 ||
		p.AcceptedMin != 2 || p.RefusedMin != 1 || p.Unanswered != 0 || p.LastCallback.Unix() != 70 || p.CallbacksMin != 2 {
		t.Errorf("pulse from the backfilled counters: %+v", p)
	}
	// A change after the migration moves the report through the triggers.
	if _, err := db.Act(ctx, crm.ActCancel, []string{"m-3"}); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Report(ctx, crm.ReportQuery{By: crm.GroupSource})
	if err != nil || len(rows) != 3 || rows[2].Value != cut || rows[2].Failed != 1 {
		t.Fatalf("report after a cancel: %+v, %v; want the cut source with one failed", rows, err)
	}
}
