package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// TestReportCoarseAgrees checks a window's report read from the coarse
// spans (migration 007) against the same window summed from source_stats'
// minutes alone (reportMinutes), for windows starting on every kind of
// boundary and between them over a Filled day and more, with live
// changes unfolded and then folded.
func TestReportCoarseAgrees(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	if err := db.Fill(ctx, 3000, 1000); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := db.Enqueue(ctx, sourcedJSON(fmt.Sprintf("c-%d", i), []string{"fb", "gg"}[i%2], "s"), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.pool.Exec(ctx, `UPDATE leads SET state = 'accepted', accepted_at = $1, updated_at = $1
		WHERE external_id LIKE 'c-%'`, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	var coarse int
	if err := db.pool.QueryRow(ctx, `SELECT count(DISTINCT span) FROM source_stats_coarse`).Scan(&coarse); err != nil {
		t.Fatal(err)
	}
	if coarse != len(store.ReportSpans) {
		t.Fatalf("source_stats_coarse has %d spans after Fill, want %d", coarse, len(store.ReportSpans))
	}
	now := time.Now()
	sinces := []time.Time{now.Truncate(time.Hour), now.Truncate(10 * time.Minute), now.Truncate(24 * time.Hour),
		now.Add(-24 * time.Hour).Truncate(time.Hour).Add(-time.Minute), now.Add(-5 * time.Minute)}
	for d := time.Duration(0); d <= 25*time.Hour; d += 37 * time.Minute {
		sinces = append(sinces, now.Add(-d))
	}
	for _, fold := range []bool{false, true} {
		if fold {
			if err := db.fold(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, by := range crm.GroupFields {
			for _, since := range sinces {
				q := crm.ReportQuery{By: by, Since: since}
				got, err := db.Report(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want, err := db.reportMinutes(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(reported(want)) {
					t.Fatalf("folded %v, report by %s since %v:\n got  %v\n want %v", fold, by, since, got, reported(want))
				}
			}
		}
	}
}

// reported is rows as Report answers them: Sent summed, the rows with
// nothing to count left out, in Report's order.
func reported(rows []crm.ReportRow) []crm.ReportRow {
	var out []crm.ReportRow
	for _, r := range rows {
		r.Sent = r.Accepted + r.Duplicate + r.Rejected + r.ValidationError + r.Failed
		if r != (crm.ReportRow{Value: r.Value}) {
			out = append(out, r)
		}
	}
	sortReport(out)
	return out
}
