package ui

import (
	"strconv"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/leadwatch/leadwatch/crm"
)

// Palette is the dashboard's only source of colour. Every colour adapts to
// the terminal's background so the dashboard reads well on light and dark
// themes; panes take styles from Styles and never invent a colour.
type Palette struct {
	Text   lipgloss.AdaptiveColor // ordinary text
	Muted  lipgloss.AdaptiveColor // labels, column headers, secondary text
	Subtle lipgloss.AdaptiveColor // borders of panes without focus
	Accent lipgloss.AdaptiveColor // focus: borders, active tab, selection
	SelBg  lipgloss.AdaptiveColor // background of the selected row
	Green  lipgloss.AdaptiveColor // accepted, healthy, verified
	Amber  lipgloss.AdaptiveColor // retrying, waiting, unmatched, paused
	Red    lipgloss.AdaptiveColor // rejected, failed, refused, errors
	Blue   lipgloss.AdaptiveColor // queued, in flight, information
	Purple lipgloss.AdaptiveColor // duplicates
	Orange lipgloss.AdaptiveColor // validation errors: fixable by an edit
}

// DefaultPalette returns leadwatch's colours.
func DefaultPalette() Palette {
	return Palette{
		Text:   lipgloss.AdaptiveColor{Light: "#1F2328", Dark: "#E6EDF3"},
		Muted:  lipgloss.AdaptiveColor{Light: "#6E7781", Dark: "#8B949E"},
		Subtle: lipgloss.AdaptiveColor{Light: "#D0D7DE", Dark: "#3D444D"},
		Accent: lipgloss.AdaptiveColor{Light: "#8250DF", Dark: "#C297FF"},
		SelBg:  lipgloss.AdaptiveColor{Light: "#EAE0FF", Dark: "#33255A"},
		Green:  lipgloss.AdaptiveColor{Light: "#1A7F37", Dark: "#3FB950"},
		Amber:  lipgloss.AdaptiveColor{Light: "#9A6700", Dark: "#D29922"},
		Red:    lipgloss.AdaptiveColor{Light: "#CF222E", Dark: "#F85149"},
		Blue:   lipgloss.AdaptiveColor{Light: "#0969DA", Dark: "#58A6FF"},
		Purple: lipgloss.AdaptiveColor{Light: "#8250DF", Dark: "#A371F7"},
		Orange: lipgloss.AdaptiveColor{Light: "#BC4C00", Dark: "#F0883E"},
	}
}

// converted is the palette with each colour's 256- and 16-colour forms
// worked out (termenv's nearest colour), for NewStyles.
func (p Palette) converted() resolvedPalette {
	return resolvedPalette{
		Text: complete(p.Text), Muted: complete(p.Muted), Subtle: complete(p.Subtle),
		Accent: complete(p.Accent), SelBg: complete(p.SelBg), Green: complete(p.Green),
		Amber: complete(p.Amber), Red: complete(p.Red), Blue: complete(p.Blue),
		Purple: complete(p.Purple), Orange: complete(p.Orange),
	}
}

// resolvedPalette is a Palette whose colours carry every profile's form.
type resolvedPalette struct {
	Text, Muted, Subtle, Accent, SelBg, Green, Amber, Red, Blue, Purple, Orange lipgloss.CompleteAdaptiveColor
}

// complete gives an adaptive hex colour its 256- and 16-colour forms, as
// termenv would convert it on each use.
func complete(c lipgloss.AdaptiveColor) lipgloss.CompleteAdaptiveColor {
	one := func(hex string) lipgloss.CompleteColor {
		cc := lipgloss.CompleteColor{TrueColor: hex}
		if v, ok := termenv.ANSI256.Color(hex).(termenv.ANSI256Color); ok {
			cc.ANSI256 = strconv.Itoa(int(v))
		}
		if v, ok := termenv.ANSI.Color(hex).(termenv.ANSIColor); ok {
			cc.ANSI = strconv.Itoa(int(v))
		}
		return cc
	}
	return lipgloss.CompleteAdaptiveColor{Light: one(c.Light), Dark: one(c.Dark)}
}

