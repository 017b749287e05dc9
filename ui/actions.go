package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// Key routing and the actions keys start. Every handler calls what
// changes m before returning it: Go leaves the order of "return m, f()"
// unspecified when f changes m.

// handleKey routes a key: quit-now first, then the overlay on top, then
// the filter input, then global keys, then the screen and its focused
// pane. Exactly one part sees each key.
func (m Model) handleKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(k, m.keys.Global.ForceQuit) {
		return m, tea.Quit
	}
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste && !m.typing() && !keyName(string(k.Runes)) {
		// Keys typed faster than the terminal is read (a script, tmux
		// send-keys, a fast typist over SSH) arrive as one message of
		// several runes; outside a text field each is a key of its own.
		var cmds []tea.Cmd
		var next tea.Model = m
		for _, r := range k.Runes {
			var cmd tea.Cmd
			next, cmd = next.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt})
			cmds = append(cmds, cmd)
		}
		return next, tea.Batch(cmds...)
	}
	if m.tooSmall() {
		if key.Matches(k, m.keys.Global.Quit) {
			return m, tea.Quit
		}
		return m, nil
	}
	if m.overlay != nil {
		var cmd tea.Cmd
		m.overlay, cmd = m.overlay.Update(k)
		return m, cmd
	}
	if m.filter.active {
		return m.filterKey(k)
	}

	g := m.keys.Global
	switch {
	case key.Matches(k, g.Quit):
		return m, tea.Quit
	case key.Matches(k, g.Help):
		var full help.KeyMap = m.keys.Dashboard
		title := "Keys · dashboard"
		if m.detail.shown {
			full, title = m.detailKeys(), "Keys · detail"
		}
		m.overlay = newHelpDialog(m.st, m.keys.Modal, full, title)
		return m, nil
	case key.Matches(k, g.Pause):
		if m.cfg.Pause == nil {
			m.bar.say("pausing is not available here")
			return m, nil
		}
	case !g.Pause.Enabled() && key.Matches(k, m.keys.pauseHint):
		// Attached, or no sender: p would pause nothing here. Say what
		// does stop sending, for every sender sharing the store.
		m.bar.say("pausing is not available here: pause a source in the Sources view (P)")
		return m, nil
	}
	if key.Matches(k, g.Pause) {
		want := !m.status.Paused
		m.status.Paused = want // show it now; the next tick confirms
		m.setStatus(m.status)
		return m, setPaused(m.cfg.Pause, want)
	}
	if m.detail.shown {
		return m.detailKey(k)
	}
	return m.dashboardKey(k)
}

// keyName reports whether s is the name of a key (as a key binding
// spells it), not runes typed together: "pgdown", "ctrl+s".
func keyName(s string) bool {
	switch s {
	case "up", "down", "left", "right", "home", "end", "pgup", "pgdown",
		"enter", "esc", "tab", "space", "backspace", "delete", "insert":
		return true
	}
	return strings.Contains(s, "+")
}

// typing reports whether keys go to a text field now (the filter, the
// payload editor, the jump), where several runes at once are text.
func (m Model) typing() bool {
	if m.filter.active {
		return true
	}
	switch m.overlay.(type) {
	case nil, helpDialog, confirmDialog, askDialog, curlDialog:
		return false
	}
	return true
}

func (m Model) dashboardKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	d := m.keys.Dashboard
	if focus, ok := d.pane(k, m.focus); ok {
		if focus == m.focus {
			return m, nil
		}
		m.setFocus(focus)
		if !m.grid {
			cmd := m.refresh() // the tab that came up has not been read
			return m, cmd
		}
		return m, nil
	}
	switch {
	case key.Matches(k, d.RetryAll):
		return m.askRetryAll()
	case key.Matches(k, d.BulkResubmit):
		return m.startBulk()
	case key.Matches(k, d.Replay):
		return m.replayKey()
	}
	if a, ok := d.action(k); ok {
		return m.act(a)
	}
	p := m.focused()
	switch {
	case key.Matches(k, d.Filter):
		cmd := m.filter.start(p.filterText())
		return m, cmd
	case key.Matches(k, d.ClearFilter):
		if p.filterText() != "" {
			p.setFilter("")
			cmd := m.refresh()
			return m, cmd
		}
		m.bar.clear()
		return m, nil
	case key.Matches(k, d.Open):
		return m.open()
	}
	cmd := p.Update(k)
	return m, cmd
}

