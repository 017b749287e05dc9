package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/leadwatch/leadwatch/crm"
)

func click(x, y int) tea.MouseMsg {
	return tea.MouseMsg{X: x, Y: y, Action: tea.MouseActionPress, Button: tea.MouseButtonLeft}
}

func wheel(x, y int, down bool) tea.MouseMsg {
	b := tea.MouseButtonWheelUp
	if down {
		b = tea.MouseButtonWheelDown
	}
	return tea.MouseMsg{X: x, Y: y, Action: tea.MouseActionPress, Button: b}
}

// TestMouseClickSelectsRow checks that in the grid a click focuses the
// pane under it and selects the row clicked, so the keys act on it.
func TestMouseClickSelectsRow(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	// The body starts under the 3 header lines; each pane has its frame
	// line and column header above its rows. Pending retries: ext-103,
	// ext-102, ext-101.
	m = drive(t, m, click(10, headerHeight+2+1))
	if m.focus != paneRetries {
		t.Fatalf("focus = %v", m.focus)
	}
	m = press(t, m, "s")
	requireActs(t, h.src, actCall{crm.ActRetryNow, []string{"ext-102"}})

	// Rejections, bottom left, its third row: ext-303.
	top := headerHeight + m.bodyHeight()/2
	m = drive(t, m, click(10, top+2+2))
	if m.focus != paneRejections {
		t.Fatalf("focus = %v, want rejections", m.focus)
	}
	m = press(t, m, "r")
	requireContains(t, m.View(), "Resubmit ext-303?")
	m = press(t, m, "n")

	// A click past the last row focuses without moving the cursor.
	m = drive(t, m, click(100, headerHeight+2+10))
	if m.focus != paneDuplicates {
		t.Fatalf("focus = %v, want duplicates", m.focus)
	}
	if s, _ := m.focused().selection(); s.leadID != "ext-201" {
		t.Fatalf("selected %q", s.leadID)
	}
	// Clicks on the header do nothing.
	if m2 := drive(t, m, click(5, 0)); m2.focus != paneDuplicates {
		t.Fatal("a header click moved the focus")
	}
}

// TestMouseWheel checks that the wheel scrolls the pane under the
// pointer without focusing it, and the detail view when it is open.
func TestMouseWheel(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	top := headerHeight + m.bodyHeight()/2
	m = drive(t, m, wheel(120, top+5, true)) // over Status events
	if m.focus != paneRetries || m.events.cursor != 1 || !m.events.frozen {
		t.Fatalf("focus %v, events cursor %d frozen %v", m.focus, m.events.cursor, m.events.frozen)
	}
	m = drive(t, m, wheel(120, top+5, false))
	if m.events.cursor != 0 {
		t.Fatalf("wheel up: events cursor %d", m.events.cursor)
	}
	// Outside every pane (the status bar) it scrolls the focused one.
	m = drive(t, m, wheel(5, 47, true))
	if m.retries.cursor != 1 {
		t.Fatalf("retries cursor %d", m.retries.cursor)
	}

	m = press(t, m, "j", "enter") // ext-101's detail, with its attempts
	small := drive(t, m, tea.WindowSizeMsg{Width: 100, Height: 16})
	before := small.detail.vp.YOffset
	small = drive(t, small, wheel(10, 10, true))
	if small.detail.vp.YOffset != before+1 {
		t.Fatalf("detail offset %d → %d", before, small.detail.vp.YOffset)
	}
}

// TestMouseClickTab checks that in the narrow layout a click on a tab
// brings it up.
func TestMouseClickTab(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 100, 30)
	line := ansi.Strip(strings.Split(m.View(), "\n")[headerHeight])
	x := strings.Index(line, "3 Rejections")
	if x < 0 {
		t.Fatalf("no Rejections tab in %q", line)
	}
	x = ansi.StringWidth(line[:x]) + 2
	m = drive(t, m, click(x, headerHeight))
	if m.focus != paneRejections {
		t.Fatalf("focus = %v", m.focus)
	}
	requireContains(t, m.View(), "ext-301")
	// Then a click on the pane's second row selects it.
	m = drive(t, m, click(10, headerHeight+1+2+1))
	if s, _ := m.focused().selection(); s.leadID != "ext-302" {
		t.Fatalf("selected %q", s.leadID)
	}
}

// TestEditorEscAsks checks that esc on an untouched editor closes it,
// and on an edited one asks with a diff of what changed: n keeps editing
// with the edit, y drops it and sends nothing.
func TestEditorEscAsks(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "j", "e") // ext-302
	if m2 := press(t, m, "esc"); m2.overlay != nil {
		t.Fatalf("esc on an untouched editor left %T", m2.overlay)
	}
	m = setEditorText(t, m, "{\n  \"external_id\": \"ext-302\",\n  \"phone\": \"+4915112345678\"\n}")
	m = press(t, m, "esc")
	v := m.View()
	requireContains(t, v, "Drop your edits of ext-302?", `-   "phone": "12345"`, `+   "phone": "+4915112345678"`, "[ No ]")

	n := press(t, m, "n")
	e, ok := n.overlay.(editorDialog)
	if !ok || !strings.Contains(e.ta.Value(), "+4915112345678") {
		t.Fatalf("n did not go back to the edit: %T", n.overlay)
	}
	y := press(t, m, "y")
	if y.overlay != nil || len(h.src.resubmits) != 0 {
		t.Fatalf("y: overlay %T, resubmits %v", y.overlay, h.src.resubmits)
	}
}

