package ui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// globalKeys work in every view where the user is not typing.
type globalKeys struct {
	Quit      key.Binding
	ForceQuit key.Binding // works even while typing
	Help      key.Binding
	Pause     key.Binding
}

// leadKeys act on a lead, from the dashboard (the selected row) and from
// its detail view alike.
type leadKeys struct {
	Resubmit           key.Binding
	Edit, ExternalEdit key.Binding
	Copy               key.Binding
	// The outbox actions (crm.Action): send a waiting lead now, hold a
	// queued one, release a held one, cancel one that is not sent yet.
	RetryNow, Hold, Release, Cancel key.Binding
}

// action is the action k asks of a lead, if it is one of these keys.
func (l leadKeys) action(k tea.KeyMsg) (action, bool) {
	switch {
	case key.Matches(k, l.Resubmit):
		return actResubmit, true
	case key.Matches(k, l.Edit):
		return actEdit, true
	case key.Matches(k, l.ExternalEdit):
		return actExternalEdit, true
	case key.Matches(k, l.Copy):
		return actCopy, true
	case key.Matches(k, l.RetryNow):
		return actRetryNow, true
	case key.Matches(k, l.Hold):
		return actHold, true
	case key.Matches(k, l.Release):
		return actRelease, true
	case key.Matches(k, l.Cancel):
		return actCancel, true
	}
	return 0, false
}

// dashboardKeys drive the four panes.
type dashboardKeys struct {
	NextPane, PrevPane key.Binding
	Up, Down           key.Binding
	PageUp, PageDown   key.Binding
	Top, Bottom        key.Binding
	Follow             key.Binding // the Status events pane: follow the tail or freeze it
	Open               key.Binding
	Filter             key.Binding
	ClearFilter        key.Binding
	leadKeys
	// RetryAll makes every waiting lead due now; BulkResubmit resubmits
	// every lead the focused pane's filter shows.
	RetryAll, BulkResubmit key.Binding
	// Replay hands the selected stored callback to the app again
	// (forwarding, replay.go).
	Replay       key.Binding
	Pane1, Pane2 key.Binding
	Pane3, Pane4 key.Binding
	// views are the All leads, Sources and Throughput views' keys
	// (jump.go): 5, 6, 7, the jump and the views' own switches.
	views  viewKeys
	global globalKeys
	// waiting is set on the copy the status bar shows while Pending
	// retries has the focus (onRetries); events while Status events has
	// it (onEvents).
	waiting, events bool
}

// pane is the pane a key focuses, relative to from: the next, the
// previous, or one by number.
func (k dashboardKeys) pane(msg tea.KeyMsg, from paneID) (paneID, bool) {
	switch {
	case key.Matches(msg, k.NextPane):
		return from + 1, true
	case key.Matches(msg, k.PrevPane):
		return from - 1, true
	case key.Matches(msg, k.Pane1):
		return paneRetries, true
	case key.Matches(msg, k.Pane2):
		return paneDuplicates, true
	case key.Matches(msg, k.Pane3):
		return paneRejections, true
	case key.Matches(msg, k.Pane4):
		return paneEvents, true
	}
	return k.views.pane(msg, from)
}

// ShortHelp implements help.KeyMap: the keys that matter on the dashboard.
func (k dashboardKeys) ShortHelp() []key.Binding {
	if k.waiting {
		// Waiting leads are sent, held or canceled, not resubmitted.
		return []key.Binding{k.NextPane, k.Open, k.RetryNow, k.RetryAll, k.Hold, k.views.Views, k.views.Jump, k.Filter, k.global.Pause, k.global.Help, k.global.Quit}
	}
	if k.events {
		// A callback goes to the app again; its lead's keys still work.
		return []key.Binding{k.NextPane, k.Open, k.Replay, k.Resubmit, k.Edit, k.Copy, k.views.Views, k.views.Jump, k.Filter, k.global.Pause, k.global.Help, k.global.Quit}
	}
	return []key.Binding{k.NextPane, k.Open, k.Resubmit, k.Edit, k.Copy, k.views.Views, k.views.Jump, k.Filter, k.global.Pause, k.global.Help, k.global.Quit}
}

// onRetries is k for the Pending retries pane's short help.
func (k dashboardKeys) onRetries() dashboardKeys {
	k.waiting = true
	return k
}

// onEvents is k for the Status events pane's short help.
func (k dashboardKeys) onEvents() dashboardKeys {
	k.events = true
	return k
}

