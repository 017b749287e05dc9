package ui

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aymanbagabas/go-osc52/v2"
	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// Status is what main reports about the parts it runs. Config.Status
// returns it on every tick, so it must be cheap.
type Status struct {
	ListenerAddr string // the callback listener's address
	ListenerErr  error  // why the listener is not running (bind failure…)
	Healthy      bool   // the listener is serving
	BaseURL      string // CartelCRM's base URL; credentials in it are never drawn
	Paused       bool   // sending is paused
	MaxAttempts  int    // retry.max_attempts, for "attempt n/max"; 0 unknown
}

// Config wires the dashboard to the rest of leadwatch.
type Config struct {
	// Source is what the dashboard reads and changes (the store).
	Source Source
	// Changes signals that the store changed (store.Watch). It may be nil:
	// the dashboard then re-reads every second.
	Changes <-chan struct{}
	// Status reports the listener and sender; cheap and non-blocking
	// (atomics in main). Called once a second. Nil reports nothing.
	Status func() Status
	// Pause switches sending off (true) or on; nil hides the feature.
	Pause func(paused bool)
	// Now is the clock; time.Now when nil. Times are drawn in its zone.
	Now func() time.Time
	// Clipboard copies text; OSC 52 on stdout when nil.
	Clipboard func(s string) error
}

// Size thresholds. Below min the dashboard shows a message instead of a
// broken layout; at grid size and above the four panes share the screen,
// below it they become tabs.
const (
	minWidth     = 60
	minHeight    = 16
	gridWidth    = 120
	gridHeight   = 30
	headerHeight = 3
	statusHeight = 1
	modalWidth   = 100

	// minRefreshGap paces change-driven refreshes: ten a second at most
	// is live to the eye and leaves the CPU to the listener and sender.
	minRefreshGap = 100 * time.Millisecond
)

// screen is the main view under any overlay.
type screen int

const (
	screenDashboard screen = iota
	screenDetail
)

// Model is the dashboard: a root model that owns the four panes, the
// detail view and the dialogs, routes keys to whichever has focus, and
// runs every read and write of the Source in Cmds.
type Model struct {
	cfg  Config
	st   *Styles
	keys keyMap
	help help.Model

	width, height int
	grid          bool
	now           time.Time
	status        Status
	counts        crm.Counts
	haveCounts    bool
	tp            crm.Throughput

	retries, dups, rejects leadPane
	events                 eventPane
	focus                  paneID

	screen    screen
	detail    detailView
	overlay   overlay
	confirm   confirmDialog
	fromEdit  bool // the confirm dialog came from the editor: No goes back to it
	editor    editorDialog
	curl      curlDialog
	filtering bool
	filter    textinput.Model

	refreshing bool      // a snapshot query is running
	pending    bool      // another change came in meanwhile: refresh again after
	followUp   bool      // a paced follow-up refresh is scheduled
	startedAt  time.Time // wall clock when the last query started, for pacing
	lastBucket time.Time
	// listening: a waitForChange Cmd is out. While a refresh is running
	// or scheduled, a change only sets pending and the listener is not
	// re-armed until it lands: the store's signals coalesce in its
	// channel instead of waking Update (and View) once per commit.
	listening     bool
	changesClosed bool

	err        error // the last failed action
	refreshErr error // the last refresh's failure, cleared by a good one
	info       string
}

