package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
)

// fillBatch is how many leads (or callbacks) Fill writes per transaction.
const fillBatch = 100000

// Fill appends a synthetic campaign — leads leads and callbacks callbacks
// over the store.FillWindow before now — for benchmarks, budget checks and
// demos: store.PickFillLead's leads, as store/sqlite's Fill writes them,
// with one send attempt per lead that was sent; callbacks mostly naming
// accepted-range leads by CRM id (half also by external id), about 3%
// unmatched. Rows go in by COPY (leads and
// attempts directly, with ids after the highest; callbacks through a
// temporary table and one INSERT … ON CONFLICT DO NOTHING, so a drawn
// duplicate is redrawn and exactly callbacks are stored). The counting
// triggers are statement-level and fire for COPY too, so counts stay
// right, and so are the Sources report's aggregates (folded, and their
// tables rewritten in key order, at the end).
// It is meant for a database nobody else writes meanwhile: the
// lead ids are chosen here.
func (db *DB) Fill(ctx context.Context, leads, callbacks int) error {
	if db.readOnly {
		return fmt.Errorf("fill: %w", errReadOnly())
	}
	var base, cbBase int64
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT COALESCE(max(id), 0) FROM leads), (SELECT COALESCE(max(id), 0) FROM callbacks)`).
		Scan(&base, &cbBase); err != nil {
		return fmt.Errorf("fill: %w", mapErr(ctx, err))
	}
	rng := rand.New(rand.NewPCG(uint64(base)+1, uint64(cbBase)+7))
	now := db.now()
	start := now.Add(-store.FillWindow)
	span := int64(store.FillWindow / time.Millisecond)
	var ftds []fillFTD
	for done := 0; done < leads; done += fillBatch {
		n := min(fillBatch, leads-done)
		f, err := db.fillLeads(ctx, rng, base+int64(done), n, now)
		if err != nil {
			return fmt.Errorf("fill leads: %w", err)
		}
		ftds = append(ftds, f...)
	}
	total := base + int64(leads)
	for done := 0; done < callbacks; {
		n := min(fillBatch, callbacks-done)
		k := min(len(ftds), n)
		stored, err := db.fillCallbacks(ctx, rng, cbBase+int64(done), n, total, start, span, ftds[:k])
		if err != nil {
			return fmt.Errorf("fill callbacks: %w", err)
		}
		ftds = ftds[k:]
		done += stored
	}
	// The report's deltas of a large fill are merged at once, so the first
	// reads do not sum them.
	if err := db.fold(ctx); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	// A fill writes a day of aggregates at once, each row many times over
	// (every batch touches every minute), which leaves the rows of one
	// field and time range spread over many pages. Rewritten in key order
	// they lie as a store that grew over the day has them, near each
	// other, which is what reads of a range assume.
	for _, q := range []string{`CLUSTER source_stats USING source_stats_pkey`,
		`CLUSTER source_stats_coarse USING source_stats_coarse_pkey`,
		`CLUSTER throughput_seconds USING throughput_seconds_pkey`,
		`CLUSTER throughput_minutes USING throughput_minutes_pkey`,
		`ANALYZE source_stats, source_stats_coarse, throughput_seconds, throughput_minutes`} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("fill: %w", mapErr(ctx, err))
		}
	}
	db.watch.changed()
	return nil
}

// fillMS is a fill time for a nullable column: zero is NULL.
func fillMS(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

// fillFTD is a filled lead drawn to reach ftd, and when: its ftd callback
// is stored among the callbacks (while the budget lasts), and the lead's
// ftd_at follows from it as SaveCallbacks would set it.
type fillFTD struct{ lead, at int64 }

// fillLeads copies n leads with ids from+1 … and their attempts in one
// transaction, then moves the id sequence past them. It returns the leads
// drawn to reach ftd.
func (db *DB) fillLeads(ctx context.Context, r *rand.Rand, from int64, n int, now time.Time) ([]fillFTD, error) {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	var ftds []fillFTD
	defer rollback(tx)
	leadRows := make([][]any, 0, n)
	var attRows [][]any
	for k := range n {
		i := from + int64(k) + 1
		l := store.PickFillLead(r, i, now)
		// The row goes in as it stood before any ftd: fillCallbacks
		// stores the ftd callback and sets ftd_at and crm_status from
		// it, as SaveCallbacks would.
		var crmStatus string
		if l.FirstStatusAt != 0 {
			crmStatus = "contacted"
		}
		if l.FTDAt != 0 {
			ftds = append(ftds, fillFTD{i, l.FTDAt})
		}
		key := l.IdempotencyKey()
		leadRows = append(leadRows, []any{i, l.ExternalID, l.Payload(), key, string(l.State), l.CRMID, l.Reason,
			int32(l.Attempts), fillMS(l.NextAttemptAt), int32(l.HTTPStatus), l.LeaseOwner, fillMS(l.LeaseExpiresAt),
			l.CreatedAt, l.UpdatedAt, l.Source, l.Funnel, l.SubID, l.Country, fillMS(l.AcceptedAt),
			fillMS(l.FirstStatusAt), crmStatus, fillMS(l.FirstStatusAt)})
		if l.Sent() {
			attRows = append(attRows, []any{i, "send", int32(1), key, l.AttemptStartedAt, l.AttemptDurationUS,
				int32(l.HTTPStatus), string(l.State)})
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"leads"}, []string{"id", "external_id", "payload", "idempotency_key",
		"state", "crm_id", "reason", "attempts", "next_attempt_at", "last_http_status", "lease_owner",
		"lease_expires_at", "created_at", "updated_at", "source", "funnel", "sub_id", "country", "accepted_at",
		"first_status_at", "crm_status", "crm_status_at"}, pgx.CopyFromRows(leadRows)); err != nil {
		return nil, mapErr(ctx, err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"attempts"}, []string{"lead_id", "kind", "number", "idempotency_key",
		"started_at", "duration_us", "http_status", "outcome"}, pgx.CopyFromRows(attRows)); err != nil {
		return nil, mapErr(ctx, err)
	}
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('leads', 'id'), $1)`, from+int64(n)); err != nil {
		return nil, mapErr(ctx, err)
	}
	return ftds, db.commit(ctx, tx)
}

