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
	converted := map[lipgloss.AdaptiveColor]lipgloss.CompleteAdaptiveColor{}
	c := func(a lipgloss.AdaptiveColor) lipgloss.CompleteAdaptiveColor {
		v, ok := converted[a]
		if !ok {
			v = complete(a)
			converted[a] = v
		}
		return v
	}
	fg := func(a lipgloss.AdaptiveColor) lipgloss.Style { return r.NewStyle().Foreground(c(a)) }
	s := &Styles{
		Text:        fg(p.Text),
		Muted:       fg(p.Muted),
		Bold:        r.NewStyle().Bold(true),
		Good:        fg(p.Green),
		Warn:        fg(p.Amber),
		Bad:         fg(p.Red),
		Info:        fg(p.Blue),
		Dup:         fg(p.Purple),
		Fixable:     fg(p.Orange),
		AppName:     fg(p.Accent).Bold(true),
		Border:      fg(p.Subtle),
		BorderFocus: fg(p.Accent),
		Title:       fg(p.Muted).Bold(true),
		TitleFocus:  fg(p.Accent).Bold(true),
		ColHeader:   fg(p.Muted).Bold(true),
		Selected:    r.NewStyle().Background(c(p.SelBg)).Foreground(c(p.Text)).Bold(true),
		Cursor:      fg(p.Accent).Bold(true),
		CursorBlur:  fg(p.Subtle),
		TabActive:   fg(p.Accent).Bold(true).Underline(true),
		TabInactive: fg(p.Muted),
		StatusErr:   fg(p.Red).Bold(true),
		StatusInfo:  fg(p.Blue),
		SparkSent:   fg(p.Blue),
		SparkCB:     fg(p.Green),
		ButtonOn:    r.NewStyle().Background(c(p.Accent)).Foreground(c(lipgloss.AdaptiveColor{Light: "#FFFFFF", Dark: "#0D1117"})).Bold(true),
		ButtonOff:   fg(p.Muted),
		Section:     fg(p.Accent).Bold(true),
		Help: help.Styles{
			ShortKey:       fg(p.Accent),
			ShortDesc:      fg(p.Muted),
			ShortSeparator: fg(p.Subtle),
			Ellipsis:       fg(p.Subtle),
			FullKey:        fg(p.Accent),
			FullDesc:       fg(p.Muted),
			FullSeparator:  fg(p.Subtle),
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