// New builds the dashboard. It reads Config.Status and Config.Now once so
// the first frame has them; everything else arrives through Cmds.
func New(cfg Config) Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Status == nil {
		cfg.Status = func() Status { return Status{} }
	}
	if cfg.Clipboard == nil {
		cfg.Clipboard = func(s string) error {
			seq := osc52.New(s)
			if strings.HasPrefix(os.Getenv("TERM"), "screen") {
				seq = seq.Screen()
			}
			_, err := seq.WriteTo(os.Stdout)
			return err
		}
	}
	r := lipgloss.DefaultRenderer()
	// Resolve the background now, before bubbletea owns stdin: the
	// adaptive colours would otherwise query the terminal mid-frame.
	_ = r.HasDarkBackground()
	st := NewStyles(r, DefaultPalette())
	keys := newKeyMap()

	h := help.New()
	h.Styles = st.Help

	fi := textinput.New()
	fi.Prompt = "/"
	fi.Placeholder = "filter: external_id, crm id, reason…"
	fi.Cursor.SetMode(cursor.CursorStatic)
	fi.PromptStyle, fi.TextStyle, fi.PlaceholderStyle = st.Cursor, st.Text, st.Muted
	fi.Cursor.Style = st.Cursor

	now := cfg.Now()
	m := Model{
		cfg:     cfg,
		st:      st,
		keys:    keys,
		help:    h,
		now:     now,
		status:  cfg.Status(),
		retries: newLeadPane(paneRetries, st, keys.Dashboard, crm.StateRetryWait),
		dups:    newLeadPane(paneDuplicates, st, keys.Dashboard, crm.StateDuplicate),
		rejects: newLeadPane(paneRejections, st, keys.Dashboard, crm.StateRejected, crm.StateValidationError, crm.StateFailed),
		events:  newEventPane(st, keys.Dashboard),
		detail:  newDetailView(st, keys.Detail),
		filter:  fi,
	}
	m.listening = cfg.Changes != nil // Init arms the listener
	m.setNow(now)
	m.setMaxAttempts()
	m.setFocus(paneRetries)
	return m
}

// Init starts the heartbeat and the change listener, and asks for the
// first refresh (it runs once the window size is known).
func (m Model) Init() tea.Cmd {
	return tea.Batch(
		tea.EnterAltScreen,
		tick(m.cfg.Now, m.cfg.Status),
		waitForChange(m.cfg.Changes),
		requestRefresh,
	)
}

// Update handles one message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, m.refresh()
	case tickMsg:
		m.setNow(msg.now)
		m.status = msg.status
		m.setMaxAttempts()
		cmds := []tea.Cmd{tick(m.cfg.Now, m.cfg.Status)}
		// Without a change signal, poll; with one, re-read only when the
		// sparkline's newest bucket rolls over.
		if m.cfg.Changes == nil || !msg.now.Truncate(sparkBucket).Equal(m.lastBucket) {
			cmds = append(cmds, m.refresh())
		}
		return m, tea.Batch(cmds...)
	case changeMsg:
		m.listening = false
		if m.refreshing || m.followUp {
			// Under 1,000 callbacks/s the store signals hundreds of
			// times a second; the refresh under way or scheduled re-arms
			// the listener when it lands.
			m.pending = true
			return m, nil
		}
		return m, tea.Batch(m.listen(), m.refresh())
	case changesClosedMsg:
		m.listening, m.changesClosed = false, true
		return m, nil
	case refreshRequestMsg:
		m.followUp = false
		return m, m.refresh()
	case snapshotMsg:
		return m, m.applySnapshot(msg)
	case leadMsg:
		return m.handleLead(msg)
	case resubmittedMsg:
		m.err = nil
		res := msg.res
		key := "new key " + res.Lead.IdempotencyKey
		if res.KeyKept {
			key = "same key " + res.Lead.IdempotencyKey
		}
		m.info = "resubmitted " + res.Lead.ExternalID + " · " + key
		return m, m.refresh()
	case pausedMsg:
		m.status.Paused = msg.paused
		m.info = "sending resumed"
		if msg.paused {
			m.info = "sending paused"
		}
		return m, nil
	case copiedMsg:
		if msg.err != nil {
			m.curl.status = m.st.StatusErr.Render("clipboard: " + clean(msg.err.Error()) + " — select the text above")
		} else {
			m.curl.status = m.st.Good.Render("copied to the clipboard (OSC 52)") + m.st.Muted.Render(" · esc closes")
		}
		return m, nil
	case editorFileMsg:
		return m, runEditor(msg.path, msg.lead)
	case editorClosedMsg:
		if msg.err != nil {
			m.err = fmt.Errorf("editor: %w (nothing resubmitted)", msg.err)
			return m, removeFile(msg.path)
		}
		return m, readEditorFile(msg.path, msg.lead)
	case editorReadMsg:
		// Land in the built-in editor so the result is checked and shown
		// before anything is sent.
		m.openEditor(msg.lead, string(msg.payload))
		m.editor.err = ""
		if _, err := m.editor.check(); err != nil {
			m.editor.err = err.Error()
		}
		return m, nil
	case errMsg:
		m.err = msg.err
		m.info = ""
		return m, nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	return m, nil
}

