package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
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
// well as coloured, so it shows without colour. When the names do not fit,
// the inactive tabs shrink first (the views' to their number and count,
// then every one's, then to their number, then without padding), so the
// active one stays whole at 60 columns and below.
func (t tabBar) View(width int) string {
	var bar string
	for short := range 5 {
		bar = t.bar(short)
		if lipgloss.Width(bar) <= width {
			break
		}
	}
	return fit(bar, width)
}

// bar joins the tabs; short is 0 for full inactive labels, 1 for the
// views' number and count, 2 for everyone's, 3 for the number only, 4
// for the number without padding.
func (t tabBar) bar(short int) string {
	var parts []string
	for id := range paneCount {
		active := id == t.active
		level := short
		if short == 1 && !id.view() {
			level = 0 // the grid's panes keep their names a step longer
		}
		label := fmt.Sprintf("%d", id+1)
		if active || level == 0 {
			label += " " + id.title()
		}
		if t.totals[id] >= 0 && (active || level < 3) {
			label += fmt.Sprintf(" %d", t.totals[id])
		}
		switch {
		case active:
			parts = append(parts, t.st.TabActive.Render("["+label+"]"))
		case level == 4:
			parts = append(parts, t.st.TabInactive.Render(label))
		default:
			parts = append(parts, t.st.TabInactive.Render(" "+label+" "))
		}
	}
	return strings.Join(parts, t.st.Border.Render("│"))
}
