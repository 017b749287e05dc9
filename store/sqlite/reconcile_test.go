package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// TestLookupPlans checks that the claims of status lookups read the
// partial indexes of migration 008 in their order: at a million leads a
// claim must read the due entries, not the accepted leads.
func TestLookupPlans(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tests := []struct {
		name, query string
		args        []any
		want        string
	}{
		{"New", sqlLookupNew, []any{1, 0, 10}, "leads_lookup_new"},
		{"Stale", sqlLookupStale, []any{"new", 1, 0, 10}, "leads_lookup_stale"},
		{"Statuses", sqlLookupStatuses, nil, "leads_lookup_stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := db.reader.Query(`EXPLAIN QUERY PLAN `+tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "; ")
			if !strings.Contains(all, tt.want) || strings.Contains(all, "TEMP B-TREE FOR ORDER BY") ||
				strings.Contains(all, "SCAN leads") {
				t.Fatalf("plan %q; want index %s, no sort, no scan of leads", all, tt.want)
			}
		})
	}
}

// BenchmarkDueLookups measures finding a claim's worth of due leads at
// 1,000,000 leads (bigStore's campaign: most accepted, many with a final
// status) through the partial indexes: when many are due (Due: an hour
// after the campaign, nothing looked up yet) and when none is (NoneDue:
// every lead just looked up, the background worker's usual check), the
// latter also asked without the indexes (NoneDue/NotIndexed: a walk of
// the leads), in one run. Everything runs inside a write transaction that
// is rolled back, so the cached store is not marked.
func BenchmarkDueLookups(b *testing.B) {
	db := bigStore(b, 1_000_000)
	ctx := context.Background()
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	rules := func(now time.Time) crm.ReconcileQuery {
		return crm.ReconcileQuery{Now: now, After: 10 * time.Minute, Stale: 30 * time.Minute,
			Final: crm.DefaultReconcileFinal(), Limit: 50}
	}
	due := func(b *testing.B, q crm.ReconcileQuery, want int) {
		for b.Loop() {
			ids, err := dueLookups(ctx, tx, q, q.Now, q.Limit)
			if err != nil || len(ids) != want {
				b.Fatalf("due: %d, %v; want %d", len(ids), err, want)
			}
		}
	}
	later := db.now().Add(time.Hour)
	b.Run("Due", func(b *testing.B) { due(b, rules(later), 50) })
	if _, err := tx.ExecContext(ctx, `UPDATE leads SET last_lookup_at = ? WHERE state = 'accepted'`, ms(later)); err != nil {
		b.Fatal(err)
	}
	q := rules(later.Add(time.Minute))
	b.Run("NoneDue/Indexed", func(b *testing.B) { due(b, q, 0) })
	b.Run("NoneDue/NotIndexed", func(b *testing.B) {
		for b.Loop() {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT id FROM leads NOT INDEXED
				WHERE state = 'accepted' AND lower(crm_status) NOT IN ('ftd', 'not_interested')
					AND CASE WHEN crm_status = '' THEN `+lookupNewAt+` < ? ELSE `+lookupStaleAt+` < ? END
				LIMIT 50)`, ms(q.Now.Add(-q.After)), ms(q.Now.Add(-q.Stale))).Scan(&n)
			if err != nil || n != 0 {
				b.Fatalf("due: %d, %v", n, err)
			}
		}
	})
}
