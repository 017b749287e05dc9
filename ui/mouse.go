package ui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// The mouse: the wheel scrolls the pane under the pointer (the detail
// view, the curl snippet), a click focuses a pane and selects the row
// clicked, a click on a tab brings it up. Everything goes through the
// panes' own keys (up and down), so a click moves the cursor the way the
// keys would: off the newest event it freezes the tail, off a lead's row
// it follows that lead.

// tabBar is the narrow layout's tab row as drawn now.
func (m Model) tabBar() tabBar {
	t := tabBar{st: m.st, active: m.focus}
	for id := range paneCount {
		t.totals[id] = m.pane(id).count()
	}
	return t
}

// rowPane is a pane whose rows a click can select: where its cursor is
// and how many rows it draws, under a one-line column header.
type rowPane interface {
	cursorAt() int
	rowsDrawn() int
}

func (p leadPane) cursorAt() int   { return p.cursor }
func (p leadPane) rowsDrawn() int  { return len(p.rows) }
func (p eventPane) cursorAt() int  { return p.cursor }
func (p eventPane) rowsDrawn() int { return len(p.rows) }
func (p allPane) cursorAt() int    { return p.cursor }
func (p allPane) rowsDrawn() int   { return len(p.rows) }

var (
	_ rowPane = (*leadPane)(nil)
	_ rowPane = (*eventPane)(nil)
	_ rowPane = (*allPane)(nil)
)

// rect is a part's place on screen, in cells.
type rect struct{ x, y, w, h int }

func (r rect) has(x, y int) bool { return x >= r.x && x < r.x+r.w && y >= r.y && y < r.y+r.h }

// paneAt is the pane drawn at (x, y) and its rect; false over the
// header, the status bar or the tab row.
func (m Model) paneAt(x, y int) (paneID, rect, bool) {
	top, bh := m.header.height(), m.bodyHeight()
	if m.grid && !m.focus.view() {
		lw, th := m.width/2, bh/2
		quads := []struct {
			id paneID
			r  rect
		}{
			{paneRetries, rect{0, top, lw, th}},
			{paneDuplicates, rect{lw, top, m.width - lw, th}},
			{paneRejections, rect{0, top + th, lw, bh - th}},
			{paneEvents, rect{lw, top + th, m.width - lw, bh - th}},
		}
		for _, q := range quads {
			if q.r.has(x, y) {
				return q.id, q.r, true
			}
		}
		return 0, rect{}, false
	}
	r := rect{0, top, m.width, bh}
	if !m.grid {
		r.y, r.h = top+1, bh-1 // under the tab row
	}
	return m.focus, r, r.has(x, y)
}

// tabAt is the tab drawn at column x of the tab row.
func (m Model) tabAt(x int) (paneID, bool) {
	// The tabs are split where the bar draws its separators, so the
	// hit test follows whatever the bar shortened.
	bar := ansi.Strip(m.tabBar().View(m.width))
	pos := 0
	for i, label := range strings.Split(bar, "│") {
		w := ansi.StringWidth(label)
		if x >= pos && x < pos+w && i < int(paneCount) && strings.TrimSpace(label) != "" {
			return paneID(i), true
		}
		pos += w + 1
	}
	return 0, false
}

// mouse handles a mouse message.
func (m Model) mouse(msg tea.MouseMsg) (tea.Model, tea.Cmd) {
	if m.tooSmall() {
		return m, nil
	}
	wheel := 0
	switch {
	case msg.Button == tea.MouseButtonWheelUp:
		wheel = -1
	case msg.Button == tea.MouseButtonWheelDown:
		wheel = 1
	case msg.Button == tea.MouseButtonLeft && msg.Action == tea.MouseActionPress:
	default:
		return m, nil // motion, release, other buttons
	}
	step := tea.KeyMsg{Type: tea.KeyDown}
	if wheel < 0 {
		step = tea.KeyMsg{Type: tea.KeyUp}
	}
	switch {
	case m.overlay != nil:
		// Only scrolling dialogs take the wheel; a click does not pass
		// through a dialog to the screen under it.
		if _, ok := m.overlay.(curlDialog); ok && wheel != 0 {
			var cmd tea.Cmd
			m.overlay, cmd = m.overlay.Update(step)
			return m, cmd
		}
		return m, nil
	case m.filter.active:
		return m, nil
	case m.detail.shown:
		if wheel != 0 {
			var cmd tea.Cmd
			m.detail, cmd = m.detail.Update(step)
			return m, cmd
		}
		return m, nil
	}
	if !m.grid && msg.Y == m.header.height() {
		if id, ok := m.tabAt(msg.X); ok && wheel == 0 && id != m.focus {
			m.setFocus(id)
			cmd := m.refresh() // the tab that came up has not been read
			return m, cmd
		}
		return m, nil
	}
	id, r, ok := m.paneAt(msg.X, msg.Y)
	if wheel != 0 {
		if !ok {
			id = m.focus
		}
		cmd := m.pane(id).Update(step)
		return m, cmd
	}
	if !ok {
		return m, nil
	}
	m.setFocus(id)
	// Rows start under the frame's top line and the column header.
	row := msg.Y - r.y - 2
	p, isRows := m.pane(id).(rowPane)
	if !isRows || row < 0 || row >= p.rowsDrawn() {
		return m, nil
	}
	var cmds []tea.Cmd
	for delta := row - p.cursorAt(); delta != 0; {
		k := tea.KeyMsg{Type: tea.KeyDown}
		if delta < 0 {
			k, delta = tea.KeyMsg{Type: tea.KeyUp}, delta+1
		} else {
			delta--
		}
		cmds = append(cmds, m.pane(id).Update(k))
	}
	return m, tea.Batch(cmds...)
}
