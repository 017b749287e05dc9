package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/metrics"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/sqlite"
)

// load reads the configuration chain and applies --db; warnings go to
// stderr.
func (o storeFlags) load(e env) (config.Config, error) {
	cfg, warnings, err := config.Load(o.configPath, e.getenv)
	if err != nil {
		return cfg, err
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "leadwatch: warning: %s\n", w)
	}
	if o.dbPath != "" {
		cfg.Store.Path = o.dbPath
	}
	if o.forwardTo != "" {
		cfg.Forward.URL = o.forwardTo
	}
	return cfg, nil
}

// loadForServices loads the configuration of a command that runs the
// sender and the listener: --listen overrides callbacks.listen, and every
// setting they need must be there (all missing ones named at once).
func (o storeFlags) loadForServices(e env, listen string) (config.Config, error) {
	cfg, err := o.load(e)
	if err != nil {
		return cfg, err
	}
	if listen != "" {
		cfg.Callbacks.Listen = listen
	}
	return cfg, cfg.Validate(config.NeedSender | config.NeedListener | config.NeedForward)
}

// openDB loads the configuration and opens its database, which must
// exist: these commands act on a store, and a mistyped --db must be an
// error, not a new empty store. readOnly is for commands that only read.
func (o storeFlags) openDB(ctx context.Context, e env, readOnly bool) (store.Store, error) {
	cfg, err := o.load(e)
	if err != nil {
		return nil, err
	}
	kind, err := store.Backend(cfg.Store.Path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if kind == store.SQLite {
		if _, err := os.Stat(cfg.Store.Path); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return openStore(ctx, cfg, store.Options{Logger: discardLog(), ReadOnly: readOnly})
}

// openStore opens the configured database with the backend its location
// names (store.Backend). The backends' errors name the store, its path or
// its URL without the password.
func openStore(ctx context.Context, cfg config.Config, opt store.Options) (store.Store, error) {
	kind, err := store.Backend(cfg.Store.Path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if kind == store.Postgres {
		db, err := postgres.Open(ctx, cfg.Store.Path, opt)
		if err != nil {
			return nil, err // not a nil *postgres.DB in a non-nil Store
		}
		return db, nil
	}
	db, err := sqlite.Open(ctx, cfg.Store.Path, opt)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// newClient is the CartelCRM client the configuration describes.
func newClient(cfg config.Config) (*crm.Client, error) {
	c, err := crm.NewClient(crm.ClientConfig{
		BaseURL:    cfg.CRM.BaseURL,
		APIKey:     string(cfg.CRM.APIKey.Reveal()),
		HMACSecret: cfg.CRM.HMACSecret.Reveal(),
		Timeout:    cfg.CRM.Timeout.D(),
		MaxConns:   max(64, cfg.CRM.Concurrency),
	})
	if err != nil {
		return nil, configError(err)
	}
	return c, nil
}

func retryPolicy(cfg config.Config) crm.RetryPolicy {
	return crm.RetryPolicy{
		MaxAttempts:      cfg.Retry.MaxAttempts,
		BaseDelay:        cfg.Retry.BaseDelay.D(),
		MaxDelay:         cfg.Retry.MaxDelay.D(),
		RateLimitedDelay: cfg.Retry.RateLimitedDelay.D(),
	}
}

// configError names the configuration keys, with their environment
// variables, behind the errors of crm and the sandbox about a missing
// setting: those packages know settings, not where leadwatch's users set
// them. Other errors pass unchanged.
func configError(err error) error {
	var missing []string
	for _, m := range []struct {
		err error
		key string
	}{
		{crm.ErrNoBaseURL, "crm.base_url"},
		{crm.ErrNoAPIKey, "crm.api_key"},
		{crm.ErrNoHMACSecret, "crm.hmac_secret"},
		{sandbox.ErrNoAPIKey, "crm.api_key"},
		{sandbox.ErrNoHMACSecret, "crm.hmac_secret"},
		{sandbox.ErrNoCallbackSecret, "callbacks.secrets"},
	} {
		if errors.Is(err, m.err) {
			missing = append(missing, m.key)
		}
	}
	if len(missing) == 0 {
		return err
	}
	return &config.ValidationError{Missing: missing}
}

// listenMetrics binds metrics.listen when it is set, so that a port
// already taken stops the command at start, with one line, before the
// listener and the sender run; (nil, nil, nil) when metrics are off.
func listenMetrics(cfg config.Config, db store.Store, log *slog.Logger) (*metrics.Server, *metrics.Metrics, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil, nil
	}
	m := metrics.New(db, log)
	if cfg.Forward.URL != "" {
		// The queue's depth is every instance's, read from the store; only
		// a forwarding process shows it, as only it counts deliveries.
		m.WatchForward(db)
	}
	srv, err := metrics.Listen(cfg.Metrics.Listen, m, log)
	if err != nil {
		return nil, nil, err
	}
	return srv, m, nil
}

// startMetrics hooks m into the services that run (the sender's attempts,
// the listener's refusals, commits and counters) and serves /metrics until
// ctx ends. The returned wait blocks until the server has stopped, so the
// port is free again when a command returns. With metrics off it does
// nothing.
func startMetrics(ctx context.Context, srv *metrics.Server, m *metrics.Metrics, svc *services, log *slog.Logger) (wait func()) {
	if srv == nil {
		return func() {}
	}
	if svc.disp != nil {
		svc.disp.SetObserver(m)
	}
	if svc.fwd != nil {
		svc.fwd.SetObserver(m)
	}
	if svc.rec != nil {
		svc.rec.SetObserver(m)
	}
	if svc.handler != nil {
		svc.handler.SetObserver(m)
		m.WatchListener(svc.handler.Stats)
	}
	if svc.intake != nil {
		if err := m.WatchIntake(svc.intake.Stats); err != nil {
			log.Warn("intake metrics not registered", "err", err)
		}
	}
	log.Info("metrics serving", "listen", srv.Addr(), "path", metrics.Path)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			// The callbacks and the sender matter more than their
			// metrics: say so and keep them running.
			log.Error("metrics listener stopped; the rest keeps running", "err", err)
		}
	}()
	return func() { <-done }
}