func (m Model) detailKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(k, m.keys.Detail.Back) {
		m.detail.close()
		cmd := m.refresh()
		return m, cmd
	}
	if key.Matches(k, m.keys.Detail.Replay) {
		return m.replayDetail()
	}
	if id := m.detail.leadID(); id != "" {
		if a, ok := m.keys.Detail.action(k); ok {
			return m, loadLead(m.cfg.Source, id, a)
		}
	}
	var cmd tea.Cmd
	m.detail, cmd = m.detail.Update(k)
	return m, cmd
}

// filterKey types into the filter and copies it into the focused pane
// as it changes: each keystroke re-queries, and the refresh cycle
// coalesces.
func (m Model) filterKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(k)
	if p := m.focused(); m.filter.value() != p.filterText() {
		p.setFilter(m.filter.value())
		cmd = tea.Batch(cmd, m.refresh())
	}
	return m, cmd
}

// open shows the detail of the selected row: a lead's story loads fresh;
// an unmatched callback shows its row while its body loads; a refusal
// has everything in its row.
func (m Model) open() (tea.Model, tea.Cmd) {
	s, ok := m.focused().selection()
	switch {
	case !ok:
		return m, nil
	case s.ref != nil:
		m.detail.openRefusal(*s.ref)
		return m, nil
	case s.cb != nil:
		m.detail.openCallback(*s.cb)
		return m, loadCallback(m.cfg.Source, s.cb.ID)
	}
	m.detail.openLead(s.leadID)
	return m, loadLead(m.cfg.Source, s.leadID, actOpen)
}

// act starts an action on the selected lead: an outbox action at once
// (the store decides whether it applies, and says so), cancel and the
// resubmissions once the lead is loaded fresh.
func (m Model) act(a action) (tea.Model, tea.Cmd) {
	s, ok := m.focused().selection()
	if !ok || s.leadID == "" {
		m.bar.say("select a lead first (this row matches no lead)")
		return m, nil
	}
	if ca, ok := a.outboxAction(); ok && ca != crm.ActCancel {
		m.bar.say(actionVerb(ca) + " " + s.leadID + "…")
		return m, act(m.cfg.Source, ca, s.leadID)
	}
	return m, loadLead(m.cfg.Source, s.leadID, a)
}

// detailKeys is the detail view's keymap for what it shows: a callback
// or a refusal has none of the lead keys.
func (m Model) detailKeys() detailKeys {
	if m.detail.leadID() == "" {
		return m.keys.Detail.forEvent()
	}
	return m.keys.Detail
}

// askRetryAll asks before making every waiting lead due now, saying how
// many there are (the header's count).
func (m Model) askRetryAll() (tea.Model, tea.Cmd) {
	n := m.header.counts.States[crm.StateRetryWait]
	if !m.header.haveCounts || n == 0 {
		m.bar.say("no lead is waiting to retry")
		return m, nil
	}
	q := fmt.Sprintf("Send all %s waiting to retry now?", leadsText(n))
	if n == 1 {
		q = "Send the 1 lead waiting to retry now?"
	}
	m.overlay = newAsk(m.st, m.keys.Confirm, "Confirm", q,
		fmt.Sprintf("Each keeps its idempotency key and skips the rest of its wait:\nthe CRM gets up to %s at once.", requestsText(n)),
		retryAllNow(m.cfg.Source))
	return m, nil
}

// askCancel asks before canceling lead, which ends it as failed.
func (m Model) askCancel(lead crm.Lead) overlay {
	body := m.st.Muted.Render("state      ") + m.st.State(lead.State).Render(string(lead.State)) + "\n" +
		"It ends as failed (\"" + crm.CanceledReason + "\") and is not sent.\n" +
		m.st.Muted.Render("r resubmits it later; an unchanged payload keeps its key.")
	return newAsk(m.st, m.keys.Confirm, "Confirm", "Cancel "+clean(lead.ExternalID)+"?", body,
		act(m.cfg.Source, crm.ActCancel, lead.ExternalID))
}

