package callbacks

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSilentGrace is how long a new connection may stay silent (no byte
// of a request yet) before, at the cap, it may be closed to make room. It
// is well under ReadHeader (which closes it anyway) and well over the
// time a real client takes between connecting and sending.
const DefaultSilentGrace = time.Second

// ConnLimiter caps the connections a server holds open, and at the cap it
// makes room rather than only waiting: a new connection closes the
// connection idle the longest, else the oldest one silent past
// DefaultSilentGrace. So clients that open connections and idle, or open
// them and say nothing, cannot keep a signed callback from a slot, as they
// can with a listener that only blocks Accept (netutil.LimitListener).
// Connections whose last answer was a refusal are never idle: the handler
// closes every connection but a signed callback's after its answer. Only
// when every connection is busy with a request does Accept wait, for one
// to end or go idle; the server's timeouts bound that.
//
// Wire it both ways: serve on Listener(ln) and set the server's ConnState
// to ConnState (WithConnLimiter does).
type ConnLimiter struct {
	max   int
	grace time.Duration
	now   func() time.Time

	mu   sync.Mutex
	open int
	// idle holds idle connections in the order they went idle, fresh the
	// connections that have not sent a request byte yet, oldest first.
	idle, fresh list.List
	// changed wakes a waiting Accept: a connection closed or went idle.
	changed chan struct{}

	evicted atomic.Uint64
}

// NewConnLimiter returns a limiter of at most n open connections (at
// least 1) that may close a connection silent for grace (DefaultSilentGrace
// when ≤ 0) to admit a new one.
func NewConnLimiter(n int, grace time.Duration) *ConnLimiter {
	if grace <= 0 {
		grace = DefaultSilentGrace
	}
	return &ConnLimiter{max: max(n, 1), grace: grace, now: time.Now, changed: make(chan struct{}, 1)}
}

// Max is the cap.
func (l *ConnLimiter) Max() int { return l.max }

// Open is how many connections are open now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Idle is how many open connections are idle between requests now.
func (l *ConnLimiter) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle.Len()
}

// Evicted is how many connections were closed to make room.
func (l *ConnLimiter) Evicted() uint64 { return l.evicted.Load() }

// WithConnLimiter makes the server report connection states to l, keeping
// any ConnState hook it had.
func WithConnLimiter(l *ConnLimiter) ServerOption {
	return func(s *http.Server) {
		prev := s.ConnState
		s.ConnState = func(c net.Conn, st http.ConnState) {
			l.ConnState(c, st)
			if prev != nil {
				prev(c, st)
			}
		}
	}
}

// Listener wraps ln so that its Accept admits a connection only under the
// cap, making room as ConnLimiter says.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: l, done: make(chan struct{})}
}

// ConnState is the http.Server hook that tells l which connections are
// idle. Connections not accepted through Listener are ignored.
func (l *ConnLimiter) ConnState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		// A TLS connection over one of ours (CertFiles.TLSListener).
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released {
		return
	}
	switch st {
	case http.StateNew:
		// Listed as fresh by Accept already.
	case http.StateIdle:
		l.unlist(lc)
		lc.since = l.now()
		lc.elem, lc.in = l.idle.PushBack(lc), &l.idle
		l.signal()
	default:
		l.unlist(lc)
	}
}

// limitListener is ConnLimiter's side of a net.Listener.
type limitListener struct {
	net.Listener
	l         *ConnLimiter
	done      chan struct{}
	closeOnce sync.Once
}

// Accept waits for a connection and admits it under the cap.
func (ll *limitListener) Accept() (net.Conn, error) {
	c, err := ll.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !ll.l.admit(ll.done) {
		c.Close()
		return nil, net.ErrClosed
	}
	return ll.l.track(c), nil
}

// Close closes the listener and ends a wait for room.
func (ll *limitListener) Close() error {
	ll.closeOnce.Do(func() { close(ll.done) })
	return ll.Listener.Close()
}

// limitedConn is an admitted connection; closing it gives its slot back.
type limitedConn struct {
	net.Conn
	l *ConnLimiter

	// Guarded by l.mu.
	elem     *list.Element // in *in, or nil
	in       *list.List
	since    time.Time // when it was accepted or went idle
	released bool
}

// Close closes the connection and frees its slot once.
func (c *limitedConn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// admit takes a slot for a new connection, closing an idle or silent one
// when at the cap, or waiting until one frees up. It reports false when
// done closes first.
func (l *ConnLimiter) admit(done <-chan struct{}) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return true
		}
		victim, wait := l.pickVictim()
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			victim.Close()
			continue
		}
		var expire <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expire = timer.C
		}
		select {
		case <-l.changed:
		case <-expire:
		case <-done:
			return false
		}
	}
}

// pickVictim returns the connection to close to make room, unlisted, or
// nil and how long until the oldest silent one may be closed (0: none is
// silent; wait for a change). l.mu is held.
func (l *ConnLimiter) pickVictim() (*limitedConn, time.Duration) {
	if e := l.idle.Front(); e != nil {
		c := e.Value.(*limitedConn)
		l.unlist(c)
		return c, 0
	}
	if e := l.fresh.Front(); e != nil {
		c := e.Value.(*limitedConn)
		if age := l.now().Sub(c.since); age < l.grace {
			return nil, l.grace - age
		}
		l.unlist(c)
		return c, 0
	}
	return nil, 0
}

// track wraps an admitted connection and lists it as fresh.
func (l *ConnLimiter) track(c net.Conn) *limitedConn {
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	lc.since = l.now()
	lc.elem, lc.in = l.fresh.PushBack(lc), &l.fresh
	l.mu.Unlock()
	return lc
}

// release frees c's slot, once.
func (l *ConnLimiter) release(c *limitedConn) {
	l.mu.Lock()
	if c.released {
		l.mu.Unlock()
		return
	}
	c.released = true
	l.unlist(c)
	l.open--
	l.mu.Unlock()
	l.signal()
}

// unlist takes c off the list it is on. l.mu is held.
func (l *ConnLimiter) unlist(c *limitedConn) {
	if c.elem != nil {
		c.in.Remove(c.elem)
		c.elem, c.in = nil, nil
	}
}

// signal wakes a waiting Accept without blocking.
func (l *ConnLimiter) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// FDHeadroom is how many file descriptors MaxConns leaves for the rest of
// the process: the store's database, WAL and shared-memory files on each
// connection, the sender's connections to the CRM, the listener itself,
// logs and the terminal.
const FDHeadroom = 256

// DefaultMaxConnsUnknownLimit is the cap when the open-file limit cannot be
// read.
const DefaultMaxConnsUnknownLimit = 4096

// MaxConns is the connection cap for a configured value (≤ 0: as many as
// the limit allows) under an open-file limit of fdLimit (0: unknown, then
// the configured value or DefaultMaxConnsUnknownLimit): the configured
// value, but never above fdLimit − FDHeadroom (half the limit
// when it is too small for the headroom), so the listener's connections
// cannot take the descriptors the store and the sender need.
func MaxConns(configured int, fdLimit uint64) int {
	ceiling := DefaultMaxConnsUnknownLimit
	switch {
	case fdLimit == 0 && configured > 0:
		return configured
	case fdLimit == 0:
	case fdLimit > 2*FDHeadroom:
		ceiling = int(min(fdLimit-FDHeadroom, 1<<31-1))
	default:
		ceiling = max(int(fdLimit/2), 1)
	}
	if configured <= 0 {
		return ceiling
	}
	return min(configured, ceiling)
}
