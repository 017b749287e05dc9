package ui

import (
	"errors"
	"fmt"

	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// statusBar is the bottom line: the keys that matter now on the left,
// the latest error or notice on the right. Errors outrank notices, and
// an action's error outranks the store's, which outranks a refresh's,
// which outranks the listener's.
type statusBar struct {
	st          *Styles
	help        help.Model
	err         error // the last failed action
	storeErr    error // why the store cannot commit, kept until a refresh finds it healthy
	refreshErr  error // the last refresh's failure, cleared by a good one
	listenerErr error // why the listener is not running, from Status
	info        string
}

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
		b.err, b.info = nil, "resubmitted "+res.Lead.ExternalID+" · "+key
	case pausedMsg:
		b.info = "sending resumed"
		if msg.paused {
			b.info = "sending paused"
		}
	}
	return b
}

// say shows a notice; an error still on screen stays in front of it.
func (b *statusBar) say(info string) { b.info = info }

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
	h := b.help
	h.Width = width - rw - 1
	left := h.ShortHelpView(keys.ShortHelp())
	if input != "" {
		fw := max(width-rw-lipgloss.Width(left)-3, 20)
		left = fit(input, fw) + "  " + left
	}
	return fit(left, width-rw) + right
}
