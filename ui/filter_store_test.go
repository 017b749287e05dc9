package ui

import (
	"context"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// filledStore is a store the test can append synthetic leads and
// callbacks to (both backends' Fill).
type filledStore interface {
	Source
	crm.Outbox
	Fill(ctx context.Context, leads, callbacks int) error
}

// TestFilteredPanesReadWhatArrivedOnStores checks the filtering panes'
// reads of what arrived after their search against real stores: after
// leads and callbacks are stored, a refresh shows what a dashboard that
// searches afresh shows.
func TestFilteredPanesReadWhatArrivedOnStores(t *testing.T) {
	backends := map[string]func(t *testing.T) filledStore{
		"SQLite": func(t *testing.T) filledStore { return storetest.Open(t, store.Options{}) },
		"Postgres": func(t *testing.T) filledStore {
			db, err := postgres.Open(context.Background(), storetest.Postgres(t), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			if err := db.Fill(ctx, 2000, 2000); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			dashboard := func(keys ...string) Model {
				m := drive(t, New(Config{Source: db, Now: func() time.Time { return now }}), tea.WindowSizeMsg{Width: 160, Height: 48})
				m = press(t, m, keys...)
				return press(t, m, "enter")
			}
			all := append([]string{"5", "/"}, splitKeys("fill-20")...)
			events := append([]string{"4", "/"}, splitKeys("fill-1")...)
			rejects := append([]string{"3", "/"}, splitKeys("HTTP 401")...)
			am, em, rm := dashboard(all...), dashboard(events...), dashboard(rejects...)

			if err := db.Fill(ctx, 30, 300); err != nil {
				t.Fatal(err)
			}
			// Sent leads fail, half of them with a 401: they enter the
			// Rejections pane now, at its top.
			sent, err := db.Claim(ctx, "w", time.Now(), time.Minute, 6)
			if err != nil || len(sent) != 6 {
				t.Fatalf("claim: %d leads, %v", len(sent), err)
			}
			for i, l := range sent {
				code := []int{401, 500}[i%2]
				if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, HTTPStatus: code,
					Outcome: crm.StateFailed, StartedAt: time.Now()}, Reason: "refused"}); err != nil {
					t.Fatal(err)
				}
			}
			am, em, rm = refreshNow(t, am), refreshNow(t, em), refreshNow(t, rm)

			gotR, titleR := leadRows(rm.rejects)
			wantR, wantTitleR := leadRows(dashboard(rejects...).rejects)
			if !slices.Equal(gotR, wantR) || titleR != wantTitleR || !slices.Contains(gotR, sent[0].ExternalID) {
				t.Fatalf("Rejections /HTTP 401 after three 401s: %v%s, a fresh search %v%s", gotR, titleR, wantR, wantTitleR)
			}

			var got, want []string
			for _, l := range am.all.rows {
				got = append(got, l.ExternalID)
			}
			for _, l := range dashboard(all...).all.rows {
				want = append(want, l.ExternalID)
			}
			if !slices.Equal(got, want) || !slices.Contains(got, "fill-2030") {
				t.Fatalf("All leads /fill-20 after 30 new leads: %v, a fresh search %v", got, want)
			}

			got, want = nil, nil
			for _, r := range em.events.rows {
				got = append(got, r.key())
			}
			fresh := dashboard(events...).events
			for _, r := range fresh.rows {
				want = append(want, r.key())
			}
			if len(got) == 0 || !slices.Equal(got, want) || em.events.matched != fresh.matched {
				t.Fatalf("Status events /fill-1 after 300 new callbacks: %v (%d), a fresh search %v (%d)",
					got, em.events.matched, want, fresh.matched)
			}
		})
	}
}
