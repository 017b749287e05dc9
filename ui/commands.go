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

// queryTimeout bounds one refresh or action, so a wedged store shows an
// error in the status bar instead of a frozen dashboard.
const queryTimeout = 5 * time.Second

// Throughput window of the header sparklines: 30 buckets of 10 s, the
// last five minutes.
const (
	sparkBucket  = 10 * time.Second
	sparkBuckets = 30
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
)

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

// snapshotQuery is everything one refresh asks for, copied out of the
// model before the Cmd runs. A nil pane query means the pane is not on
// screen and is not asked for.
type snapshotQuery struct {
	now                    time.Time
	retries, dups, rejects *crm.LeadQuery
	events                 *crm.EventQuery
	detailID               string
	throughputSince        time.Time
}

// leadResult is one lead pane's rows.
type leadResult struct {
	q    crm.LeadQuery
	rows []crm.Lead
	ok   bool
}

// snapshotMsg is one refresh's result. Each part carries ok so a failing
// query leaves its pane as it was while the others update: the dashboard
// keeps running with what still works.
type snapshotMsg struct {
	q                      snapshotQuery
	counts                 crm.Counts
	countsOK               bool
	tp                     crm.Throughput
	tpOK                   bool
	retries, dups, rejects leadResult
	events                 []eventRow
	eventsQ                crm.EventQuery
	eventsOK               bool
	detail                 crm.LeadDetail
	detailOK               bool
	err                    error
}

// loadSnapshot runs one refresh: Counts, Throughput and only the visible
// rows of each pane on screen.
func loadSnapshot(src Source, q snapshotQuery) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		msg := snapshotMsg{q: q}
		var errs []error
		fail := func(what string, err error) { errs = append(errs, fmt.Errorf("%s: %w", what, err)) }

		if c, err := src.Counts(ctx); err != nil {
			fail("counts", err)
		} else {
			msg.counts, msg.countsOK = c, true
		}
		if tp, err := src.Throughput(ctx, q.throughputSince, sparkBucket); err != nil {
			fail("throughput", err)
		} else {
			msg.tp, msg.tpOK = tp, true
		}
		leads := func(name string, lq *crm.LeadQuery, out *leadResult) {
			if lq == nil {
				return
			}
			out.q = *lq
			rows, err := src.Leads(ctx, *lq)
			if err != nil {
				fail(name, err)
				return
			}
			out.rows, out.ok = rows, true
		}
		leads("retries", q.retries, &msg.retries)
		leads("duplicates", q.dups, &msg.dups)
		leads("rejections", q.rejects, &msg.rejects)
		if q.events != nil {
			msg.eventsQ = *q.events
			cbs, err1 := src.Callbacks(ctx, *q.events)
			refs, err2 := src.Refusals(ctx, *q.events)
			if err1 != nil {
				fail("callbacks", err1)
			}
			if err2 != nil {
				fail("refusals", err2)
			}
			if err1 == nil || err2 == nil {
				msg.events, msg.eventsOK = mergeEvents(cbs, refs, q.events.Limit), true
			}
		}
		if q.detailID != "" {
			if d, err := src.LeadDetail(ctx, q.detailID); err != nil {
				fail("lead "+q.detailID, err)
			} else {
				msg.detail, msg.detailOK = d, true
			}
		}
		if len(errs) > 0 {
			msg.err = fmt.Errorf("refresh: %w", errors.Join(errs...))
		}
		return msg
	}
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
