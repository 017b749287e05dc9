package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestDemoGap: the demo's waves ramp up to the peak, hold it through the
// outage, ramp down to the lull, and start again each cycle.
func TestDemoGap(t *testing.T) {
	for _, c := range []struct {
		off  time.Duration
		want time.Duration
	}{
		{0, demoLullGap},
		{demoRampUp, demoPeakGap},
		{demoOutageAt, demoPeakGap},
		{demoOutageAt + demoOutageFor, demoPeakGap},
		{demoPeakEnd + demoRampDown, demoLullGap},
		{demoCycle - time.Second, demoLullGap},
		{demoCycle, demoLullGap},
		{demoCycle + demoOutageAt, demoPeakGap},
		{7*demoCycle + demoRampUp + time.Second, demoPeakGap},
	} {
		if got := demoGap(c.off); got != c.want {
			t.Errorf("demoGap(%s) = %s, want %s", c.off, got, c.want)
		}
	}
	// The ramps move steadily: up, each second faster than the one before;
	// down, slower.
	for off := time.Second; off < demoRampUp; off += time.Second {
		if demoGap(off) >= demoGap(off-time.Second) {
			t.Errorf("ramp up: demoGap(%s) = %s, not below demoGap(%s) = %s", off, demoGap(off), off-time.Second, demoGap(off-time.Second))
		}
	}
	for off := demoPeakEnd + time.Second; off <= demoPeakEnd+demoRampDown; off += time.Second {
		if demoGap(off) <= demoGap(off-time.Second) {
			t.Errorf("ramp down: demoGap(%s) = %s, not above demoGap(%s) = %s", off, demoGap(off), off-time.Second, demoGap(off-time.Second))
		}
	}
	// The outage and the burst fall in the peak, where they show most.
	for _, at := range []time.Duration{demoOutageAt, demoOutageAt + demoOutageFor - time.Second, demoBurstAt} {
		if at < demoRampUp || at >= demoPeakEnd {
			t.Errorf("%s into the cycle is outside the peak (%s–%s)", at, demoRampUp, demoPeakEnd)
		}
	}
}

// TestDemoLeadMix: every lead names its source, funnel, sub_id and
// country from small sets; the junk source sends mostly blocked countries
// and malformed phones, the good sources rarely do.
func TestDemoLeadMix(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	blocked := []string{"US", "KP", "IR"}
	type tally struct{ n, bad int }
	bySource := map[string]*tally{}
	subIDs := map[string]map[string]bool{}
	var phones []string
	for i := 1; i <= 2600; i++ {
		l := demoLead(rng, "t", i, phones, blocked)
		phones = append(phones, l.Phone)
		if l.Source == "" || l.Funnel == "" || l.SubID == "" || l.Country == "" {
			t.Fatalf("lead %d lacks a source field: %+v", i, l)
		}
		if i == 6 && l.Source != demoJunkSource {
			t.Errorf("lead 6 is from %q, want the junk source early", l.Source)
		}
		tl := bySource[l.Source]
		if tl == nil {
			tl = &tally{}
			bySource[l.Source] = tl
			subIDs[l.Source] = map[string]bool{}
		}
		tl.n++
		subIDs[l.Source][l.SubID] = true
		blockedCountry := false
		for _, b := range blocked {
			blockedCountry = blockedCountry || l.Country == b
		}
		if blockedCountry || !strings.HasPrefix(l.Phone, "+") {
			tl.bad++
		}
	}
	if len(bySource) != 5 {
		t.Errorf("sources %v, want 5", bySource)
	}
	for src, tl := range bySource {
		share := float64(tl.bad) / float64(tl.n)
		switch {
		case src == demoJunkSource && share < 0.7:
			t.Errorf("junk source: %d of %d leads bad (%.0f%%), want most", tl.bad, tl.n, 100*share)
		case src != demoJunkSource && share > 0.15:
			t.Errorf("source %s: %d of %d leads bad (%.0f%%), want few", src, tl.bad, tl.n, 100*share)
		}
		if n := len(subIDs[src]); n > 5 {
			t.Errorf("source %s has %d sub_ids, want a handful", src, n)
		}
	}
	if n := bySource[demoJunkSource].n; n < 150 || n > 250 {
		t.Errorf("junk source sent %d of 2600 leads, want about one in thirteen", n)
	}
}

// TestDemoCampaignStopsAtCap: the campaign counts the leads a store held
// before it towards its cap and stops there, so hours of demo keep the
// store small.
func TestDemoCampaignStopsAtCap(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	ctx := context.Background()
	for i := range 5 {
		if _, err := db.Enqueue(ctx, fmt.Appendf(nil, `{"external_id":"old-%d","phone":"+380501234567"}`, i), store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runCampaign(ctx, db, func() {}, nil, discardLog(), campaignPlan{
			Gap: func(time.Duration) time.Duration { return 0 }, Cap: 25, Seed: 3, Blocked: []string{"US"},
		})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the campaign did not stop at its cap")
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range c.States {
		total += n
	}
	if total != 25 {
		t.Fatalf("store holds %d leads, want the cap of 25", total)
	}
	leads, err := db.Leads(ctx, crm.LeadQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	junk := 0
	for _, l := range leads {
		if strings.Contains(string(l.Payload), `"source":"`+demoJunkSource+`"`) {
			junk++
		}
	}
	if junk == 0 {
		t.Errorf("none of the campaign's 20 leads came from the junk source")
	}
}

// TestDemoBadSignatureBurst: the demo's burst of forged callbacks reaches
// its own listener over loopback and every one is refused as a bad
// signature and stored, for the header and the events pane to show; the
// log names the burst but no secret.
func TestDemoBadSignatureBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo's listener and sandbox")
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := newDemoWorld(ctx, env{getenv: func(string) string { return "" }}, filepath.Join(dir, "demo.db"), "", logf)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	runDone := make(chan error, 1)
	go func() { runDone <- w.svc.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()

	const n = 40
	if got := w.badSignatures(ctx, n, 200*time.Millisecond); got != n {
		t.Fatalf("%d of %d forged callbacks answered", got, n)
	}
	if st := w.svc.handler.Stats(); st.Refused != n || st.Verified != 0 {
		t.Fatalf("listener stats after the burst: %+v, want %d refused and none verified", st, n)
	}
	var refs []crm.Refusal
	poll.UntilWithin(t, 10*time.Second, "the burst's refusals to be stored", func() bool {
		refs, err = w.db.Refusals(ctx, crm.EventQuery{Limit: 2 * n})
		if err != nil {
			t.Fatal(err)
		}
		return len(refs) >= n
	})
	for _, r := range refs {
		if r.Code != crm.CodeBadSignature || r.HTTPStatus != http.StatusForbidden {
			t.Fatalf("refusal %+v, want 403 %s", r, crm.CodeBadSignature)
		}
	}
	logb, _ := os.ReadFile(logf.Name())
	if !strings.Contains(string(logb), "burst of callbacks with a wrong signature") {
		t.Errorf("log lacks the burst:\n%s", logb)
	}
	for _, secret := range []string{string(w.cfg.CRM.APIKey.Reveal()), string(w.cfg.CRM.HMACSecret.Reveal()), string(w.cfg.Callbacks.Secrets[0].Reveal())} {
		if strings.Contains(string(logb), secret) {
			t.Fatalf("the log holds a secret")
		}
	}
}
