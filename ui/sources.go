package ui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// sourcesView is the Report: the leads created in a window, grouped by
// one of the source fields, with what became of them. It shows which
// traffic source sends junk, and P pauses sending for it.
type sourcesView struct {
	paneFrame
	by     int // index into crm.GroupFields
	window int // index into reportWindows
	filter string

	rows   []crm.ReportRow
	loaded bool
	cursor int
	value  string // the selected row's value, which the cursor follows
	pauses []crm.Pause

	askedAt  time.Time // when the report was last asked, for pacing
	askedFor string    // the field and window it was asked for
}

// reportWindows are the Sources view's windows, in the order w cycles.
var reportWindows = []struct {
	label string
	span  time.Duration // 0: the whole store
}{
	{"last 5 min", 5 * time.Minute},
	{"last hour", time.Hour},
	{"all time", 0},
}

// reportEvery paces the report: at most once a second, however often
// the store signals changes.
const reportEvery = time.Second

func newSourcesView(st *Styles, keys dashboardKeys) sourcesView {
	return sourcesView{paneFrame: newPaneFrame(st, keys)}
}

func (v sourcesView) field() string { return crm.GroupFields[v.by] }

// key names what the view shows; a report for another key is stale.
func (v sourcesView) key() string { return v.field() + "/" + reportWindows[v.window].label }

// nextField groups by the next field (source → funnel → sub_id →
// country), nextWindow widens the window (5 min → 1 h → all); the rows
// go until the report for the new choice lands.
func (v *sourcesView) nextField() {
	v.by = (v.by + 1) % len(crm.GroupFields)
	v.reset()
}

func (v *sourcesView) nextWindow() {
	v.window = (v.window + 1) % len(reportWindows)
	v.reset()
}

func (v *sourcesView) reset() {
	v.rows, v.loaded, v.cursor, v.value = nil, false, 0, ""
	v.askedAt = time.Time{}
}

func (v *sourcesView) ask(q *snapshotQuery) {
	k := v.key()
	if v.askedFor == k && !v.askedAt.IsZero() && q.now.Sub(v.askedAt) < reportEvery {
		return
	}
	rq := crm.ReportQuery{By: v.field()}
	if span := reportWindows[v.window].span; span > 0 {
		rq.Since = q.now.Add(-span)
	}
	q.views.report = &rq
	v.askedAt, v.askedFor = q.now, k
}

func (v *sourcesView) take(s snapshotMsg) bool {
	r := s.views
	span := reportWindows[v.window].span
	if !r.reportOK || r.reportQ.By != v.field() || (span == 0) != r.reportQ.Since.IsZero() ||
		(span > 0 && s.q.now.Sub(r.reportQ.Since) != span) {
		return false // a report for another choice: a newer one is asked
	}
	v.rows, v.pauses, v.loaded = r.report, r.pauses, true
	v.total = len(v.rows)
	v.follow()
	return false
}

// shown are the rows the filter keeps: their value holds it.
func (v sourcesView) shown() []crm.ReportRow {
	if v.filter == "" {
		return v.rows
	}
	f := strings.ToLower(v.filter)
	var out []crm.ReportRow
	for _, r := range v.rows {
		if strings.Contains(strings.ToLower(valueLabel(r.Value)), f) {
			out = append(out, r)
		}
	}
	return out
}

// follow puts the cursor back on the selected value after the rows
// changed order (Sent descending moves them under live traffic).
func (v *sourcesView) follow() {
	rows := v.shown()
	if v.value != "" || v.cursor > 0 {
		for i, r := range rows {
			if r.Value == v.value {
				v.cursor = i
				return
			}
		}
	}
	v.cursor = min(max(v.cursor, 0), max(len(rows)-1, 0))
	v.remember()
}

func (v *sourcesView) remember() {
	if rows := v.shown(); v.cursor < len(rows) {
		v.value = rows[v.cursor].Value
	}
}

func (v *sourcesView) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	n := len(v.shown())
	switch {
	case key.Matches(k, v.keys.Up):
		v.cursor--
	case key.Matches(k, v.keys.Down):
		v.cursor++
	case key.Matches(k, v.keys.PageUp):
		v.cursor -= v.limit()
	case key.Matches(k, v.keys.PageDown):
		v.cursor += v.limit()
	case key.Matches(k, v.keys.Top):
		v.cursor = 0
	case key.Matches(k, v.keys.Bottom):
		v.cursor = n - 1
	}
	v.cursor = min(max(v.cursor, 0), max(n-1, 0))
	v.remember()
	return nil
}

func (v sourcesView) filterText() string { return v.filter }

func (v *sourcesView) setFilter(f string) {
	v.filter, v.cursor = f, 0
	v.remember()
}

// selection is none: a row is a group of leads, not one.
func (v sourcesView) selection() (selection, bool) { return selection{}, false }

// isPaused reports whether sending is paused for value under the field
// grouped by.
func (v sourcesView) isPaused(value string) bool {
	for _, p := range v.pauses {
		if p.Field == v.field() && p.Value == value {
			return true
		}
	}
	return false
}

