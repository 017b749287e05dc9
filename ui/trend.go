package ui

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

// trendView is throughput over time: attempts sent, leads accepted,
// leads failed and callbacks stored, per minute, over the last five
// minutes, the last hour or the launch, as bar charts with their scale
// and totals. The five minutes are the header's own read (10 s buckets);
// the hour and the launch read 1-minute buckets, paced.
type trendView struct {
	paneFrame
	window int    // index into trendWindows
	filter string // the charts whose name holds it are drawn ("/fail")

	tp       crm.Throughput // the window's buckets
	tpFor    int            // the window tp was read for; -1 none
	since    time.Time      // where the launch starts, as read
	askedAt  time.Time
	askedFor int
}

// trendWindows are the windows w cycles. The launch is every minute
// since the first lead stored (its created_at), a day back at most.
var trendWindows = []string{"last 5 min", "last hour", "launch"}

// trendEvery paces the hour's read, launchEvery the launch's: 1-minute
// buckets change slowly, and the launch reads up to a day of them (its
// newest minute is a sliver of a chart hours wide).
const (
	trendEvery  = 2 * time.Second
	launchEvery = 10 * time.Second
)

func newTrendView(st *Styles, keys dashboardKeys) trendView {
	return trendView{paneFrame: newPaneFrame(st, keys), tpFor: -1, askedFor: -1}
}

// trendQuery is one Throughput read for the view.
type trendQuery struct {
	window int
	now    time.Time
	since  time.Time // for the launch, set by loadViews from the first lead
	bucket time.Duration
	launch bool
}

func (v *trendView) nextWindow() {
	v.window = (v.window + 1) % len(trendWindows)
	v.askedAt = time.Time{}
}

func (v *trendView) ask(q *snapshotQuery) {
	if v.window == 0 {
		return // the header's read is the five minutes
	}
	every := trendEvery
	if v.window == 2 {
		every = launchEvery
	}
	if v.askedFor == v.window && !v.askedAt.IsZero() && q.now.Sub(v.askedAt) < every {
		return
	}
	tq := trendQuery{window: v.window, now: q.now, bucket: time.Minute}
	if v.window == 1 {
		tq.since = q.now.Truncate(time.Minute).Add(-59 * time.Minute)
	} else {
		tq.launch = true
	}
	q.views.trend = &tq
	v.askedAt, v.askedFor = q.now, v.window
}

func (v *trendView) take(s snapshotMsg) bool {
	switch {
	case v.window == 0 && s.tpOK:
		v.tp, v.tpFor = s.tp, 0
	case v.window > 0 && s.views.trendOK && s.views.trendQ.window == v.window:
		v.tp, v.tpFor, v.since = s.views.trend, v.window, s.views.trendQ.since
	}
	return false
}

func (v *trendView) Update(tea.Msg) tea.Cmd      { return nil }
func (v trendView) filterText() string           { return v.filter }
func (v *trendView) setFilter(f string)          { v.filter = f }
func (v trendView) selection() (selection, bool) { return selection{}, false }

// series is one chart: its name, style and buckets.
type series struct {
	name string
	st   lipgloss.Style
	vals []int
}

func (v trendView) View() string {
	title := "Throughput · " + trendWindows[v.window]
	if v.window == 2 && v.tpFor == 2 {
		title += " (since " + v.since.In(v.now.Location()).Format("Jan 2 15:04") + ")"
	}
	title += " · per minute · w window"
	iw, ih := v.width-2, v.height-2
	if v.tpFor != v.window {
		return v.st.box(title, v.st.Muted.Render("  loading…"), v.width, v.height, v.focused)
	}
	st := v.st
	all := []series{
		{"sent", st.SparkSent, v.tp.Sent},
		{"accepted", st.Good, v.tp.Accepted},
		{"failed", st.Bad, v.tp.Failed},
		{"callbacks", st.SparkCB, v.tp.Callbacks},
	}
	if v.filter != "" {
		title += " · /" + clean(v.filter)
		all = slices.DeleteFunc(all, func(s series) bool { return !strings.Contains(s.name, strings.ToLower(v.filter)) })
		if len(all) == 0 {
			return st.box(title, st.Muted.Render("  no chart named like /"+clean(v.filter)+" — esc clears"), v.width, v.height, v.focused)
		}
	}
	per := max((ih-1)/len(all), 2)
	rows := per - 1
	var lines []string
	for _, s := range all {
		lines = append(lines, v.chart(s, iw, rows)...)
	}
	lines = append(lines, v.axis(iw))
	return st.box(title, strings.Join(lines, "\n"), v.width, v.height, v.focused)
}

