package storetest

// suite_find.go: finding leads (every state in one list, the reason
// filter, keyset paging by id both ways, FindLead, CountLeads).

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

func testFind(t *testing.T, h Harness) {
	t.Run("every_state", func(t *testing.T) { testFindEveryState(t, h) })
	t.Run("keyset", func(t *testing.T) { testKeyset(t, h) })
	t.Run("find_lead", func(t *testing.T) { testFindLead(t, h) })
	t.Run("count", func(t *testing.T) { testCountLeads(t, h) })
}

// sortedNames is names(ls) in sorted order, for sets.
func sortedNames(ls []crm.Lead) string {
	s := make([]string, 0, len(ls))
	for _, l := range ls {
		s = append(s, l.ExternalID)
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}

func testFindEveryState(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	var all []string
	for _, st := range startStates {
		putIn(t, s, clk, "F-"+st.name, st)
		all = append(all, "F-"+st.name)
		clk.Advance(time.Second)
	}
	sort.Strings(all)
	for _, order := range []crm.LeadOrder{crm.OrderDefault, crm.OrderNewest, crm.OrderOldest} {
		got, err := s.Leads(ctx, crm.LeadQuery{Limit: 100, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		if sortedNames(got) != fmt.Sprint(all) {
			t.Errorf("order %d, no states: %s, want every lead %v", order, sortedNames(got), all)
		}
	}
	if c := assertCounts(t, s, "every state"); c.States[crm.StateHeld] != 2 || c.States[crm.StateInFlight] != 1 {
		t.Errorf("counts %s, want 2 held and 1 in flight", countsString(c))
	}
	tests := []struct {
		name string
		q    crm.LeadQuery
		want string // sorted
	}{
		{"held", crm.LeadQuery{States: []crm.State{crm.StateHeld}}, "[F-held_operator F-held_source]"},
		{"held_and_queued", crm.LeadQuery{States: []crm.State{crm.StateHeld, crm.StateQueued}}, "[F-held_operator F-held_source F-queued]"},
		{"reason", crm.LeadQuery{Reason: "HELD by"}, "[F-held_operator]"},
		{"reason_paused", crm.LeadQuery{Reason: "paused: source"}, "[F-held_source]"},
		{"reason_and_state", crm.LeadQuery{States: []crm.State{crm.StateFailed, crm.StateRejected}, Reason: "set BY test"}, "[F-failed F-rejected]"},
		{"reason_state_excludes", crm.LeadQuery{States: []crm.State{crm.StateQueued}, Reason: "set by test"}, "[]"},
		{"reason_and_filter", crm.LeadQuery{Filter: "f-acc", Reason: "set by test"}, "[F-accepted]"},
		{"reason_percent_literal", crm.LeadQuery{Reason: "%"}, "[]"},
		// Only the pause's reason has an underscore (in the source's name).
		{"reason_underscore_literal", crm.LeadQuery{Reason: "_"}, "[F-held_source]"},
		{"reason_newest", crm.LeadQuery{Reason: "set by test", Order: crm.OrderNewest},
			"[F-accepted F-duplicate F-failed F-rejected F-validation_error]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Leads(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if sortedNames(got) != tt.want {
				t.Fatalf("got %s, want %s", sortedNames(got), tt.want)
			}
		})
	}
}

// testKeyset: OrderNewest with BeforeID and OrderOldest with AfterID walk
// every matching lead exactly once, in id order, page after page.
func testKeyset(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	const n = 25
	var ps [][]byte
	for i := range n {
		ps = append(ps, payload(fmt.Sprintf("K-%02d", i)))
	}
	leads, _, err := s.EnqueueBatch(ctx, ps, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := leadIDs(leads)
	// A mix of states, updated in an order unlike their ids, so no
	// ordering by updated_at passes for one by id.
	for _, i := range []int{20, 3, 11, 7, 15} {
		setState(t, s, clk, fmt.Sprintf("K-%02d", i), crm.StateAccepted, "")
		clk.Advance(time.Second)
	}
	retryLater(t, s, clk, "K-00", time.Hour)
	act(t, s, crm.ActHold, "K-01", "K-02")
	accepted := []int64{ids[3], ids[7], ids[11], ids[15], ids[20]}
	filtered := []int64{ids[10], ids[11], ids[12], ids[13], ids[14], ids[15], ids[16], ids[17], ids[18], ids[19]}

	walk := func(t *testing.T, q crm.LeadQuery) []int64 {
		t.Helper()
		var got []int64
		for page := 0; ; page++ {
			if page > n {
				t.Fatalf("more than %d pages: %v", n, got)
			}
			rows, err := s.Leads(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > q.Limit {
				t.Fatalf("page of %d rows, limit %d", len(rows), q.Limit)
			}
			if len(rows) == 0 {
				return got
			}
			got = append(got, leadIDs(rows)...)
			last := rows[len(rows)-1].ID
			if q.Order == crm.OrderNewest {
				q.BeforeID = last
			} else {
				q.AfterID = last
			}
		}
	}
	desc := func(v []int64) []int64 {
		v = slices.Clone(v)
		slices.Sort(v)
		slices.Reverse(v)
		return v
	}
	asc := func(v []int64) []int64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v
	}
	tests := []struct {
		name string
		q    crm.LeadQuery
		want []int64
	}{
		{"newest", crm.LeadQuery{Order: crm.OrderNewest, Limit: 7}, desc(ids)},
		{"oldest", crm.LeadQuery{Order: crm.OrderOldest, Limit: 7}, asc(ids)},
		{"newest_page_of_one", crm.LeadQuery{Order: crm.OrderNewest, Limit: 1}, desc(ids)},
		{"oldest_page_of_all", crm.LeadQuery{Order: crm.OrderOldest, Limit: n}, asc(ids)},
		{"newest_accepted", crm.LeadQuery{Order: crm.OrderNewest, Limit: 2, States: []crm.State{crm.StateAccepted}}, desc(accepted)},
		{"oldest_accepted", crm.LeadQuery{Order: crm.OrderOldest, Limit: 2, States: []crm.State{crm.StateAccepted}}, asc(accepted)},
		{"newest_filter", crm.LeadQuery{Order: crm.OrderNewest, Limit: 4, Filter: "k-1"}, desc(filtered)},
		{"oldest_filter", crm.LeadQuery{Order: crm.OrderOldest, Limit: 4, Filter: "K-1"}, asc(filtered)},
		{"newest_held", crm.LeadQuery{Order: crm.OrderNewest, Limit: 1, States: []crm.State{crm.StateHeld}}, desc([]int64{ids[1], ids[2]})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := walk(t, tt.q); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("walked %v\nwant   %v", got, tt.want)
			}
		})
	}
	t.Run("bound_ignores_offset", func(t *testing.T) {
		for _, q := range []crm.LeadQuery{
			{Order: crm.OrderNewest, BeforeID: ids[10], Limit: 3},
			{Order: crm.OrderOldest, AfterID: ids[10], Limit: 3},
		} {
			plain, err := s.Leads(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			q.Offset = 5
			shifted, err := s.Leads(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(leadIDs(plain)) != fmt.Sprint(leadIDs(shifted)) || len(plain) != 3 {
				t.Errorf("order %d: %v without offset, %v with offset 5; want the same 3", q.Order, leadIDs(plain), leadIDs(shifted))
			}
		}
		want := desc(ids)[15:18] // the three below ids[10]
		got, _ := s.Leads(ctx, crm.LeadQuery{Order: crm.OrderNewest, BeforeID: ids[10], Limit: 3})
		if fmt.Sprint(leadIDs(got)) != fmt.Sprint(want) {
			t.Errorf("below ids[10]: %v, want %v", leadIDs(got), want)
		}
	})
}

func testFindLead(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	for _, ext := range []string{"L-1", "L-2", "L-3", "crm-9"} {
		mustEnqueue(t, s, ext)
	}
	setState(t, s, clk, "L-1", crm.StateAccepted, "crm-shared")
	setState(t, s, clk, "L-2", crm.StateDuplicate, "crm-shared")
	setState(t, s, clk, "L-3", crm.StateAccepted, "crm-9")
	l2 := mustLead(t, s, "L-2")
	tests := []struct {
		id, want string
	}{
		{"L-1", "L-1"},
		{"crm-shared", "L-2"}, // the newest lead with that CRM id
		{"crm-9", "crm-9"},    // an external_id wins over a CRM id
		{"L-3", "L-3"},
	}
	for _, tt := range tests {
		l, err := s.FindLead(ctx, tt.id)
		if err != nil || l.ExternalID != tt.want {
			t.Errorf("FindLead(%q) = %q, %v; want %s", tt.id, l.ExternalID, err, tt.want)
		}
	}
	if l, _ := s.FindLead(ctx, "crm-shared"); l.ID != l2.ID || l.CRMID != "crm-shared" || l.State != crm.StateDuplicate || l.IdempotencyKey != l2.IdempotencyKey {
		t.Errorf("FindLead by CRM id = %+v, want the whole lead L-2", l)
	}
	for _, id := range []string{"nope", "l-1", "crm-", "", "%"} {
		_, err := s.FindLead(ctx, id)
		wantErr(t, fmt.Sprintf("FindLead(%q)", id), err, crm.ErrNotFound)
	}
}

func testCountLeads(t *testing.T, h Harness) {
	ctx := context.Background()
	s, clk, _ := open(t, h, store.Options{})
	var ps [][]byte
	for i := range 30 {
		ps = append(ps, payload(fmt.Sprintf("C-%02d", i)))
	}
	if _, _, err := s.EnqueueBatch(ctx, ps, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		setState(t, s, clk, fmt.Sprintf("C-%02d", i), crm.StateFailed, "")
	}
	act(t, s, crm.ActHold, "C-10", "C-11")
	failed := []crm.State{crm.StateFailed}
	tests := []struct {
		name   string
		q      crm.LeadQuery
		limit  int
		n      int
		capped bool
	}{
		{"all", crm.LeadQuery{}, 1000, 30, false},
		{"all_capped", crm.LeadQuery{}, 10, 10, true},
		{"all_at_limit", crm.LeadQuery{}, 30, 30, true},
		{"all_below_limit", crm.LeadQuery{}, 31, 30, false},
		{"state", crm.LeadQuery{States: failed}, 1000, 6, false},
		{"state_capped", crm.LeadQuery{States: failed}, 4, 4, true},
		{"states", crm.LeadQuery{States: []crm.State{crm.StateQueued, crm.StateHeld}}, 1000, 24, false},
		{"held", crm.LeadQuery{States: []crm.State{crm.StateHeld}}, 1000, 2, false},
		{"filter", crm.LeadQuery{Filter: "c-1"}, 1000, 10, false},
		{"filter_capped", crm.LeadQuery{Filter: "c-1"}, 5, 5, true},
		{"filter_and_state", crm.LeadQuery{Filter: "c-0", States: failed}, 1000, 6, false},
		{"reason", crm.LeadQuery{Reason: "SET BY"}, 1000, 6, false},
		{"reason_capped", crm.LeadQuery{Reason: "set by", States: failed}, 2, 2, true},
		{"reason_held", crm.LeadQuery{Reason: "held by operator"}, 1000, 2, false},
		{"no_match", crm.LeadQuery{Filter: "zzz"}, 10, 0, false},
		{"paging_ignored", crm.LeadQuery{States: failed, Limit: 2, Offset: 3, Order: crm.OrderNewest, BeforeID: 3}, 1000, 6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, capped, err := s.CountLeads(ctx, tt.q, tt.limit)
			if err != nil || n != tt.n || capped != tt.capped {
				t.Fatalf("CountLeads = %d, %v, %v; want %d, %v", n, capped, err, tt.n, tt.capped)
			}
		})
	}
}
