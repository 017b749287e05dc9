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
	"github.com/leadwatch/leadwatch/forward"
	"github.com/leadwatch/leadwatch/intake"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/ui"
)

// The store is what each consumer declares it needs; main wires them, so
// main checks it, here and only here.
var (
	_ crm.Outbox          = (store.Store)(nil)
	_ callbacks.EventSink = (store.Store)(nil)
	// /healthz asks the store itself whether it can commit, not Ping.
	_ callbacks.HealthChecker = (store.Store)(nil)
	_ ui.Source               = (store.Store)(nil)
	_ forward.Queue           = (store.Store)(nil)
	_ intake.Outbox           = (store.Store)(nil)
	_ crm.ReconcileStore      = (store.Store)(nil)
)

// services are leadwatch's long-running halves, the sender and the
// listener, over one store. serve runs them headless; the dashboard runs
// them beside the UI.
type services struct {
	log     *slog.Logger
	disp    *crm.Dispatcher
	rec     *crm.Reconciler // status lookups beside the sender; nil when off
	handler *callbacks.Handler
	fwd     *forward.Forwarder // hands stored callbacks to the app; nil when forward.url is unset
	intake  *intake.Handler    // POST /v1/leads beside the callbacks, nil when intake.token is unset
	ln      net.Listener
	srv     *http.Server
	certs   *callbacks.CertFiles // the listener's TLS certificate, nil without TLS

	mu        sync.Mutex
	listenErr error // the listener could not bind or stopped (the dashboard shows it)
	// keepGoing: a listener failure is reported, not fatal, so the sender
	// goes on (the dashboard keeps running with what still works).
	keepGoing bool
}

// serviceOptions say what newServices builds.
type serviceOptions struct {
	send   bool // the dispatcher
	listen bool // the callback listener
	// tolerateBindError keeps going without a listener when its address
	// cannot be bound (the dashboard reports it instead of dying).
	tolerateBindError bool
	policy            *crm.RetryPolicy // overrides cfg.Retry (the demo's faster schedule)
	sender            crm.Sender       // sends instead of a client made from cfg (the demo)
	listener          net.Listener     // an already bound listener to serve on (the demo)
	// noReconcile leaves the status lookups out even with the sender
	// (submit --wait: a short run for its own leads).
	noReconcile bool
}

