package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// fillBatch is how many rows Fill writes per transaction: large enough
// that fsyncs do not matter, small enough to keep the WAL modest.
const fillBatch = 50000

// Fill appends a synthetic campaign to the database — leads leads and callbacks
// callbacks spread over the 24 hours before now — for benchmarks, the
// dashboard's budget checks and demos. It writes in large transactions
// with prepared statements and skips the enqueue gate, so a million rows
// take seconds. The mix is what a launch looks like mid-way: mostly
// accepted, some duplicates, validation errors, rejections and failures,
// a backlog of queued and retry_wait leads and a few in flight; one send
// attempt per lead that was sent; callbacks mostly naming accepted leads by
// CRM id (some also by external id), about 3% unmatched. Counters are kept
// by the same triggers as every other write. Repeated calls append (ids
// continue after the highest one).
func (db *DB) Fill(ctx context.Context, leads, callbacks int) error {
	if db.readOnly {
		return fmt.Errorf("fill: %w", store.ErrReadOnly)
	}
	var base int64
	if err := db.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM leads`).Scan(&base); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	var cbBase int64
	if err := db.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM callbacks`).Scan(&cbBase); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	// A big page cache for the writer while filling: the indexes take
	// random keys, and with SQLite's default 2 MB cache most inserts would
	// wait for a page read. Restored afterwards to keep the process small.
	var cache int64
	if err := db.writer.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	if _, err := db.writer.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	defer db.writer.ExecContext(context.Background(), `PRAGMA cache_size = `+strconv.FormatInt(cache, 10))
	rng := rand.New(rand.NewPCG(uint64(base)+1, uint64(cbBase)+7))
	now := db.now()
	start := now.Add(-24 * time.Hour)
	span := int64(24 * time.Hour / time.Millisecond)

	for done := 0; done < leads; done += fillBatch {
		n := min(fillBatch, leads-done)
		if err := fillLeads(ctx, db, rng, base+int64(done), n, start, span, now); err != nil {
			return fmt.Errorf("fill leads: %w", err)
		}
	}
	total := base + int64(leads)
	for done := 0; done < callbacks; done += fillBatch {
		n := min(fillBatch, callbacks-done)
		if err := fillCallbacks(ctx, db, rng, cbBase+int64(done), n, total, start, span); err != nil {
			return fmt.Errorf("fill callbacks: %w", err)
		}
	}
	db.notify()
	return nil
}

// fillState picks a state with a launch-like distribution.
func fillState(r *rand.Rand) crm.State {
	switch p := r.IntN(1000); {
	case p < 700:
		return crm.StateAccepted
	case p < 750:
		return crm.StateDuplicate
	case p < 800:
		return crm.StateValidationError
	case p < 850:
		return crm.StateRejected
	case p < 880:
		return crm.StateFailed
	case p < 950:
		return crm.StateQueued
	case p < 990:
		return crm.StateRetryWait
	default:
		return crm.StateInFlight
	}
}

// fillExternalID names the i-th synthetic lead (1-based, = its row id when
// the store started empty).
func fillExternalID(i int64) string { return "fill-" + strconv.FormatInt(i, 10) }

func fillLeads(ctx context.Context, db *DB, r *rand.Rand, from int64, n int, start time.Time, span int64, now time.Time) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO leads
		(external_id, payload, idempotency_key, state, crm_id, reason, attempts, next_attempt_at,
		 last_http_status, lease_owner, lease_expires_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer ins.Close()
	att, err := tx.PrepareContext(ctx, `INSERT INTO attempts
		(lead_id, kind, number, idempotency_key, started_at, duration_us, http_status, outcome)
		VALUES (?, 'send', 1, ?, ?, ?, ?, ?)`)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer att.Close()
	for k := range n {
		i := from + int64(k) + 1
		ext := fillExternalID(i)
		created := ms(start) + r.Int64N(span)
		updated := min(created+r.Int64N(60000), ms(now))
		st := fillState(r)
		var (
			crmID, reason, owner string
			attempts, status     int
			next, lease          sql.NullInt64
		)
		switch st {
		case crm.StateQueued:
			next = sql.NullInt64{Int64: created, Valid: true}
			updated = created
		case crm.StateRetryWait:
			attempts, status = 1+r.IntN(4), 503
			next = sql.NullInt64{Int64: ms(now) + r.Int64N(600000), Valid: true}
		case crm.StateInFlight:
			attempts, owner = 1, "fill-worker"
			lease = sql.NullInt64{Int64: ms(now) + 30000, Valid: true}
			next = lease
		case crm.StateAccepted, crm.StateDuplicate:
			attempts, status, crmID = 1, 200, "crm-"+strconv.FormatInt(i, 10)
		case crm.StateValidationError:
			attempts, status, reason = 1, 422, "phone: invalid format"
		case crm.StateRejected:
			attempts, status, reason = 1, 200, "blocked country"
		case crm.StateFailed:
			attempts, status, reason = 5, 503, "gave up after 5 attempts"
		}
		payload := `{"external_id":"` + ext + `","phone":"+4915112345678","country":"DE","source":"fill"}`
		key := ext + "-" + strconv.FormatInt(created, 10) + "-00000000"
		var id int64
		if err := ins.QueryRowContext(ctx, ext, []byte(payload), key, string(st), crmID, reason, attempts, next,
			status, owner, lease, created, updated).Scan(&id); err != nil {
			return mapErr(ctx, err)
		}
		if st != crm.StateQueued && st != crm.StateInFlight {
			if _, err := att.ExecContext(ctx, id, key, updated-r.Int64N(1000), 20000+r.Int64N(100000), status, string(st)); err != nil {
				return mapErr(ctx, err)
			}
		}
	}
	return db.commit(ctx, tx)
}

func fillCallbacks(ctx context.Context, db *DB, r *rand.Rand, from int64, n int, leads int64, start time.Time, span int64) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO callbacks
		(dedup_key, internal_id, external_id, event, status, timestamp, event_time, received_at,
		 skew_ms, raw_body, secret_idx, lead_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer ins.Close()
	events := [...]string{"lead.created", "lead.qualified", "lead.contacted", "lead.converted", "lead.lost"}
	for k := range n {
		seq := from + int64(k) + 1
		received := ms(start) + r.Int64N(span)
		ev := events[r.IntN(len(events))]
		var (
			internal, ext string
			lead          sql.NullInt64
		)
		if leads > 0 && r.IntN(100) >= 3 {
			i := 1 + r.Int64N(leads)
			internal, lead = "crm-"+strconv.FormatInt(i, 10), sql.NullInt64{Int64: i, Valid: true}
			if r.IntN(2) == 0 {
				ext = fillExternalID(i)
			}
		} else {
			internal = "crm-unknown-" + strconv.FormatInt(seq, 10)
		}
		// The same event of a lead in the same second is one event (the
		// dedup key): draw it a second later, so Fill stores exactly n.
		for {
			ts := strconv.FormatInt(received/1000, 10)
			body := `{"internal_id":"` + internal + `","event":"` + ev + `","timestamp":` + ts + `}`
			res, err := ins.ExecContext(ctx, internal+":"+ev+":"+ts, internal, ext, ev, ev[5:], ts, received-r.Int64N(2000), received,
				r.Int64N(400)-200, []byte(body), lead)
			if err != nil {
				return mapErr(ctx, err)
			}
			stored, err := res.RowsAffected()
			if err != nil {
				return mapErr(ctx, err)
			}
			if stored == 1 {
				break
			}
			received += 1000
		}
	}
	return db.commit(ctx, tx)
}