// pauseTarget is what P acts on: the selected row's source or sub_id,
// and whether it is paused already (then P resumes it).
func (v sourcesView) pauseTarget() (crm.Pause, bool, error) {
	f := v.field()
	if f != crm.GroupSource && f != crm.GroupSubID {
		return crm.Pause{}, false, fmt.Errorf("sending pauses by source or sub_id: press b to group by one (now %s)", f)
	}
	rows := v.shown()
	if v.cursor >= len(rows) {
		return crm.Pause{}, false, errors.New("no row selected to pause")
	}
	val := rows[v.cursor].Value
	if val == "" {
		return crm.Pause{}, false, fmt.Errorf("leads without a %s cannot be paused by it", f)
	}
	p := crm.Pause{Field: f, Value: val}
	return p, v.isPaused(val), nil
}

// paused takes a pause's or resume's result at once, before the next
// report says so, so the row's mark follows the key.
func (v *sourcesView) paused(msg sourcePausedMsg) {
	v.askedAt = time.Time{}
	if msg.err != nil {
		return
	}
	var keep []crm.Pause
	for _, p := range v.pauses {
		if p.Field != msg.p.Field || p.Value != msg.p.Value {
			keep = append(keep, p)
		}
	}
	if !msg.resume {
		keep = append(keep, msg.p)
	}
	v.pauses = keep
}

// valueLabel is a group's value as drawn: "(none)" for leads without it.
func valueLabel(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// junkShare is the rejected plus invalid share at which a source is
// junk, and junkMin how many leads it must have sent to be judged.
const (
	junkShare = 0.5
	junkMin   = 10
	highShare = 0.2 // a rejected or invalid share drawn in warning colour
)

func (v sourcesView) columns() []column {
	first := "MEDIAN 1ST"
	if v.width >= 120 {
		first = "MEDIAN 1ST STATUS"
	}
	return []column{
		{strings.ToUpper(v.field()), 0}, {"SENT", 6}, {"ACC%", 4}, {"DUP%", 4}, {"REJ%", 4}, {"INV%", 4},
		{"STATUS", 6}, {"FTD", 4}, {"FTD%", 4}, {first, len(first)},
	}
}

func (v sourcesView) cells(r crm.ReportRow) []cell {
	st := v.st
	val := valueLabel(r.Value)
	valStyle := st.Text
	if r.Value == "" {
		valStyle = st.Muted
	}
	junk := r.Sent >= junkMin && r.RejectedRate()+r.InvalidRate() >= junkShare
	if junk {
		val, valStyle = "⚠ "+val, st.Bad
	}
	if v.isPaused(r.Value) {
		val += " ⏸ paused"
		if !junk {
			valStyle = st.Warn
		}
	}
	pct := func(x float64, s lipgloss.Style) cell { return styled(fmt.Sprintf("%3.0f%%", 100*x), s) }
	bad := func(x float64) lipgloss.Style {
		switch {
		case r.Sent >= junkMin && x >= junkShare:
			return st.Bad
		case x >= highShare:
			return st.Warn
		}
		return st.Muted
	}
	median := styled("—", st.Muted)
	if d, ok := r.MedianFirstStatus(); ok {
		median = plain(fmtMedian(d))
	}
	return []cell{
		styled(val, valStyle), plain(fmt.Sprintf("%6s", grouped(r.Sent))),
		pct(r.AcceptedRate(), st.Good), pct(r.DuplicateRate(), st.Dup),
		pct(r.RejectedRate(), bad(r.RejectedRate())), pct(r.InvalidRate(), bad(r.InvalidRate())),
		plain(fmt.Sprintf("%6s", grouped(r.WithStatus))), plain(fmt.Sprintf("%4s", grouped(r.FTD))),
		pct(r.FTDRate(), st.Good), median,
	}
}

// fmtMedian is a median latency, read from histogram buckets: whole
// seconds at most, no false precision.
func fmtMedian(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return fmtDur(d.Truncate(time.Second))
}

func (v sourcesView) View() string {
	title := fmt.Sprintf("Sources by %s · %s", v.field(), reportWindows[v.window].label)
	if v.loaded {
		title += " (" + strconv.Itoa(len(v.rows)) + ")"
	}
	if n := len(v.pauses); n > 0 {
		title += fmt.Sprintf(" · %d paused", n)
	}
	title += " · b by · w window"
	rows := v.shown()
	cells := make([][]cell, len(rows))
	for i, r := range rows {
		cells[i] = v.cells(r)
	}
	// Scroll so the cursor's row is on screen.
	from := 0
	if lim := v.limit(); v.cursor >= lim {
		from = v.cursor - lim + 1
	}
	return table{
		st: v.st, title: title, cols: v.columns(), rows: cells[from:], loaded: v.loaded, filter: v.filter,
		empty:  "no lead with an outcome yet (" + reportWindows[v.window].label + ")",
		cursor: v.cursor - from, focused: v.focused, height: v.height,
	}.View(v.width)
}
