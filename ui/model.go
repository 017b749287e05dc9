package ui

import (
	"fmt"
	"os"
	"time"

	"github.com/charmbracelet/bubbles/help"
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
	NoSender     bool   // this process runs no sender (attached, --no-send): others send
	NoListener   bool   // this process runs no listener (attached, --no-listen): others receive
	MaxAttempts  int    // retry.max_attempts, for "attempt n/max"; 0 unknown
	// CRM is what this process's sender met at the CRM; nil when it runs
	// no sender (attached: the store's view is not drawn yet).
	CRM *crm.Health
	// Listener is what this process's listener verified and refused; nil
	// when it runs none.
	Listener *ListenerHealth
}

// ListenerHealth is the callback listener's recent traffic.
type ListenerHealth struct {
	Since        time.Time // when the listener started counting
	LastVerified time.Time // the last verified callback; zero before the first
	RefusedMin   int       // callbacks refused over the last minute
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
)

// Model is the dashboard's root. It holds the parts as typed fields and
// routes: global keys and window sizes it handles, every other key goes
// to the one part that has the keys (an overlay, the filter input, the
// detail view or the focused pane), and every read and write of the
// Source runs in a Cmd.
type Model struct {
	cfg  Config
	st   *Styles
	keys keyMap

	width, height int
	grid          bool
	now           time.Time
	status        Status

	header header
	bar    statusBar
	filter filterInput

	retries, dups, rejects leadPane
	events                 eventPane
	all                    allPane     // every lead, newest first
	sources                sourcesView // the Report by source field
	trend                  trendView   // throughput over time
	focus                  paneID

	detail  detailView
	overlay overlay // nil when none is open
	cycle   refreshCycle

	pulse    pulseState // attached: the store's view of the CRM and the listener
	bulk     *bulkRun   // the bulk resubmit under way; nil when none
	bulkRuns int        // bulk runs started, to tell a stale page's result
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
			_, err := osc52For(s, os.Getenv).WriteTo(os.Stdout)
			return err
		}
	}
	r := lipgloss.DefaultRenderer()
	// Resolve the background now, before bubbletea owns stdin: the
	// adaptive colours would otherwise query the terminal mid-frame.
	_ = r.HasDarkBackground()
	st := NewStyles(r, DefaultPalette())
	keys := newKeyMap()
	if cfg.Status().NoSender {
		// No sender here to pause: sources are paused in the store.
		keys = keys.withoutPause()
	}

	m := Model{
		cfg:     cfg,
		st:      st,
		keys:    keys,
		header:  header{st: st},
		bar:     newStatusBar(st),
		filter:  newFilterInput(st, keys.Filter),
		retries: newLeadPane(paneRetries, st, keys.Dashboard, crm.StateRetryWait),
		dups:    newLeadPane(paneDuplicates, st, keys.Dashboard, crm.StateDuplicate),
		rejects: newLeadPane(paneRejections, st, keys.Dashboard, crm.StateRejected, crm.StateValidationError, crm.StateFailed),
		events:  newEventPane(st, keys.Dashboard),
		all:     newAllPane(st, keys.Dashboard),
		sources: newSourcesView(st, keys.Dashboard),
		trend:   newTrendView(st, keys.Dashboard),
		detail:  newDetailView(st, keys.Detail),
		cycle:   newRefreshCycle(cfg.Changes),
	}
	m.setNow(cfg.Now())
	m.setStatus(cfg.Status())
	m.setFocus(paneRetries)
	return m
}

// Init starts the heartbeat and the change listener, and asks for the
// first refresh (it runs once the window size is known).
func (m Model) Init() tea.Cmd {
	return tea.Batch(
		tea.EnterAltScreen,
		tick(m.cfg.Now, m.cfg.Status),
		m.cycle.Init(),
		requestRefresh,
	)
}

