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

// TestStylesConvertColoursAsLipgloss checks that the palette, converted
// once for 256- and 16-colour terminals, draws the very escape codes
// lipgloss draws when it converts the hex colour on each Render, on
// dark and light backgrounds and in every profile.
func TestStylesConvertColoursAsLipgloss(t *testing.T) {
	p := DefaultPalette()
	colours := []lipgloss.AdaptiveColor{p.Text, p.Muted, p.Subtle, p.Accent, p.SelBg, p.Green, p.Amber, p.Red, p.Blue, p.Purple, p.Orange}
	for _, profile := range []termenv.Profile{termenv.TrueColor, termenv.ANSI256, termenv.ANSI, termenv.Ascii} {
		for _, dark := range []bool{true, false} {
			r := lipgloss.NewRenderer(&bytes.Buffer{})
			r.SetColorProfile(profile)
			r.SetHasDarkBackground(dark)
			for _, c := range colours {
				want := r.NewStyle().Foreground(c).Background(c).Render("x")
				if got := r.NewStyle().Foreground(complete(c)).Background(complete(c)).Render("x"); got != want {
					t.Errorf("profile %v, dark %v, colour %v: %q, lipgloss draws %q", profile, dark, c, got, want)
				}
			}
			st := NewStyles(r, p)
			if got, want := st.Bad.Render("failed"), r.NewStyle().Foreground(p.Red).Render("failed"); got != want {
				t.Errorf("profile %v, dark %v: Bad draws %q, want %q", profile, dark, got, want)
			}
			if profile != termenv.Ascii && !strings.Contains(st.Bad.Render("failed"), "\x1b[") {
				t.Errorf("profile %v drew no colour: %q", profile, st.Bad.Render("failed"))
			}
		}
	}
}
