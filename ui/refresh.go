package ui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// minRefreshGap paces change-driven refreshes: ten a second at most is
// live to the eye and leaves the CPU to the listener and sender.
const minRefreshGap = 100 * time.Millisecond

// healthEvery bounds the age of the store's health on screen. A store
// that stopped committing (its file removed, the disk full) sends no
// change signal, so the heartbeat refreshes at least this often; the
// store caches its health, and a refresh's queries take milliseconds.
const healthEvery = 2 * time.Second

// refreshCycle decides when the dashboard re-reads the Source: at most
// one snapshot query in flight, the changes that arrive meanwhile
// coalesced into one follow-up, and follow-ups paced to minRefreshGap.
// It also owns the change listener. While a refresh is running or
// scheduled a change only marks one pending and the listener is not
// re-armed until the refresh lands, so the store's signals coalesce in
// its channel instead of waking Update (and View) once per commit.
//
// It decides only; the root builds the query, since what is asked for
// depends on what is on screen.
type refreshCycle struct {
	changes <-chan struct{}

	running    bool      // a snapshot query is in flight
	pending    bool      // a change came in meanwhile: refresh again after
	followUp   bool      // a paced follow-up refresh is scheduled
	startedAt  time.Time // wall clock when the last query started, for pacing
	lastBucket time.Time // the sparkline bucket the last query read
	lastQuery  time.Time // when (Config.Now) the last query that landed read the store

	listening bool // a waitForChange Cmd is out
	closed    bool // the change channel is gone
}

func newRefreshCycle(changes <-chan struct{}) refreshCycle {
	// Init arms the listener.
	return refreshCycle{changes: changes, listening: changes != nil}
}

// Init arms the change listener.
func (c refreshCycle) Init() tea.Cmd { return waitForChange(c.changes) }

// start reports whether a refresh may start now. While one runs it says
// no and remembers to run another when that one lands.
func (c *refreshCycle) start() bool {
	if c.running {
		c.pending = true
		return false
	}
	c.running, c.pending = true, false
	c.startedAt = time.Now()
	return true
}

// changed takes a change signal and reports whether to refresh now. The
// listener that delivered it is spent either way.
func (c *refreshCycle) changed() bool {
	c.listening = false
	if c.running || c.followUp {
		// Under 1,000 callbacks/s the store signals hundreds of times a
		// second; the refresh under way or scheduled re-arms the
		// listener when it lands.
		c.pending = true
		return false
	}
	return true
}

// stop takes the end of the change channel: nothing to listen to.
func (c *refreshCycle) stop() { c.listening, c.closed = false, true }

// requested takes a refresh request (a pane moved its window, or the
// paced follow-up is due): no follow-up is scheduled any more.
func (c *refreshCycle) requested() { c.followUp = false }

// tickDue reports whether the 1 s heartbeat at now should refresh.
// Without a change signal the dashboard polls; with one it re-reads when
// the sparkline's newest bucket rolls over, or when the store's health on
// screen is healthEvery old.
func (c refreshCycle) tickDue(now time.Time) bool {
	return c.changes == nil || !now.Truncate(sparkBucket).Equal(c.lastBucket) || now.Sub(c.lastQuery) >= healthEvery
}

// landed takes the end of a refresh that read the store as of queried;
// again means a pane needs another query at once. It reports whether to
// start the next refresh now, or else a Cmd that asks for one later.
func (c *refreshCycle) landed(queried time.Time, again bool) (now bool, later tea.Cmd) {
	c.running = false
	c.lastBucket, c.lastQuery = queried.Truncate(sparkBucket), queried
	switch {
	case again:
		return true, nil
	case c.pending:
		// Under a storm of changes (1,000 callbacks/s) refreshing back to
		// back would keep a core busy and starve the keys: follow-ups
		// start at most every minRefreshGap. Real time, not Config.Now:
		// this paces work, it is not something drawn.
		if wait := minRefreshGap - time.Since(c.startedAt); wait > 0 {
			c.pending, c.followUp = false, true
			return false, tea.Tick(wait, func(time.Time) tea.Msg { return refreshRequestMsg{} })
		}
		return true, nil
	}
	return false, nil
}

// listen re-arms the change listener unless it is out or the channel is
// gone.
func (c *refreshCycle) listen() tea.Cmd {
	if c.listening || c.closed || c.changes == nil {
		return nil
	}
	c.listening = true
	return waitForChange(c.changes)
}
