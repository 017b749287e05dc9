package ui

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
)

// TestForwardGolden runs the real program over the fake with forwarding
// failing and a polled status, at the three sizes the dashboard is
// tried at, and compares the final frame of each screen with testdata/
// (go test ./ui/ -run ForwardGolden -update refreshes them): the
// forwarding line on the dashboard, the events pane's polled row, a
// lead's timeline with the app's answers, and the replay question.
func TestForwardGolden(t *testing.T) {
	keys := func(ks ...string) []tea.Msg {
		out := make([]tea.Msg, len(ks))
		for i, k := range ks {
			out[i] = keyMsg(k)
		}
		return out
	}
	// Each step's keys go once the frame shows its wait text: in tabs
	// a pane's rows load after the key that shows it.
	type step struct {
		keys []tea.Msg
		wait string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"dashboard", nil},
		{"events", []step{{keys("4"), "lookup"}}},
		{"timeline", []step{{keys("4"), "lookup"}, {keys("enter"), "polled status"}}},
		{"replay", []step{{keys("4"), "lookup"}, {keys("enter"), "polled status"}, {keys("a"), "Replay the 2 stored"}}},
	}
	for _, tc := range cases {
		for _, size := range [][2]int{{160, 48}, {100, 30}, {80, 24}} {
			t.Run(fmt.Sprintf("%s_%dx%d", tc.name, size[0], size[1]), func(t *testing.T) {
				h := forwardHarness(failingStats())
				tm := teatest.NewTestModel(t, New(h.config()), teatest.WithInitialTermSize(size[0], size[1]))
				// The keys act on loaded rows, with forwarding known.
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
					return bytes.Contains(b, []byte("ext-10")) && bytes.Contains(b, []byte("failing"))
				},
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
				view := final.View()
				requireFrame(t, view, size[0], size[1])
				requireLacks(t, view, "hunter2", "s3cr3t")
				teatest.RequireEqualOutput(t, []byte(view))
			})
		}
	}
}
