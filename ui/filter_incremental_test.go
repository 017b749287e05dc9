package ui

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// A filtering pane searches the store once and then reads only what
// changed; these tests hold it to what a full search shows: after each
// change, a model that has just searched afresh (the same filter typed
// into a new dashboard) must show the same rows and title.

// filtered is a new dashboard on h with pane focused and filter typed.
func filtered(t *testing.T, h *harness, pane, filter string) Model {
	t.Helper()
	m := press(t, h.sized(t, 160, 48), pane, "/")
	m = press(t, m, splitKeys(filter)...)
	return press(t, m, "enter")
}

// leadRows is what a lead pane shows: its leads' ids and its title.
func leadRows(p leadPane) (ids []string, title string) {
	for _, l := range p.rows {
		ids = append(ids, l.ExternalID)
	}
	return ids, countLabel(p.shown(), p.total, p.filter != "")
}

// requireAsSearched checks m's Rejections pane shows what a fresh search
// for its filter shows.
func requireAsSearched(t *testing.T, h *harness, m Model, step string) {
	t.Helper()
	got, gotTitle := leadRows(m.rejects)
	want, wantTitle := leadRows(filtered(t, h, "3", m.rejects.filter).rejects)
	if !slices.Equal(got, want) || gotTitle != wantTitle {
		t.Fatalf("%s: the pane shows %v%s, a fresh search %v%s", step, got, gotTitle, want, wantTitle)
	}
}

// changeLead edits the fake's lead ext as a store write does: the update
// time moves to at.
func changeLead(h *harness, ext string, at time.Time, edit func(*crm.Lead)) {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	for i := range h.src.leads {
		if l := &h.src.leads[i]; l.ExternalID == ext {
			edit(l)
			l.UpdatedAt = at
		}
	}
}

// addFailed stores n failed leads from id first on, newer than all.
func addFailed(h *harness, first int64, n int, edit func(*crm.Lead)) {
	addFailedNamed(h, "ext-%d", first, n, edit)
}

// addFailedNamed is addFailed with the external ids' format (of the id).
func addFailedNamed(h *harness, format string, first int64, n int, edit func(*crm.Lead)) {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	for i := range n {
		id := first + int64(i)
		h.src.leads = append(h.src.leads, lead(id, fmt.Sprintf(format, id), crm.StateFailed, func(l *crm.Lead) {
			l.UpdatedAt = t0.Add(time.Duration(id) * time.Millisecond)
			l.LastHTTPStatus, l.Reason = 500, "boom"
			if edit != nil {
				edit(l)
			}
		}))
	}
}

func TestFilteredLeadsReadOnlyWhatChanged(t *testing.T) {
	for _, filter := range []string{"http 401", "boom"} {
		t.Run(filter, func(t *testing.T) {
			h := newHarness()
			addFailed(h, 1000, 30, func(l *crm.Lead) {
				if l.ID%3 == 0 {
					l.LastHTTPStatus, l.Reason = 401, "unauthorized"
				}
			})
			m := filtered(t, h, "3", filter)
			requireAsSearched(t, h, m, "first search")
			searches := func() int {
				h.src.mu.Lock()
				defer h.src.mu.Unlock()
				n := 0
				for _, q := range h.src.leadQueries {
					if q.Filter != "" {
						n++
					}
				}
				return n
			}
			// Each refresh below reads what changed, never the store's
			// filter (the fresh searches compared against come after).
			refresh := func(m Model) Model {
				t.Helper()
				before := searches()
				m = refreshNow(t, m)
				if n := searches(); n != before {
					t.Fatalf("the refresh searched the store's filter again (%d searches, %d before)", n, before)
				}
				return m
			}

			// New matches and new rows that do not match.
			addFailed(h, 2000, 5, func(l *crm.Lead) {
				if l.ID%2 == 0 {
					l.LastHTTPStatus, l.Reason = 401, "unauthorized"
				}
			})
			m = refresh(m)
			requireAsSearched(t, h, m, "after new leads")

			// A lead that stops matching, and one that starts.
			changeLead(h, "ext-1002", t0.Add(3*time.Second), func(l *crm.Lead) { l.LastHTTPStatus, l.Reason = 401, "unauthorized" })
			changeLead(h, "ext-1003", t0.Add(3*time.Second+time.Millisecond), func(l *crm.Lead) { l.LastHTTPStatus, l.Reason = 500, "boom" })
			m = refresh(m)
			requireAsSearched(t, h, m, "after leads changed")

			// More changed than a tail reads from the top: it
			// searches afresh.
			addFailed(h, 3000, leadScan+5, func(l *crm.Lead) {
				if l.ID%7 == 0 {
					l.LastHTTPStatus, l.Reason = 401, "unauthorized"
				}
			})
			before := searches()
			m = refreshNow(t, m)
			if searches() == before {
				t.Fatal("a burst past the tail did not search afresh")
			}
			requireAsSearched(t, h, m, "after a burst")
		})
	}
}

