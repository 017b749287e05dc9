package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// connectURL opens a connection of its own to the database at u, closed
// when t ends.
func connectURL(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// stallAtCommit makes every transaction that inserts a row of table
// matching when (an SQL condition on NEW) wait at its COMMIT, after all
// its statements (and any lock held only while they run): the row has its
// id and its transaction its xid, and nothing is visible yet. stalled
// says whether one waits there; resume lets them all commit.
func stallAtCommit(t *testing.T, u, table, when string) (stalled func() bool, resume func()) {
	t.Helper()
	ctx := context.Background()
	conn := connectURL(t, u)
	const key = 7242009
	for _, q := range []string{
		fmt.Sprintf(`CREATE FUNCTION lw_test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN PERFORM pg_advisory_xact_lock(%d); RETURN NULL; END $$`, key),
		`CREATE CONSTRAINT TRIGGER lw_test_stall AFTER INSERT ON ` + table + `
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (` + when + `) EXECUTE FUNCTION lw_test_stall()`,
		fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, key),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("stall %s: %s: %v", table, q, err)
		}
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`SELECT pg_advisory_unlock(%d)`, key)); err != nil {
				t.Errorf("resume the stalled commit: %v", err)
			}
		})
	}
	t.Cleanup(resume)
	watcher := connectURL(t, u)
	stalled = func() bool {
		var n int
		if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND NOT granted AND classid = 0 AND objid = $1 AND objsubid = 1`, key).Scan(&n); err != nil {
			t.Fatalf("look for the stalled commit: %v", err)
		}
		return n > 0
	}
	return stalled, resume
}

// stallDuring runs save in the background until it waits at its commit
// (stalled), and returns the channel its error comes on.
func stallDuring(t *testing.T, stalled func() bool, save func() error) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- save() }()
	poll.Until(t, "the first save to stall at its commit, its id taken", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the first save returned without stalling: %v", err)
		default:
		}
		return stalled()
	})
	return done
}

// tailCursor follows one of tail --all's kinds by its ids, as cmd tail
// does: each read starts after the last id returned.
type tailCursor struct {
	after int64
	ids   []int64
	read  func(after int64) ([]int64, error)
}

func (c *tailCursor) next(t *testing.T, step string) {
	t.Helper()
	ids, err := c.read(c.after)
	if err != nil {
		t.Fatalf("%s: read after %d: %v", step, c.after, err)
	}
	for _, id := range ids {
		if id <= c.after {
			t.Fatalf("%s: read after %d returned id %d", step, c.after, id)
		}
		c.ids = append(c.ids, id)
		c.after = id
	}
}

// TestTailRefusalsOutOfOrderCommit: a refusal whose transaction is still
// open holds a smaller id than one another instance commits meanwhile. A
// tail reading RefusalsAfter then must withhold the later one, and return
// both, in id order, once the first commits: it is never passed over.
func TestTailRefusalsOutOfOrderCommit(t *testing.T) {
	ctx := context.Background()
	db1, db2, u := openTwo(t)
	save := func(db *DB, code string) error { return db.SaveRefusal(ctx, crm.Refusal{Code: code, HTTPStatus: 401}) }
	if err := save(db1, "before"); err != nil {
		t.Fatal(err)
	}
	tail := &tailCursor{read: func(after int64) ([]int64, error) {
		rs, err := db2.RefusalsAfter(ctx, after, 100)
		var ids []int64
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids, err
	}}
	poll.Until(t, "the first refusal to reach the tail", func() bool {
		tail.next(t, "start")
		return len(tail.ids) == 1
	})

	stalled, resume := stallAtCommit(t, u, "refusals", `NEW.code = 'slow'`)
	slow := stallDuring(t, stalled, func() error { return save(db1, "slow") })
	// The order lock is released before commit: the other instance's
	// refusal does not wait for the stalled one.
	if err := save(db2, "fast"); err != nil {
		t.Fatal(err)
	}
	tail.next(t, "the later refusal committed, the earlier open")
	if len(tail.ids) != 1 {
		resume()
		t.Fatalf("the tail returned %v while a smaller id was still committing: its cursor passed it", tail.ids)
	}
	resume()
	if err := <-slow; err != nil {
		t.Fatalf("the stalled save: %v", err)
	}
	poll.Until(t, "both refusals to reach the tail", func() bool {
		tail.next(t, "both committed")
		return len(tail.ids) >= 3
	})
	all, err := db2.Refusals(ctx, crm.EventQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, r := range slices.Backward(all) {
		want = append(want, r.ID)
	}
	if !slices.Equal(tail.ids, want) {
		t.Fatalf("the tail returned %v; want every refusal stored, %v", tail.ids, want)
	}
}

// TestTailForwardAttemptsOutOfOrderCommit is the refusals' test for
// forward attempts: one instance's record of a delivery is still open
// when another's record of a later one commits.
func TestTailForwardAttemptsOutOfOrderCommit(t *testing.T) {
	ctx := context.Background()
	db1, db2, u := openTwo(t)
	if err := db1.StartForwarding(ctx); err != nil {
		t.Fatal(err)
	}
	var evs []crm.CallbackEvent
	for _, iid := range []string{"first", "slow", "fast"} {
		evs = append(evs, crm.CallbackEvent{InternalID: iid, Event: "status_changed", Timestamp: "1", RawBody: []byte(`{}`)})
	}
	if _, err := db1.SaveCallbacks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var ds []crm.Delivery
	poll.Until(t, "the three callbacks to be claimable", func() bool {
		got, err := db1.ClaimDeliveries(ctx, "a", time.Now(), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
		return len(ds) == 3
	})
	record := func(db *DB, d crm.Delivery) error {
		lost, err := db.RecordDeliveries(ctx, "a", []crm.DeliveryResult{{ID: d.ID, At: time.Now(), Status: 200, Delivered: true}})
		if err == nil && len(lost) > 0 {
			err = fmt.Errorf("lease of %v lost", lost)
		}
		return err
	}
	if err := record(db1, ds[0]); err != nil {
		t.Fatal(err)
	}
	tail := &tailCursor{read: func(after int64) ([]int64, error) {
		as, err := db2.ForwardAttemptsAfter(ctx, after, 100)
		var ids []int64
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		return ids, err
	}}
	poll.Until(t, "the first attempt to reach the tail", func() bool {
		tail.next(t, "start")
		return len(tail.ids) == 1
	})

	stalled, resume := stallAtCommit(t, u, "forward_attempts", fmt.Sprintf(`NEW.delivery_id = %d`, ds[1].ID))
	slow := stallDuring(t, stalled, func() error { return record(db1, ds[1]) })
	if err := record(db2, ds[2]); err != nil {
		t.Fatal(err)
	}
	tail.next(t, "the later attempt committed, the earlier open")
	if len(tail.ids) != 1 {
		resume()
		t.Fatalf("the tail returned %v while a smaller id was still committing: its cursor passed it", tail.ids)
	}
	resume()
	if err := <-slow; err != nil {
		t.Fatalf("the stalled record: %v", err)
	}
	poll.Until(t, "both attempts to reach the tail", func() bool {
		tail.next(t, "both committed")
		return len(tail.ids) >= 3
	})
	var got []int64
	for _, d := range ds {
		as, err := db2.pool.Query(ctx, `SELECT id FROM forward_attempts WHERE delivery_id = $1`, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(as, pgx.RowTo[int64])
		if err != nil || len(ids) != 1 {
			t.Fatalf("attempts of delivery %d: %v, %v; want one", d.ID, ids, err)
		}
		got = append(got, ids[0])
	}
	slices.Sort(got)
	if !slices.Equal(tail.ids, got) {
		t.Fatalf("the tail returned %v; want every attempt stored, %v", tail.ids, got)
	}
}

// TestTailOrderLockReleasedOnError: a save that fails while it holds its
// table's order lock (a trigger raising between the lock and its release)
// does not keep the lock on a connection back in the pool: another
// session can take it, and the next save succeeds.
func TestTailOrderLockReleasedOnError(t *testing.T) {
	ctx := context.Background()
	db, u := openTest(t, store.Options{})
	if err := db.StartForwarding(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{{InternalID: "x", Event: "e", Timestamp: "1", RawBody: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	var ds []crm.Delivery
	poll.Until(t, "the callback to be claimable", func() bool {
		var err error
		if ds, err = db.ClaimDeliveries(ctx, "a", time.Now(), time.Minute, 10); err != nil {
			t.Fatal(err)
		}
		return len(ds) == 1
	})
	conn := connectURL(t, u)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION lw_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'boom (test)'; END $$`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, table string
		key         int64
		save        func() error
	}{
		{"refusal", "refusals", refusalOrderLock, func() error { return db.SaveRefusal(ctx, crm.Refusal{Code: "x"}) }},
		{"forward attempt", "forward_attempts", attemptOrderLock, func() error {
			_, err := db.RecordDeliveries(ctx, "a", []crm.DeliveryResult{{ID: ds[0].ID, At: time.Now(), Delivered: true}})
			return err
		}},
	} {
		// A BEFORE ROW trigger runs once the row's id is drawn: inside
		// the lock.
		if _, err := conn.Exec(ctx, `CREATE TRIGGER lw_test_boom BEFORE INSERT ON `+c.table+`
			FOR EACH ROW EXECUTE FUNCTION lw_test_boom()`); err != nil {
			t.Fatal(err)
		}
		if err := c.save(); err == nil {
			t.Fatalf("%s: saved through a trigger that raises", c.name)
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, c.key).Scan(&got); err != nil || !got {
			t.Fatalf("%s: another session takes the order lock after a failed save: %v, %v; want true", c.name, got, err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, c.key); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `DROP TRIGGER lw_test_boom ON `+c.table); err != nil {
			t.Fatal(err)
		}
		if err := c.save(); err != nil {
			t.Fatalf("%s: the save after the failed one: %v", c.name, err)
		}
	}
}

