package sandbox

import (
	"testing"
)

// TestCallbackLoss: a lost callback is never sent, not even retried, and
// counted; the lead's status still changes, so a status lookup (§2) is
// the only way to learn it.
func TestCallbackLoss(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	cfg := testConfig()
	cfg.CallbackURL = rc.srv.URL
	cfg.CallbackLossRate = 1
	sb, srv := startSandbox(t, cfg)
	ids := submitLeads(t, srv.URL, "loss", 2)
	waitIdle(t, sb)
	arrivals, _ := rc.snapshot()
	if len(arrivals) != 0 {
		t.Fatalf("%d callbacks arrived at loss rate 1, want none", len(arrivals))
	}
	st := sb.Stats()
	if st.CallbacksLost != 6 || st.CallbacksSent != 0 || st.CallbacksFailed != 0 || st.StatusChanges != 6 {
		t.Fatalf("stats %+v; want 6 lost, none sent or failed, 6 status changes", st)
	}
	for id := range ids {
		sr, ok := sb.Lookup(id)
		if !ok || (sr.Status != StatusFTD && sr.Status != StatusNotInterested) {
			t.Errorf("%s: status %+v, %v; want a final status despite the lost callbacks", id, sr, ok)
		}
	}
}
