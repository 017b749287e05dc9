package ui

import (
	"bytes"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
)

// TestGolden runs the real bubbletea program over the fake source and
// compares the final frame of each main screen with testdata/. The
// golden is the last frame (the final model's View), not the raw byte
// stream: the stream interleaves frames at the renderer's own pace and
// would differ from run to run. Refresh with go test ./ui/ -run Golden -update.
func TestGolden(t *testing.T) {
	cases := []struct {
		name  string
		w, h  int
		keys  []tea.Msg
		until string // the frame is complete once the output shows this
	}{
		{"grid", 160, 48, nil, "ext-303"},
		{"tabs", 100, 30, nil, "ext-101"},
		{"detail", 160, 48, []tea.Msg{keyMsg("3"), keyMsg("enter")}, "Last response"},
		{"help", 160, 48, []tea.Msg{keyMsg("?")}, "Keys · dashboard"},
		{"confirm", 160, 48, []tea.Msg{keyMsg("3"), keyMsg("r")}, "unchanged failed lead"},
		{"too_small", 50, 12, nil, "terminal too small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			tm := teatest.NewTestModel(t, New(h.config()), teatest.WithInitialTermSize(tc.w, tc.h))
			if len(tc.keys) > 0 {
				// Keys act on loaded rows: wait for them first.
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
					return bytes.Contains(b, []byte("ext-30")) || bytes.Contains(b, []byte("too small"))
				}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
				for _, k := range tc.keys {
					tm.Send(k)
				}
			}
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
				return bytes.Contains(b, []byte(tc.until))
			}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
			teatest.RequireEqualOutput(t, []byte(final.View()))
		})
	}
}
