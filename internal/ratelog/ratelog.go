// Package ratelog logs a repeated condition once per interval, with a
// count of the occurrences it did not log. It exists because the
// listener's failure paths run per request: a bad-signature flood or a full
// disk would otherwise write one line per request (issue 9 saw 8,623
// "refusal queue full" lines in 45 s), burying the one line an operator
// needs and costing the disk that is already short.
//
// The first occurrence of a key is logged at once; later ones within the
// interval are only counted, and the first one after it is logged with
// "suppressed" = how many were counted since the last line and
// "since_last" = how long ago that line was. No goroutine
// flushes counts in the background: a condition that stopped needs no
// more lines, and the count arrives with its next occurrence.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Logger rate-limits log lines per key. Its methods are safe for
// concurrent use. The zero value is not usable; call New.
type Logger struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*entry
}

// entry is one key's state: when it was last logged and how many
// occurrences were counted since.
type entry struct {
	last       time.Time
	suppressed int
}

// Option adjusts a Logger.
type Option func(*Logger)

// WithClock replaces time.Now (tests inject a clock).
func WithClock(now func() time.Time) Option {
	return func(l *Logger) { l.now = now }
}

// New returns a Logger writing to log at most once per interval per key.
// A nil log discards; an interval ≤ 0 logs every occurrence.
func New(log *slog.Logger, interval time.Duration, opts ...Option) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Logger{log: log, interval: interval, now: time.Now, keys: make(map[string]*entry)}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Warn logs msg with args at warn level unless key was logged less than
// the interval ago, in which case it only counts the occurrence.
func (l *Logger) Warn(key, msg string, args ...any) { l.emit(slog.LevelWarn, key, msg, args) }

// Error is Warn at error level.
func (l *Logger) Error(key, msg string, args ...any) { l.emit(slog.LevelError, key, msg, args) }

func (l *Logger) emit(level slog.Level, key, msg string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	e, ok := l.keys[key]
	if !ok {
		e = &entry{}
		l.keys[key] = e
	}
	if ok && now.Sub(e.last) < l.interval {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	n, since := e.suppressed, now.Sub(e.last)
	e.last, e.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		// A full slice expression: never append into the caller's array.
		args = append(args[:len(args):len(args)], "suppressed", n, "since_last", since.Round(time.Millisecond).String())
	}
	l.log.Log(ctx, level, msg, args...)
}