// TestResubmitConfirmShowsDiff checks that the confirmation of an edited
// payload shows the same line diff.
func TestResubmitConfirmShowsDiff(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "j", "e")
	m = setEditorText(t, m, "{\n  \"external_id\": \"ext-302\",\n  \"phone\": \"+4915112345678\"\n}")
	m = press(t, m, "ctrl+s")
	requireContains(t, m.View(), "Resubmit ext-302?", `-   "phone": "12345"`, `+   "phone": "+4915112345678"`, `    "external_id": "ext-302",`)
}

// TestCurlSaveAndSelect checks that w in the curl dialog writes the
// snippet to a 0600 file in the working directory, the status bar names
// it, and the snippet's lines carry no frame.
func TestCurlSaveAndSelect(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "c")
	v := m.View()
	requireContains(t, v, "\nbody='{\"external_id\":\"ext-301\"")
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, "curl -sS") || strings.Contains(l, "Idempotency-Key") || strings.HasPrefix(l, "body=") {
			if strings.ContainsAny(l, "│┃╭╰") {
				t.Fatalf("the snippet line is framed: %q", l)
			}
		}
	}
	requireContains(t, v, "w saves it")
	m = press(t, m, "w")
	path := filepath.Join(dir, "leadwatch-curl-ext-301.sh")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if string(b) != h.clip[0]+"\n" {
		t.Fatalf("file:\n%s\nwant the snippet:\n%s", b, h.clip[0])
	}
	requireContains(t, m.View(), "curl saved to "+path, "saved to "+path)
}

func TestCurlFileAndDirs(t *testing.T) {
	if got := curlFileName("../etc/pa ss"); got != "leadwatch-curl-_._etc_pa_ss.sh" {
		t.Errorf("curlFileName = %q", got)
	}
	env := map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/u"}
	if got := curlDirs(func(k string) string { return env[k] }); len(got) != 2 || got[1] != "/state/leadwatch" {
		t.Errorf("curlDirs = %v", got)
	}
	delete(env, "XDG_STATE_HOME")
	if got := curlDirs(func(k string) string { return env[k] }); got[1] != "/home/u/.local/state/leadwatch" {
		t.Errorf("curlDirs = %v", got)
	}
	// The working directory refuses: the next one takes it.
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	alt := filepath.Join(t.TempDir(), "state")
	path, err := writeCurlFile([]string{ro, alt}, "x.sh", "echo")
	if os.Getuid() != 0 && (err != nil || path != filepath.Join(alt, "x.sh")) {
		t.Fatalf("writeCurlFile = %q, %v", path, err)
	}
}

// TestOSC52ThroughMultiplexers checks that the clipboard sequence is
// wrapped for tmux and screen, and bare elsewhere.
func TestOSC52ThroughMultiplexers(t *testing.T) {
	for _, c := range []struct {
		env    map[string]string
		prefix string
	}{
		{map[string]string{"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "screen-256color"}, "\x1bPtmux;\x1b\x1b]52;c;"},
		{map[string]string{"TERM": "screen"}, "\x1bP\x1b]52;c;"},
		{map[string]string{"TERM": "xterm-256color"}, "\x1b]52;c;"},
	} {
		got := osc52For("hi", func(k string) string { return c.env[k] }).String()
		if !strings.HasPrefix(got, c.prefix) {
			t.Errorf("env %v: %q, want prefix %q", c.env, got, c.prefix)
		}
	}
}

func TestLineDiff(t *testing.T) {
	a := []string{"{", `"a": 1,`, `"b": 2,`, `"c": 3`, "}"}
	b := []string{"{", `"a": 1,`, `"b": 5,`, `"c": 3,`, `"d": 4`, "}"}
	var got []string
	for _, l := range lineDiff(a, b) {
		got = append(got, string(l.op)+l.text)
	}
	want := []string{" {", ` "a": 1,`, `-"b": 2,`, `-"c": 3`, `+"b": 5,`, `+"c": 3,`, `+"d": 4`, " }"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d, a := diffCounts("x\ny", "x\ny"); d != 0 || a != 0 {
		t.Fatalf("same text: -%d +%d", d, a)
	}
	st := testStyles()
	if s := st.renderDiff("a\nb\nc\nd\ne\nf", "a\nb\nc\nd\ne\nF", 40, 0); s != "  e\n- f\n+ F" {
		t.Fatalf("renderDiff kept %q", s)
	}
}

// BenchmarkLineDiff diffs a 200-line pretty payload with three lines
// changed, the editor's esc and confirm cost.
func BenchmarkLineDiff(b *testing.B) {
	var a []string
	for i := range 200 {
		a = append(a, `  "field_`+strings.Repeat("x", i%7)+`": "value",`)
	}
	c := append([]string(nil), a...)
	c[10], c[100], c[190] = `  "edited": 1,`, `  "edited": 2,`, `  "edited": 3,`
	b.ResetTimer()
	for range b.N {
		lineDiff(a, c)
	}
}