// yLabel is the width of the scale's labels, "1.2k┤" included.
const yLabel = 7

// columns turns the buckets into at most w columns of per-minute rates:
// a bucket spread over up to maxBucketCols columns when there is room,
// several buckets summed into one when there is not (grouped from the
// newest, so the last column is the latest). The chart is drawn flush
// right, its last column over "now".
func (v trendView) columns(vals []int, w int) []float64 {
	n := len(vals)
	if n == 0 || w <= 0 {
		return nil
	}
	perMin := float64(time.Minute) / float64(max(v.tp.Bucket, time.Second))
	if n <= w {
		rep := min(w/n, maxBucketCols)
		out := make([]float64, 0, n*rep)
		for _, x := range vals {
			for range rep {
				out = append(out, float64(x)*perMin)
			}
		}
		return out
	}
	g := (n + w - 1) / w
	var out []float64
	for end := n; end > 0; end -= g {
		sum := 0
		for i := max(end-g, 0); i < end; i++ {
			sum += vals[i]
		}
		out = append(out, float64(sum)*perMin/float64(g))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// maxBucketCols is the widest a bucket is drawn: a launch of one minute
// is one bar, not a wall.
const maxBucketCols = 4

// eighths are the partial heights of a bar's top cell.
var eighths = []rune(" ▁▂▃▄▅▆▇█")

// chart is one series: a line with its totals, then rows of bars under a
// scale from 0 to the peak rate.
func (v trendView) chart(s series, w, rows int) []string {
	st := v.st
	total, lastMin := 0, 0
	per := int(time.Minute / max(v.tp.Bucket, time.Second))
	for i, x := range s.vals {
		total += x
		if i >= len(s.vals)-max(per, 1) {
			lastMin += x
		}
	}
	cols := v.columns(s.vals, w-yLabel)
	peak := 0.0
	for _, c := range cols {
		peak = math.Max(peak, c)
	}
	head := st.Bold.Render(fmt.Sprintf("%-10s", s.name)) + st.Muted.Render(fmt.Sprintf("total %s · peak %s/min · last min %s",
		grouped(total), fmtRate(peak), grouped(lastMin)))
	out := []string{head}
	levels := make([]int, len(cols))
	for i, c := range cols {
		if c > 0 && peak > 0 {
			levels[i] = max(int(math.Ceil(c/peak*float64(rows*8))), 1)
		}
	}
	for r := range rows {
		label := ""
		switch {
		case r == 0:
			label = fmtRate(peak) + " ┤"
		case r == rows-1:
			label = "0 ┤"
		default:
			label = "│"
		}
		var b strings.Builder
		b.WriteString(strings.Repeat(" ", max(w-yLabel-len(levels), 0)))
		floor := (rows - 1 - r) * 8
		for _, lvl := range levels {
			b.WriteRune(eighths[min(max(lvl-floor, 0), 8)])
		}
		out = append(out, st.Muted.Render(padLeft(label, yLabel))+s.st.Render(b.String()))
	}
	return out
}

// padLeft right-aligns s in w cells.
func padLeft(s string, w int) string {
	if pad := w - lipgloss.Width(s); pad > 0 {
		return strings.Repeat(" ", pad) + s
	}
	return s
}

// axis is the time line under the charts: where the window starts, its
// middle, and now.
func (v trendView) axis(w int) string {
	pw := w - yLabel
	n := len(v.tp.Sent)
	span := time.Duration(n) * v.tp.Bucket
	start := "-" + fmtSpan(span)
	mid := "-" + fmtSpan(span/2)
	if v.window == 2 {
		start = v.since.In(v.now.Location()).Format("15:04")
		mid = v.since.Add(span / 2).In(v.now.Location()).Format("15:04")
	}
	// The bars end at now and may not fill the width (a bucket is at
	// most maxBucketCols wide): the start and the middle go where the
	// bars begin and where their middle is.
	bars := len(v.columns(v.tp.Sent, pw))
	from := max(pw-bars, 0)
	if bars < len(start)+len(mid)+len("now")+4 {
		mid = ""
	}
	line := []rune(strings.Repeat(" ", max(pw, 0)))
	put := func(at int, s string) {
		for i, r := range s {
			if at+i >= 0 && at+i < len(line) {
				line[at+i] = r
			}
		}
	}
	put(from, start)
	if mid != "" {
		put(from+bars/2-len(mid)/2, mid)
	}
	put(pw-3, "now")
	return v.st.Muted.Render(strings.Repeat(" ", yLabel) + string(line))
}

// fmtSpan is a window's length: 5m, 1h, 3h20m.
func fmtSpan(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour && d%time.Minute != 0:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// fmtRate is a rate with three significant figures at most: 7, 24,
// 1.2k, 35k.
func fmtRate(x float64) string {
	switch {
	case x < 10 && x != math.Trunc(x):
		return fmt.Sprintf("%.1f", x)
	case x < 1000:
		return fmt.Sprintf("%.0f", x)
	case x < 10_000:
		return fmt.Sprintf("%.1fk", x/1000)
	}
	return fmt.Sprintf("%.0fk", x/1000)
}

// line3 is the header's third line: callbacks by outcome, then the sent
// and callback sparklines with their last minute's count. It shrinks
// before anything goes: the labels and the callbacks' words first, then
// the sparklines' width, so at 100 and 80 columns the sparklines stay.
func (h header) line3(width int) string {
	st, c := h.st, h.counts
	full := st.Muted.Render("callbacks ") +
		st.Good.Render(fmt.Sprintf("✓ %d verified", c.CallbacksVerified)) + st.Border.Render(" · ") +
		h.nonZero(c.Refusals, st.Bad).Render(fmt.Sprintf("✗ %d refused", c.Refusals)) + st.Border.Render(" · ") +
		h.nonZero(c.CallbacksUnmatched, st.Warn).Render(fmt.Sprintf("? %d unmatched", c.CallbacksUnmatched))
	short := st.Muted.Render("cb ") +
		st.Good.Render(fmt.Sprintf("✓%d", c.CallbacksVerified)) + " " +
		h.nonZero(c.Refusals, st.Bad).Render(fmt.Sprintf("✗%d", c.Refusals)) + " " +
		h.nonZero(c.CallbacksUnmatched, st.Warn).Render(fmt.Sprintf("?%d", c.CallbacksUnmatched))
	if c.Polled > 0 {
		// Statuses learned by lookups, apart from the callbacks: shown
		// only once reconciliation has found one.
		full += st.Border.Render(" · ") + st.Info.Render(fmt.Sprintf("◇ %d polled", c.Polled))
		short += " " + st.Info.Render(fmt.Sprintf("◇%d", c.Polled))
	}
	if !h.haveCounts {
		full, short = st.Muted.Render("callbacks –"), st.Muted.Render("cb –")
	}
	type tier struct {
		cb           string
		sent, cbName string
		unit         string
		gap          string
		minW         int
	}
	tiers := []tier{
		{full, "sent", "callbacks", "/min", "    ", 10},
		{full, "sent", "cb", "/m", "  ", 6},
		{short, "sent", "cb", "/m", "  ", 4},
	}
	for _, t := range tiers {
		// What the two sparklines take besides their bars.
		fixed := lipgloss.Width(t.cb) + len(t.gap) + 2 +
			len(t.sent) + len(t.cbName) + 2*(2+len(t.unit)) + 2*len("9999")
		sw := min(sparkBuckets, (width-fixed)/2)
		if sw < t.minW {
			continue
		}
		return t.cb + t.gap + h.spark(t.sent, h.tp.Sent, sw, st.SparkSent, h.answeredMin(), t.unit) + "  " +
			h.spark(t.cbName, h.tp.Callbacks, sw, st.SparkCB, -1, t.unit)
	}
	return short
}
