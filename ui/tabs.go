package ui

import (
	"fmt"
	"strings"
)

// tabBar is the narrow layout's row of pane names, one of which is
// shown under it. The root builds it from the panes each frame, so it
// never holds a stale count.
type tabBar struct {
	st     *Styles
	active paneID
	totals [paneCount]int // -1 while unknown
}

// View draws the bar width cells wide. The active tab is bracketed as
// well as coloured, so it shows without colour.
func (t tabBar) View(width int) string {
	var parts []string
	for id := range paneCount {
		label := fmt.Sprintf("%d %s", id+1, id.title())
		if t.totals[id] >= 0 {
			label += fmt.Sprintf(" %d", t.totals[id])
		}
		if id == t.active {
			parts = append(parts, t.st.TabActive.Render("["+label+"]"))
		} else {
			parts = append(parts, t.st.TabInactive.Render(" "+label+" "))
		}
	}
	return fit(strings.Join(parts, t.st.Border.Render("│")), width)
}
