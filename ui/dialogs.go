package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/viewport"

	"github.com/leadwatch/leadwatch/crm"
)

// overlay is what sits on top of the dashboard or detail view.
type overlay int

const (
	overlayNone overlay = iota
	overlayHelp
	overlayConfirm
	overlayEditor
	overlayCurl
)

// confirmDialog asks before a resubmission. It defaults to No: enter on a
// fresh dialog does nothing harmful.
type confirmDialog struct {
	lead     crm.Lead
	payload  []byte // nil: resubmit the stored payload unchanged
	keepsKey bool
	yes      bool
}

func newConfirm(lead crm.Lead, payload []byte) confirmDialog {
	return confirmDialog{lead: lead, payload: payload, keepsKey: crm.KeepsKey(lead.State, lead.Payload, payload)}
}

// keyLine says which idempotency key the CRM will see and why
// (PROTOCOL.md §1, decided by crm.KeepsKey).
func (c confirmDialog) keyLine() string {
	switch {
	case c.keepsKey:
		return "same key " + clean(c.lead.IdempotencyKey) + " (unchanged failed lead)"
	case c.payload != nil:
		return "a new key, since the payload changed"
	}
	return "a new key, since " + string(c.lead.State) + " is a final answer from the CRM"
}

func (c confirmDialog) view(st *Styles, w int) string {
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
	yes, no := st.ButtonOff.Render("  Yes  "), st.ButtonOn.Render("[ No ]")
	if c.yes {
		yes, no = st.ButtonOn.Render("[ Yes ]"), st.ButtonOff.Render("  No  ")
	}
	b.WriteString(yes + "   " + no)
	body := pad(wrapHard(b.String(), w-4))
	return st.box("Confirm", body, w, strings.Count(body, "\n")+3, true)
}

// editorDialog edits a lead's payload as pretty JSON before resubmitting.
type editorDialog struct {
	lead crm.Lead
	ta   textarea.Model
	err  string
}

func newEditor(st *Styles, lead crm.Lead, text string) editorDialog {
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
	ta.MaxHeight = 0
	ta.MaxWidth = 0
	ta.ShowLineNumbers = true
	// A steady cursor: no blink timer to wake the program, and stable
	// goldens.
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.SetValue(text)
	ta.Focus()
	return editorDialog{lead: lead, ta: ta}
}

func (e *editorDialog) setSize(w, h int) {
	if e.lead.ExternalID == "" {
		return // never opened: a zero textarea cannot be sized
	}
	e.ta.SetWidth(max(w-2, 10))
	e.ta.SetHeight(max(h-4, 1))
}

// check validates the edited text: a JSON object with the lead fields the
// outbox needs, for the same external_id. It returns the compact bytes to
// send (the wire form of the original; indentation is for reading), or
// nil when nothing changed.
func (e editorDialog) check() (payload []byte, err error) {
	text := strings.TrimSpace(e.ta.Value())
	if !json.Valid([]byte(text)) {
		var v any
		err := json.Unmarshal([]byte(text), &v)
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	fields, err := crm.ParseLead([]byte(text))
	if err != nil {
		return nil, err
	}
	if fields.ExternalID != e.lead.ExternalID {
		return nil, fmt.Errorf("external_id must stay %q (it names the lead)", e.lead.ExternalID)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(text)); err != nil {
		return nil, err
	}
	// Unchanged means the same JSON, whatever the spacing of the stored
	// bytes: a failed lead then keeps its key and its exact payload.
	var orig bytes.Buffer
	if json.Compact(&orig, e.lead.Payload) == nil && bytes.Equal(buf.Bytes(), orig.Bytes()) {
		return nil, nil
	}
	return buf.Bytes(), nil
}

func (e editorDialog) view(st *Styles, w, h int) string {
	msg := st.Muted.Render("ctrl+s checks this is a JSON lead, then asks before resubmitting · esc discards")
	if e.err != "" {
		msg = st.StatusErr.Render("✗ " + clean(e.err))
	}
	body := e.ta.View() + "\n\n" + msg
	return st.box("Edit payload of "+clean(e.lead.ExternalID), body, w, h, true)
}

// curlDialog shows the copied curl command, so it can be selected by hand
// where OSC 52 does not reach (tmux without set-clipboard, some SSH
// setups).
type curlDialog struct {
	text   string
	status string
	vp     viewport.Model
}

func newCurlDialog(text string) curlDialog {
	return curlDialog{text: strings.TrimRight(text, "\n"), vp: viewport.New(0, 0)}
}

func (c *curlDialog) setSize(w, h int) {
	c.vp.Width = max(w-4, 1)
	c.vp.Height = max(min(h-4, strings.Count(c.text, "\n")+1), 1)
	c.vp.SetContent(wrapHard(cleanBlock(c.text), c.vp.Width))
}

func (c curlDialog) view(st *Styles, w int) string {
	body := pad(c.vp.View() + "\n\n" + c.status)
	return st.box("curl — secrets come from the environment", body, w, c.vp.Height+4, true)
}
