package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

func TestFmtCountdown(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "due"},
		{0, "due"},
		{300 * time.Millisecond, "in <1s"},
		{3900 * time.Millisecond, "in 3s"},
		{42 * time.Second, "in 42s"},
		{95 * time.Second, "in 1m35s"},
	} {
		if got := fmtCountdown(t0.Add(c.in), t0); got != c.want {
			t.Errorf("fmtCountdown(+%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHangWrapKeepsWordsWhole(t *testing.T) {
	key := "ext-301-1773489000000-0a0b0c0d"
	line := "  2026-03-14 11:51:00.000  ↻ resubmitted  edited payload · new key " + key + " · payload edited"
	out := hangWrap(line, 60, timelineIndent)
	if !strings.Contains(out, key) {
		t.Fatalf("the key was broken:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "  2026-") {
		t.Fatalf("the first line lost its indent: %q", lines[0])
	}
	if len(lines) < 2 {
		t.Fatalf("not wrapped at 60:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, strings.Repeat(" ", timelineIndent)) || l[timelineIndent] == ' ' {
			t.Fatalf("continuation %q is not under the entry's text", l)
		}
	}
	for _, l := range lines {
		if w := len([]rune(l)); w > 60 {
			t.Fatalf("line %q is %d wide", l, w)
		}
	}
}

func TestDetailSaysKeyOnceAndScrollInLines(t *testing.T) {
	h := newHarness()
	key := "ext-301-1773489999999-ffffffff"
	h.src.mu.Lock()
	h.src.attempts["ext-301"] = append(h.src.attempts["ext-301"], crm.Attempt{
		ID: 9, LeadID: 6, Kind: crm.KindResubmit, IdempotencyKey: key, Note: "new key " + key,
		StartedAt: t0.Add(-time.Minute),
	})
	h.src.mu.Unlock()
	m := press(t, h.sized(t, 100, 24), "3", "enter")
	if !m.detail.shown {
		t.Fatal("detail not open")
	}
	v := m.View()
	requireContains(t, v, "new key "+key, " · lines 1–")
	requireLacks(t, v, "· key "+key, "0%")
}

func TestEditorGutterSteadyAtLine10(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "e")
	var text strings.Builder
	text.WriteString("{\n")
	for range 12 {
		text.WriteString(`  "k": "v",` + "\n")
	}
	text.WriteString("}")
	m = setEditorText(t, m, text.String())
	v := m.View()
	requireFrame(t, v, 160, 48)
	// The text of every line starts in the same column, line 9 and
	// line 10 alike.
	want := -1
	for _, l := range strings.Split(v, "\n") {
		i := strings.Index(l, `"k"`)
		if i < 0 {
			continue
		}
		if want < 0 {
			want = i
		}
		if i != want {
			t.Fatalf("line %q starts its text at byte %d, line 2 at %d: the gutter shifted", l, i, want)
		}
	}
	requireContains(t, v, "   9   \"k\"", "  10   \"k\"")
}
