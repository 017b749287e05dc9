package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// modalWidth caps a dialog's width so long lines stay readable.
const modalWidth = 100

// overlay is a dialog over the dashboard or the detail view: help, the
// resubmit confirmation, the payload editor, the curl command. While one
// is open it gets every key; the root only routes.
type overlay interface {
	// Update handles a key or a result meant for the dialog. The overlay
	// it returns replaces this one; nil closes it.
	Update(msg tea.Msg) (overlay, tea.Cmd)
	// View draws the dialog in a w×h body. under draws the screen
	// beneath, for the dialogs that leave it in view around them.
	View(w, h int, under func() string) string
	// resize fits the dialog to a new body size.
	resize(w, h int) overlay
	// keyMap is what the status bar's help shows while it is open.
	keyMap() help.KeyMap
}

var (
	_ overlay = helpDialog{}
	_ overlay = confirmDialog{}
	_ overlay = editorDialog{}
	_ overlay = curlDialog{}
)

// dialogWidth is the width of a centred dialog in a body w cells wide.
func dialogWidth(w int) int { return min(w-4, modalWidth) }

// helpDialog lists every key of the screen it was opened on.
type helpDialog struct {
	st    *Styles
	keys  modalKeys
	full  help.KeyMap
	title string
}

func newHelpDialog(st *Styles, keys modalKeys, full help.KeyMap, title string) helpDialog {
	return helpDialog{st: st, keys: keys, full: full, title: title}
}

// Update closes the dialog on its close key and ignores the rest.
func (d helpDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok && key.Matches(k, d.keys.Close) {
		return nil, nil
	}
	return d, nil
}

// View draws the full help centred over the screen.
func (d helpDialog) View(w, h int, under func() string) string {
	hm := help.New()
	hm.Styles = d.st.Help
	body := helpColumns(hm, d.full.FullHelp(), max(w-8, 20)) + "\n\n" +
		d.st.Muted.Render("confirm: y/n, ←/→ + enter; editor: ctrl+s checks, esc discards")
	bw := min(max(lipgloss.Width(body)+4, 40), w-2)
	body = pad(wrapHard(body, bw-4))
	box := d.st.box(d.title, body, bw, strings.Count(body, "\n")+3, true)
	return overlayCenter(under(), box, w, h)
}

// helpColumns lays the groups of keys out as columns, as many side by
// side as fit in w cells, the rest in further rows below: every key is
// drawn, where help.Model would drop the columns past w behind "…".
func helpColumns(hm help.Model, groups [][]key.Binding, w int) string {
	const gap = "    "
	hm.Width = 0
	var rows, row []string
	rowW := 0
	flush := func() {
		if len(row) > 0 {
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
		}
		row, rowW = nil, 0
	}
	for _, g := range groups {
		col := hm.FullHelpView([][]key.Binding{g})
		cw := lipgloss.Width(col)
		if len(row) > 0 && rowW+len(gap)+cw > w {
			flush()
		}
		if len(row) > 0 {
			row, rowW = append(row, gap), rowW+len(gap)
		}
		row, rowW = append(row, col), rowW+cw
	}
	flush()
	return strings.Join(rows, "\n\n")
}

func (d helpDialog) resize(int, int) overlay { return d }
func (d helpDialog) keyMap() help.KeyMap     { return d.keys }

// curlDialog shows the copied curl command, so it can be selected by hand
// where OSC 52 does not reach (tmux without set-clipboard, some SSH
// setups).
type curlDialog struct {
	st     *Styles
	keys   modalKeys
	text   string
	status string
	vp     viewport.Model
}

func newCurlDialog(st *Styles, keys modalKeys, text string) curlDialog {
	return curlDialog{st: st, keys: keys, text: strings.TrimRight(text, "\n"), vp: viewport.New(0, 0)}
}

// Update scrolls, closes, or shows how the copy went.
func (c curlDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	switch msg := msg.(type) {
	case copiedMsg:
		if msg.err != nil {
			c.status = c.st.StatusErr.Render("clipboard: " + clean(msg.err.Error()) + " — select the text above")
		} else {
			c.status = c.st.Good.Render("copied to the clipboard (OSC 52)") + c.st.Muted.Render(" · esc closes")
		}
		return c, nil
	case tea.KeyMsg:
		if key.Matches(msg, c.keys.Close) {
			return nil, nil
		}
		var cmd tea.Cmd
		c.vp, cmd = c.vp.Update(msg)
		return c, cmd
	}
	return c, nil
}

func (c curlDialog) resize(w, h int) overlay { return c.sized(w, h) }

// sized fits the dialog to a w×h body.
func (c curlDialog) sized(w, h int) curlDialog {
	w = dialogWidth(w)
	c.vp.Width = max(w-4, 1)
	c.vp.Height = max(min(h-4, strings.Count(c.text, "\n")+1), 1)
	c.vp.SetContent(wrapHard(cleanBlock(c.text), c.vp.Width))
	return c
}

// View draws the command centred over the screen.
func (c curlDialog) View(w, h int, under func() string) string {
	body := pad(c.vp.View() + "\n\n" + c.status)
	box := c.st.box("curl — secrets come from the environment", body, dialogWidth(w), c.vp.Height+4, true)
	return overlayCenter(under(), box, w, h)
}

func (c curlDialog) keyMap() help.KeyMap { return c.keys }
