package ui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// paneID names one of the panes; the order is the tab order. The first
// four share the screen in the grid; the views from paneAll on take the
// whole body there (see view).
type paneID int

const (
	paneRetries paneID = iota
	paneDuplicates
	paneRejections
	paneEvents
	paneAll
	paneSources
	paneTrend
	paneCount
)

// view reports whether id is a full-body view rather than a grid pane.
func (id paneID) view() bool { return id >= paneAll }

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
	case paneAll:
		return "All leads"
	case paneSources:
		return "Sources"
	case paneTrend:
		return "Throughput"
	}
	return "?"
}

// name is how a refresh error names the pane's query.
func (id paneID) name() string {
	switch id {
	case paneRetries:
		return "retries"
	case paneDuplicates:
		return "duplicates"
	case paneRejections:
		return "rejections"
	case paneAll:
		return "all leads"
	case paneSources:
		return "sources"
	case paneTrend:
		return "throughput"
	}
	return "events"
}

// pane is what the root needs of each of the four panes. The root holds
// them as typed fields and reaches them only through Model.pane, so focus,
// filter, selection and refresh are written once for all four instead of
// once per pane in a switch.
type pane interface {
	// Update handles a key for the focused pane. A pane that moves its
	// window past the rows it holds asks for a refresh.
	Update(msg tea.Msg) tea.Cmd
	// View draws the pane at its size.
	View() string

	setSize(w, h int)
	setFocused(focused bool)
	setNow(now time.Time)

	// filterText and setFilter are the pane's live filter.
	filterText() string
	setFilter(f string)

	// ask adds the pane's query to a refresh, and take applies the
	// refresh's result. take reports whether the pane needs another
	// query at once (its window fell past the end).
	ask(q *snapshotQuery)
	take(s snapshotMsg) (again bool)

	// selection is what the cursor is on; false when the pane is empty.
	selection() (selection, bool)
	// count is how many rows are behind the pane, for the tab bar; -1
	// while unknown.
	count() int
}

var (
	_ pane = (*leadPane)(nil)
	_ pane = (*eventPane)(nil)
	_ pane = (*allPane)(nil)
	_ pane = (*sourcesView)(nil)
	_ pane = (*trendView)(nil)
)

// selection is what a pane's cursor points at: a lead by its
// external_id, or an event row that names no lead (an unmatched
// callback, a refusal), which opens on its own.
type selection struct {
	leadID string
	cb     *crm.CallbackEvent
	ref    *crm.Refusal
}

// pane is the one way the root reaches a pane. It points into m, so a
// change made through it lands in the model Update is building; the
// panes stay typed fields, and copies of the model stay independent.
func (m *Model) pane(id paneID) pane {
	switch id {
	case paneRetries:
		return &m.retries
	case paneDuplicates:
		return &m.dups
	case paneRejections:
		return &m.rejects
	case paneAll:
		return &m.all
	case paneSources:
		return &m.sources
	case paneTrend:
		return &m.trend
	}
	return &m.events
}

// focused is the pane that has the keys.
func (m *Model) focused() pane { return m.pane(m.focus) }

// paneFrame is what every pane has besides its rows: styles and keys,
// its box, focus, the dashboard clock and the total behind it.
type paneFrame struct {
	st   *Styles
	keys dashboardKeys

	width, height int
	focused       bool
	now           time.Time
	total         int // rows in the store behind the pane, from Counts; -1 unknown
}

func newPaneFrame(st *Styles, keys dashboardKeys) paneFrame {
	return paneFrame{st: st, keys: keys, total: -1}
}

func (f *paneFrame) setSize(w, h int)        { f.width, f.height = w, h }
func (f *paneFrame) setFocused(focused bool) { f.focused = focused }
func (f *paneFrame) setNow(now time.Time)    { f.now = now }
func (f paneFrame) count() int               { return f.total }

// limit is how many rows fit: the frame and the column header take three
// lines. It is the Limit of the pane's query.
func (f paneFrame) limit() int { return max(f.height-3, 1) }
