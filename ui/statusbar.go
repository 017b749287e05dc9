package ui

import (
	"errors"
	"fmt"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// statusBar is the bottom line: the keys that matter now on the left,
// the latest error or notice on the right. Errors outrank notices, and
// an action's error outranks the store's, which outranks a refresh's,
// which outranks the CRM's, which outranks the listener's. A notice
// expires infoTTL after it was said, by the model's clock; an error stays
// until its condition clears (an action's until esc or the next action).
type statusBar struct {
	st          *Styles
	help        help.Model
	err         error  // the last failed action
	storeErr    error  // why the store cannot commit, kept until a refresh finds it healthy
	refreshErr  error  // the last refresh's failure, cleared by a good one
	listenerErr error  // why the listener is not running, from Status
	crmErr      string // why the CRM is not answering, from Status; "" while it is
	info        string
	infoAt      time.Time // when info was said
	now         time.Time // the model's clock, moved by expire
}

// infoTTL is how long a notice stays on the status bar.
const infoTTL = 5 * time.Second

func newStatusBar(st *Styles) statusBar {
	h := help.New()
	h.Styles = st.Help
	return statusBar{st: st, help: h}
}

// Update takes the messages that end in something to say: a refresh
// (its error, or none), a failure, a resubmission, a pause switch.
func (b statusBar) Update(msg tea.Msg) statusBar {
	switch msg := msg.(type) {
	case snapshotMsg:
		b.refreshErr = msg.err
		b.storeErr = nil
		if h := msg.health; h.code != "" {
			b.storeErr = errors.New(storeTrouble(h.code))
			if h.err != nil {
				b.storeErr = fmt.Errorf("%s: %w", storeTrouble(h.code), h.err)
			}
		}
	case errMsg:
		b.fail(msg.err)
	case resubmittedMsg:
		res := msg.res
		key := "new key " + res.Lead.IdempotencyKey
		if res.KeyKept {
			key = "same key " + res.Lead.IdempotencyKey
		}
		b.err = nil
		b.say("resubmitted " + res.Lead.ExternalID + " · " + key)
	case pausedMsg:
		if msg.paused {
			b.say("sending paused")
		} else {
			b.say("sending resumed")
		}
	}
	return b
}

// say shows a notice for infoTTL; an error still on screen stays in
// front of it.
func (b *statusBar) say(info string) { b.info, b.infoAt = info, b.now }

// expire moves the bar's clock to now and drops a notice said infoTTL
// or more before.
func (b *statusBar) expire(now time.Time) {
	b.now = now
	if b.info != "" && now.Sub(b.infoAt) >= infoTTL {
		b.info = ""
	}
}

// fail shows an action's error in place of any notice.
func (b *statusBar) fail(err error) { b.err, b.info = err, "" }

// clear drops the notice and the action's error (esc on the dashboard).
func (b *statusBar) clear() { b.err, b.info = nil, "" }

// View draws the line width cells wide: the short help of keys, after
// input (the filter being typed) when there is one.
func (b statusBar) View(width int, keys help.KeyMap, input string) string {
	st := b.st
	var right string
	switch {
	case b.err != nil:
		right = st.StatusErr.Render("✗ " + clean(b.err.Error()))
	case b.storeErr != nil:
		right = st.StatusErr.Render("✗ " + clean(b.storeErr.Error()))
	case b.refreshErr != nil:
		right = st.StatusErr.Render("✗ " + clean(b.refreshErr.Error()))
	case b.crmErr != "":
		right = st.StatusErr.Render("✗ " + clean(b.crmErr))
	case b.listenerErr != nil:
		right = st.StatusErr.Render("✗ listener: " + clean(b.listenerErr.Error()))
	case b.info != "":
		right = st.StatusInfo.Render(clean(b.info))
	}
	// The message gets up to half the line; help takes the rest.
	rw := min(lipgloss.Width(right), width/2)
	if rw > 0 {
		right = fit(right, rw)
	}
	left := b.hints(keys.ShortHelp(), width-rw-1)
	if input != "" {
		fw := max(width-rw-lipgloss.Width(left)-3, 20)
		left = fit(input, fw) + "  " + left
	}
	return fit(left, width-rw) + right
}

// hints is the short help that fits in w cells. The help and quit keys
// are the last to go: the others are dropped from the end first, so at
// 80 columns "? help" and "q quit" stay.
func (b statusBar) hints(bindings []key.Binding, w int) string {
	h := b.help
	h.Width = 0
	var keep, rest []key.Binding
	for _, kb := range bindings {
		if k := kb.Help().Key; k == "?" || k == "q" {
			keep = append(keep, kb)
		} else {
			rest = append(rest, kb)
		}
	}
	for n := len(rest); n >= 0; n-- {
		v := h.ShortHelpView(append(rest[:n:n], keep...))
		if lipgloss.Width(v) <= w || n == 0 {
			return v
		}
	}
	return ""
}
