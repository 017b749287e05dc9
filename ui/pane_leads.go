package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// leadPane is a pane of leads in some states: pending retries,
// duplicates, or rejections. It holds only the rows it shows; moving past
// the window changes the offset and asks the root for a refresh.
type leadPane struct {
	paneFrame
	id          paneID
	states      []crm.State
	maxAttempts int // retry.max_attempts, for "n/max"; 0 unknown

	filter    string
	rows      []crm.Lead
	loaded    bool
	cursor    int
	offset    int
	keepIndex bool // the user scrolled: keep the cursor's row, not its lead
}

func newLeadPane(id paneID, st *Styles, keys dashboardKeys, states ...crm.State) leadPane {
	return leadPane{paneFrame: newPaneFrame(st, keys), id: id, states: states}
}

// query is what the pane asks the Source for.
func (p leadPane) query() crm.LeadQuery {
	return crm.LeadQuery{States: slices.Clone(p.states), Filter: p.filter, Limit: p.limit(), Offset: p.offset}
}

func (p *leadPane) ask(q *snapshotQuery) {
	lq := p.query()
	q.leads[p.id] = &lq
}

// take applies a refresh: the total of the pane's states and its rows.
func (p *leadPane) take(s snapshotMsg) bool {
	if s.countsOK {
		p.total = 0
		for _, st := range p.states {
			p.total += s.counts.States[st]
		}
	}
	r := s.leads[p.id]
	return r.ok && p.setRows(r.q, r.rows)
}

// more reports whether rows may exist past the window.
func (p leadPane) more() bool {
	if len(p.rows) < p.limit() {
		return false
	}
	if p.total >= 0 && p.filter == "" {
		return p.offset+len(p.rows) < p.total
	}
	return true
}

// selected returns the lead under the cursor.
func (p leadPane) selected() (crm.Lead, bool) {
	if p.cursor < 0 || p.cursor >= len(p.rows) {
		return crm.Lead{}, false
	}
	return p.rows[p.cursor], true
}

func (p leadPane) selection() (selection, bool) {
	l, ok := p.selected()
	return selection{leadID: l.ExternalID}, ok
}

// Update moves the cursor. Keys are the only messages a pane gets; data
// arrives through take from the root, which owns the refresh cycle.
func (p *leadPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	lim, before := p.limit(), p.offset
	switch {
	case key.Matches(k, p.keys.Up):
		if p.cursor > 0 {
			p.cursor--
		} else if p.offset > 0 {
			p.offset--
		}
	case key.Matches(k, p.keys.Down):
		if p.cursor < len(p.rows)-1 {
			p.cursor++
		} else if p.more() {
			p.offset++
		}
	case key.Matches(k, p.keys.PageDown):
		if p.more() {
			p.offset += lim
		} else {
			p.cursor = max(len(p.rows)-1, 0)
		}
	case key.Matches(k, p.keys.PageUp):
		if p.offset > 0 {
			p.offset = max(p.offset-lim, 0)
		} else {
			p.cursor = 0
		}
	case key.Matches(k, p.keys.Top):
		p.offset, p.cursor = 0, 0
	case key.Matches(k, p.keys.Bottom):
		if p.total > lim && p.filter == "" {
			p.offset, p.cursor = p.total-lim, lim-1
		} else {
			p.cursor = max(len(p.rows)-1, 0)
		}
	}
	if p.offset != before {
		p.keepIndex = true
		return requestRefresh
	}
	return nil
}

func (p leadPane) filterText() string { return p.filter }

// setFilter changes the filter and starts again from the top.
func (p *leadPane) setFilter(f string) {
	if f != p.filter {
		p.filter, p.offset, p.cursor = f, 0, 0
	}
}