// handleLead continues an action once its lead is loaded.
func (m Model) handleLead(msg leadMsg) (tea.Model, tea.Cmd) {
	m.detail.setLead(msg.detail)
	lead := msg.detail.Lead
	if msg.purpose.resubmits() && !lead.State.Resubmittable() {
		m.bar.fail(fmt.Errorf("%s is %s: only failed, rejected, validation_error or duplicate leads can be resubmitted", lead.ExternalID, lead.State))
		return m, nil
	}
	if ca, ok := msg.purpose.outboxAction(); ok {
		if ca == crm.ActCancel {
			if !ca.Applies(lead.State) {
				m.bar.fail(wrongStateError(ca, lead.ExternalID, lead.State))
				return m, nil
			}
			m.overlay = m.askCancel(lead)
			return m, nil
		}
		m.bar.say(actionVerb(ca) + " " + lead.ExternalID + "…")
		return m, act(m.cfg.Source, ca, lead.ExternalID)
	}
	switch msg.purpose {
	case actResubmit:
		m.overlay = newConfirm(m.st, m.keys.Confirm, lead, nil, nil)
	case actEdit:
		m.overlay = m.editor(lead, editableJSON(lead.Payload))
	case actExternalEdit:
		return m, writeEditorFile(lead)
	case actCopy:
		text := strings.TrimRight(curlCommand(lead, m.status.BaseURL), "\n")
		c := newCurlDialog(m.st, m.keys.Modal, text)
		c.name = lead.ExternalID
		c.status = m.st.Muted.Render("copying…")
		m.overlay = c.sized(m.width, m.bodyHeight())
		return m, copyText(m.cfg.Clipboard, text)
	}
	return m, nil
}

// editor is the payload editor for lead at the body's size.
func (m Model) editor(lead crm.Lead, text string) editorDialog {
	return newEditor(m.st, m.keys, lead, text).sized(m.width, m.bodyHeight())
}

// externalEdit runs the $EDITOR round trip: the temp file is written,
// the editor exits, and what it left lands in the built-in editor, so
// the result is checked and shown before anything is sent.
func (m Model) externalEdit(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case editorFileMsg:
		return m, runEditor(msg.path, msg.lead)
	case editorClosedMsg:
		if msg.err != nil {
			m.bar.fail(fmt.Errorf("editor: %w (nothing resubmitted)", msg.err))
			return m, removeFile(msg.path)
		}
		return m, readEditorFile(msg.path, msg.lead)
	case editorReadMsg:
		m.overlay = m.editor(msg.lead, string(msg.payload)).recheck()
	}
	return m, nil
}

// searchAfresh makes each filtering pane search its filter again in the
// next refresh instead of extending its last search: the leads the user
// just acted on must show as they are now at once, those that left a
// pane's states included, which a pane's reads of what changed at its top
// cannot see (until its next background search).
func (m *Model) searchAfresh() {
	for _, p := range []*leadPane{&m.retries, &m.dups, &m.rejects} {
		p.srch.key = ""
	}
	m.all.srch.key = ""
}

// actionResult takes what an outbox action, send-all-now or a bulk
// resubmit step did: the status bar says it, and the panes re-read.
func (m Model) actionResult(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case actedMsg, retriedAllMsg:
		m.bar = m.bar.Update(msg)
		m.searchAfresh()
	case bulkCountedMsg:
		switch {
		case msg.err != nil:
			m.bar.fail(msg.err)
		case msg.plan.n == 0:
			m.bar.say("no lead to resubmit: the pane's filter shows none")
		default:
			m.bar.clear()
			m.overlay = m.askBulk(msg.plan)
		}
		return m, nil
	case bulkStartMsg:
		cmd := m.beginBulk(msg.plan)
		return m, cmd
	case bulkStepMsg:
		cmd := m.stepBulk(msg)
		return m, cmd
	}
	cmd := m.refresh()
	return m, cmd
}