func TestFilteredLeadsBackgroundSearch(t *testing.T) {
	h := newHarness()
	addFailed(h, 1000, 10, nil)
	m := filtered(t, h, "3", "boom")
	requireAsSearched(t, h, m, "first search")

	// A lead leaves the pane's states: the refresh's read of the top of
	// those states cannot see it go; the full search, run again in the
	// background once researchEvery passed, does.
	changeLead(h, "ext-1004", t0.Add(time.Minute), func(l *crm.Lead) { l.State = crm.StateQueued })
	m = refreshNow(t, m)
	if ids, _ := leadRows(m.rejects); !slices.Contains(ids, "ext-1004") {
		t.Fatalf("before the background search the pane already lost the lead that left: %v", ids)
	}
	m.setNow(t0.Add(researchEvery))
	m = refreshNow(t, m)
	m.rejects.bg.wait()
	m = refreshNow(t, m)
	requireAsSearched(t, h, m, "after the background search")
	if ids, _ := leadRows(m.rejects); slices.Contains(ids, "ext-1004") {
		t.Fatalf("the lead that left still shows: %v", ids)
	}

	// Leads that arrive while a background search runs are kept when
	// its older result lands.
	m.setNow(t0.Add(2 * researchEvery))
	m = refreshNow(t, m) // starts the next background search
	m.rejects.bg.wait()
	addFailed(h, 5000, 2, nil)
	m = refreshNow(t, m)
	requireAsSearched(t, h, m, "arrivals after the background search")
}

func TestFilteredEventsReadOnlyWhatArrived(t *testing.T) {
	h := newHarness()
	m := filtered(t, h, "4", "refused")
	want := func(step string, keys ...string) {
		t.Helper()
		var got []string
		for _, r := range m.events.rows {
			got = append(got, r.key())
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("%s: rows %v, want %v", step, got, keys)
		}
		fresh := filtered(t, h, "4", "refused").events
		if m.events.matched != fresh.matched {
			t.Fatalf("%s: matched %d, a fresh search %d", step, m.events.matched, fresh.matched)
		}
	}
	want("first search", "r1")

	// A refusal and callbacks arrive; the refusal matches on its drawn
	// REFUSED, a callback on the store's filter (its status).
	h.src.mu.Lock()
	h.src.refusals = append(h.src.refusals, crm.Refusal{ID: 2, At: t0.Add(time.Second), RemoteAddr: "10.0.0.9:1", Code: crm.CodeBadSignature, Detail: "bad"})
	h.src.mu.Unlock()
	addCallback(h, 10, "ext-x", 2)
	addCallback(h, 11, "ext-y", 3)
	h.src.mu.Lock()
	h.src.callbacks[len(h.src.callbacks)-1].Status = "refused_by_crm"
	h.src.mu.Unlock()
	m = refreshNow(t, m)
	h.src.mu.Lock()
	last := h.src.eventQueries[len(h.src.eventQueries)-1]
	h.src.mu.Unlock()
	if last.Filter != "" || last.AfterID != 2 {
		t.Fatalf("the refresh read %+v, want the callbacks after #2", last)
	}
	want("after arrivals", "c11", "r2", "r1")
	m = refreshNow(t, m)
	want("refreshed again", "c11", "r2", "r1")
}

