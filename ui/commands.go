package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// Messages. Every result of I/O comes back as one of these.
type (
	// tickMsg is the 1 s heartbeat: the clock for countdowns and the
	// status read from main's atomics, both taken off the Update path.
	tickMsg struct {
		now    time.Time
		status Status
	}
	changeMsg         struct{} // the store signalled a change
	changesClosedMsg  struct{} // the change channel was closed: stop listening
	refreshRequestMsg struct{} // a pane moved its window or filter
	errMsg            struct{ err error }
	pausedMsg         struct{ paused bool }
	resubmittedMsg    struct{ res crm.Resubmission }
	copiedMsg         struct{ err error }
	// leadMsg carries a freshly loaded lead for an action or the detail
	// view.
	leadMsg struct {
		purpose action
		detail  crm.LeadDetail
	}
	// callbackMsg carries one callback with its raw body, which the
	// list queries leave out, for the detail view.
	callbackMsg struct {
		id  int64
		cb  crm.CallbackEvent
		err error
	}
	// confirmedMsg is the confirm dialog's yes: resubmit this lead,
	// with payload nil keeping the stored one.
	confirmedMsg struct {
		externalID string
		payload    []byte
	}
	// actedMsg is what Source.Act did (or why it failed as a whole).
	actedMsg struct {
		action  crm.Action
		ids     []string
		results []crm.ActionResult
		err     error
	}
	// retriedAllMsg is what Source.RetryAllNow did.
	retriedAllMsg struct {
		n   int
		err error
	}
	// askedMsg is a yes of the question dialog: run its Cmd.
	askedMsg struct{ run tea.Cmd }
	// curlSavedMsg says where the curl snippet was written.
	curlSavedMsg struct {
		path string
		err  error
	}
	editorFileMsg struct {
		path string
		lead crm.Lead
	}
	editorClosedMsg struct {
		path string
		lead crm.Lead
		err  error
	}
	editorReadMsg struct {
		lead    crm.Lead
		payload []byte
	}
)

// action is what the user asked of a lead.
type action int

const (
	actOpen action = iota
	actResubmit
	actEdit
	actExternalEdit
	actCopy
	// The outbox actions, each one crm.Action on the lead.
	actRetryNow
	actHold
	actRelease
	actCancel
)

// outboxAction is the crm.Action a is, for the outbox actions.
func (a action) outboxAction() (crm.Action, bool) {
	switch a {
	case actRetryNow:
		return crm.ActRetryNow, true
	case actHold:
		return crm.ActHold, true
	case actRelease:
		return crm.ActRelease, true
	case actCancel:
		return crm.ActCancel, true
	}
	return "", false
}

// resubmits reports whether the action ends in a resubmission, which
// only a lead in a final state allows.
func (a action) resubmits() bool {
	return a == actResubmit || a == actEdit || a == actExternalEdit
}

func (e errMsg) Error() string { return e.err.Error() }

func requestRefresh() tea.Msg { return refreshRequestMsg{} }

// waitForChange blocks on the store's change signal; Update re-arms it
// after each signal (bubbletea's examples/realtime pattern).
func waitForChange(ch <-chan struct{}) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return changesClosedMsg{}
		}
		return changeMsg{}
	}
}

// tick schedules the next heartbeat.
func tick(now func() time.Time, status func() Status) tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg {
		return tickMsg{now: now(), status: status()}
	})
}

// loadLead fetches one lead's whole story for an action: fresh state and
// payload, since the row on screen may be seconds old.
func loadLead(src Source, externalID string, purpose action) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		d, err := src.LeadDetail(ctx, externalID)
		if err != nil {
			return errMsg{fmt.Errorf("load lead %s: %w", externalID, err)}
		}
		return leadMsg{purpose: purpose, detail: d}
	}
}

// loadCallback fetches one callback whole: the events pane's rows come
// without their raw bodies, which only the detail view draws.
func loadCallback(src Source, id int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		cb, err := src.Callback(ctx, id)
		if err != nil {
			err = fmt.Errorf("load callback #%d: %w", id, err)
		}
		return callbackMsg{id: id, cb: cb, err: err}
	}
}

// confirmResubmit reports the confirm dialog's yes to the root, which owns the
// Source.
func confirmResubmit(externalID string, payload []byte) tea.Cmd {
	return func() tea.Msg { return confirmedMsg{externalID: externalID, payload: payload} }
}

// resubmit puts a lead back in the queue; payload nil keeps the stored
// payload.
func resubmit(src Source, externalID string, payload []byte) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		res, err := src.Resubmit(ctx, externalID, payload)
		if err != nil {
			return errMsg{fmt.Errorf("resubmit %s: %w", externalID, err)}
		}
		return resubmittedMsg{res: res}
	}
}

// act runs one outbox action on leads in the store, where every sender
// sharing it picks the change up.
func act(src Source, a crm.Action, ids ...string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		res, err := src.Act(ctx, a, ids)
		return actedMsg{action: a, ids: ids, results: res, err: err}
	}
}

// retryAllNow makes every waiting lead due now.
func retryAllNow(src Source) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		n, err := src.RetryAllNow(ctx)
		return retriedAllMsg{n: n, err: err}
	}
}

// setPaused calls main's pause switch off the Update path.
func setPaused(pause func(bool), paused bool) tea.Cmd {
	return func() tea.Msg {
		pause(paused)
		return pausedMsg{paused: paused}
	}
}

// copyText puts s on the clipboard.
func copyText(clip func(string) error, s string) tea.Cmd {
	return func() tea.Msg { return copiedMsg{err: clip(s)} }
}

// writeEditorFile puts the pretty payload in a private temp file for
// $EDITOR.
func writeEditorFile(lead crm.Lead) tea.Cmd {
	text := editableJSON(lead.Payload) + "\n"
	return func() tea.Msg {
		f, err := os.CreateTemp("", "leadwatch-*.json")
		if err != nil {
			return errMsg{fmt.Errorf("edit: %w", err)}
		}
		_, werr := f.WriteString(text)
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(f.Name())
			return errMsg{fmt.Errorf("edit: %w", err)}
		}
		return editorFileMsg{path: f.Name(), lead: lead}
	}
}

// runEditor hands the terminal to $VISUAL or $EDITOR (vi when neither is
// set). The variable may carry arguments ("code -w"), so it goes through
// sh the way git runs it.
func runEditor(path string, lead crm.Lead) tea.Cmd {
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	c := exec.Command("sh", "-c", editor+` "$1"`, "sh", path)
	return tea.ExecProcess(c, func(err error) tea.Msg {
		return editorClosedMsg{path: path, lead: lead, err: err}
	})
}

// readEditorFile reads what the editor left and removes the file.
func readEditorFile(path string, lead crm.Lead) tea.Cmd {
	return func() tea.Msg {
		b, err := os.ReadFile(path)
		_ = os.Remove(path)
		if err != nil {
			return errMsg{fmt.Errorf("edit: %w", err)}
		}
		return editorReadMsg{lead: lead, payload: []byte(strings.TrimRight(string(b), "\n"))}
	}
}

// removeFile deletes a temp file off the Update path.
func removeFile(path string) tea.Cmd {
	return func() tea.Msg {
		_ = os.Remove(path)
		return nil
	}
}