// setRows takes a query's result. A result for another window or filter
// is stale (a newer query is pending) and dropped. It reports whether the
// window fell past the end and the pane needs another query.
func (p *leadPane) setRows(q crm.LeadQuery, rows []crm.Lead) (again bool) {
	if q.Offset != p.offset || q.Filter != p.filter {
		return false
	}
	// A cursor on the first row stays there, showing the newest; one the
	// user moved down follows its lead as new rows push it.
	var prev int64
	if l, ok := p.selected(); ok && (p.cursor > 0 || p.offset > 0) {
		prev = l.ID
	}
	p.rows, p.loaded = rows, true
	if len(rows) == 0 && p.offset > 0 {
		p.offset = max(p.offset-p.limit(), 0)
		return true
	}
	if !p.keepIndex && prev != 0 {
		// New rows arrive on top: follow the lead the user was on.
		for i, l := range rows {
			if l.ID == prev {
				p.cursor = i
				break
			}
		}
	}
	p.keepIndex = false
	p.cursor = min(max(p.cursor, 0), max(len(rows)-1, 0))
	return false
}

func (p leadPane) columns() []column {
	switch p.id {
	case paneRetries:
		return []column{{"EXTERNAL ID", 16}, {"NEXT", 8}, {"TRY", 5}, {"LAST", 12}, {"WHY THIS DELAY", 0}}
	case paneDuplicates:
		return []column{{"EXTERNAL ID", 16}, {"CRM ID", 14}, {"REASON", 0}, {"WHEN", 8}}
	}
	return []column{{"EXTERNAL ID", 16}, {"STATE", 16}, {"HTTP", 4}, {"REASON", 0}, {"WHEN", 8}}
}

func (p leadPane) cells(l crm.Lead) []cell {
	st := p.st
	switch p.id {
	case paneRetries:
		try := strconv.Itoa(l.Attempts)
		if p.maxAttempts > 0 {
			try += "/" + strconv.Itoa(p.maxAttempts)
		}
		last := styled("—", st.Muted)
		switch {
		case l.LastHTTPStatus != 0:
			last = styled("HTTP "+strconv.Itoa(l.LastHTTPStatus), httpStyle(st, l.LastHTTPStatus))
		case l.LastError != "":
			last = styled(l.LastError, st.Bad)
		}
		why := l.LastDelayWhy
		if l.LastDelay > 0 {
			why = strings.TrimSpace(fmtDur(l.LastDelay) + " · " + why)
			why = strings.TrimSuffix(why, " ·")
		}
		next := fmtCountdown(l.NextAttemptAt, p.now)
		nextCell := styled(next, st.Warn)
		if next == "due" {
			nextCell = styled(next, st.Info)
		}
		return []cell{plain(l.ExternalID), nextCell, plain(try), last, styled(why, st.Muted)}
	case paneDuplicates:
		return []cell{plain(l.ExternalID), styled(l.CRMID, st.Dup), plain(l.Reason), styled(fmtAge(l.UpdatedAt, p.now), st.Muted)}
	}
	code := ""
	if l.LastHTTPStatus != 0 {
		code = strconv.Itoa(l.LastHTTPStatus)
	}
	reason := l.Reason
	if reason == "" {
		reason = l.LastError
	}
	return []cell{
		plain(l.ExternalID), styled(string(l.State), st.State(l.State)), styled(code, httpStyle(st, l.LastHTTPStatus)),
		plain(reason), styled(fmtAge(l.UpdatedAt, p.now), st.Muted),
	}
}

// httpStyle colours an HTTP status by what it means for the lead.
func httpStyle(st *Styles, code int) lipgloss.Style {
	switch {
	case code == 0:
		return st.Muted
	case code < 300:
		return st.Good
	case code == 409:
		return st.Dup
	case code == 429:
		return st.Warn
	}
	return st.Bad
}

// View draws the pane at its size.
func (p leadPane) View() string {
	title := p.id.title()
	if p.total >= 0 {
		title += fmt.Sprintf(" (%d)", p.total)
	}
	if p.offset > 0 {
		title += fmt.Sprintf(" · from #%d", p.offset+1)
	}
	rows := make([][]cell, len(p.rows))
	for i, l := range p.rows {
		rows[i] = p.cells(l)
	}
	return table{
		st: p.st, title: title, cols: p.columns(), rows: rows, loaded: p.loaded, filter: p.filter,
		empty: p.emptyText(), cursor: p.cursor, focused: p.focused, height: p.height,
	}.View(p.width)
}

func (p leadPane) emptyText() string {
	switch p.id {
	case paneRetries:
		return "no lead is waiting to retry"
	case paneDuplicates:
		return "no duplicates"
	}
	return "no rejected, invalid or failed lead"
}