// setNow moves the clock of every part that draws times.
func (m *Model) setNow(now time.Time) {
	m.now = now
	m.retries.now, m.dups.now, m.rejects.now, m.events.now = now, now, now, now
	m.detail.setNow(now)
	if m.screen == screenDetail && m.detail.kind == detailLead && m.detail.lead.Lead.State == crm.StateRetryWait {
		m.detail.render() // its countdown
	}
}

func (m *Model) setMaxAttempts() {
	m.retries.maxAttempts = m.status.MaxAttempts
}

func (m *Model) setFocus(id paneID) {
	m.focus = (id + paneCount) % paneCount
	m.retries.focused = m.focus == paneRetries
	m.dups.focused = m.focus == paneDuplicates
	m.rejects.focused = m.focus == paneRejections
	m.events.focused = m.focus == paneEvents
}

func (m Model) tooSmall() bool { return m.width < minWidth || m.height < minHeight }

func (m Model) bodyHeight() int { return max(m.height-headerHeight-statusHeight, 1) }

// layout gives every part its size after a resize.
func (m *Model) layout() {
	w, bh := m.width, m.bodyHeight()
	m.help.Width = w
	m.grid = w >= gridWidth && m.height >= gridHeight
	if m.grid {
		lw, rw := w/2, w-w/2
		th, bt := bh/2, bh-bh/2
		m.retries.width, m.retries.height = lw, th
		m.dups.width, m.dups.height = rw, th
		m.rejects.width, m.rejects.height = lw, bt
		m.events.width, m.events.height = rw, bt
	} else {
		// Tabs: one pane under a one-line tab bar.
		for _, p := range []*leadPane{&m.retries, &m.dups, &m.rejects} {
			p.width, p.height = w, bh-1
		}
		m.events.width, m.events.height = w, bh-1
	}
	m.detail.setSize(w, bh)
	m.editor.setSize(w, bh)
	if m.overlay == overlayCurl {
		m.curl.setSize(m.modalWidth(), bh)
	}
}

func (m Model) modalWidth() int { return min(m.width-4, modalWidth) }

// paneVisible reports whether a pane is on screen, so only those are
// queried.
func (m Model) paneVisible(id paneID) bool {
	return m.screen == screenDashboard && !m.tooSmall() && (m.grid || m.focus == id)
}

// refresh starts a snapshot query unless one is running, in which case
// it remembers to run another when that one lands: signals coalesce, and
// at most one query is in flight.
func (m *Model) refresh() tea.Cmd {
	if m.width == 0 || m.cfg.Source == nil {
		return nil // the first WindowSizeMsg refreshes
	}
	if m.refreshing {
		m.pending = true
		return nil
	}
	m.refreshing, m.pending = true, false
	m.startedAt = time.Now()
	q := snapshotQuery{
		now:             m.now,
		throughputSince: m.now.Truncate(sparkBucket).Add(-(sparkBuckets - 1) * sparkBucket),
	}
	if m.paneVisible(paneRetries) {
		lq := m.retries.query()
		q.retries = &lq
	}
	if m.paneVisible(paneDuplicates) {
		lq := m.dups.query()
		q.dups = &lq
	}
	if m.paneVisible(paneRejections) {
		lq := m.rejects.query()
		q.rejects = &lq
	}
	if m.paneVisible(paneEvents) {
		eq := m.events.query()
		q.events = &eq
	}
	if m.screen == screenDetail && m.detail.kind == detailLead {
		q.detailID = m.detail.externalID
	}
	return loadSnapshot(m.cfg.Source, q)
}

// listen re-arms the change listener unless it is out or the channel is
// gone.
func (m *Model) listen() tea.Cmd {
	if m.listening || m.changesClosed || m.cfg.Changes == nil {
		return nil
	}
	m.listening = true
	return waitForChange(m.cfg.Changes)
}

// applySnapshot takes a refresh's result, part by part, and re-arms the
// change listener if a change came in meanwhile.
func (m *Model) applySnapshot(s snapshotMsg) tea.Cmd {
	return tea.Batch(m.applyParts(s), m.listen())
}