// newServices builds what opts asks for over db. Nothing runs until Run;
// the listener's address is bound already, so ListenAddr is known before.
func newServices(cfg config.Config, db store.Store, log *slog.Logger, opts serviceOptions) (*services, error) {
	s := &services{log: log, keepGoing: opts.tolerateBindError}
	if opts.send {
		sender := opts.sender
		if sender == nil {
			client, err := newClient(cfg)
			if err != nil {
				return nil, err
			}
			sender = client
		}
		policy := retryPolicy(cfg)
		if opts.policy != nil {
			policy = *opts.policy
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
		if cfg.Reconcile.Enabled && !opts.noReconcile {
			rec, err := newReconciler(cfg, db, sender, log)
			if err != nil {
				return nil, err
			}
			s.rec = rec
		}
	}
	if opts.listen {
		h, err := callbacks.NewHandler(callbacks.Config{
			Path:                 cfg.Callbacks.Path,
			Secrets:              cfg.CallbackSecrets(),
			Tolerance:            cfg.Callbacks.Tolerance.D(),
			MaxBody:              cfg.Callbacks.MaxBody,
			MaxBodyBytesInFlight: cfg.Callbacks.MaxBodyBytesInFlight,
			TrustedProxies:       cfg.TrustedProxyPrefixes(),
			Logger:               log,
		}, db)
		if err != nil {
			return nil, err
		}
		s.handler = h
		ln, err := opts.listener, error(nil)
		if ln == nil {
			ln, err = net.Listen("tcp", cfg.Callbacks.Listen)
		}
		if err != nil {
			// net's error names the address already.
			err = fmt.Errorf("callback listener: %w", err)
			if !opts.tolerateBindError {
				h.Close()
				return nil, err
			}
			s.listenErr = err
			log.Error("listener not started", "err", err)
		} else {
			lim := connLimiter(cfg, log)
			s.ln = lim.Listener(ln)
			if err := s.setupTLS(cfg); err != nil {
				ln.Close()
				h.Close()
				return nil, err
			}
			root, err := s.withIntake(cfg, db, h, log)
			if err != nil {
				ln.Close()
				h.Close()
				return nil, err
			}
			s.srv = callbacks.NewServer(ln.Addr().String(), root, callbacks.WithConnLimiter(lim), callbacks.WithLogger(log))
		}
	}
	if cfg.Forward.URL != "" {
		fwd, err := newForwarder(cfg, db, s.handler, log)
		if err != nil {
			if s.handler != nil {
				s.handler.Close()
			}
			if s.ln != nil {
				s.ln.Close()
			}
			return nil, err
		}
		s.fwd = fwd
	}
	return s, nil
}

// newReconciler is the status lookups' worker (docs/protocol.md §6) with
// its own rate, beside the dispatcher: the dispatcher's limiter never
// sees a lookup. It looks up through sender when that can (serve's
// swapSender, so a SIGHUP's new key reaches the lookups too), else
// through a client made from cfg.
func newReconciler(cfg config.Config, db store.Store, sender crm.Sender, log *slog.Logger) (*crm.Reconciler, error) {
	looker, ok := sender.(crm.StatusLooker)
	if !ok {
		client, err := newClient(cfg)
		if err != nil {
			return nil, err
		}
		looker = client
	}
	final := cfg.Reconcile.Final
	if final == nil {
		final = []string{} // none final: an explicit empty list, not the default
	}
	return crm.NewReconciler(db, looker, crm.ReconcilerConfig{
		After:  cfg.Reconcile.After.D(),
		Stale:  cfg.Reconcile.Stale.D(),
		Final:  final,
		Rate:   cfg.Reconcile.Rate,
		Logger: log,
	}), nil
}

// withIntake puts the intake (POST /v1/leads) in front of the callback
// handler h when intake.token is set, on the same listener: one address
// for the balancer, the same connection cap, timeouts and TLS. Without a
// token /v1/leads reaches h, which answers 404 as for any unknown path.
func (s *services) withIntake(cfg config.Config, db store.Store, h *callbacks.Handler, log *slog.Logger) (http.Handler, error) {
	if cfg.Intake.Token == "" {
		return h, nil
	}
	ih, err := intake.New(intake.Config{Token: cfg.Intake.Token.Reveal(), MaxBody: cfg.Intake.MaxBody, Logger: log}, db, h)
	if err != nil {
		return nil, err
	}
	s.intake = ih
	return ih, nil
}

// IntakeState is what the serve log says of the intake: "off", or its
// path (never anything of its token).
func (s *services) IntakeState() string {
	if s.intake == nil {
		return "off"
	}
	return intake.Path
}

// connLimiter caps the listener's connections below the open-file limit,
// leaving callbacks.FDHeadroom descriptors for the store and the sender,
// and logs the cap and the limit, so an operator sees what bounds the
// listener before a flood shows it.
func connLimiter(cfg config.Config, log *slog.Logger) *callbacks.ConnLimiter {
	fdLimit, err := callbacks.FDLimit()
	if err != nil {
		log.Warn("open-file limit unknown; connection cap not derived from it", "err", err)
	}
	n := callbacks.MaxConns(cfg.Callbacks.MaxConns, fdLimit)
	budget := cfg.Callbacks.MaxBodyBytesInFlight
	if budget <= 0 {
		budget = callbacks.DefaultMaxBodyBytesInFlight
	}
	args := []any{"max_conns", n, "fd_limit", fdLimit, "fd_headroom", callbacks.FDHeadroom,
		"max_body_bytes_in_flight", max(budget, cfg.Callbacks.MaxBody)}
	if c := cfg.Callbacks.MaxConns; c > 0 && c != n {
		args = append(args, "configured_max_conns", c)
		log.Warn("callbacks.max_conns lowered below the open-file limit", args...)
	} else {
		log.Info("listener limits", args...)
	}
	return callbacks.NewConnLimiter(n, callbacks.DefaultSilentGrace)
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
	if s.rec != nil {
		g.Go(func() error { return s.rec.Run(gctx) })
	}
	if s.fwd != nil {
		g.Go(func() error { return s.fwd.Run(gctx) })
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
			if s.intake != nil {
				s.intake.Close()
			}
			return err
		})
	} else if s.handler != nil {
		defer s.handler.Close()
	}
	return g.Wait()
}
