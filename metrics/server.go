package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves GET /metrics on its own listener. Listen binds it, so a
// port already taken is an error before anything else starts; Serve runs
// it.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr for m's handler. Its error names the address and what
// went wrong ("metrics listener: listen tcp 127.0.0.1:9464: bind: address
// already in use"), on one line.
func Listen(addr string, m *Metrics, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// net's error names the address already.
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler: mux,
			// A scraper is a trusted, quick client, but the port may be
			// reached by others: every wait is bounded.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.With("component", "metrics").Handler(), slog.LevelWarn),
		},
	}, nil
}

// Addr is the bound address (with the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down, letting a scrape in
// progress finish for a few seconds. It returns nil on that stop, else
// why serving stopped.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutCtx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener: %w", serr)
	}
	return err
}

// Close stops a server that Serve never ran (a start that failed later).
func (s *Server) Close() error { return s.ln.Close() }