// Update handles one message: it hands each to the part it is for.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	// The views' own keys and results (the jump, the Sources view's
	// pauses) first: jump.go's hook leaves every other message here.
	if next, cmd, ok := m.viewsUpdate(msg); ok {
		return next, cmd
	}
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m.handleKey(msg)
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		cmd := m.refresh()
		return m, cmd
	case tickMsg:
		m.setNow(msg.now)
		m.setStatus(msg.status)
		cmds := []tea.Cmd{tick(m.cfg.Now, m.cfg.Status)}
		if m.cycle.tickDue(msg.now) {
			cmds = append(cmds, m.refresh())
		}
		return m, tea.Batch(cmds...)
	case changeMsg:
		if m.cycle.changed() {
			cmd := tea.Batch(m.cycle.listen(), m.refresh())
			return m, cmd
		}
		return m, nil
	case changesClosedMsg:
		m.cycle.stop()
		return m, nil
	case refreshRequestMsg:
		m.cycle.requested()
		cmd := m.refresh()
		return m, cmd
	case snapshotMsg:
		cmd := m.applySnapshot(msg)
		return m, cmd
	case leadMsg:
		return m.handleLead(msg)
	case callbackMsg:
		m.detail.setCallback(msg)
		if msg.err != nil {
			m.bar.fail(msg.err)
		}
		return m, nil
	case confirmedMsg:
		m.bar.say("resubmitting " + msg.externalID + "…")
		return m, resubmit(m.cfg.Source, msg.externalID, msg.payload)
	case resubmittedMsg:
		m.bar = m.bar.Update(msg)
		m.searchAfresh()
		cmd := m.refresh()
		return m, cmd
	case pausedMsg:
		m.status.Paused = msg.paused
		m.setStatus(m.status)
		m.bar = m.bar.Update(msg)
		return m, nil
	case tea.MouseMsg:
		return m.mouse(msg)
	case actedMsg, retriedAllMsg, bulkCountedMsg, bulkStartMsg, bulkStepMsg:
		return m.actionResult(msg)
	case curlSavedMsg:
		m.bar = m.bar.Update(msg)
		if m.overlay != nil {
			var cmd tea.Cmd
			m.overlay, cmd = m.overlay.Update(msg)
			return m, cmd
		}
		return m, nil
	case copiedMsg:
		if m.overlay != nil {
			var cmd tea.Cmd
			m.overlay, cmd = m.overlay.Update(msg)
			return m, cmd
		}
		return m, nil
	case editorFileMsg, editorClosedMsg, editorReadMsg:
		return m.externalEdit(msg)
	case replayedMsg:
		return m.replayed(msg)
	case errMsg:
		m.bar = m.bar.Update(msg)
		return m, nil
	}
	return m, nil
}

// setNow moves the clock of every part that draws times.
func (m *Model) setNow(now time.Time) {
	m.now = now
	m.header.now = now
	m.bar.expire(now)
	for id := range paneCount {
		m.pane(id).setNow(now)
	}
	m.detail.setNow(now)
}

// setStatus takes what main reported and gives each part its share.
func (m *Model) setStatus(s Status) {
	s = m.pulse.status(s, m.now)
	m.status = s
	m.header.status = s
	m.bar.listenerErr = s.ListenerErr
	m.bar.crmErr = crmTrouble(s.CRM, m.now)
	m.retries.maxAttempts = s.MaxAttempts
}

func (m *Model) setFocus(id paneID) {
	m.focus = (id + paneCount) % paneCount
	for id := range paneCount {
		m.pane(id).setFocused(id == m.focus)
	}
}

func (m Model) tooSmall() bool { return m.width < minWidth || m.height < minHeight }

func (m Model) bodyHeight() int { return max(m.height-m.header.height()-statusHeight, 1) }

