package ui

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

func TestSparkline(t *testing.T) {
	cases := []struct {
		vals  []int
		width int
		want  string
	}{
		{nil, 4, "▁▁▁▁"},
		{[]int{0, 1, 4, 8}, 4, "▁▂▅█"},
		{[]int{5, 5}, 3, "▁██"},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8}, 3, "▆▇█"},
	}
	for _, tc := range cases {
		if got := sparkline(tc.vals, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", tc.vals, tc.width, got, tc.want)
		}
	}
}

func TestCleanStripsTerminalControls(t *testing.T) {
	in := "ok\x1b]0;pwned\x07\x9b31m\u009b2J\ttab"
	got := clean(in)
	if strings.ContainsAny(got, "\x1b\x07\t") || strings.ContainsRune(got, 0x9b) || strings.Contains(got, "\x9b") {
		t.Fatalf("clean(%q) = %q", in, got)
	}
	pretty := prettyJSON([]byte("{\"a\":\"\u009b2J\"}"))
	if strings.ContainsRune(pretty, 0x9b) {
		t.Fatalf("prettyJSON kept a C1 control: %q", pretty)
	}
}

func TestNoColorHonoured(t *testing.T) {
	render := func() string {
		var buf bytes.Buffer
		// A renderer on a terminal, as the real program has.
		r := lipgloss.NewRenderer(&buf, termenv.WithTTY(true))
		st := NewStyles(r, DefaultPalette())
		return st.Bad.Render("failed") + st.Selected.Render("row")
	}
	t.Setenv("TERM", "xterm-256color")
	t.Setenv("COLORTERM", "truecolor")
	t.Setenv("NO_COLOR", "")
	if got := render(); !strings.Contains(got, "\x1b[") {
		t.Fatalf("a colour terminal got no colour: %q", got)
	}
	t.Setenv("NO_COLOR", "1")
	if got := render(); strings.Contains(got, "\x1b") {
		t.Fatalf("NO_COLOR still coloured: %q", got)
	}
}
