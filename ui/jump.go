package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// The views past the grid (All leads, Sources, Throughput), the jump to
// a lead, and the hook that routes their keys and results before the
// rest of Update sees them.

// viewKeys are the views' keys: 5, 6 and 7 bring them up, : jumps to a
// lead from anywhere, and the Sources and Throughput views switch what
// they show with b and w.
type viewKeys struct {
	All, Sources, Trend key.Binding
	Views               key.Binding // 5, 6 and 7 as one entry, for the short help
	Jump                key.Binding
	By, Window          key.Binding
	PauseSource         key.Binding
}

func newViewKeys() viewKeys {
	b := func(keys []string, helpKey, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(helpKey, desc))
	}
	return viewKeys{
		All:         b([]string{"5"}, "5", "all leads"),
		Sources:     b([]string{"6"}, "6", "sources"),
		Trend:       b([]string{"7"}, "7", "throughput"),
		Views:       b([]string{"5", "6", "7"}, "5/6/7", "all leads·sources·throughput"),
		Jump:        b([]string{":"}, ":", "go to lead (any id)"),
		By:          b([]string{"b"}, "b", "sources: group by"),
		Window:      b([]string{"w"}, "w", "sources/throughput: window"),
		PauseSource: b([]string{"P"}, "P", "sources: pause/resume"),
	}
}

// pane is the view a key brings up, if it is one of 5, 6 and 7.
func (k viewKeys) pane(msg tea.KeyMsg, from paneID) (paneID, bool) {
	switch {
	case key.Matches(msg, k.All):
		return paneAll, true
	case key.Matches(msg, k.Sources):
		return paneSources, true
	case key.Matches(msg, k.Trend):
		return paneTrend, true
	}
	return from, false
}

// help is the views' part of the dashboard's full help: two lines, so
// help stays whole at 80×24, each key still named. It also says what
// the Throughput view's launch window covers.
func (k viewKeys) help() []key.Binding {
	line := func(keys, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys), key.WithHelp(keys, desc))
	}
	return []key.Binding{
		line("5 6 7 :", "all leads · sources · throughput · go to lead (any id)"),
		line("b w P", "by · window (launch: from 1st lead, ≤ 24 h) · pause source"),
	}
}

// viewKeyMap is the status bar's short help on the Sources and
// Throughput views, whose rows are not leads: their own switches first.
type viewKeyMap struct {
	short []key.Binding
	full  [][]key.Binding
}

func (k viewKeyMap) ShortHelp() []key.Binding  { return k.short }
func (k viewKeyMap) FullHelp() [][]key.Binding { return k.full }

func (m Model) viewKeyMap() help.KeyMap {
	d := m.keys.Dashboard
	v := d.views
	window := v.Window
	window.SetHelp("w", "window")
	short := []key.Binding{d.NextPane, window, v.Jump, d.global.Help, d.global.Quit}
	if m.focus == paneSources {
		by := v.By
		by.SetHelp("b", "group by")
		pause := v.PauseSource
		pause.SetHelp("P", "pause source")
		short = []key.Binding{d.NextPane, d.Down, by, window, pause, d.Filter, v.Jump, d.global.Help, d.global.Quit}
	}
	return viewKeyMap{short: short, full: d.FullHelp()}
}

// onScreen reports whether pane id is drawn now: in the grid the four
// panes, or the one view that replaced them; in tabs the focused one.
func (m Model) onScreen(id paneID) bool {
	if m.grid {
		if m.focus.view() {
			return id == m.focus
		}
		return !id.view()
	}
	return id == m.focus
}

// Messages of the views' Cmds.
type (
	// foundMsg is what the jump found, or why not.
	foundMsg struct {
		query string
		lead  crm.Lead
		err   error
	}
	// sourcePausedMsg is what Source.Pause or Resume did.
	sourcePausedMsg struct {
		p      crm.Pause
		resume bool
		n      int
		err    error
	}
)