// layout gives every part its size after a resize.
func (m *Model) layout() {
	w, bh := m.width, m.bodyHeight()
	m.grid = w >= gridWidth && m.height >= gridHeight
	if m.grid {
		lw, rw := w/2, w-w/2
		th, bt := bh/2, bh-bh/2
		m.retries.setSize(lw, th)
		m.dups.setSize(rw, th)
		m.rejects.setSize(lw, bt)
		m.events.setSize(rw, bt)
		// The views take the whole body in place of the grid.
		for id := paneAll; id < paneCount; id++ {
			m.pane(id).setSize(w, bh)
		}
	} else {
		// Tabs: one pane under a one-line tab bar.
		for id := range paneCount {
			m.pane(id).setSize(w, bh-1)
		}
	}
	m.detail.setSize(w, bh)
	if m.overlay != nil {
		m.overlay = m.overlay.resize(w, bh)
	}
}

// refresh starts a snapshot query of what is on screen, unless one is
// running, in which case the cycle runs another when that one lands:
// signals coalesce, and at most one query is in flight.
func (m *Model) refresh() tea.Cmd {
	if m.width == 0 || m.cfg.Source == nil {
		return nil // the first WindowSizeMsg refreshes
	}
	if !m.cycle.start() {
		return nil
	}
	q := snapshotQuery{
		now:             m.now,
		throughputSince: m.now.Truncate(sparkBucket).Add(-(sparkBuckets - 1) * sparkBucket),
		detailID:        m.detail.leadID(),
		pulse:           m.status.NoSender || m.status.NoListener,
	}
	// Only the panes on screen are queried.
	if !m.detail.shown && !m.tooSmall() {
		for id := range paneCount {
			if m.onScreen(id) {
				m.pane(id).ask(&q)
			}
		}
	}
	return loadSnapshot(m.cfg.Source, q)
}

// applySnapshot gives a refresh's result to every part, then starts or
// schedules the next refresh if one is due and re-arms the change
// listener if a change came in meanwhile.
func (m *Model) applySnapshot(s snapshotMsg) tea.Cmd {
	again := false
	for id := range paneCount {
		again = m.pane(id).take(s) || again
	}
	if s.detailOK {
		m.detail.setLead(s.detail)
	}
	if s.pulseOK {
		m.pulse.take(s.pulse, s.q.now)
		m.setStatus(m.status)
	}
	lines := m.header.height()
	m.header = m.header.Update(s)
	if m.header.height() != lines {
		// The forwarding line came or went: the body gives or takes it.
		m.layout()
	}
	m.bar = m.bar.Update(s)
	now, next := m.cycle.landed(s.q.now, again)
	if now {
		next = m.refresh()
	}
	return tea.Batch(next, m.cycle.listen())
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
	body := m.screenView()
	if m.overlay != nil {
		body = m.overlay.View(m.width, bh, m.screenView)
	}
	frame := m.header.View(m.width) + "\n" + clampView(body, m.width, bh) + "\n" +
		m.bar.View(m.width, m.currentKeys(), m.filter.View())
	return clampView(frame, m.width, m.height)
}

// screenView is the dashboard or the detail view, under any overlay.
func (m Model) screenView() string {
	if m.detail.shown {
		return m.detail.View()
	}
	if m.grid && m.focus.view() {
		return m.focused().View()
	}
	if m.grid {
		top := lipgloss.JoinHorizontal(lipgloss.Top, m.retries.View(), m.dups.View())
		bottom := lipgloss.JoinHorizontal(lipgloss.Top, m.rejects.View(), m.events.View())
		return top + "\n" + bottom
	}
	return m.tabBar().View(m.width) + "\n" + m.focused().View()
}

// currentKeys is the keymap of whatever has the keys now.
func (m Model) currentKeys() help.KeyMap {
	switch {
	case m.overlay != nil:
		return m.overlay.keyMap()
	case m.filter.active:
		return m.keys.Filter
	case m.detail.shown:
		return m.detailKeys()
	case m.focus == paneSources || m.focus == paneTrend:
		return m.viewKeyMap()
	}
	if m.focus == paneRetries {
		return m.keys.Dashboard.onRetries()
	}
	if m.focus == paneEvents {
		return m.keys.Dashboard.onEvents()
	}
	return m.keys.Dashboard
}
