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
	body := helpColumns(hm, d.full.FullHelp(), max(w-6, 20))
	// The dialogs' keys are a reminder, shown where they fit: each
	// dialog's status bar has them too.
	if lipgloss.Height(body)+4 <= h {
		body += "\n\n" + d.st.Muted.Render("confirm: y/n, ←/→ + enter; editor: ctrl+s checks, esc discards")
	}
	bw := min(max(lipgloss.Width(body)+4, 40), w-2)
	body = pad(wrapHard(body, bw-4))
	box := d.st.box(d.title, body, bw, strings.Count(body, "\n")+3, true)
	return overlayCenter(under(), box, w, h)
}

// helpColumns lays the groups of keys out as columns, as many side by
// side as fit in w cells, the rest in further rows below: every key is
// drawn, where help.Model would drop the columns past w behind "…".
func helpColumns(hm help.Model, groups [][]key.Binding, w int) string {
	const gap = "  "
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

// curlDialog shows the copied curl command over the whole body, with
// no frame beside its lines: selected with the mouse where OSC 52 does
// not reach (tmux without set-clipboard, some SSH setups), the text is
// the snippet and nothing else. w saves it to a file instead.
type curlDialog struct {
	st     *Styles
	keys   modalKeys
	text   string
	name   string // the lead's external_id, for the file name
	status string
	vp     viewport.Model
}

func newCurlDialog(st *Styles, keys modalKeys, text string) curlDialog {
	return curlDialog{st: st, keys: keys, text: strings.TrimRight(text, "\n"), vp: viewport.New(0, 0)}
}

// Update scrolls, closes, saves, or shows how the copy or the save went.
func (c curlDialog) Update(msg tea.Msg) (overlay, tea.Cmd) {
	switch msg := msg.(type) {
	case copiedMsg:
		if msg.err != nil {
			c.status = c.st.StatusErr.Render("clipboard: " + clean(msg.err.Error()) + " — select the text above, or w saves it")
		} else {
			c.status = c.st.Good.Render("copied to the clipboard (OSC 52)") +
				c.st.Muted.Render(" · not there? select it, or w saves it")
		}
		return c, nil
	case curlSavedMsg:
		if msg.err != nil {
			c.status = c.st.StatusErr.Render("save: " + clean(msg.err.Error()))
		} else {
			c.status = c.st.Good.Render("saved to "+clean(msg.path)) + c.st.Muted.Render(" (0600) · esc closes")
		}
		return c, nil
	case tea.KeyMsg:
		switch {
		case key.Matches(msg, c.keys.Close):
			return nil, nil
		case key.Matches(msg, c.keys.Save):
			c.status = c.st.Muted.Render("saving…")
			return c, saveCurl(c.name, c.text)
		}
		var cmd tea.Cmd
		c.vp, cmd = c.vp.Update(msg)
		return c, cmd
	}
	return c, nil
}

func (c curlDialog) resize(w, h int) overlay { return c.sized(w, h) }

// curlChrome is the lines around the snippet: the title, a rule, and
// below it a rule and the status line.
const curlChrome = 4

// sized fits the dialog to a w×h body.
func (c curlDialog) sized(w, h int) curlDialog {
	c.vp.Width = max(w, 1)
	c.vp.Height = max(h-curlChrome, 1)
	c.vp.SetContent(wrapHard(cleanBlock(c.text), c.vp.Width))
	return c
}

// View draws the snippet flush left over the whole body; the rules
// above and below it are lines of their own, so a selection of the
// snippet's lines takes no frame with it.
func (c curlDialog) View(w, h int, _ func() string) string {
	st := c.st
	title := st.TitleFocus.Render("curl — secrets come from the environment") + st.Muted.Render(" · sends "+clean(c.name)+" again")
	rule := st.Border.Render(strings.Repeat("─", max(w, 1)))
	status := c.status
	if status == "" {
		status = st.Muted.Render("w saves to a file · esc closes")
	}
	if c.wraps() {
		// A wrapped line would not paste as the same command.
		title = st.Warn.Render("curl — lines wider than the screen are wrapped: copy it, or w saves it")
	}
	return clampView(title+"\n"+rule+"\n"+c.vp.View()+"\n"+rule+"\n"+status, w, h)
}

// wraps reports whether a line of the snippet is wider than the
// dialog, so the screen shows it broken in two.
func (c curlDialog) wraps() bool {
	for _, l := range strings.Split(cleanBlock(c.text), "\n") {
		if lipgloss.Width(l) > c.vp.Width {
			return true
		}
	}
	return false
}

// curlKeys is the curl dialog's help: scroll, save, close.
type curlKeys struct{ modalKeys }

// ShortHelp implements help.KeyMap.
func (k curlKeys) ShortHelp() []key.Binding { return []key.Binding{k.Down, k.Save, k.Close} }

// FullHelp implements help.KeyMap.
func (k curlKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

func (c curlDialog) keyMap() help.KeyMap { return curlKeys{c.keys} }
