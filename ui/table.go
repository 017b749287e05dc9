package ui

import (
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

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

// table is a pane's rows as drawn: a box holding the column header and
// only the rows on screen, or a line saying why there are none. Panes
// build one per frame from their state; it keeps none of its own.
type table struct {
	st      *Styles
	title   string
	cols    []column
	rows    [][]cell
	loaded  bool
	filter  string
	empty   string // said when there are no rows and no filter
	cursor  int
	focused bool
	height  int
}

// View draws the table width cells wide.
func (t table) View(width int) string {
	s := t.st
	title := t.title
	if t.filter != "" {
		title += " · /" + clean(t.filter)
	}
	iw := width - 2
	ws := widths(t.cols, iw)
	header := s.tableHeader(t.cols, ws)
	var body string
	switch {
	case !t.loaded:
		body = s.emptyBody(header, "loading…")
	case len(t.rows) == 0 && t.filter != "":
		body = s.emptyBody(header, "no match for /"+clean(t.filter)+" — esc clears")
	case len(t.rows) == 0:
		body = s.emptyBody(header, t.empty)
	default:
		lines := make([]string, 0, len(t.rows)+1)
		lines = append(lines, header)
		for i, cells := range t.rows {
			lines = append(lines, s.tableRow(cells, ws, iw, i == t.cursor, t.focused))
		}
		body = strings.Join(lines, "\n")
	}
	return s.box(title, body, width, t.height, t.focused)
}

// countLabel is a pane title's count: " (total)", or " (shown/total)"
// while a filter is on. A negative shown is a lower bound, drawn "n+";
// an unknown total (-1) is left out.
func countLabel(shown, total int, filtered bool) string {
	n := ""
	switch {
	case !filtered:
	case shown < 0:
		n = strconv.Itoa(-shown) + "+"
	default:
		n = strconv.Itoa(shown)
	}
	switch {
	case total < 0 && n == "":
		return ""
	case total < 0:
		return " (" + n + ")"
	case n == "":
		return " (" + strconv.Itoa(total) + ")"
	}
	return " (" + n + "/" + strconv.Itoa(total) + ")"
}