// FullHelp implements help.KeyMap.
func (k dashboardKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.NextPane, k.PrevPane, k.Pane1, k.Pane2, k.Pane3, k.Pane4},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.Follow},
		{k.Open, k.Resubmit, k.BulkResubmit, k.Edit, k.ExternalEdit, k.Copy},
		{k.RetryNow, k.RetryAll, k.Hold, k.Release, k.Cancel, k.Replay},
		{k.Filter, k.ClearFilter, k.global.Pause, k.global.Help, k.global.Quit, k.global.ForceQuit},
		k.views.help(),
	}
}

// detailKeys drive the detail view of one lead or event.
type detailKeys struct {
	Up, Down         key.Binding
	PageUp, PageDown key.Binding
	Top, Bottom      key.Binding
	Back             key.Binding
	leadKeys
	Replay key.Binding // the lead's stored callbacks, or the callback shown, to the app again
	global globalKeys
	// event is set on the copy that drives a callback's or a refusal's
	// detail: the lead keys do nothing there, so help leaves them out.
	event bool
}

// forEvent is k for the detail of a callback or a refusal.
func (k detailKeys) forEvent() detailKeys {
	k.event = true
	return k
}

// ShortHelp implements help.KeyMap.
func (k detailKeys) ShortHelp() []key.Binding {
	if k.event {
		return []key.Binding{k.Back, k.Down, k.PageDown, k.Replay, k.global.Pause, k.global.Help, k.global.Quit}
	}
	// Replay is in the full help: the bar is full of the lead's keys, and
	// a timeline line that gave up says "a replays".
	return []key.Binding{k.Back, k.Down, k.PageDown, k.Resubmit, k.Edit, k.Copy, k.RetryNow, k.global.Pause, k.global.Help, k.global.Quit}
}

// FullHelp implements help.KeyMap.
func (k detailKeys) FullHelp() [][]key.Binding {
	groups := [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}}
	if !k.event {
		groups = append(groups,
			[]key.Binding{k.Resubmit, k.Edit, k.ExternalEdit, k.Copy},
			[]key.Binding{k.RetryNow, k.Hold, k.Release, k.Cancel, k.Replay})
	} else {
		groups = append(groups, []key.Binding{k.Replay})
	}
	return append(groups, []key.Binding{k.Back, k.global.Pause, k.global.Help, k.global.Quit, k.global.ForceQuit})
}

// confirmKeys drive the yes/no dialog.
type confirmKeys struct {
	Yes, No key.Binding
	Toggle  key.Binding
	Choose  key.Binding
	Cancel  key.Binding
}

// ShortHelp implements help.KeyMap.
func (k confirmKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Yes, k.No, k.Toggle, k.Choose, k.Cancel}
}

