package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/store"
)

// TestLookupPlans checks that the claims of status lookups can be served
// by the partial indexes of migration 004: with sequential scans priced
// out, a claim whose expression did not match the index's would still
// scan leads. (With an empty table the planner prefers a scan anyway, so
// the question is only whether the index fits.)
func TestLookupPlans(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`)
	tests := []struct {
		name, query string
		args        []any
		want        string
	}{
		{"New", sqlLookupNew, []any{int64(1), int64(1), int64(0), 10}, "leads_lookup_new"},
		{"Stale", sqlLookupStale, []any{int64(1), "new", int64(1), int64(0), 10}, "leads_lookup_stale"},
		{"Statuses", sqlLookupStatuses, nil, "leads_lookup_stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := conn.Query(ctx, `EXPLAIN `+tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			rows.Close()
			all := strings.Join(plan, "\n")
			if !strings.Contains(all, tt.want) || strings.Contains(all, "Seq Scan on leads") {
				t.Fatalf("plan:\n%s\nwant index %s, no scan of leads", all, tt.want)
			}
		})
	}
}