// viewsUpdate is the views' part of Update: the jump key (from the
// dashboard and the detail view), the keys that bring a view up in the
// grid, the Sources and Throughput views' own keys, and the results of
// their Cmds. ok false leaves msg to the rest of Update.
func (m Model) viewsUpdate(msg tea.Msg) (Model, tea.Cmd, bool) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m.viewKey(msg)
	case foundMsg:
		if msg.err != nil {
			if errors.Is(msg.err, crm.ErrNotFound) {
				m.bar.fail(fmt.Errorf("no lead has external_id or CRM id %q", msg.query))
			} else {
				m.bar.fail(fmt.Errorf("go to lead %q: %w", msg.query, msg.err))
			}
			return m, nil, true
		}
		m.detail.openLead(msg.lead.ExternalID)
		return m, loadLead(m.cfg.Source, msg.lead.ExternalID, actOpen), true
	case sourcePausedMsg:
		m.sources.paused(msg)
		if msg.err != nil {
			m.bar.fail(msg.err)
		} else {
			m.bar.say(pauseNotice(msg))
		}
		cmd := m.refresh()
		return m, cmd, true
	}
	return m, nil, false
}

// viewKey takes the keys the views own; the rest go on to handleKey.
func (m Model) viewKey(k tea.KeyMsg) (Model, tea.Cmd, bool) {
	if m.tooSmall() || m.overlay != nil || m.filter.active || key.Matches(k, m.keys.Global.ForceQuit) {
		return m, nil, false
	}
	v := m.keys.Dashboard.views
	if key.Matches(k, v.Jump) {
		j := newJumpPrompt(m.st, m.cfg.Source)
		m.overlay = j
		return m, j.input.Focus(), true
	}
	if m.detail.shown {
		return m, nil, false
	}
	// In the grid a view replaces the four panes: bringing one up, or
	// going back, changes what is on screen, which must be read.
	if to, ok := m.keys.Dashboard.pane(k, m.focus); ok && m.grid {
		to = (to + paneCount) % paneCount
		if to == m.focus || !(to.view() || m.focus.view()) {
			return m, nil, false
		}
		m.setFocus(to)
		cmd := m.refresh()
		return m, cmd, true
	}
	switch m.focus {
	case paneSources:
		switch {
		case key.Matches(k, v.By):
			m.sources.nextField()
		case key.Matches(k, v.Window):
			m.sources.nextWindow()
		case key.Matches(k, v.PauseSource):
			p, resume, err := m.sources.pauseTarget()
			if err != nil {
				m.bar.say(err.Error())
				return m, nil, true
			}
			return m, pauseSource(m.cfg.Source, p, resume), true
		default:
			return m, nil, false
		}
		cmd := m.refresh()
		return m, cmd, true
	case paneTrend:
		if key.Matches(k, v.Window) {
			m.trend.nextWindow()
			cmd := m.refresh()
			return m, cmd, true
		}
	}
	return m, nil, false
}

// pauseSource pauses or resumes sending for p's leads.
func pauseSource(src Source, p crm.Pause, resume bool) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		var n int
		var err error
		if resume {
			n, err = src.Resume(ctx, p)
		} else {
			n, err = src.Pause(ctx, p)
		}
		if err != nil {
			verb := "pause"
			if resume {
				verb = "resume"
			}
			err = fmt.Errorf("%s %s %q: %w", verb, p.Field, p.Value, err)
		}
		return sourcePausedMsg{p: p, resume: resume, n: n, err: err}
	}
}

// pauseNotice is the status bar's word on a pause or resume: what it
// did and how to undo it.
func pauseNotice(msg sourcePausedMsg) string {
	// Short: at 80 columns the status bar gives it 40 cells.
	what := msg.p.Field + " " + clean(msg.p.Value)
	if msg.resume {
		return fmt.Sprintf("▶ %s resumed: %s released", what, grouped(msg.n))
	}
	return fmt.Sprintf("⏸ %s: %s held · P resumes", what, grouped(msg.n))
}

// jumpPrompt is the one-line "go to lead" prompt over the last line of
// the body: enter looks the id up (external_id, else CRM id) and opens
// the lead's detail; esc cancels.
type jumpPrompt struct {
	st    *Styles
	src   Source
	input textinput.Model
	keys  jumpKeys
}

type jumpKeys struct{ Go, Cancel key.Binding }

