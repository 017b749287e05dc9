package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/leadwatch/leadwatch/crm"
)

// confirmWidth caps the confirm dialog: it holds a few short lines.
const confirmWidth = 80

// confirmDialog asks before a resubmission. It defaults to No: enter on a
// fresh dialog does nothing harmful.
type confirmDialog struct {
	st       *Styles
	keys     confirmKeys
	lead     crm.Lead
	payload  []byte // nil: resubmit the stored payload unchanged
	keepsKey bool
	yes      bool
	// back is where No returns: the editor the edit came from, with the
	// edits, or nil (the dashboard).
	back overlay
}

func newConfirm(st *Styles, keys confirmKeys, lead crm.Lead, payload []byte, back overlay) confirmDialog {
	return confirmDialog{
		st: st, keys: keys, lead: lead, payload: payload, back: back,
		keepsKey: crm.KeepsKey(lead.State, lead.Payload, payload),
	}
}

// answer reads k in a yes/no dialog whose highlighted choice is *sel
// (true: Yes): y answers yes; n and esc answer no; enter answers the
// highlighted choice; the arrows and tab move the highlight. done is
// false while the dialog is still open.
func answer(keys confirmKeys, k tea.KeyMsg, sel *bool) (done, yes bool) {
	switch {
	case key.Matches(k, keys.Yes):
		return true, true
	case key.Matches(k, keys.Toggle):
		*sel = !*sel
	case key.Matches(k, keys.Choose):
		return true, *sel
	case key.Matches(k, keys.No), key.Matches(k, keys.Cancel):
		return true, false
	}
	return false, false
}

// Update answers the dialog: y, or enter on Yes, resubmits; n, esc, or
// enter on No goes back.
func (c confirmDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return c, nil
	}
	done, yes := answer(c.keys, k, &c.yes)
	if !done {
		return c, nil
	}
	if !yes {
		return c.back, nil
	}
	return nil, confirmResubmit(c.lead.ExternalID, c.payload)
}

func (c confirmDialog) resize(w, h int) overlay {
	if c.back != nil {
		c.back = c.back.resize(w, h)
	}
	return c
}

func (c confirmDialog) keyMap() help.KeyMap { return c.keys }

// keyLine says which idempotency key the CRM will see and why
// (docs/protocol.md §1, decided by crm.KeepsKey).
func (c confirmDialog) keyLine() string {
	switch {
	case c.keepsKey:
		return "same key " + clean(c.lead.IdempotencyKey) + " (unchanged failed lead)"
	case c.payload != nil:
		return "a new key, since the payload changed"
	}
	return "a new key, since " + string(c.lead.State) + " is a final answer from the CRM"
}

// View draws the question centred over the screen.
func (c confirmDialog) View(w, h int, under func() string) string {
	st, bw := c.st, min(dialogWidth(w), confirmWidth)
	var b strings.Builder
	b.WriteString(st.Bold.Render("Resubmit "+clean(c.lead.ExternalID)+"?") + "\n\n")
	b.WriteString(st.Muted.Render("state      ") + st.State(c.lead.State).Render(string(c.lead.State)))
	if c.lead.Reason != "" {
		b.WriteString(st.Muted.Render(" · " + clean(c.lead.Reason)))
	}
	b.WriteString("\n")
	payload := "unchanged"
	if c.payload != nil {
		payload = st.Warn.Render(fmt.Sprintf("edited (%d → %d bytes)", len(c.lead.Payload), len(c.payload)))
	}
	b.WriteString(st.Muted.Render("payload    ") + payload + "\n")
	b.WriteString(st.Muted.Render("key        ") + c.keyLine() + "\n\n")
	diff := ""
	if c.payload != nil {
		// What the edit changed, line by line, so the yes is informed.
		diff = st.renderDiff(editableJSON(c.lead.Payload), editableJSON(c.payload), bw-6, max(h-14, 3))
	}
	yes, no := st.ButtonOff.Render("  Yes  "), st.ButtonOn.Render("[ No ]")
	if c.yes {
		yes, no = st.ButtonOn.Render("[ Yes ]"), st.ButtonOff.Render("  No  ")
	}
	body := wrapWords(b.String(), bw-4)
	if diff != "" {
		body += diff + "\n\n"
	}
	body = pad(body + yes + "   " + no)
	return overlayCenter(under(), st.box("Confirm", body, bw, strings.Count(body, "\n")+3, true), w, h)
}

