package ui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// paneID names one of the four panes; the order is the tab order.
type paneID int

const (
	paneRetries paneID = iota
	paneDuplicates
	paneRejections
	paneEvents
	paneCount
)

func (id paneID) title() string {
	switch id {
	case paneRetries:
		return "Pending retries"
	case paneDuplicates:
		return "Duplicates"
	case paneRejections:
		return "Rejections"
	case paneEvents:
		return "Status events"
	}
	return "?"
}

// column is one column of a pane: a fixed width, or flex (width 0) to
// take what is left.
type column struct {
	title string
	width int
}

// cell is one table cell: plain text and the style it is drawn with.
// The selected row ignores cell styles so its highlight is unbroken.
type cell struct {
	text  string
	style *lipgloss.Style
}

func plain(s string) cell                     { return cell{text: clean(s)} }
func styled(s string, st lipgloss.Style) cell { return cell{text: clean(s), style: &st} }

// markerWidth is the row marker column ("▸ ") every pane starts with.
const markerWidth = 2

// widths resolves flex columns for an inner width iw: fixed columns keep
// their width and flex ones share the rest, never below 6 cells.
func widths(cols []column, iw int) []int {
	out := make([]int, len(cols))
	fixed, flex := markerWidth, 0
	for i, c := range cols {
		out[i] = c.width
		fixed += c.width + 1
		if c.width == 0 {
			flex++
		}
	}
	if flex == 0 {
		return out
	}
	share := max((iw-fixed)/flex, 6)
	for i, c := range cols {
		if c.width == 0 {
			out[i] = share
		}
	}
	return out
}

// tableHeader renders the column titles.
func (s *Styles) tableHeader(cols []column, ws []int) string {
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", markerWidth))
	for i, c := range cols {
		b.WriteString(fit(c.title, ws[i]) + " ")
	}
	return s.ColHeader.Render(strings.TrimRight(b.String(), " "))
}

// tableRow renders one row. The selected row of the focused pane is drawn
// as one highlighted strip; the marker keeps it visible without colour.
func (s *Styles) tableRow(cells []cell, ws []int, iw int, selected, focused bool) string {
	var b strings.Builder
	for i, c := range cells {
		if i >= len(ws) {
			break
		}
		w := ws[i]
		if i == len(cells)-1 {
			// A short row's last cell spans the columns it does not fill.
			for _, rest := range ws[i+1:] {
				w += rest + 1
			}
		}
		txt := fit(c.text, w)
		if c.style != nil && !(selected && focused) {
			txt = c.style.Render(txt)
		}
		b.WriteString(txt + " ")
	}
	line := b.String()
	switch {
	case selected && focused:
		return s.Cursor.Render("▸ ") + s.Selected.Render(fit(strings.TrimRight(line, " "), iw-markerWidth))
	case selected:
		return s.CursorBlur.Render("› ") + line
	}
	return "  " + line
}

// emptyBody is what a pane shows instead of rows.
func (s *Styles) emptyBody(header, msg string) string {
	return header + "\n" + s.Muted.Render("  "+msg)
}

// tableView is one pane's table as drawn: its rows' cells (only the rows
// on screen) and what to say when there are none.
type tableView struct {
	title         string
	cols          []column
	rows          [][]cell
	loaded        bool
	filter        string
	empty         string // said when there are no rows and no filter
	cursor        int
	focused       bool
	width, height int
}

// table draws a pane: a box holding the header and the rows, or a line
// saying why there are none.
func (s *Styles) table(v tableView) string {
	title := v.title
	if v.filter != "" {
		title += " · /" + clean(v.filter)
	}
	iw := v.width - 2
	ws := widths(v.cols, iw)
	header := s.tableHeader(v.cols, ws)
	var body string
	switch {
	case !v.loaded:
		body = s.emptyBody(header, "loading…")
	case len(v.rows) == 0 && v.filter != "":
		body = s.emptyBody(header, "no match for /"+clean(v.filter)+" — esc clears")
	case len(v.rows) == 0:
		body = s.emptyBody(header, v.empty)
	default:
		lines := make([]string, 0, len(v.rows)+1)
		lines = append(lines, header)
		for i, cells := range v.rows {
			lines = append(lines, s.tableRow(cells, ws, iw, i == v.cursor, v.focused))
		}
		body = strings.Join(lines, "\n")
	}
	return s.box(title, body, v.width, v.height, v.focused)
}
