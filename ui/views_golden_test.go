package ui

import (
	"fmt"
	"testing"

	"github.com/charmbracelet/x/exp/teatest"
)

// TestViewsGolden compares each new view's frame at the three sizes the
// dashboard is checked at with testdata/. Refresh with
// go test ./ui/ -run ViewsGolden -update.
func TestViewsGolden(t *testing.T) {
	views := []struct {
		name string
		keys []string
	}{
		{"all", []string{"5", "j"}},
		{"sources", []string{"6", "j", "P"}},
		{"throughput", []string{"7"}},
		{"throughput_hour", []string{"7", "w"}},
		{"jump", []string{"5", ":"}},
	}
	for _, v := range views {
		for _, sz := range [][2]int{{160, 48}, {100, 30}, {80, 24}} {
			t.Run(fmt.Sprintf("%s_%dx%d", v.name, sz[0], sz[1]), func(t *testing.T) {
				_, _, m := viewHarness(t, sz[0], sz[1], nil)
				m = press(t, m, v.keys...)
				view := m.View()
				requireFrame(t, view, sz[0], sz[1])
				teatest.RequireEqualOutput(t, []byte(view))
			})
		}
	}
}
