package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ShutdownTimeout bounds how long Server.Close waits for requests in
// flight (a request may be sitting in its injected latency).
const ShutdownTimeout = 5 * time.Second

// Server is a Sandbox listening on a real address.
type Server struct {
	URL     string // base URL, e.g. "http://127.0.0.1:41234"
	Sandbox *Sandbox

	srv  *http.Server
	done chan struct{} // closed when Serve returns
	// active counts requests being served, so Close can tell a request
	// cut at the deadline from a client's idle pooled connection, which
	// net/http only counts as idle after 5 s.
	active atomic.Int64
}

// Start validates cfg, listens on addr ("127.0.0.1:0" picks a free port)
// and serves a new Sandbox there until Close. Its errors are Validate's or
// the listener's, without a "sandbox" prefix: the caller knows what it
// started and says so once.
func Start(cfg Config, addr string) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	sb := New(cfg)
	s := &Server{URL: "http://" + ln.Addr().String(), Sandbox: sb, done: make(chan struct{})}
	h := sb.Handler()
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.active.Add(1)
			defer s.active.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		// http.Server logs through the log package; route it to slog at
		// debug level, where client hang-ups belong.
		ErrorLog: slog.NewLogLogger(sb.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sb.log.Error("sandbox: serve", "err", err)
		}
	}()
	// Debug, not info: the caller announces where it serves (the sandbox
	// command on stdout), and saying it twice is noise.
	sb.log.Debug("sandbox: listening", "url", s.URL)
	return s, nil
}

// Close stops accepting requests, waits up to ShutdownTimeout for those in
// flight (then cuts them), and then closes the Sandbox, stopping its
// callbacks.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		cut := s.active.Load()
		if cut == 0 && errors.Is(err, context.DeadlineExceeded) {
			// Only connections that never sent a request were left.
			err = nil
		}
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	s.Sandbox.Close()
	if err != nil {
		return fmt.Errorf("sandbox shutdown: %w", err)
	}
	return nil
}
