package ui

import (
	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
)

// filterInput is the line where the focused pane's filter is typed, in
// the status bar. It only edits text: the root copies the value into the
// pane as it changes, so the filter is live.
type filterInput struct {
	keys   filterKeys
	input  textinput.Model
	active bool
}

func newFilterInput(st *Styles, keys filterKeys) filterInput {
	fi := textinput.New()
	fi.Prompt = "/"
	fi.Placeholder = "filter: external_id, crm id, reason…"
	fi.Cursor.SetMode(cursor.CursorStatic)
	fi.PromptStyle, fi.TextStyle, fi.PlaceholderStyle = st.Cursor, st.Text, st.Muted
	fi.Cursor.Style = st.Cursor
	return filterInput{keys: keys, input: fi}
}

// start begins typing, from the pane's current filter.
func (f *filterInput) start(value string) tea.Cmd {
	f.active = true
	f.input.SetValue(value)
	f.input.CursorEnd()
	return f.input.Focus()
}

// Update types a key: enter keeps the filter and esc clears it, both
// ending the typing.
func (f filterInput) Update(k tea.KeyMsg) (filterInput, tea.Cmd) {
	switch {
	case key.Matches(k, f.keys.Apply):
		f.active = false
		f.input.Blur()
		return f, nil
	case key.Matches(k, f.keys.Clear):
		f.active = false
		f.input.Blur()
		f.input.SetValue("")
		return f, nil
	}
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(k)
	return f, cmd
}

// value is the filter as typed.
func (f filterInput) value() string { return f.input.Value() }

// View is the input line while typing, and nothing otherwise.
func (f filterInput) View() string {
	if !f.active {
		return ""
	}
	return f.input.View()
}