// TestTailIDsFollowXids checks the order locks' invariant directly: after
// refusals and forward results written at once by several goroutines of
// two DBs, no row has a smaller transaction id than a row with a smaller
// id (the rows of one record share one).
func TestTailIDsFollowXids(t *testing.T) {
	ctx := context.Background()
	db1, db2, _ := openTwo(t)
	const writers, per = 8, 40
	if err := db1.StartForwarding(ctx); err != nil {
		t.Fatal(err)
	}
	evs := make([]crm.CallbackEvent, writers*per)
	for i := range evs {
		evs[i] = crm.CallbackEvent{InternalID: fmt.Sprint("crm-", i), Event: "e", Timestamp: "1", RawBody: []byte(`{}`)}
	}
	if _, err := db1.SaveCallbacks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var ds []crm.Delivery
	poll.Until(t, "every callback to be claimed", func() bool {
		got, err := db1.ClaimDeliveries(ctx, "a", time.Now(), time.Hour, len(evs))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
		return len(ds) == len(evs)
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := []*DB{db1, db2}[w%2]
			for i := w * per; i < (w+1)*per; i++ {
				if err := db.SaveRefusal(ctx, crm.Refusal{Code: "x"}); err != nil {
					errs <- err
					return
				}
				if _, err := db.RecordDeliveries(ctx, "a", []crm.DeliveryResult{{ID: ds[i].ID, At: time.Now(), Delivered: true}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, table := range []string{"refusals", "forward_attempts"} {
		var rows, inverted int
		if err := db1.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE txid < prev)
			FROM (SELECT txid, lag(txid) OVER (ORDER BY id) AS prev FROM `+table+`) s`).Scan(&rows, &inverted); err != nil {
			t.Fatal(err)
		}
		if rows != writers*per || inverted != 0 {
			t.Errorf("%s: %d rows, %d with a smaller xid than the row before them; want %d, none", table, rows, inverted, writers*per)
		}
	}
}

// openTwo opens a fresh test database twice, as two instances would,
// and returns its URL too.
func openTwo(t *testing.T) (*DB, *DB, string) {
	t.Helper()
	db1, u := openTest(t, store.Options{})
	db2, err := Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	return db1, db2, u
}
