package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Interfaces the store satisfies, checked where they are wired.
var (
	_ crm.Outbox          = (*store.DB)(nil)
	_ callbacks.EventSink = (*store.DB)(nil)
)

// services are leadwatch's long-running halves, the sender and the
// listener, over one store. serve runs them headless; the dashboard runs
// them beside the UI.
type services struct {
	log     *slog.Logger
	db      *store.DB
	client  *crm.Client
	disp    *crm.Dispatcher
	handler *callbacks.Handler
	ln      net.Listener
	srv     *http.Server

	mu        sync.Mutex
	listenErr error // the listener could not bind or stopped (the dashboard shows it)
	// keepGoing: a listener failure is reported, not fatal, so the sender
	// goes on (the dashboard keeps running with what still works).
	keepGoing bool
}

// serviceOptions say what to start.
type serviceOptions struct {
	sender   bool
	listener bool
	// tolerateBindError keeps going without a listener when its address
	// cannot be bound (the dashboard reports it instead of dying).
	tolerateBindError bool
	policy            *crm.RetryPolicy // overrides cfg.Retry (the demo's faster schedule)
	sender2           crm.Sender       // overrides the client as the dispatcher's sender (the demo)
	listenerOn        net.Listener     // an already bound listener to serve on (the demo)
}

// startServices opens what opts asks for over db. Nothing runs until Run.
func startServices(cfg config.Config, db *store.DB, log *slog.Logger, opts serviceOptions) (*services, error) {
	s := &services{log: log, db: db, keepGoing: opts.tolerateBindError}
	if opts.sender {
		client, err := newClient(cfg)
		if err != nil {
			return nil, err
		}
		s.client = client
		policy := retryPolicy(cfg)
		if opts.policy != nil {
			policy = *opts.policy
		}
		var sender crm.Sender = client
		if opts.sender2 != nil {
			sender = opts.sender2
		}
		s.disp = crm.NewDispatcher(db, sender, crm.DispatcherConfig{
			Concurrency: cfg.CRM.Concurrency,
			RateLimit:   cfg.CRM.RateLimit,
			// The lease must outlast one attempt (the timeout) and its
			// recording; a killed sender's leads come back after it.
			Lease:  2*cfg.CRM.Timeout.D() + 10*time.Second,
			Policy: policy,
			Logger: log,
		})
	}
	if opts.listener {
		h, err := callbacks.NewHandler(callbacks.Config{
			Path:      cfg.Callbacks.Path,
			Secrets:   cfg.CallbackSecrets(),
			Tolerance: cfg.Callbacks.Tolerance.D(),
			MaxBody:   cfg.Callbacks.MaxBody,
			Logger:    log,
		}, db)
		if err != nil {
			return nil, err
		}
		s.handler = h
		ln, err := opts.listenerOn, error(nil)
		if ln == nil {
			ln, err = net.Listen("tcp", cfg.Callbacks.Listen)
		}
		if err != nil {
			err = fmt.Errorf("callback listener on %s: %w", cfg.Callbacks.Listen, err)
			if !opts.tolerateBindError {
				h.Close()
				return nil, err
			}
			s.listenErr = err
			log.Error("listener not started", "err", err)
		} else {
			s.ln = ln
			s.srv = callbacks.NewServer(ln.Addr().String(), h)
			s.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		}
	}
	return s, nil
}

// newClient is the CartelCRM client the configuration describes.
func newClient(cfg config.Config) (*crm.Client, error) {
	return crm.NewClient(crm.ClientConfig{
		BaseURL:    cfg.CRM.BaseURL,
		APIKey:     string(cfg.CRM.APIKey.Reveal()),
		HMACSecret: cfg.CRM.HMACSecret.Reveal(),
		Timeout:    cfg.CRM.Timeout.D(),
		MaxConns:   max(64, cfg.CRM.Concurrency),
	})
}

func retryPolicy(cfg config.Config) crm.RetryPolicy {
	return crm.RetryPolicy{
		MaxAttempts:      cfg.Retry.MaxAttempts,
		BaseDelay:        cfg.Retry.BaseDelay.D(),
		MaxDelay:         cfg.Retry.MaxDelay.D(),
		RateLimitedDelay: cfg.Retry.RateLimitedDelay.D(),
	}
}

// ListenAddr is the bound listener address, or "" when there is none.
func (s *services) ListenAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// ListenErr is why the listener is not running, if it is not.
func (s *services) ListenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listenErr
}

// Run runs the sender and the listener until ctx is done, then shuts both
// down gracefully: the listener finishes in-flight callbacks (each is
// committed before its answer), the dispatcher finishes the attempts on
// the wire and releases the rest.
func (s *services) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if s.disp != nil {
		g.Go(func() error { return s.disp.Run(gctx) })
	}
	if s.srv != nil {
		g.Go(func() error {
			err := s.srv.Serve(s.ln)
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			err = fmt.Errorf("callback listener: %w", err)
			s.mu.Lock()
			s.listenErr = err
			s.mu.Unlock()
			if s.keepGoing {
				s.log.Error("listener stopped; sending goes on", "err", err)
				return nil
			}
			return err
		})
		g.Go(func() error {
			<-gctx.Done()
			shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.srv.Shutdown(shutCtx)
			s.handler.Close()
			return err
		})
	} else if s.handler != nil {
		defer s.handler.Close()
	}
	return g.Wait()
}