// Styles are every style the dashboard draws with, built once from a
// Palette by NewStyles. Styles never change after construction, so panes
// share one *Styles.
type Styles struct {
	Text, Muted, Bold lipgloss.Style

	// Semantic colours, for text that carries a verdict.
	Good, Warn, Bad, Info, Dup, Fixable lipgloss.Style

	AppName     lipgloss.Style
	Border      lipgloss.Style // pane border without focus
	BorderFocus lipgloss.Style // pane border with focus
	Title       lipgloss.Style // pane title without focus
	TitleFocus  lipgloss.Style // pane title with focus
	ColHeader   lipgloss.Style
	Selected    lipgloss.Style // selected row of the focused pane
	Cursor      lipgloss.Style // the row marker of the focused pane
	CursorBlur  lipgloss.Style // the row marker of other panes
	TabActive   lipgloss.Style
	TabInactive lipgloss.Style
	StatusErr   lipgloss.Style
	StatusInfo  lipgloss.Style
	SparkSent   lipgloss.Style
	SparkCB     lipgloss.Style
	ButtonOn    lipgloss.Style
	ButtonOff   lipgloss.Style
	Section     lipgloss.Style // headings inside the detail view
	Help        help.Styles

	states map[crm.State]lipgloss.Style
}

// NewStyles builds the styles from p with renderer r (lipgloss's default
// renderer when nil). The renderer decides the colour profile: it honours
// NO_COLOR and degrades to plain text when the output is not a terminal.
func NewStyles(r *lipgloss.Renderer, p Palette) *Styles {
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	// Every colour is converted for 256- and 16-colour terminals here,
	// once: given as hex, lipgloss would convert it again in every
	// Render, and that nearest-colour search was a tenth of a frame.
	rp := p.converted()
	fg := func(c lipgloss.TerminalColor) lipgloss.Style { return r.NewStyle().Foreground(c) }
	s := &Styles{
		Text:        fg(rp.Text),
		Muted:       fg(rp.Muted),
		Bold:        r.NewStyle().Bold(true),
		Good:        fg(rp.Green),
		Warn:        fg(rp.Amber),
		Bad:         fg(rp.Red),
		Info:        fg(rp.Blue),
		Dup:         fg(rp.Purple),
		Fixable:     fg(rp.Orange),
		AppName:     fg(rp.Accent).Bold(true),
		Border:      fg(rp.Subtle),
		BorderFocus: fg(rp.Accent),
		Title:       fg(rp.Muted).Bold(true),
		TitleFocus:  fg(rp.Accent).Bold(true),
		ColHeader:   fg(rp.Muted).Bold(true),
		Selected:    r.NewStyle().Background(rp.SelBg).Foreground(rp.Text).Bold(true),
		Cursor:      fg(rp.Accent).Bold(true),
		CursorBlur:  fg(rp.Subtle),
		TabActive:   fg(rp.Accent).Bold(true).Underline(true),
		TabInactive: fg(rp.Muted),
		StatusErr:   fg(rp.Red).Bold(true),
		StatusInfo:  fg(rp.Blue),
		SparkSent:   fg(rp.Blue),
		SparkCB:     fg(rp.Green),
		ButtonOn:    r.NewStyle().Background(rp.Accent).Foreground(complete(lipgloss.AdaptiveColor{Light: "#FFFFFF", Dark: "#0D1117"})).Bold(true),
		ButtonOff:   fg(rp.Muted),
		Section:     fg(rp.Accent).Bold(true),
		Help: help.Styles{
			ShortKey:       fg(rp.Accent),
			ShortDesc:      fg(rp.Muted),
			ShortSeparator: fg(rp.Subtle),
			Ellipsis:       fg(rp.Subtle),
			FullKey:        fg(rp.Accent),
			FullDesc:       fg(rp.Muted),
			FullSeparator:  fg(rp.Subtle),
		},
	}
	s.states = map[crm.State]lipgloss.Style{
		crm.StateQueued:          s.Info,
		crm.StateInFlight:        s.Info,
		crm.StateRetryWait:       s.Warn,
		crm.StateAccepted:        s.Good,
		crm.StateDuplicate:       s.Dup,
		crm.StateValidationError: s.Fixable,
		crm.StateRejected:        s.Bad,
		crm.StateFailed:          s.Bad,
	}
	return s
}

// State returns the colour of a lead state, the same everywhere: header
// counts, pane cells, the detail view.
func (s *Styles) State(st crm.State) lipgloss.Style {
	if v, ok := s.states[st]; ok {
		return v
	}
	return s.Text
}