func TestFilteredAllLeadsReadOnlyWhatArrived(t *testing.T) {
	_, vs, m := viewHarness(t, 160, 48, func(v *viewSource) { v.manyLeads(100) })
	m = press(t, m, "5", "/")
	m = drive(t, m, keyMsg("7"), keyMsg("enter"))
	requireContains(t, m.View(), "▸ lead-00097", "lead-00087", "lead-00007")

	// New leads: the ones that match go on top, by a read of what was
	// stored after the newest lead the search saw.
	vs.addLeads(20) // lead-00101 … lead-00120
	m = refreshNow(t, m)
	requireContains(t, m.View(), "▸ lead-00117", "lead-00107", "lead-00097")
	requireLacks(t, m.View(), "lead-00118", "lead-00110")
	q := vs.keysetQueries()
	if last := q[len(q)-1]; last.Order != crm.OrderOldest || last.AfterID != 100 || last.Filter != "7" {
		t.Fatalf("the refresh read %+v, want the matches after #100", last)
	}

	// The background search, once due, lands on a later refresh and
	// shows what a fresh search does.
	m.setNow(t0.Add(researchEvery))
	m = refreshNow(t, m)
	m.all.bg.wait()
	m = refreshNow(t, m)
	var got []string
	for _, l := range m.all.rows {
		got = append(got, l.ExternalID)
	}
	_, _, fresh := viewHarness(t, 160, 48, func(v *viewSource) { v.leads = vs.leads })
	fresh = press(t, fresh, "5", "/")
	fresh = drive(t, fresh, keyMsg("7"), keyMsg("enter"))
	var want []string
	for _, l := range fresh.all.rows {
		want = append(want, l.ExternalID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the background search the pane shows %v, a fresh search %v", got, want)
	}
}

// TestFilteredPaneShowsWhatTheUserDid checks that a lead the user
// resubmits from a filtering pane leaves it in the refresh that follows,
// not at the next background search: the pane's reads of what changed at
// the top of its states cannot see a lead go, so an action makes the
// panes search afresh. The same for a bulk resubmit of what the filter
// shows.
func TestFilteredPaneShowsWhatTheUserDid(t *testing.T) {
	t.Run("one", func(t *testing.T) {
		h := newHarness()
		addFailed(h, 1000, 10, nil)
		m := filtered(t, h, "3", "boom")
		sel, ok := m.rejects.selected()
		if !ok {
			t.Fatal("no lead selected")
		}
		m = press(t, m, "r")
		requireContains(t, m.View(), "Resubmit "+sel.ExternalID+"?")
		m = press(t, m, "y")
		if len(h.src.resubmits) != 1 {
			t.Fatalf("resubmits = %+v", h.src.resubmits)
		}
		if ids, _ := leadRows(m.rejects); slices.Contains(ids, sel.ExternalID) {
			t.Fatalf("the resubmitted lead %s still shows: %v", sel.ExternalID, ids)
		}
		requireAsSearched(t, h, m, "after the resubmit")
	})
	t.Run("bulk", func(t *testing.T) {
		h := newHarness()
		addFailed(h, 1000, 10, nil)
		m := filtered(t, h, "3", "boom")
		m = press(t, m, "R")
		requireContains(t, m.View(), "Resubmit 10 leads?")
		m = press(t, m, "y")
		if got := resubmitted(t, h.src); len(got) != 10 {
			t.Fatalf("resubmitted %v", got)
		}
		if ids, _ := leadRows(m.rejects); len(ids) != 0 {
			t.Fatalf("resubmitted leads still show: %v", ids)
		}
		requireAsSearched(t, h, m, "after the bulk resubmit")
	})
}
