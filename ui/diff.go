package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// diffOp is what a line of a diff does: kept, removed or added.
type diffOp byte

const (
	diffSame diffOp = ' '
	diffDel  diffOp = '-'
	diffAdd  diffOp = '+'
)

// diffLine is one line of a line diff.
type diffLine struct {
	op   diffOp
	text string
}

// maxDiffCells bounds the LCS table: a payload is at most 1 MiB, but the
// editor's payloads are a few dozen lines; past this many line pairs the
// diff falls back to "every old line removed, every new one added",
// which is still true, only longer.
const maxDiffCells = 4 << 20

// lineDiff is the shortest edit from a to b by lines: the longest common
// subsequence is kept, the rest of a removed and the rest of b added,
// removals before additions where both happen at one place (the way
// diff -u reads).
func lineDiff(a, b []string) []diffLine {
	// Common head and tail cost nothing and shrink the table.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	out := make([]diffLine, 0, len(a)+len(b))
	for _, l := range a[:pre] {
		out = append(out, diffLine{diffSame, l})
	}
	out = append(out, lcsDiff(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, l := range a[len(a)-suf:] {
		out = append(out, diffLine{diffSame, l})
	}
	return out
}

// lcsDiff diffs the middle part by the classic LCS table, walked from
// the front.
func lcsDiff(a, b []string) []diffLine {
	n, m := len(a), len(b)
	var out []diffLine
	if n*m > maxDiffCells {
		for _, l := range a {
			out = append(out, diffLine{diffDel, l})
		}
		for _, l := range b {
			out = append(out, diffLine{diffAdd, l})
		}
		return out
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, diffLine{diffSame, a[i]})
			i, j = i+1, j+1
		case j == m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, diffLine{diffDel, a[i]})
			i++
		default:
			out = append(out, diffLine{diffAdd, b[j]})
			j++
		}
	}
	return out
}

// diffContext is how many unchanged lines a drawn diff keeps around each
// change.
const diffContext = 1

// renderDiff draws the line diff of two texts as "- old" / "+ new"
// lines with diffContext lines of context, at most maxLines lines (the
// rest summed up in a last line), each cut to w cells. It is "" when the
// texts are the same.
func (s *Styles) renderDiff(from, to string, w, maxLines int) string {
	d := lineDiff(strings.Split(from, "\n"), strings.Split(to, "\n"))
	keep := make([]bool, len(d))
	changed := false
	for i, l := range d {
		if l.op == diffSame {
			continue
		}
		changed = true
		for k := max(i-diffContext, 0); k <= min(i+diffContext, len(d)-1); k++ {
			keep[k] = true
		}
	}
	if !changed {
		return ""
	}
	var lines []string
	gap := false
	for i, l := range d {
		if !keep[i] {
			if !gap && len(lines) > 0 {
				lines = append(lines, s.Muted.Render("  ⋯"))
			}
			gap = true
			continue
		}
		gap = false
		text := ansi.Truncate(string(l.op)+" "+clean(l.text), max(w, 1), "…")
		switch l.op {
		case diffDel:
			text = s.Bad.Render(text)
		case diffAdd:
			text = s.Good.Render(text)
		default:
			text = s.Muted.Render(text)
		}
		lines = append(lines, text)
	}
	if maxLines > 0 && len(lines) > maxLines {
		rest := len(lines) - (maxLines - 1)
		lines = append(lines[:maxLines-1], s.Muted.Render(fmt.Sprintf("  … %d more lines of the diff", rest)))
	}
	return strings.Join(lines, "\n")
}

// diffCounts is how many lines the edit removed and added.
func diffCounts(from, to string) (del, add int) {
	for _, l := range lineDiff(strings.Split(from, "\n"), strings.Split(to, "\n")) {
		switch l.op {
		case diffDel:
			del++
		case diffAdd:
			add++
		}
	}
	return del, add
}