// editorDialog edits a lead's payload as pretty JSON before resubmitting.
// It fills the body: the payload needs the room more than the screen
// under it does.
type editorDialog struct {
	st      *Styles
	keys    editorKeys
	confirm confirmKeys // for the dialog ctrl+s opens
	lead    crm.Lead
	ta      textarea.Model
	err     string
	orig    string // the stored payload as the editor shows it, to see what changed
}

func newEditor(st *Styles, keys keyMap, lead crm.Lead, text string) editorDialog {
	ta := textarea.New()
	ta.Prompt = " "
	// The textarea's own defaults carry colours; use the palette's.
	ta.FocusedStyle = textarea.Style{
		Base:             st.Text,
		CursorLine:       st.Text,
		CursorLineNumber: st.Cursor,
		EndOfBuffer:      st.Muted,
		LineNumber:       st.Muted,
		Placeholder:      st.Muted,
		Prompt:           st.Border,
		Text:             st.Text,
	}
	ta.BlurredStyle = ta.FocusedStyle
	ta.Cursor.Style = st.Cursor
	ta.CharLimit = 0
	// The gutter is as wide as MaxHeight's digits: a fixed three keeps
	// it from shifting when the payload reaches line 10.
	ta.MaxHeight = 999
	ta.MaxWidth = 0
	ta.ShowLineNumbers = true
	// A steady cursor: no blink timer to wake the program, and stable
	// goldens.
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.SetValue(text)
	ta.Focus()
	return editorDialog{st: st, keys: keys.Editor, confirm: keys.Confirm, lead: lead, ta: ta, orig: editableJSON(lead.Payload)}
}

// Update types into the payload; ctrl+s checks it and, when it is a
// lead, asks before resubmitting; esc discards the edits.
func (e editorDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return e, nil
	}
	switch {
	case key.Matches(k, e.keys.Cancel):
		if !e.edited() {
			return nil, nil
		}
		// An edit is work: ask, showing what would be lost.
		a := newAsk(e.st, e.confirm, "Drop edits", "Drop your edits of "+clean(e.lead.ExternalID)+"?",
			e.st.renderDiff(e.orig, e.text(), confirmWidth, 0)+"\n\n"+e.st.Muted.Render("n goes back to editing; nothing was sent"), nil)
		a.back = e
		return a, nil
	case key.Matches(k, e.keys.Submit):
		payload, err := e.check()
		if err != nil {
			e.err = err.Error()
			return e, nil
		}
		e.err = ""
		return newConfirm(e.st, e.confirm, e.lead, payload, e), nil
	}
	var cmd tea.Cmd
	e.ta, cmd = e.ta.Update(k)
	return e, cmd
}

func (e editorDialog) resize(w, h int) overlay { return e.sized(w, h) }

// text is what the editor holds, without the blank lines around it.
func (e editorDialog) text() string { return strings.TrimSpace(e.ta.Value()) }

// edited reports whether the text differs from the stored payload as
// first shown (spacing included: it was typed).
func (e editorDialog) edited() bool { return e.text() != strings.TrimSpace(e.orig) }

// sized fits the editor to a w×h body.
func (e editorDialog) sized(w, h int) editorDialog {
	e.ta.SetWidth(max(w-2, 10))
	e.ta.SetHeight(max(h-4, 1))
	return e
}

func (e editorDialog) keyMap() help.KeyMap { return e.keys }

// recheck shows check's verdict at once, for text that came from
// $EDITOR: it is judged before anything can be sent.
func (e editorDialog) recheck() editorDialog {
	e.err = ""
	if _, err := e.check(); err != nil {
		e.err = err.Error()
	}
	return e
}