func (k jumpKeys) ShortHelp() []key.Binding  { return []key.Binding{k.Go, k.Cancel} }
func (k jumpKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

var _ overlay = jumpPrompt{}

func newJumpPrompt(st *Styles, src Source) jumpPrompt {
	in := textinput.New()
	in.Prompt = "go to lead: "
	in.Placeholder = "external_id or CRM id"
	in.Cursor.SetMode(cursor.CursorStatic)
	in.PromptStyle, in.TextStyle, in.PlaceholderStyle = st.Cursor, st.Text, st.Muted
	in.Cursor.Style = st.Cursor
	in.Focus()
	return jumpPrompt{st: st, src: src, input: in, keys: jumpKeys{
		Go:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open lead")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}}
}

// Update types, looks up on enter, and closes on esc.
func (j jumpPrompt) Update(msg tea.Msg) (overlay, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return j, nil
	}
	switch {
	case key.Matches(k, j.keys.Cancel):
		return nil, nil
	case key.Matches(k, j.keys.Go):
		id := strings.TrimSpace(j.input.Value())
		if id == "" {
			return nil, nil
		}
		return nil, findLead(j.src, id)
	}
	var cmd tea.Cmd
	j.input, cmd = j.input.Update(k)
	return j, cmd
}

// View draws the prompt on the body's last line, the screen above it.
func (j jumpPrompt) View(w, h int, under func() string) string {
	lines := strings.Split(clampView(under(), w, h), "\n")
	lines[len(lines)-1] = fit(j.input.View(), w)
	return strings.Join(lines, "\n")
}

func (j jumpPrompt) resize(int, int) overlay { return j }
func (j jumpPrompt) keyMap() help.KeyMap     { return j.keys }

// findLead runs the jump's lookup.
func findLead(src Source, id string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		l, err := src.FindLead(ctx, id)
		return foundMsg{query: id, lead: l, err: err}
	}
}

// viewsQuery is what the views on screen ask of one refresh; nil parts
// are not asked.
type viewsQuery struct {
	all    *allQuery
	report *crm.ReportQuery
	trend  *trendQuery
}

// viewsResult is one refresh's answer to a viewsQuery; each part has its
// ok so a failing read leaves its view as it was.
type viewsResult struct {
	all      allResult
	report   []crm.ReportRow
	pauses   []crm.Pause
	reportQ  crm.ReportQuery
	reportOK bool
	trend    crm.Throughput
	trendQ   trendQuery
	trendOK  bool
}

// loadViews runs the views' reads inside loadSnapshot.
func loadViews(ctx context.Context, src Source, q viewsQuery, fail func(string, error)) viewsResult {
	var r viewsResult
	if q.all != nil {
		r.all = loadAll(ctx, src, *q.all, fail)
	}
	if q.report != nil {
		r.reportQ = *q.report
		rows, err := src.Report(ctx, *q.report)
		if err != nil {
			fail("sources", err)
		} else if ps, err := src.Pauses(ctx); err != nil {
			fail("pauses", err)
		} else {
			r.report, r.pauses, r.reportOK = rows, ps, true
		}
	}
	if q.trend != nil {
		tq := *q.trend
		if tq.launch {
			// The launch starts at the first lead stored: the oldest by
			// id, one row read by the primary key.
			first, err := src.Leads(ctx, crm.LeadQuery{Order: crm.OrderOldest, Limit: 1})
			if err != nil {
				fail("throughput", err)
				return r
			}
			tq.since = launchSince(first, tq.now)
		}
		r.trendQ = tq
		if tp, err := src.Throughput(ctx, tq.since, tq.bucket); err != nil {
			fail("throughput", err)
		} else {
			r.trend, r.trendOK = tp, true
		}
	}
	return r
}

// launchWindow bounds the launch: since the first lead, but no longer
// than a day back, so a store kept for weeks still draws in one read.
const launchWindow = 24 * time.Hour

// launchSince is where the launch's chart starts: the first lead's
// minute, or a day back when that is older or there is no lead.
func launchSince(first []crm.Lead, now time.Time) time.Time {
	floor := now.Truncate(time.Minute).Add(-launchWindow)
	if len(first) == 0 || first[0].CreatedAt.Before(floor) {
		return floor
	}
	return first[0].CreatedAt.Truncate(time.Minute)
}

// nLeads is "1 lead" or "12,345 leads".
func nLeads(n int) string {
	if n == 1 {
		return "1 lead"
	}
	return grouped(n) + " leads"
}

// grouped prints n with thousands separators: 1,000,000.
func grouped(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