// FullHelp implements help.KeyMap.
func (k confirmKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// editorKeys drive the payload editor; every other key types.
type editorKeys struct {
	Submit key.Binding
	Cancel key.Binding
}

// ShortHelp implements help.KeyMap.
func (k editorKeys) ShortHelp() []key.Binding { return []key.Binding{k.Submit, k.Cancel} }

// FullHelp implements help.KeyMap.
func (k editorKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// filterKeys drive the filter input of the focused pane.
type filterKeys struct {
	Apply key.Binding
	Clear key.Binding
}

// ShortHelp implements help.KeyMap.
func (k filterKeys) ShortHelp() []key.Binding { return []key.Binding{k.Apply, k.Clear} }

// FullHelp implements help.KeyMap.
func (k filterKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// modalKeys drive read-only modals (help, the curl command).
type modalKeys struct {
	Up, Down key.Binding
	Close    key.Binding
	Save     key.Binding // the curl dialog: write the snippet to a file
}

// ShortHelp implements help.KeyMap.
func (k modalKeys) ShortHelp() []key.Binding { return []key.Binding{k.Down, k.Close} }

// FullHelp implements help.KeyMap.
func (k modalKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// keyMap holds the bindings of every view. It is built by newKeyMap and
// owned by the model, never shared through package state.
type keyMap struct {
	Global    globalKeys
	Dashboard dashboardKeys
	Detail    detailKeys
	Confirm   confirmKeys
	Editor    editorKeys
	Filter    filterKeys
	Modal     modalKeys
	// pauseHint is p while pausing is off (no sender here): it only
	// says where pausing is, and shows in no help.
	pauseHint key.Binding
}

// withoutPause is k for a dashboard with no sender of its own (attached,
// --no-send): p would pause nothing, so it leaves help and the status
// bar, and pressing it says where pausing is.
func (k keyMap) withoutPause() keyMap {
	k.Global.Pause.SetEnabled(false)
	k.Dashboard.global.Pause.SetEnabled(false)
	k.Detail.global.Pause.SetEnabled(false)
	k.pauseHint = key.NewBinding(key.WithKeys(k.Global.Pause.Keys()...))
	return k
}

func newKeyMap() keyMap {
	b := func(keys []string, helpKey, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(helpKey, desc))
	}
	g := globalKeys{
		Quit:      b([]string{"q"}, "q", "quit"),
		ForceQuit: b([]string{"ctrl+c"}, "ctrl+c", "quit now"),
		Help:      b([]string{"?"}, "?", "help"),
		Pause:     b([]string{"p"}, "p", "pause/resume sending"),
	}
	up := b([]string{"k", "up"}, "↑/k", "up")
	down := b([]string{"j", "down"}, "↓/j", "down")
	pgUp := b([]string{"pgup", "ctrl+u"}, "pgup/ctrl+u", "page up")
	pgDown := b([]string{"pgdown", "ctrl+d", " "}, "pgdn/ctrl+d", "page down")
	top := b([]string{"g", "home"}, "g", "top")
	bottom := b([]string{"G", "end"}, "G", "bottom")
	lead := leadKeys{
		Resubmit:     b([]string{"r"}, "r", "resubmit"),
		Edit:         b([]string{"e"}, "e", "edit & resubmit"),
		ExternalEdit: b([]string{"E"}, "E", "edit in $EDITOR"),
		Copy:         b([]string{"c"}, "c", "copy as curl"),
		RetryNow:     b([]string{"s"}, "s", "send now"),
		Hold:         b([]string{"h"}, "h", "hold"),
		Release:      b([]string{"u"}, "u", "release held"),
		Cancel:       b([]string{"x"}, "x", "cancel"),
	}
	replay := b([]string{"a"}, "a", "replay to app")
	return keyMap{
		Global: g,
		Dashboard: dashboardKeys{
			NextPane:     b([]string{"tab"}, "tab", "next pane"),
			PrevPane:     b([]string{"shift+tab"}, "shift+tab", "prev pane"),
			Up:           up,
			Down:         down,
			PageUp:       pgUp,
			PageDown:     pgDown,
			Top:          top,
			Bottom:       bottom,
			Follow:       b([]string{"f"}, "f", "follow/freeze"),
			Open:         b([]string{"enter"}, "enter", "details"),
			Filter:       b([]string{"/"}, "/", "filter pane"),
			ClearFilter:  b([]string{"esc"}, "esc", "clear filter"),
			leadKeys:     lead,
			RetryAll:     b([]string{"S"}, "S", "send all due now"),
			BulkResubmit: b([]string{"R"}, "R", "resubmit all shown"),
			Replay:       replay,
			Pane1:        b([]string{"1"}, "1", "retries"),
			Pane2:        b([]string{"2"}, "2", "duplicates"),
			Pane3:        b([]string{"3"}, "3", "rejections"),
			Pane4:        b([]string{"4"}, "4", "events"),
			views:        newViewKeys(),
			global:       g,
		},
		Detail: detailKeys{
			Up:       up,
			Down:     down,
			PageUp:   pgUp,
			PageDown: pgDown,
			Top:      top,
			Bottom:   bottom,
			Back:     b([]string{"esc", "backspace"}, "esc", "back"),
			leadKeys: lead,
			Replay:   replay,
			global:   g,
		},
		Confirm: confirmKeys{
			Yes:    b([]string{"y", "Y"}, "y", "yes"),
			No:     b([]string{"n", "N"}, "n", "no"),
			Toggle: b([]string{"left", "right", "h", "l", "tab", "shift+tab"}, "←/→", "switch"),
			Choose: b([]string{"enter"}, "enter", "choose"),
			Cancel: b([]string{"esc", "q"}, "esc", "cancel"),
		},
		Editor: editorKeys{
			Submit: b([]string{"ctrl+s"}, "ctrl+s", "check & resubmit"),
			Cancel: b([]string{"esc"}, "esc", "discard"),
		},
		Filter: filterKeys{
			Apply: b([]string{"enter"}, "enter", "keep filter"),
			Clear: b([]string{"esc"}, "esc", "clear filter"),
		},
		Modal: modalKeys{
			Up:    up,
			Down:  down,
			Close: b([]string{"esc", "q", "enter", "?"}, "esc", "close"),
			Save:  b([]string{"w"}, "w", "save to a file"),
		},
	}
}
