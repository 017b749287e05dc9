package ui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// statusBar is the bottom line: the keys that matter now on the left,
// the latest error or notice on the right. An action's error outranks
// the store's, which outranks a refresh's, which outrank a notice, which
// outranks the CRM's trouble and then the listener's (both also drawn in
// the header). A notice
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
	// memo keeps the hints drawn for a set of keys at a width: rendering
	// the short help for each width tried was a fifth of every frame.
	// Shared by the bar's copies; Update and View run on one goroutine.
	memo map[string]string
}

// infoTTL is how long a notice stays on the status bar.
const infoTTL = 5 * time.Second

func newStatusBar(st *Styles) statusBar {
	h := help.New()
	h.Styles = st.Help
	return statusBar{st: st, help: h, memo: map[string]string{}}
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
	case actedMsg:
		b.acted(msg)
	case retriedAllMsg:
		switch {
		case msg.err != nil:
			b.fail(fmt.Errorf("send all now: %w", msg.err))
		case msg.n == 0:
			b.say("no lead was waiting to retry")
		default:
			b.err = nil
			b.say(fmt.Sprintf("%s due now, same keys: the sender takes them", leadsText(msg.n)))
		}
	case curlSavedMsg:
		if msg.err != nil {
			b.fail(fmt.Errorf("save curl: %w", msg.err))
		} else {
			b.say("curl saved to " + msg.path)
		}
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
	case b.info != "":
		// A fresh notice answers what the user just did; the CRM's and
		// the listener's trouble stay red in the header meanwhile, and
		// come back here when it expires.
		right = st.StatusInfo.Render(clean(b.info))
	case b.crmErr != "":
		right = st.StatusErr.Render("✗ " + clean(b.crmErr))
	case b.listenerErr != nil:
		right = st.StatusErr.Render("✗ listener: " + clean(b.listenerErr.Error()))
	}
	// The message gets half the line, or more, up to all but the help
	// and quit keys, when it needs it: an error is read in full.
	rw := min(lipgloss.Width(right), max(width/2, width-lipgloss.Width(b.hints(keys.ShortHelp(), 0))-1))
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
	if b.memo == nil {
		return b.fitHints(bindings, w)
	}
	var k strings.Builder
	k.WriteString(strconv.Itoa(w))
	for _, kb := range bindings {
		if !kb.Enabled() {
			continue
		}
		k.WriteByte(0)
		k.WriteString(kb.Help().Key)
		k.WriteByte(1)
		k.WriteString(kb.Help().Desc)
	}
	if v, ok := b.memo[k.String()]; ok {
		return v
	}
	if len(b.memo) >= hintMemoSize {
		clear(b.memo)
	}
	v := b.fitHints(bindings, w)
	b.memo[k.String()] = v
	return v
}

// hintMemoSize bounds the hints memo: a few key maps (one per pane and
// view) times the widths the bar was drawn at.
const hintMemoSize = 64

// fitHints is hints without the memo.
func (b statusBar) fitHints(bindings []key.Binding, w int) string {
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

// acted says what an outbox action did, in plain words: done, or why
// not (the lead's state does not allow it, it is gone, the store
// failed).
func (b *statusBar) acted(msg actedMsg) {
	verb := actionVerb(msg.action)
	if msg.err != nil {
		b.fail(fmt.Errorf("%s %s: %w", verb, strings.Join(msg.ids, ", "), msg.err))
		return
	}
	var done, failed []string
	var firstErr error
	for _, r := range msg.results {
		if r.Err == nil {
			done = append(done, r.ExternalID)
			continue
		}
		failed = append(failed, r.ExternalID)
		if firstErr == nil {
			firstErr = actionError(msg.action, r)
		}
	}
	switch {
	case len(msg.results) == 0:
		b.fail(fmt.Errorf("%s %s: the store changed nothing", verb, strings.Join(msg.ids, ", ")))
	case len(failed) == 0 && len(done) == 1:
		b.err = nil
		b.say(actionDone(msg.action, done[0]))
	case len(failed) == 0:
		b.err = nil
		b.say(fmt.Sprintf("%s: %s done", verb, leadsText(len(done))))
	case len(done) == 0 && len(failed) == 1:
		b.fail(firstErr)
	default:
		b.fail(fmt.Errorf("%s: %d done, %d not: %w", verb, len(done), len(failed), firstErr))
	}
}

// actionVerb is how the status bar names an action.
func actionVerb(a crm.Action) string {
	switch a {
	case crm.ActRetryNow:
		return "send now"
	case crm.ActHold:
		return "hold"
	case crm.ActRelease:
		return "release"
	case crm.ActCancel:
		return "cancel"
	}
	return string(a)
}

// actionDone is the notice for an action applied to one lead.
func actionDone(a crm.Action, id string) string {
	switch a {
	case crm.ActRetryNow:
		return id + " is due now, same key: the sender takes it next"
	case crm.ActHold:
		return "held " + id + ": not sent until released (u)"
	case crm.ActRelease:
		return "released " + id + ": queued, due now"
	case crm.ActCancel:
		return "canceled " + id + ": failed, not sent (r resubmits it)"
	}
	return actionVerb(a) + " " + id + ": done"
}

// actionError words one lead's refusal: its state does not allow the
// action, or it is gone.
func actionError(a crm.Action, r crm.ActionResult) error {
	switch {
	case errors.Is(r.Err, crm.ErrWrongState):
		return wrongStateError(a, r.ExternalID, r.Before)
	case errors.Is(r.Err, crm.ErrNotFound):
		return fmt.Errorf("%s %s: no such lead in the outbox", actionVerb(a), r.ExternalID)
	}
	return fmt.Errorf("%s %s: %w", actionVerb(a), r.ExternalID, r.Err)
}

// wrongStateError says which leads an action applies to, for a lead in
// another state.
func wrongStateError(a crm.Action, id string, s crm.State) error {
	var which string
	switch a {
	case crm.ActRetryNow:
		which = "waiting leads"
	case crm.ActHold:
		which = "queued or waiting leads"
	case crm.ActRelease:
		which = "held leads"
	case crm.ActCancel:
		which = "leads not sent yet"
	}
	return fmt.Errorf("%s is %s: %s is for %s", id, s, actionVerb(a), which)
}

// requestsText is "1 request", "40 requests".
func requestsText(n int) string {
	if n == 1 {
		return "1 request"
	}
	return thousands(n) + " requests"
}