func (m *Model) applyParts(s snapshotMsg) tea.Cmd {
	m.refreshing = false
	m.lastBucket = s.q.now.Truncate(sparkBucket)
	if s.countsOK {
		m.counts, m.haveCounts = s.counts, true
		c := s.counts.States
		m.retries.total = c[crm.StateRetryWait]
		m.dups.total = c[crm.StateDuplicate]
		m.rejects.total = c[crm.StateRejected] + c[crm.StateValidationError] + c[crm.StateFailed]
		m.events.total = s.counts.CallbacksVerified + s.counts.Refusals
	}
	if s.tpOK {
		m.tp = s.tp
	}
	again := false
	if s.retries.ok {
		again = m.retries.setRows(s.retries.q, s.retries.rows) || again
	}
	if s.dups.ok {
		again = m.dups.setRows(s.dups.q, s.dups.rows) || again
	}
	if s.rejects.ok {
		again = m.rejects.setRows(s.rejects.q, s.rejects.rows) || again
	}
	if s.eventsOK {
		m.events.setRows(s.eventsQ, s.events)
	}
	if s.detailOK {
		m.detail.setLead(s.detail)
	}
	m.refreshErr = s.err
	switch {
	case again:
		return m.refresh()
	case m.pending:
		// Under a storm of changes (1,000 callbacks/s) refreshing back to
		// back would keep a core busy and starve the keys: follow-ups
		// start at most every minRefreshGap. Real time, not Config.Now:
		// this paces work, it is not something drawn.
		if wait := minRefreshGap - time.Since(m.startedAt); wait > 0 {
			m.pending, m.followUp = false, true
			return tea.Tick(wait, func(time.Time) tea.Msg { return refreshRequestMsg{} })
		}
		return m.refresh()
	}
	return nil
}

// handleLead continues an action once its lead is loaded.
func (m Model) handleLead(msg leadMsg) (tea.Model, tea.Cmd) {
	m.detail.setLead(msg.detail)
	lead := msg.detail.Lead
	needsFinal := func() bool {
		if lead.State.Resubmittable() {
			return true
		}
		m.info = ""
		m.err = fmt.Errorf("%s is %s: only failed, rejected, validation_error or duplicate leads can be resubmitted", lead.ExternalID, lead.State)
		return false
	}
	switch msg.purpose {
	case actResubmit:
		if needsFinal() {
			m.confirm, m.fromEdit, m.overlay = newConfirm(lead, nil), false, overlayConfirm
		}
	case actEdit:
		if needsFinal() {
			m.openEditor(lead, editableJSON(lead.Payload))
		}
	case actExternalEdit:
		if needsFinal() {
			return m, writeEditorFile(lead)
		}
	case actCopy:
		text := strings.TrimRight(curlCommand(lead, m.status.BaseURL), "\n")
		m.curl = newCurlDialog(text)
		m.curl.status = m.st.Muted.Render("copying…")
		m.curl.setSize(m.modalWidth(), m.bodyHeight())
		m.overlay = overlayCurl
		return m, copyText(m.cfg.Clipboard, text)
	}
	return m, nil
}

func (m *Model) openEditor(lead crm.Lead, text string) {
	m.editor = newEditor(m.st, lead, text)
	m.editor.setSize(m.width, m.bodyHeight())
	m.overlay = overlayEditor
}

// handleKey routes a key: quit-now first, then the overlay on top, then
// the filter input, then global keys, then the screen and its focused
// pane. Exactly one part sees each key.
func (m Model) handleKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(k, m.keys.Global.ForceQuit) {
		return m, tea.Quit
	}
	if m.tooSmall() {
		if key.Matches(k, m.keys.Global.Quit) {
			return m, tea.Quit
		}
		return m, nil
	}
	switch m.overlay {
	case overlayHelp:
		if key.Matches(k, m.keys.Modal.Close) {
			m.overlay = overlayNone
		}
		return m, nil
	case overlayConfirm:
		return m.confirmKey(k)
	case overlayEditor:
		return m.editorKey(k)
	case overlayCurl:
		if key.Matches(k, m.keys.Modal.Close) {
			m.overlay = overlayNone
			return m, nil
		}
		var cmd tea.Cmd
		m.curl.vp, cmd = m.curl.vp.Update(k)
		return m, cmd
	}
	if m.filtering {
		return m.filterKey(k)
	}

	g := m.keys.Global
	switch {
	case key.Matches(k, g.Quit):
		return m, tea.Quit
	case key.Matches(k, g.Help):
		m.overlay = overlayHelp
		return m, nil
	case key.Matches(k, g.Pause):
		if m.cfg.Pause == nil {
			m.info = "pausing is not available here"
			return m, nil
		}
		want := !m.status.Paused
		m.status.Paused = want // show it now; the next tick confirms
		return m, setPaused(m.cfg.Pause, want)
	}
	if m.screen == screenDetail {
		return m.detailKey(k)
	}
	return m.dashboardKey(k)
}

