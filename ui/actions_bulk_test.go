package ui

import (
	"slices"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
)

// resubmitted is the ids the fake was asked to resubmit, each with the
// stored payload (nil), sorted.
func resubmitted(t *testing.T, src *fakeSource) []string {
	t.Helper()
	var ids []string
	for _, r := range src.resubmits {
		if r.Payload != nil {
			t.Fatalf("bulk resubmit sent a payload for %s", r.ExternalID)
		}
		ids = append(ids, r.ExternalID)
	}
	slices.Sort(ids)
	return ids
}

// TestBulkResubmit checks that R on the Rejections pane asks with how
// many leads and which key rule applies to how many, resubmits each
// once on yes with its stored payload, and sums it up.
func TestBulkResubmit(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "R")
	requireContains(t, m.View(), "Resubmit 3 leads?", "Rejections", "states     rejected, validation_error, failed",
		"keys       1 keep their key (unchanged failed leads)", "           2 get a new key (a final CRM answer)", "[ No ]")

	t.Run("NCancels", func(t *testing.T) {
		m := press(t, m, "n")
		requireLacks(t, m.View(), "Resubmit 3 leads?")
		if len(h.src.resubmits) != 0 {
			t.Fatalf("resubmitted on n: %+v", h.src.resubmits)
		}
	})
	m = press(t, m, "y")
	if got := resubmitted(t, h.src); !slices.Equal(got, []string{"ext-301", "ext-302", "ext-303"}) {
		t.Fatalf("resubmitted %v", got)
	}
	requireContains(t, m.View(), "resubmitted 3 of 3 (1 same key, 2 new key)")
	if m.bulk != nil {
		t.Fatal("the run did not end")
	}
}

// TestBulkResubmitFiltered checks that the bulk takes the pane's filter:
// a state word narrows the states, a text filter goes to the store's
// query.
func TestBulkResubmitFiltered(t *testing.T) {
	for _, tc := range []struct {
		filter, want, rule string
		ids                []string
	}{
		{"failed", "Resubmit 1 lead?", "all 1 keep their key (unchanged failed leads)", []string{"ext-301"}},
		{"country", "Resubmit 1 lead?", "all 1 get a new key (the CRM's answer was final)", []string{"ext-303"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			h := newHarness()
			m := press(t, h.sized(t, 160, 48), "3", "/")
			m = press(t, m, append(splitKeys(tc.filter), "enter", "R")...)
			requireContains(t, m.View(), tc.want, `filter "`+tc.filter+`"`, tc.rule)
			m = press(t, m, "y")
			if got := resubmitted(t, h.src); !slices.Equal(got, tc.ids) {
				t.Fatalf("resubmitted %v, want %v", got, tc.ids)
			}
		})
	}
}

// TestBulkResubmitRefused checks the panes whose rows cannot be
// resubmitted, and a filter that shows nothing.
func TestBulkResubmitRefused(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "R")
	requireContains(t, m.View(), "only failed, rejected, validation_error or duplicate leads can be resubmitted")
	m = press(t, m, "4", "R")
	requireContains(t, m.View(), "bulk resubmit works on a pane of leads")
	m = press(t, m, "3", "/")
	m = press(t, m, append(splitKeys("nomatch"), "enter", "R")...)
	requireContains(t, m.View(), "no lead to resubmit")
	requireLacks(t, m.View(), "Confirm")
	if len(h.src.resubmits) != 0 {
		t.Fatalf("resubmits = %+v", h.src.resubmits)
	}
}

// TestBulkSkipsWhatChanged checks that a lead that left the resubmittable
// states between the count and its page is skipped with the reason in
// the summary, which stays on screen as an error.
func TestBulkSkipsWhatChanged(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	// A run the count put at 2, whose page found one lead already
	// queued again (resubmitted by someone else meanwhile).
	m.bulkRuns = 1
	m.bulk = &bulkRun{id: 1, plan: bulkPlan{n: 2}, seen: map[int64]bool{}, skipped: map[string]int{}}
	m.stepBulk(bulkStepMsg{run: 1, ids: []int64{6, 7}, done: 1, skipped: map[string]int{"now queued": 1}})
	requireContains(t, m.View(), "✗ resubmitted 1 of 2 (0 same key, 1 new key) · skipped 1: 1 now queued")
	if m.bulk != nil {
		t.Fatal("the run did not end")
	}
	// A stale page of an earlier run changes nothing.
	m.bulk = &bulkRun{id: 2, plan: bulkPlan{n: 5}, seen: map[int64]bool{}, skipped: map[string]int{}}
	if cmd := m.stepBulk(bulkStepMsg{run: 1, ids: []int64{1}, done: 1}); cmd != nil || m.bulk.done != 0 {
		t.Fatal("a stale page counted")
	}
}

func TestCountText(t *testing.T) {
	for _, c := range []struct {
		n      int
		capped bool
		want   string
	}{{1, false, "1 lead"}, {37, false, "37 leads"}, {1234, false, "1,234 leads"}, {bulkCap, true, "10,000+ leads"}} {
		if got := countText(c.n, c.capped); got != c.want {
			t.Errorf("countText(%d, %v) = %q, want %q", c.n, c.capped, got, c.want)
		}
	}
	if got := keyRuleText(bulkPlan{n: 5, kept: 2}); got != "2 keep their key (unchanged failed leads)\n           3 get a new key (a final CRM answer)" {
		t.Errorf("keyRuleText = %q", got)
	}
	_ = crm.StateFailed
}
