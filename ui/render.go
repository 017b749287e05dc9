package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// clean makes untrusted text (payloads, CRM answers, callback bodies,
// error strings) safe to draw: control characters, C1 controls included,
// would otherwise let a remote party move the cursor or retitle the
// terminal. Newlines and tabs become spaces; use cleanBlock for text that
// keeps its lines.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			return ' '
		case r == utf8.RuneError, unicode.IsControl(r):
			return '�'
		}
		return r
	}, s)
}

// cleanBlock is clean for multi-line text: it keeps newlines and expands
// tabs.
func cleanBlock(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = clean(strings.ReplaceAll(l, "\t", "    "))
	}
	return strings.Join(lines, "\n")
}

// fit truncates s (which may carry styles) to w cells, with an ellipsis,
// and pads it with spaces to exactly w cells, so columns line up.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if pad := w - lipgloss.Width(s); pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// clampView makes s exactly h lines of at most w cells: the frame never
// grows past the terminal, whatever a pane drew.
func clampView(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			lines[i] = ansi.Truncate(l, w, "")
		}
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// borderSet is one set of box-drawing glyphs.
type borderSet struct{ tl, tr, bl, br, h, v string }

// borders returns the frame glyphs. The focused pane gets heavy lines,
// not only a colour, so focus stays visible with NO_COLOR and in ASCII
// goldens.
func borders(focused bool) borderSet {
	if focused {
		return borderSet{"┏", "┓", "┗", "┛", "━", "┃"}
	}
	return borderSet{"╭", "╮", "╰", "╯", "─", "│"}
}

// box draws body inside a w×h frame with title set into the top border.
func (s *Styles) box(title, body string, w, h int, focused bool) string {
	if w < 4 || h < 2 {
		return clampView("", w, h)
	}
	bs, bst, tst := borders(focused), s.Border, s.Title
	if focused {
		bst, tst = s.BorderFocus, s.TitleFocus
	}
	iw, ih := w-2, h-2
	t := ""
	if title != "" {
		t = " " + ansi.Truncate(title, max(iw-4, 0), "…") + " "
	}
	fill := iw - 1 - lipgloss.Width(t)
	if fill < 0 {
		fill = 0
	}
	var b strings.Builder
	b.WriteString(bst.Render(bs.tl+bs.h) + tst.Render(t) + bst.Render(strings.Repeat(bs.h, fill)+bs.tr))
	lines := strings.Split(body, "\n")
	v := bst.Render(bs.v)
	for i := 0; i < ih; i++ {
		l := ""
		if i < len(lines) {
			l = lines[i]
		}
		b.WriteString("\n" + v + fit(l, iw) + v)
	}
	b.WriteString("\n" + bst.Render(bs.bl+strings.Repeat(bs.h, iw)+bs.br))
	return b.String()
}

// sparkBars are the eight heights of a sparkline, lowest first.
const sparkBars = "▁▂▃▄▅▆▇█"

// sparkline draws the last width values of vals, scaled to their maximum.
// Zero is the lowest bar and any activity at least the second, so a
// quiet minute and a slow one look different.
func sparkline(vals []int, width int) string {
	if width <= 0 {
		return ""
	}
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	bars := []rune(sparkBars)
	peak := 0
	for _, v := range vals {
		peak = max(peak, v)
	}
	out := make([]rune, 0, width)
	for i := len(vals); i < width; i++ {
		out = append(out, bars[0])
	}
	for _, v := range vals {
		lvl := 0
		if v > 0 && peak > 0 {
			lvl = 1 + v*(len(bars)-2)/peak
		}
		out = append(out, bars[lvl])
	}
	return string(out)
}

// fmtDur prints a duration compactly: 850ms, 12s, 1m05s, 2h03m.
func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		s = fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	if neg {
		return "-" + s
	}
	return s
}

// fmtCountdown is the time left until t, or "due" once it has passed.
func fmtCountdown(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(now)
	switch {
	case d <= 0:
		return "due"
	case d < time.Second:
		return "in <1s"
	case d < time.Minute:
		// Whole seconds: the row redraws every second, so a tenth is
		// precision it cannot keep.
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	}
	return "in " + fmtDur(d.Truncate(time.Second))
}

