package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the channel migration 002's triggers NOTIFY on.
const notifyChannel = "leadwatch_changes"

// Timings of the change signal.
const (
	// watchDebounce is the shortest gap between two signals: a burst of
	// commits signals at its start and once more at most every
	// watchDebounce while it lasts.
	watchDebounce = 50 * time.Millisecond
	// watchPoll is how often, while the listening connection is down,
	// the watcher polls the server for writes instead.
	watchPoll = time.Second
	// watchBackoffMin and watchBackoffMax bound the wait between two
	// attempts to reconnect the listening connection.
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// watcher is the change signal behind Watch: one connection of its own
// (not the pool's) runs LISTEN leadwatch_changes and waits for
// notifications; each one (and each of this DB's own commits) raises a
// flag that a fan-out goroutine turns into a signal on every Watch
// channel, debounced. When the connection dies the watcher reconnects with
// backoff and meanwhile polls the server every watchPoll for writes
// (pg_snapshot_xmax, which moves when any transaction takes an xid), so
// signals keep flowing, late by at most that interval.
type watcher struct {
	db     *DB
	kick   chan struct{} // buffer 1: something changed
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu     sync.Mutex
	subs   map[int]chan struct{}
	nextID int
	closed bool

	// listening is true while the LISTEN connection is up (tests).
	listening atomic.Bool
	// pid is the listening connection's backend pid (tests kill it).
	pid atomic.Uint32
	// refusals counts this DB's SaveRefusals (the trim cadence).
	refusals atomic.Int64
}

// newWatcher starts db's change listener; close stops it.
func newWatcher(db *DB) *watcher {
	w := &watcher{db: db, kick: make(chan struct{}, 1), subs: map[int]chan struct{}{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.done.Add(2)
	go w.listen()
	go w.fanOut()
	return w
}

// close stops the listener and closes every Watch channel.
func (w *watcher) close() {
	w.cancel()
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for id, ch := range w.subs {
		close(ch)
		delete(w.subs, id)
	}
}

// changed raises the flag (non-blocking; coalesced).
func (w *watcher) changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// fanOut turns raised flags into signals, at most one per watchDebounce.
func (w *watcher) fanOut() {
	defer w.done.Done()
	var last time.Time
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.kick:
		}
		if wait := watchDebounce - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-w.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// Flags raised while waiting are part of this signal.
			select {
			case <-w.kick:
			default:
			}
		}
		last = time.Now()
		w.mu.Lock()
		for _, ch := range w.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		w.mu.Unlock()
	}
}

// listen keeps a LISTEN connection up, reconnecting with backoff, and
// polls while it is down.
func (w *watcher) listen() {
	defer w.done.Done()
	backoff := watchBackoffMin
	var mark uint64 // the last pg_snapshot_xmax polled
	for w.ctx.Err() == nil {
		err := w.listenOnce(&backoff)
		w.listening.Store(false)
		w.pid.Store(0)
		if w.ctx.Err() != nil {
			return
		}
		w.db.log.Warn("store watch: listening connection lost; polling until it is back",
			"db", w.db.location, "err", err, "retry_in", backoff)
		// Something may have changed while the connection was down.
		w.changed()
		deadline := time.Now().Add(backoff)
		for time.Now().Before(deadline) {
			if w.poll(&mark) {
				w.changed()
			}
			t := time.NewTimer(min(watchPoll, time.Until(deadline)))
			select {
			case <-w.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}

// listenOnce connects, LISTENs and forwards notifications until the
// connection fails or the watcher stops. A connection that got as far as
// LISTEN resets the backoff.
func (w *watcher) listenOnce(backoff *time.Duration) error {
	cfg := w.db.pool.Config().ConnConfig.Copy()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	cancel()
	if err != nil {
		return mapErr(w.ctx, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(w.ctx, `LISTEN `+notifyChannel); err != nil {
		return mapErr(w.ctx, err)
	}
	*backoff = watchBackoffMin
	w.pid.Store(conn.PgConn().PID())
	w.listening.Store(true)
	// Commits between the loss of the previous connection and this
	// LISTEN sent notifications nobody heard.
	w.changed()
	for {
		if _, err := conn.WaitForNotification(w.ctx); err != nil {
			return mapErr(w.ctx, err)
		}
		w.changed()
	}
}

// poll reports whether a transaction took an xid on the server since the
// last poll (a cheap stand-in for "something was written"; writes to
// other databases of the server signal too, which costs a re-read only).
func (w *watcher) poll(mark *uint64) bool {
	ctx, cancel := context.WithTimeout(w.ctx, watchPoll)
	defer cancel()
	var x uint64
	if err := w.db.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::numeric::bigint`).Scan(&x); err != nil {
		return false
	}
	moved := *mark != 0 && x != *mark
	*mark = x
	return moved
}

// Watch implements store.Store: a channel that receives a value
// (coalesced: buffer 1, never blocking the sender) after commits to the
// database, by this process at once or by another within the NOTIFY's
// delivery (about a second while the listening connection is being
// re-established). It is closed when ctx ends or the DB closes.
func (db *DB) Watch(ctx context.Context) <-chan struct{} {
	w := db.watch
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		close(ch)
		return ch
	}
	id := w.nextID
	w.nextID++
	w.subs[id] = ch
	w.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-w.ctx.Done():
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.subs[id]; ok {
			delete(w.subs, id)
			close(ch)
		}
	}()
	return ch
}
