package ui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

func requireContains(t *testing.T, view string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(view, w) {
			t.Fatalf("view lacks %q:\n%s", w, view)
		}
	}
}

func requireLacks(t *testing.T, view string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(view, b) {
			t.Fatalf("view has %q:\n%s", b, view)
		}
	}
}

// requireFrame checks the frame fills the terminal exactly: a layout
// that overflows would scroll or wrap the real screen.
func requireFrame(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Fatalf("line %d is %d cells wide, more than %d: %q", i, lw, w, l)
		}
	}
}

// harness is a model under test with everything it calls recorded.
type harness struct {
	src     *fakeSource
	status  Status
	pauses  []bool
	clip    []string
	changes chan struct{}
}

func newHarness() *harness {
	return &harness{
		src:     newFakeSource(),
		status:  Status{ListenerAddr: "127.0.0.1:8081", Healthy: true, BaseURL: "https://user:pw@crm.example.test/api?token=x", MaxAttempts: 8},
		changes: make(chan struct{}, 1),
	}
}

func (h *harness) config() Config {
	return Config{
		Source:    h.src,
		Changes:   h.changes,
		Status:    func() Status { return h.status },
		Pause:     func(p bool) { h.pauses = append(h.pauses, p) },
		Now:       fixedNow,
		Clipboard: func(s string) error { h.clip = append(h.clip, s); return nil },
	}
}

// drive feeds msgs to m and runs every Cmd that comes back, feeding their
// messages too, until the model settles. Tests never feed tickMsg or
// changeMsg here: those re-arm Cmds that wait on a timer or channel.
func drive(t *testing.T, m Model, msgs ...tea.Msg) Model {
	t.Helper()
	queue := msgs
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 500 {
			t.Fatal("the message loop does not settle")
		}
		msg := queue[0]
		queue = queue[1:]
		if _, ok := msg.(tea.QuitMsg); ok {
			continue
		}
		next, cmd := m.Update(msg)
		m = next.(Model)
		queue = append(queue, runCmd(t, cmd)...)
	}
	return m
}

// runCmd runs cmd (and the Cmds of a batch) with a deadline, so a Cmd that
// blocks fails the test instead of hanging it.
func runCmd(t *testing.T, cmd tea.Cmd) []tea.Msg {
	t.Helper()
	if cmd == nil {
		return nil
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	select {
	case msg := <-done:
		switch msg := msg.(type) {
		case nil:
			return nil
		case tea.BatchMsg:
			var out []tea.Msg
			for _, c := range msg {
				out = append(out, runCmd(t, c)...)
			}
			return out
		}
		return []tea.Msg{msg}
	case <-time.After(5 * time.Second):
		t.Fatal("a Cmd blocked")
	}
	return nil
}

// keyMsg builds the key message bubbletea would send for a key name.
func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "ctrl+s":
		return tea.KeyMsg{Type: tea.KeyCtrlS}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "home":
		return tea.KeyMsg{Type: tea.KeyHome}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// press sends keys one by one.
func press(t *testing.T, m Model, keys ...string) Model {
	t.Helper()
	for _, k := range keys {
		m = drive(t, m, keyMsg(k))
	}
	return m
}

// sized returns a model of h's config after a resize and the first
// refresh.
func (h *harness) sized(t *testing.T, w, ht int) Model {
	t.Helper()
	return drive(t, New(h.config()), tea.WindowSizeMsg{Width: w, Height: ht})
}

// setEditorText replaces the text of the open payload editor, as if the
// user had typed it.
func setEditorText(t *testing.T, m Model, text string) Model {
	t.Helper()
	e, ok := m.overlay.(editorDialog)
	if !ok {
		t.Fatalf("the open overlay is %T, not the editor", m.overlay)
	}
	e.ta.SetValue(text)
	m.overlay = e
	return m
}
