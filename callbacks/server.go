package callbacks

import (
	"log/slog"
	"net/http"
	"time"
)

// ServerTimeouts are the limits NewServer puts on every connection. A
// client that trickles its headers or body (slowloris) is cut off by
// ReadHeader and Read; one that stops reading answers, by Write; an idle
// keep-alive connection, by Idle.
type ServerTimeouts struct {
	ReadHeader     time.Duration
	Read           time.Duration
	Write          time.Duration
	Idle           time.Duration
	MaxHeaderBytes int
}

// DefaultServerTimeouts suit a callback listener: callbacks are small, so a
// CRM needs well under a second per request; the margins allow a slow link.
// Write is larger than Read plus DefaultCommitTimeout, so a request that
// waited for a slow commit can still be answered.
func DefaultServerTimeouts() ServerTimeouts {
	return ServerTimeouts{
		ReadHeader:     5 * time.Second,
		Read:           10 * time.Second,
		Write:          20 * time.Second,
		Idle:           120 * time.Second,
		MaxHeaderBytes: 16 << 10,
	}
}

// ServerOption adjusts the server NewServer builds.
type ServerOption func(*http.Server)

// WithTimeouts replaces the default timeouts (tests use short ones).
func WithTimeouts(t ServerTimeouts) ServerOption {
	return func(s *http.Server) {
		s.ReadHeaderTimeout = t.ReadHeader
		s.ReadTimeout = t.Read
		s.WriteTimeout = t.Write
		s.IdleTimeout = t.Idle
		s.MaxHeaderBytes = t.MaxHeaderBytes
	}
}

// WithLogger sends the server's own errors (TLS handshakes, panics, accept
// failures) to l at warn level instead of the standard logger.
func WithLogger(l *slog.Logger) ServerOption {
	return func(s *http.Server) {
		s.ErrorLog = slog.NewLogLogger(l.Handler(), slog.LevelWarn)
	}
}

// NewServer returns an http.Server for h on addr with every timeout and the
// header size bounded (DefaultServerTimeouts unless an option says
// otherwise), so no client can hold a connection open by sending slowly.
func NewServer(addr string, h http.Handler, opts ...ServerOption) *http.Server {
	s := &http.Server{Addr: addr, Handler: h}
	WithTimeouts(DefaultServerTimeouts())(s)
	for _, o := range opts {
		o(s)
	}
	return s
}
