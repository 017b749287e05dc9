package metrics

import (
	"sync/atomic"
	"testing"

	"github.com/leadwatch/leadwatch/intake"
)

// TestWatchIntake: the intake's counters are read at scrape time, by
// answer and by refusal code.
func TestWatchIntake(t *testing.T) {
	m := New(&countsSource{}, nil)
	var st atomic.Pointer[intake.Stats]
	st.Store(&intake.Stats{Accepted: 7, Duplicates: 2, Invalid: 1, Unavailable: 3, Unauthorized: 5, TooLarge: 1, BadRequests: 4, Commits: 6})
	if err := m.WatchIntake(func() intake.Stats { return *st.Load() }); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, m)
	fams := scrape(t, addr)
	for answer, want := range map[string]float64{"accepted": 7, "duplicate": 2, "invalid": 1, "unavailable": 3} {
		if got := value(t, fams, "leadwatch_intake_leads_total", "answer", answer); got != want {
			t.Errorf("intake_leads_total{answer=%s} = %v, want %v", answer, got, want)
		}
	}
	for code, want := range map[string]float64{"unauthorized": 5, "body_too_large": 1, "bad_request": 4} {
		if got := value(t, fams, "leadwatch_intake_refused_total", "code", code); got != want {
			t.Errorf("intake_refused_total{code=%s} = %v, want %v", code, got, want)
		}
	}
	if got := value(t, fams, "leadwatch_intake_commits_total", "", ""); got != 6 {
		t.Errorf("intake_commits_total = %v, want 6", got)
	}
	st.Store(&intake.Stats{Accepted: 8})
	if got := value(t, scrape(t, addr), "leadwatch_intake_leads_total", "answer", "accepted"); got != 8 {
		t.Errorf("accepted after one more = %v, want 8 (read at scrape time)", got)
	}
}
