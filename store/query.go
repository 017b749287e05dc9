package store

import (
	"fmt"
	"strings"

	"github.com/leadwatch/leadwatch/crm"
)

// LikePattern is a LIKE pattern matching filter as a case-insensitive
// substring, for `lower(col) LIKE pattern ESCAPE '\'`: the filter is
// lowered and its wildcards escaped with '\'. Case folding is the
// backend's lower() (ASCII on SQLite).
func LikePattern(filter string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(filter))
	return "%" + esc + "%"
}

// EventScanWindow is crm.EventScanWindow, for the backends.
const EventScanWindow = crm.EventScanWindow

// ClampLimit bounds a page size: 50 when unset, at most 10,000.
func ClampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 10000:
		return 10000
	}
	return n
}

// PaneStates is the states a crm.LeadQuery reads: all of them when none
// is named, each once, in the order given; an unknown state is an error.
// byDue says the pane is ordered by due time (only retry_wait leads),
// not by last update.
func PaneStates(states []crm.State) (_ []crm.State, byDue bool, err error) {
	if len(states) == 0 {
		states = crm.States
	}
	seen := make(map[crm.State]bool, len(states))
	out := make([]crm.State, 0, len(states))
	for _, s := range states {
		if !s.Valid() {
			return nil, false, fmt.Errorf("leads: unknown state %q", s)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, len(out) == 1 && out[0] == crm.StateRetryWait, nil
}