func (m Model) dashboardKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	d := m.keys.Dashboard
	focus := m.focus
	switch {
	case key.Matches(k, d.NextPane):
		focus++
	case key.Matches(k, d.PrevPane):
		focus--
	case key.Matches(k, d.Pane1):
		focus = paneRetries
	case key.Matches(k, d.Pane2):
		focus = paneDuplicates
	case key.Matches(k, d.Pane3):
		focus = paneRejections
	case key.Matches(k, d.Pane4):
		focus = paneEvents
	case key.Matches(k, d.Filter):
		m.filtering = true
		m.filter.SetValue(m.paneFilter())
		m.filter.CursorEnd()
		return m, m.filter.Focus()
	case key.Matches(k, d.ClearFilter):
		if m.paneFilter() != "" {
			m.setPaneFilter("")
			return m, m.refresh()
		}
		m.info, m.err = "", nil
		return m, nil
	case key.Matches(k, d.Open):
		return m.open()
	case key.Matches(k, d.Resubmit):
		return m.act(actResubmit)
	case key.Matches(k, d.Edit):
		return m.act(actEdit)
	case key.Matches(k, d.ExternalEdit):
		return m.act(actExternalEdit)
	case key.Matches(k, d.Copy):
		return m.act(actCopy)
	default:
		var cmd tea.Cmd
		switch m.focus {
		case paneRetries:
			m.retries, cmd = m.retries.Update(k)
		case paneDuplicates:
			m.dups, cmd = m.dups.Update(k)
		case paneRejections:
			m.rejects, cmd = m.rejects.Update(k)
		case paneEvents:
			m.events, cmd = m.events.Update(k)
		}
		return m, cmd
	}
	if focus != m.focus {
		m.setFocus(focus)
		if !m.grid {
			return m, m.refresh() // the tab that came up has not been read
		}
	}
	return m, nil
}

func (m Model) detailKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	d := m.keys.Detail
	switch {
	case key.Matches(k, d.Back):
		m.screen = screenDashboard
		return m, m.refresh()
	case m.detail.kind != detailLead:
	case key.Matches(k, d.Resubmit):
		return m, loadLead(m.cfg.Source, m.detail.externalID, actResubmit)
	case key.Matches(k, d.Edit):
		return m, loadLead(m.cfg.Source, m.detail.externalID, actEdit)
	case key.Matches(k, d.ExternalEdit):
		return m, loadLead(m.cfg.Source, m.detail.externalID, actExternalEdit)
	case key.Matches(k, d.Copy):
		return m, loadLead(m.cfg.Source, m.detail.externalID, actCopy)
	}
	var cmd tea.Cmd
	m.detail, cmd = m.detail.Update(k)
	return m, cmd
}

// selectedLeadID is the lead the focused pane points at; an event points
// at its lead when it matched one.
func (m Model) selectedLeadID() (string, bool) {
	var l crm.Lead
	var ok bool
	switch m.focus {
	case paneRetries:
		l, ok = m.retries.selected()
	case paneDuplicates:
		l, ok = m.dups.selected()
	case paneRejections:
		l, ok = m.rejects.selected()
	case paneEvents:
		r, ok := m.events.selected()
		if ok && r.cb != nil && r.cb.LeadID != 0 && r.cb.ExternalID != "" {
			return r.cb.ExternalID, true
		}
		return "", false
	}
	return l.ExternalID, ok
}

// open shows the detail of the selected row.
func (m Model) open() (tea.Model, tea.Cmd) {
	if m.focus == paneEvents {
		r, ok := m.events.selected()
		switch {
		case !ok:
			return m, nil
		case r.ref != nil:
			m.detail.openRefusal(*r.ref)
			m.screen = screenDetail
			return m, nil
		case r.cb.LeadID == 0 || r.cb.ExternalID == "":
			m.detail.openCallback(*r.cb)
			m.screen = screenDetail
			return m, nil
		}
	}
	id, ok := m.selectedLeadID()
	if !ok {
		return m, nil
	}
	m.detail.openLead(id)
	m.screen = screenDetail
	return m, loadLead(m.cfg.Source, id, actOpen)
}