// fillCallbacks stores up to n synthetic callbacks in one transaction and
// returns how many it stored (a triple drawn twice is stored once; Fill
// draws the shortfall again). The first are the ftd callbacks of ftds
// (at most n), linked to their leads, whose ftd_at and CRM status follow;
// the others name lead ids drawn from 1 … leads; one that does not exist
// leaves the callback unmatched.
func (db *DB) fillCallbacks(ctx context.Context, r *rand.Rand, from int64, n int, leads int64, start time.Time, span int64, ftds []fillFTD) (int, error) {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, err
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE fill_callbacks (LIKE callbacks INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
		return 0, mapErr(ctx, err)
	}
	events := [...]string{"lead.created", "lead.qualified", "lead.contacted", "lead.converted", "lead.lost"}
	rows := make([][]any, 0, n)
	for k := range n {
		seq := from + int64(k) + 1
		received := ms(start) + r.Int64N(span)
		ev := events[r.IntN(len(events))]
		var (
			internal, ext string
			lead          *int64
		)
		if k < len(ftds) {
			// "lead.ftd": its status is "ftd"; no drawn event has it.
			i := ftds[k].lead
			received, ev = ftds[k].at, "lead.ftd"
			internal, ext, lead = "crm-"+strconv.FormatInt(i, 10), store.FillExternalID(i), &i
		} else if leads > 0 && r.IntN(100) >= 3 {
			i := 1 + r.Int64N(leads)
			internal, lead = "crm-"+strconv.FormatInt(i, 10), &i
			if r.IntN(2) == 0 {
				ext = store.FillExternalID(i)
			}
		} else {
			internal = "crm-unknown-" + strconv.FormatInt(seq, 10) + "-" + strconv.FormatInt(r.Int64(), 36)
		}
		ts := strconv.FormatInt(received/1000, 10)
		body := `{"internal_id":"` + internal + `","event":"` + ev + `","timestamp":` + ts + `}`
		rows = append(rows, []any{seq, internal + ":" + ev + ":" + ts, internal, ext, ev, ev[5:], ts,
			received - r.Int64N(2000), received, r.Int64N(400) - 200, []byte(body), int32(0), lead})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fill_callbacks"}, []string{"id", "dedup_key", "internal_id", "external_id",
		"event", "status", "timestamp", "event_time", "received_at", "skew_ms", "raw_body", "secret_idx", "lead_id"},
		pgx.CopyFromRows(rows)); err != nil {
		return 0, mapErr(ctx, err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO callbacks (dedup_key, internal_id, external_id, event, status, timestamp,
			event_time, received_at, skew_ms, raw_body, secret_idx, lead_id)
		SELECT f.dedup_key, f.internal_id, f.external_id, f.event, f.status, f.timestamp, f.event_time, f.received_at,
			f.skew_ms, f.raw_body, f.secret_idx, l.id
		FROM fill_callbacks f LEFT JOIN leads l ON l.id = f.lead_id
		ORDER BY f.id
		ON CONFLICT (internal_id, event, timestamp) DO NOTHING`)
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	if len(ftds) > 0 {
		ids := make([]int64, len(ftds))
		for k, f := range ftds {
			ids[k] = f.lead
		}
		if _, err := tx.Exec(ctx, `UPDATE leads l SET ftd_at = s.at, crm_status = 'ftd', crm_status_at = s.at
			FROM (SELECT lead_id, min(received_at) AS at FROM callbacks
				WHERE lead_id = ANY($1) AND event = 'lead.ftd' GROUP BY lead_id) s
			WHERE l.id = s.lead_id AND l.ftd_at IS NULL`, ids); err != nil {
			return 0, mapErr(ctx, err)
		}
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
