package ui

import (
	"context"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
)

// filterInput is the line where the focused pane's filter is typed, in
// the status bar. It only edits text: the root copies the value into the
// pane as it changes, so the filter is live.
type filterInput struct {
	keys   filterKeys
	input  textinput.Model
	active bool
}

func newFilterInput(st *Styles, keys filterKeys) filterInput {
	fi := textinput.New()
	fi.Prompt = "/"
	fi.Placeholder = "filter: external_id, crm id, reason…"
	fi.Cursor.SetMode(cursor.CursorStatic)
	fi.PromptStyle, fi.TextStyle, fi.PlaceholderStyle = st.Cursor, st.Text, st.Muted
	fi.Cursor.Style = st.Cursor
	return filterInput{keys: keys, input: fi}
}

// start begins typing, from the pane's current filter.
func (f *filterInput) start(value string) tea.Cmd {
	f.active = true
	f.input.SetValue(value)
	f.input.CursorEnd()
	return f.input.Focus()
}

// Update types a key: enter keeps the filter and esc clears it, both
// ending the typing.
func (f filterInput) Update(k tea.KeyMsg) (filterInput, tea.Cmd) {
	switch {
	case key.Matches(k, f.keys.Apply):
		f.active = false
		f.input.Blur()
		return f, nil
	case key.Matches(k, f.keys.Clear):
		f.active = false
		f.input.Blur()
		f.input.SetValue("")
		return f, nil
	}
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(k)
	return f, cmd
}

// value is the filter as typed.
func (f filterInput) value() string { return f.input.Value() }

// View is the input line while typing, and nothing otherwise.
func (f filterInput) View() string {
	if !f.active {
		return ""
	}
	return f.input.View()
}

// researchTimeout bounds one background re-search of a filter.
const researchTimeout = 30 * time.Second

// research runs a pane's full search of its filter again off the
// refresh. A text filter the store matches rarely makes that search scan
// every row of the pane's states (a quarter of a second and more at a
// million leads), so a filtering pane searches once, in the refresh,
// when its filter or window changes, and after that reads only what
// changed at its top; the full search runs again here every
// researchEvery to take in what those reads cannot see (a lead that left
// the pane's states, a callback linked later), and a later refresh
// takes its result. Copies of the pane share it: it is a cache of the
// store, not state of the screen.
type research[T any] struct {
	mu      sync.Mutex
	running bool
	key     string // what res was searched for
	res     T
	seq     int           // counts results, so a pane takes each once
	took    time.Duration // how long the last search ran (real time)
	wg      sync.WaitGroup
}

// researchCost paces a slow background search: it runs again no sooner
// than this many times as long as it last took after it started, so a
// search of a second (a rare filter at a million leads on PostgreSQL)
// keeps to a tenth of a core.
const researchCost = 10

// due reports whether the search that last started at (the dashboard's
// clock) is due again at now: researchEvery after, or later when it is
// slow (researchCost).
func (r *research[T]) due(at, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Sub(at) >= max(researchEvery, researchCost*r.took)
}

// claim reports whether a search may start: none is running. The
// caller must then start one.
func (r *research[T]) claim() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return false
	}
	r.running = true
	r.wg.Add(1)
	return true
}

// start runs the search claim allowed, for key, in the background.
func (r *research[T]) start(key string, search func(ctx context.Context) (T, error)) {
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), researchTimeout)
		defer cancel()
		began := time.Now()
		res, err := search(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.running, r.took = false, time.Since(began)
		if err != nil {
			return // the pane keeps what it has; the next one tries again
		}
		r.key, r.res = key, res
		r.seq++
	}()
}

// result is the newest search for key the pane has not taken (it took
// seq seen last).
func (r *research[T]) result(key string, seen int) (res T, seq int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seq == seen || r.key != key {
		return res, seen, false
	}
	return r.res, r.seq, true
}

// wait blocks until no search runs (tests, benchmarks).
func (r *research[T]) wait() { r.wg.Wait() }