// check validates the edited text with crm.CheckLead, the check every
// lead passes on its way into the outbox, and keeps the external_id: it
// names the lead being resubmitted. It returns the compact bytes to send
// (the wire form of the original; indentation is for reading), or nil
// when nothing changed.
func (e editorDialog) check() (payload []byte, err error) {
	text := []byte(strings.TrimSpace(e.ta.Value()))
	fields, err := crm.CheckLead(text, crm.LeadCheck{})
	if err != nil {
		if !json.Valid(text) {
			// In an editor a stray character is the likely cause: say
			// so before the lead's rules.
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		return nil, err
	}
	if fields.ExternalID != e.lead.ExternalID {
		return nil, fmt.Errorf("external_id must stay %q (it names the lead)", e.lead.ExternalID)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, text); err != nil {
		return nil, fmt.Errorf("compact payload: %w", err)
	}
	// Unchanged means the same JSON, whatever the spacing of the stored
	// bytes: a failed lead then keeps its key and its exact payload.
	var orig bytes.Buffer
	if json.Compact(&orig, e.lead.Payload) == nil && bytes.Equal(buf.Bytes(), orig.Bytes()) {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// View draws the editor over the whole body; the screen under it does
// not show.
func (e editorDialog) View(w, h int, _ func() string) string {
	msg := e.st.Muted.Render("ctrl+s checks it is a JSON lead and asks before resubmitting · esc discards")
	if e.err != "" {
		msg = e.st.StatusErr.Render("✗ " + clean(e.err))
	}
	body := e.ta.View() + "\n\n" + msg
	return e.st.box("Edit payload of "+clean(e.lead.ExternalID), body, w, h, true)
}

// askDialog is a yes/no question before an action that cannot be taken
// back (cancel a lead, send every waiting lead now, resubmit many,
// drop an edit). Like confirmDialog it defaults to No.
type askDialog struct {
	st    *Styles
	keys  confirmKeys
	title string
	// body is the question's lines, drawn as given (styled, not wrapped:
	// diffs keep their lines); question is the first, bold line.
	question string
	body     string
	yes      bool
	onYes    tea.Cmd // what yes runs
	// afterYes is the overlay yes leaves open (nil: none); back is where
	// no returns (nil: the screen).
	afterYes, back overlay
}

var _ overlay = askDialog{}

func newAsk(st *Styles, keys confirmKeys, title, question, body string, onYes tea.Cmd) askDialog {
	return askDialog{st: st, keys: keys, title: title, question: question, body: body, onYes: onYes}
}

// Update answers: y, or enter on Yes, runs onYes; n, esc, or enter on No
// goes back.
func (a askDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return a, nil
	}
	done, yes := answer(a.keys, k, &a.yes)
	if !done {
		return a, nil
	}
	if !yes {
		return a.back, nil
	}
	return a.afterYes, a.onYes
}

func (a askDialog) resize(w, h int) overlay {
	if a.back != nil {
		a.back = a.back.resize(w, h)
	}
	return a
}

func (a askDialog) keyMap() help.KeyMap { return a.keys }

// View draws the question centred over the screen (over the editor, for
// a question the editor asked).
func (a askDialog) View(w, h int, under func() string) string {
	st, bw := a.st, min(dialogWidth(w), confirmWidth)
	if a.back != nil {
		bw = dialogWidth(w)
		back, screen := a.back, under
		under = func() string { return back.View(w, h, screen) }
	}
	q := wrapWords(st.Bold.Render(a.question), bw-4)
	lines := strings.Split(a.body, "\n")
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, bw-4, "…")
	}
	body := strings.Join(lines, "\n")
	// The buttons and the frame take 6 lines; a long body is cut.
	if room := h - 6 - strings.Count(q, "\n") - 1; strings.Count(body, "\n")+1 > room {
		body = strings.Join(lines[:max(room-1, 0)], "\n") + "\n" + st.Muted.Render("…")
	}
	yes, no := st.ButtonOff.Render("  Yes  "), st.ButtonOn.Render("[ No ]")
	if a.yes {
		yes, no = st.ButtonOn.Render("[ Yes ]"), st.ButtonOff.Render("  No  ")
	}
	text := q + "\n\n"
	if body != "" {
		text += body + "\n\n"
	}
	text = pad(text + yes + "   " + no)
	return overlayCenter(under(), st.box(a.title, text, bw, strings.Count(text, "\n")+3, true), w, h)
}
