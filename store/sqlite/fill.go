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
// callbacks spread over the store.FillWindow before now — for benchmarks,
// the dashboard's budget checks and demos. It writes in large transactions
// with prepared statements and skips the enqueue gate, so a million rows
// take seconds. The leads are store.PickFillLead's (the mix of a launch
// mid-way, with source, funnel, sub_id and country, and for accepted ones
// their acceptance, first status and ftd times), with one send attempt per
// lead that was sent; an ftd is kept only while its ftd callback fits
// among the callbacks asked for. Callbacks mostly name leads by CRM id
// (some also by external id), about 3% unmatched. Counters are kept by
// the same triggers as every other write; the report's numbers by one
// grouped statement per batch (fillLeads). Repeated calls append (ids
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
	start := now.Add(-store.FillWindow)
	span := int64(store.FillWindow / time.Millisecond)

	// Every ftd lead gets its ftd callback among the callbacks asked for,
	// so no more of them than that.
	ftds := &fillFTDs{budget: callbacks}
	for done := 0; done < leads; done += fillBatch {
		n := min(fillBatch, leads-done)
		if err := fillLeads(ctx, db, rng, base+int64(done), n, now, ftds); err != nil {
			return fmt.Errorf("fill leads: %w", err)
		}
	}
	total := base + int64(leads)
	for done := 0; done < callbacks; done += fillBatch {
		n := min(fillBatch, callbacks-done)
		if err := fillCallbacks(ctx, db, rng, cbBase+int64(done), n, total, start, span, ftds); err != nil {
			return fmt.Errorf("fill callbacks: %w", err)
		}
	}
	db.notify()
	return nil
}

// fillSources and fillExternalID are the campaign's (store.PickFillLead),
// by the names this package's tests know them.
var (
	fillSources    = store.FillSources
	fillExternalID = store.FillExternalID
)

// fillMS is a fill time for a nullable column: zero is NULL.
func fillMS(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }

// fillLeads writes n leads (and their attempts) in one transaction. The
// report's and the attempts' throughput triggers are off for it (the
// 'leads_batch' gate, migrations 005 to 007), the throughput counted
// per second at the end; the batch's numbers are summed as it goes (statsAcc) and added
// at the end, one upsert per row of source_stats, the same sums the
// triggers would have made.
func fillLeads(ctx context.Context, db *DB, r *rand.Rand, from int64, n int, now time.Time, ftds *fillFTDs) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET n = 1 WHERE name = 'leads_batch'`); err != nil {
		return mapErr(ctx, err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO leads
		(external_id, payload, idempotency_key, state, crm_id, reason, attempts, next_attempt_at,
		 last_http_status, lease_owner, lease_expires_at, created_at, updated_at,
		 source, funnel, sub_id, country, accepted_at, first_status_at, ftd_at, crm_status)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
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
	acc := statsAcc{}
	type second struct{ sent, answered, accepted, failed int64 }
	perSec := map[int64]*second{}
	for k := range n {
		i := from + int64(k) + 1
		l := store.PickFillLead(r, i, now)
		if l.FTDAt != 0 && len(ftds.leads) >= ftds.budget {
			l.FTDAt = 0 // its ftd callback would not fit among those asked for
		}
		var crmStatus string
		switch {
		case l.FTDAt != 0:
			crmStatus = "ftd"
		case l.FirstStatusAt != 0:
			crmStatus = "contacted"
		}
		key := l.IdempotencyKey()
		acceptedAt, firstAt, ftdAt := fillMS(l.AcceptedAt), fillMS(l.FirstStatusAt), fillMS(l.FTDAt)
		var id int64
		if err := ins.QueryRowContext(ctx, l.ExternalID, l.Payload(), key, string(l.State), l.CRMID, l.Reason,
			l.Attempts, fillMS(l.NextAttemptAt), l.HTTPStatus, l.LeaseOwner, fillMS(l.LeaseExpiresAt),
			l.CreatedAt, l.UpdatedAt, l.Source, l.Funnel, l.SubID, l.Country,
			acceptedAt, firstAt, ftdAt, crmStatus).Scan(&id); err != nil {
			return mapErr(ctx, err)
		}
		acc.add(statsLead{l.CreatedAt, l.Source, l.Funnel, l.SubID, l.Country, l.State, acceptedAt, firstAt, ftdAt})
		if l.FTDAt != 0 {
			ftds.leads = append(ftds.leads, fillFTD{id, l.CRMID, l.FTDAt})
		}
		if l.Sent() {
			started := l.AttemptStartedAt
			if _, err := att.ExecContext(ctx, id, key, started, l.AttemptDurationUS, l.HTTPStatus, string(l.State)); err != nil {
				return mapErr(ctx, err)
			}
			sec := perSec[started/1000]
			if sec == nil {
				sec = &second{}
				perSec[started/1000] = sec
			}
			sec.sent++
			sec.answered += int64(boolInt(l.HTTPStatus > 0))
			sec.accepted += int64(boolInt(l.State == crm.StateAccepted))
			sec.failed += int64(boolInt(l.State == crm.StateFailed))
		}
	}
	if err := acc.flush(ctx, tx); err != nil {
		return mapErr(ctx, err)
	}
	// The attempts' throughput, as the attempts_throughput trigger counts
	// it (migration 005), once per second.
	add, err := tx.PrepareContext(ctx, `INSERT INTO throughput (sec, sent, answered, accepted, failed) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (sec) DO UPDATE SET sent = sent + excluded.sent, answered = answered + excluded.answered,
			accepted = accepted + excluded.accepted, failed = failed + excluded.failed`)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer add.Close()
	for s, c := range perSec {
		if _, err := add.ExecContext(ctx, s, c.sent, c.answered, c.accepted, c.failed); err != nil {
			return mapErr(ctx, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET n = 0 WHERE name = 'leads_batch'`); err != nil {
		return mapErr(ctx, err)
	}
	return db.commit(ctx, tx)
}