// fmtAge is how long ago t was, coarsely.
func fmtAge(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// fmtSkew prints a clock skew with its sign: the CRM's clock ahead of
// ours or behind it.
func fmtSkew(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d > 0 {
		return "+" + fmtDur(d)
	}
	return fmtDur(d)
}

// prettyJSON indents raw JSON for reading; anything else comes back as
// cleaned text. Indent keeps key order and number digits, unlike a
// decode/encode round trip.
func prettyJSON(raw []byte) string {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "(empty)"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return cleanBlock(string(raw))
	}
	return cleanBlock(buf.String())
}

// editableJSON indents raw for editing. Unlike prettyJSON nothing is
// replaced: what the user saves must be the payload, not its on-screen
// form (the textarea draws only what it holds, so this is safe to show).
func editableJSON(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// overlayCenter draws fg centred on top of bg, a w×h block, leaving the
// rest of bg visible around it: dialogs keep the dashboard in view.
func overlayCenter(bg, fg string, w, h int) string {
	lines := strings.Split(clampView(bg, w, h), "\n")
	fgLines := strings.Split(fg, "\n")
	fw := 0
	for _, l := range fgLines {
		fw = max(fw, lipgloss.Width(l))
	}
	x, y := max((w-fw)/2, 0), max((h-len(fgLines))/2, 0)
	for i, fl := range fgLines {
		row := y + i
		if row >= len(lines) {
			break
		}
		bl := lines[row]
		left := ansi.Truncate(bl, x, "")
		if pad := x - lipgloss.Width(left); pad > 0 {
			left += strings.Repeat(" ", pad)
		}
		if strings.Contains(left, "\x1b[") {
			left += "\x1b[0m" // a style cut in half must not leak into the dialog
		}
		right := ansi.TruncateLeft(bl, x+lipgloss.Width(fl), "")
		lines[row] = left + fl + right
	}
	return strings.Join(lines, "\n")
}

// wrapHard breaks s into lines of at most w cells, for text that must be
// seen whole (a modal's content).
func wrapHard(s string, w int) string {
	if w <= 0 {
		return s
	}
	return ansi.Hardwrap(s, w, true)
}

// wrapWords breaks s into lines of at most w cells between words, and
// inside a word only when it is longer than a line: for prose and
// timelines, where a key or an id must stay whole to be read.
func wrapWords(s string, w int) string {
	if w <= 0 {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = wrapLine(l, w)
	}
	return strings.Join(lines, "\n")
}

// wrapLine wraps one line at spaces only: ansi.Wordwrap also breaks at
// every hyphen, which splits keys and external ids.
func wrapLine(l string, w int) string {
	if ansi.StringWidth(l) <= w {
		return l
	}
	var out []string
	var cur strings.Builder
	// The line's indent stays on its first line.
	body := strings.TrimLeft(l, " ")
	cur.WriteString(l[:len(l)-len(body)])
	curW, fresh := cur.Len(), true
	for _, word := range strings.Split(body, " ") {
		ww := ansi.StringWidth(word)
		switch {
		case fresh:
			cur.WriteString(word)
			curW += ww
			fresh = false
		case curW+1+ww <= w:
			cur.WriteString(" " + word)
			curW += 1 + ww
		default:
			out = append(out, cur.String())
			cur.Reset()
			cur.WriteString(word)
			curW = ww
		}
		if curW > w {
			// A word longer than a line: break it where it must.
			parts := strings.Split(ansi.Hardwrap(cur.String(), w, true), "\n")
			out = append(out, parts[:len(parts)-1]...)
			cur.Reset()
			cur.WriteString(parts[len(parts)-1])
			curW = ansi.StringWidth(parts[len(parts)-1])
		}
	}
	return strings.Join(append(out, cur.String()), "\n")
}

// hangWrap wraps s to w cells between words and indents every line after
// the first by indent cells, so a wrapped entry stays under its text.
func hangWrap(s string, w, indent int) string {
	if w-indent < 20 {
		return s
	}
	first, rest, _ := strings.Cut(wrapWords(s, w), "\n")
	if rest == "" {
		return first
	}
	pre := strings.Repeat(" ", indent)
	return first + "\n" + pre + strings.ReplaceAll(wrapWords(strings.ReplaceAll(rest, "\n", " "), w-indent), "\n", "\n"+pre)
}

// pad indents every line of s by one cell: breathing room inside a
// dialog's frame.
func pad(s string) string {
	return " " + strings.ReplaceAll(s, "\n", "\n ")
}
