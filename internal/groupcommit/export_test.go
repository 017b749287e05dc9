package groupcommit

import "time"

// NewWithClock is New with the clock of Options.Linger replaced: since
// says how long each commit took, after starts a wait.
func NewWithClock[Req, Res any](commit CommitFunc[Req, Res], opt Options,
	since func(time.Time) time.Duration, after func(time.Duration) (<-chan time.Time, func())) *Batcher[Req, Res] {
	b := newBatcher(commit, opt)
	b.since = since
	b.after = after
	go b.run()
	return b
}
