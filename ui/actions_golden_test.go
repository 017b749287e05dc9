package ui

import (
	"bytes"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
)

// TestActionsGolden runs the real program at 80×24 and compares the
// final frame of each new dialog with testdata/ (go test ./ui/ -run
// ActionsGolden -update refreshes them), as TestGolden does.
func TestActionsGolden(t *testing.T) {
	keys := func(ks ...string) []tea.Msg {
		out := make([]tea.Msg, len(ks))
		for i, k := range ks {
			out[i] = keyMsg(k)
		}
		return out
	}
	// Each step's keys go once the frame shows its wait text.
	type step struct {
		keys []tea.Msg
		wait string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"cancel", []step{{keys("x"), "Cancel ext-103?"}}},
		{"send_all", []step{{keys("S"), "Send all 3 leads"}}},
		{"bulk", []step{{keys("3", "R"), "get a new key"}}},
		{"drop_edit", []step{{keys("3"), "ext-303"}, {keys("j", "e"), "Edit payload"}, {keys("x", "esc"), "Drop your edits"}}},
		{"curl", []step{{keys("3"), "ext-303"}, {keys("c"), "clipboard"}}},
		{"help", []step{{keys("?"), "Keys · dashboard"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			tm := teatest.NewTestModel(t, New(h.config()), teatest.WithInitialTermSize(80, 24))
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("ext-10")) },
				teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
			for _, st := range tc.steps {
				for _, k := range st.keys {
					tm.Send(k)
				}
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(st.wait)) },
					teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
			}
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
			teatest.RequireEqualOutput(t, []byte(final.View()))
		})
	}
}