// fillFTDs are the ftd leads Fill made, whose ftd callbacks come first
// among the callbacks, at most budget of them.
type fillFTDs struct {
	budget int
	leads  []fillFTD
}

// fillFTD is an ftd lead: its id, CRM id and ftd time.
type fillFTD struct {
	id    int64
	crmID string
	at    int64
}

// fillCallbacks writes n callbacks: first the ftd callback of each ftd
// lead not yet given one (status "ftd", linked, received at its ftd_at:
// the status the lead's ftd_at says it reached), then random events of
// random leads, none of which says ftd.
func fillCallbacks(ctx context.Context, db *DB, r *rand.Rand, from int64, n int, leads int64, start time.Time, span int64, ftds *fillFTDs) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// As SaveCallbacks does: the per-row count triggers off for this
	// transaction (migration 004), the batch counted once at the end.
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET n = 1 WHERE name = 'callbacks_batch'`); err != nil {
		return mapErr(ctx, err)
	}
	perSec := map[int64]int64{}
	unmatched := 0
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
	k := 0
	for ; k < n && len(ftds.leads) > 0; k++ {
		f := ftds.leads[0]
		ftds.leads = ftds.leads[1:]
		ts := strconv.FormatInt(f.at/1000, 10)
		body := `{"internal_id":"` + f.crmID + `","event":"lead.ftd","status":"ftd","timestamp":` + ts + `}`
		if _, err := ins.ExecContext(ctx, f.crmID+":lead.ftd:"+ts, f.crmID, "", "lead.ftd", "ftd", ts, f.at, f.at,
			0, []byte(body), f.id); err != nil {
			return mapErr(ctx, err)
		}
		perSec[f.at/1000]++
	}
	for ; k < n; k++ {
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
				ext = store.FillExternalID(i)
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
		perSec[received/1000]++
		if !lead.Valid {
			unmatched++
		}
	}
	if _, err := tx.ExecContext(ctx, sqlCountBatch, n, unmatched); err != nil {
		return mapErr(ctx, err)
	}
	add, err := tx.PrepareContext(ctx, sqlThroughputAdd)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer add.Close()
	for sec, c := range perSec {
		if _, err := add.ExecContext(ctx, sec, c); err != nil {
			return mapErr(ctx, err)
		}
	}
	return db.commit(ctx, tx)
}