// act starts an action on the selected lead by loading it fresh.
func (m Model) act(a action) (tea.Model, tea.Cmd) {
	id, ok := m.selectedLeadID()
	if !ok {
		m.info = "select a lead first (this row matches no lead)"
		return m, nil
	}
	return m, loadLead(m.cfg.Source, id, a)
}

func (m Model) confirmKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	c := m.keys.Confirm
	yes := false
	switch {
	case key.Matches(k, c.Yes):
		yes = true
	case key.Matches(k, c.Toggle):
		m.confirm.yes = !m.confirm.yes
		return m, nil
	case key.Matches(k, c.Choose):
		yes = m.confirm.yes
	case key.Matches(k, c.No), key.Matches(k, c.Cancel):
	default:
		return m, nil
	}
	if !yes {
		m.overlay = overlayNone
		if m.fromEdit {
			m.overlay = overlayEditor // keep the edits
		}
		return m, nil
	}
	m.overlay = overlayNone
	m.info = "resubmitting " + m.confirm.lead.ExternalID + "…"
	return m, resubmit(m.cfg.Source, m.confirm.lead.ExternalID, m.confirm.payload)
}

func (m Model) editorKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	e := m.keys.Editor
	switch {
	case key.Matches(k, e.Cancel):
		m.overlay = overlayNone
		return m, nil
	case key.Matches(k, e.Submit):
		payload, err := m.editor.check()
		if err != nil {
			m.editor.err = err.Error()
			return m, nil
		}
		m.editor.err = ""
		m.confirm, m.fromEdit, m.overlay = newConfirm(m.editor.lead, payload), true, overlayConfirm
		return m, nil
	}
	var cmd tea.Cmd
	m.editor.ta, cmd = m.editor.ta.Update(k)
	return m, cmd
}

func (m Model) filterKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	f := m.keys.Filter
	switch {
	case key.Matches(k, f.Apply):
		m.filtering = false
		m.filter.Blur()
		return m, nil
	case key.Matches(k, f.Clear):
		m.filtering = false
		m.filter.Blur()
		m.filter.SetValue("")
		if m.paneFilter() != "" {
			m.setPaneFilter("")
			return m, m.refresh()
		}
		return m, nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(k)
	if v := m.filter.Value(); v != m.paneFilter() {
		// Live: each keystroke re-queries; the refresh cycle coalesces.
		m.setPaneFilter(v)
		return m, tea.Batch(cmd, m.refresh())
	}
	return m, cmd
}

func (m Model) paneFilter() string {
	switch m.focus {
	case paneRetries:
		return m.retries.filter
	case paneDuplicates:
		return m.dups.filter
	case paneRejections:
		return m.rejects.filter
	}
	return m.events.filter
}

func (m *Model) setPaneFilter(f string) {
	switch m.focus {
	case paneRetries:
		m.retries.setFilter(f)
	case paneDuplicates:
		m.dups.setFilter(f)
	case paneRejections:
		m.rejects.setFilter(f)
	case paneEvents:
		m.events.setFilter(f)
	}
}

// View draws the frame from the model's data only; it never reads the
// Source.
func (m Model) View() string {
	if m.width == 0 {
		return ""
	}
	if m.tooSmall() {
		msg := m.st.StatusErr.Render(fmt.Sprintf("terminal too small: need ≥ %d×%d", minWidth, minHeight)) +
			"\n" + m.st.Muted.Render(fmt.Sprintf("now %d×%d · q quits", m.width, m.height))
		return clampView(lipgloss.Place(m.width, m.height, lipgloss.Center, lipgloss.Center, msg), m.width, m.height)
	}
	bh := m.bodyHeight()
	frame := m.headerView() + "\n" + clampView(m.bodyView(bh), m.width, bh) + "\n" + m.statusView()
	return clampView(frame, m.width, m.height)
}

func (m Model) bodyView(bh int) string {
	switch m.overlay {
	case overlayHelp:
		return overlayCenter(m.screenView(), m.helpView(), m.width, bh)
	case overlayConfirm:
		return overlayCenter(m.screenView(), m.confirm.view(m.st, min(m.modalWidth(), 80)), m.width, bh)
	case overlayEditor:
		return m.editor.view(m.st, m.width, bh)
	case overlayCurl:
		return overlayCenter(m.screenView(), m.curl.view(m.st, m.modalWidth()), m.width, bh)
	}
	return m.screenView()
}

// screenView is the dashboard or the detail view, under any overlay.
func (m Model) screenView() string {
	if m.screen == screenDetail {
		return m.detail.View()
	}
	if m.grid {
		top := lipgloss.JoinHorizontal(lipgloss.Top, m.retries.View(), m.dups.View())
		bottom := lipgloss.JoinHorizontal(lipgloss.Top, m.rejects.View(), m.events.View())
		return top + "\n" + bottom
	}
	return m.tabsView() + "\n" + m.focusedView()
}

func (m Model) focusedView() string {
	switch m.focus {
	case paneRetries:
		return m.retries.View()
	case paneDuplicates:
		return m.dups.View()
	case paneRejections:
		return m.rejects.View()
	}
	return m.events.View()
}

// tabsView is the tab bar of the narrow layout. The active tab is
// bracketed as well as coloured, so it shows without colour.
func (m Model) tabsView() string {
	totals := []int{m.retries.total, m.dups.total, m.rejects.total, m.events.total}
	var parts []string
	for id := paneRetries; id < paneCount; id++ {
		label := fmt.Sprintf("%d %s", id+1, id.title())
		if totals[id] >= 0 {
			label += fmt.Sprintf(" %d", totals[id])
		}
		if id == m.focus {
			parts = append(parts, m.st.TabActive.Render("["+label+"]"))
		} else {
			parts = append(parts, m.st.TabInactive.Render(" "+label+" "))
		}
	}
	return fit(strings.Join(parts, m.st.Border.Render("│")), m.width)
}

// currentKeys is the keymap of whatever has the keys now.
func (m Model) currentKeys() help.KeyMap {
	switch {
	case m.overlay == overlayConfirm:
		return m.keys.Confirm
	case m.overlay == overlayEditor:
		return m.keys.Editor
	case m.overlay == overlayCurl, m.overlay == overlayHelp:
		return m.keys.Modal
	case m.filtering:
		return m.keys.Filter
	case m.screen == screenDetail:
		return m.keys.Detail
	}
	return m.keys.Dashboard
}

func (m Model) helpView() string {
	km := m.keys.Dashboard
	var full help.KeyMap = km
	title := "Keys · dashboard"
	if m.screen == screenDetail {
		full, title = m.keys.Detail, "Keys · detail"
	}
	h := m.help
	h.ShowAll = true
	body := h.View(full) + "\n\n" + m.st.Muted.Render("confirm: y/n, ←/→ + enter; editor: ctrl+s checks, esc discards")
	w := min(max(lipgloss.Width(body)+4, 40), m.width-2)
	body = pad(wrapHard(body, w-4))
	return m.st.box(title, body, w, strings.Count(body, "\n")+3, true)
}

// statusView is the bottom line: the keys that matter now on the left,
// the latest error or notice on the right.
func (m Model) statusView() string {
	var right string
	switch {
	case m.err != nil:
		right = m.st.StatusErr.Render("✗ " + clean(m.err.Error()))
	case m.refreshErr != nil:
		right = m.st.StatusErr.Render("✗ " + clean(m.refreshErr.Error()))
	case m.status.ListenerErr != nil:
		right = m.st.StatusErr.Render("✗ listener: " + clean(m.status.ListenerErr.Error()))
	case m.info != "":
		right = m.st.StatusInfo.Render(clean(m.info))
	}
	// The message gets up to half the line; help takes the rest.
	rw := min(lipgloss.Width(right), m.width/2)
	if rw > 0 {
		right = fit(right, rw)
	}
	h := m.help
	h.Width = m.width - rw - 1
	left := h.ShortHelpView(m.currentKeys().ShortHelp())
	if m.filtering {
		fw := max(m.width-rw-lipgloss.Width(left)-3, 20)
		left = fit(m.filter.View(), fw) + "  " + left
	}
	return fit(left, m.width-rw) + right
}
