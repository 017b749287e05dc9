package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/ui"
)

// dashboardCmd is the root command: with no command, leadwatch runs the
// dashboard.
func dashboardCmd(e env) *cobra.Command {
	var o storeFlags
	var demo bool
	var d dashboardFlags
	c := &cobra.Command{
		Use:   "leadwatch",
		Short: "a signed CartelCRM outbox, callback listener and dashboard",
		Long: "leadwatch — a signed CartelCRM outbox, callback listener and dashboard\n\n" +
			"With no command it runs the callback listener and the sender with the live dashboard.\n" +
			"--no-listen --no-send attaches to a store that 'leadwatch serve' instances feed\n" +
			"(a PostgreSQL URL from another machine, say): it watches and starts neither.\n" +
			"--demo runs it all against an embedded sandbox CRM: no config, no secrets, no network.",
		Args: noCommand,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if demo {
				if d.noListen || d.noSend {
					return usageErrorf("--demo runs its own listener and sender: drop --no-listen and --no-send")
				}
				return runDemo(cmd.Context(), e, o.dbPath, d.logPath)
			}
			return cmdDashboard(cmd.Context(), e, o, d)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	o.addForwardTo(c.Flags())
	c.Flags().BoolVar(&demo, "demo", false, "run against an embedded sandbox with a synthetic campaign")
	c.Flags().StringVar(&d.listen, "listen", "", "listen for callbacks on `ADDR` (default callbacks.listen)")
	c.Flags().BoolVar(&d.noListen, "no-listen", false, "start no callback listener (another instance receives them)")
	c.Flags().BoolVar(&d.noSend, "no-send", false, "start no sender: leads stay queued for another instance")
	c.Flags().StringVar(&d.logPath, "log", "", "log to `FILE` (default leadwatch.log beside a SQLite file; for a\n"+
		"PostgreSQL URL $XDG_STATE_HOME/leadwatch/leadwatch.log, else ~/.local/state/leadwatch/)")
	return readsEnv(c, allEnv())
}

// dashboardFlags are the dashboard's own flags.
type dashboardFlags struct {
	listen, logPath  string
	noListen, noSend bool // attach mode: watch a store other instances feed
}

func cmdDashboard(ctx context.Context, e env, o storeFlags, d dashboardFlags) error {
	cfg, err := o.loadDashboard(e, d)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) && slices.Contains(ve.Missing, "crm.base_url") {
			// Not even the CRM's address: most likely a first run.
			return fmt.Errorf("%w; to look around without a CRM, run 'leadwatch --demo'", err)
		}
		return err
	}
	log, closeLog, err := openLog(e, d.logPath, cfg.Store.Path)
	if err != nil {
		return err
	}
	defer closeLog()
	db, err := openStore(ctx, cfg, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()
	// A metrics port already taken stops the dashboard before it owns the
	// terminal, where the one-line error can still be read.
	msrv, m, err := listenMetrics(cfg, db, log)
	if err != nil {
		return err
	}
	svc, err := newServices(cfg, db, log, serviceOptions{send: !d.noSend, listen: !d.noListen, tolerateBindError: true})
	if err != nil {
		if msrv != nil {
			msrv.Close()
		}
		return err
	}
	log.Info("leadwatch dashboard", "db", db.Location(), "listen", svc.ListenAddr(),
		"sending", !d.noSend, "crm", crm.RedactURL(cfg.CRM.BaseURL))
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	waitMetrics := startMetrics(metricsCtx, msrv, m, svc, log)
	defer func() { stopMetrics(); waitMetrics() }()
	return runDashboard(ctx, e, db, svc, cfg.CRM.BaseURL, cfg.Retry.MaxAttempts, log)
}

// loadDashboard loads the dashboard's configuration and checks what the
// services it starts need: all of it normally, the sender's settings only
// without a listener, the store only when attached.
func (o storeFlags) loadDashboard(e env, d dashboardFlags) (config.Config, error) {
	cfg, err := o.load(e)
	if err != nil {
		return cfg, err
	}
	if d.listen != "" {
		cfg.Callbacks.Listen = d.listen
	}
	need := config.NeedForward
	if !d.noSend {
		need |= config.NeedSender
	}
	if !d.noListen {
		need |= config.NeedListener
	}
	return cfg, cfg.Validate(need)
}

// openLog opens the dashboard's log file: the dashboard owns the terminal,
// so nothing may be logged to it. Without --log it is leadwatch.log beside
// a SQLite database; a PostgreSQL store has no directory of its own, so its
// log goes to stateLogPath.
func openLog(e env, path, location string) (*slog.Logger, func(), error) {
	if path == "" {
		kind, err := store.Backend(location)
		if err != nil {
			return nil, nil, fmt.Errorf("open store: %w", err)
		}
		if kind == store.Postgres {
			if path, err = stateLogPath(e); err != nil {
				return nil, nil, err
			}
		} else {
			path = filepath.Join(filepath.Dir(location), "leadwatch.log")
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w (choose another with --log FILE)", err)
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

// stateLogPath is the dashboard's log for a store that is not a file:
// $XDG_STATE_HOME/leadwatch/leadwatch.log, ~/.local/state/leadwatch/ when
// XDG_STATE_HOME is unset (the XDG base directory rule), the directory
// created 0700.
func stateLogPath(e env) (string, error) {
	dir := e.getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := e.getenv("HOME")
		if home == "" {
			var err error
			if home, err = os.UserHomeDir(); err != nil {
				return "", fmt.Errorf("open log: no home directory for ~/.local/state (set XDG_STATE_HOME or pass --log FILE): %w", err)
			}
		}
		dir = filepath.Join(home, ".local", "state")
	}
	dir = filepath.Join(dir, "leadwatch")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("open log: %w (set XDG_STATE_HOME or pass --log FILE)", err)
	}
	return filepath.Join(dir, "leadwatch.log"), nil
}

// runDashboard runs the services beside the UI until the user quits or
// ctx ends, then shuts the services down cleanly.
func runDashboard(ctx context.Context, e env, db store.Store, svc *services, baseURL string, maxAttempts int, log *slog.Logger) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(runCtx) }()

	// Whether the store can commit (its file removed, the disk full) the
	// dashboard reads with each refresh (ui.Source.Health); Status is the
	// services' own state only. Attached (--no-send), there is no
	// dispatcher to wake, pause or ask.
	notify, paused := func() {}, func() bool { return false }
	if svc.disp != nil {
		notify, paused = svc.disp.Notify, svc.disp.Paused
	}
	// The listener's counters become ages and rates here, sampled with
	// each Status call (once a second).
	// Attached (--no-listen), another process receives: what the store
	// holds of its callbacks and refusals stands in, read every 2 s.
	var (
		watch  *listenerWatch
		stored atomic.Pointer[ui.ListenerHealth]
	)
	if svc.handler != nil {
		watch = &listenerWatch{stats: svc.handler.Stats, since: time.Now()}
	} else {
		go watchStoredCallbacks(runCtx, db, &stored, 2*time.Second)
	}
	cfg := ui.Config{
		Source:  dashboardSource{Store: db, notify: notify},
		Changes: db.Watch(runCtx),
		Status: func() ui.Status {
			err := svc.ListenErr()
			var crmHealth *crm.Health
			if svc.disp != nil {
				h := svc.disp.Health()
				crmHealth = &h
			}
			return ui.Status{
				CRM:          crmHealth,
				Listener:     cmp.Or(watch.sample(time.Now()), stored.Load()),
				ListenerAddr: svc.ListenAddr(),
				ListenerErr:  err,
				Healthy:      err == nil && svc.ListenAddr() != "",
				BaseURL:      baseURL,
				Paused:       paused(),
				NoSender:     svc.disp == nil,
				NoListener:   svc.handler == nil,
				MaxAttempts:  maxAttempts,
			}
		},
	}
	if svc.disp != nil {
		cfg.Pause = svc.disp.SetPaused // nil hides pausing
	}
	model := ui.New(cfg)
	// Cell-motion mouse: the wheel scrolls and a click selects; a
	// terminal's own selection still works with shift held.
	opts := []tea.ProgramOption{tea.WithAltScreen(), tea.WithMouseCellMotion(), tea.WithContext(runCtx), tea.WithOutput(e.stdout)}
	if e.stdin != nil {
		opts = append(opts, tea.WithInput(e.stdin))
	}
	_, uiErr := tea.NewProgram(model, opts...).Run()
	cancel()
	svcErr := <-svcDone
	log.Info("dashboard closed", "ui_err", uiErr, "services_err", svcErr)
	if uiErr != nil && !errors.Is(uiErr, tea.ErrProgramKilled) && !errors.Is(uiErr, context.Canceled) {
		return fmt.Errorf("dashboard: %w", uiErr)
	}
	return svcErr
}

// dashboardSource is the store as the UI sees it, waking the dispatcher
// when the UI re-queues a lead so it is sent at once.
type dashboardSource struct {
	store.Store
	notify func()
}

// Resubmit re-queues the lead and wakes the dispatcher.
func (s dashboardSource) Resubmit(ctx context.Context, externalID string, payload []byte) (crm.Resubmission, error) {
	r, err := s.Store.Resubmit(ctx, externalID, payload)
	if err == nil {
		s.notify()
	}
	return r, err
}

// Act applies an operator action and wakes the dispatcher, so a lead
// made due (send now, release) goes out at once.
func (s dashboardSource) Act(ctx context.Context, a crm.Action, externalIDs []string) ([]crm.ActionResult, error) {
	r, err := s.Store.Act(ctx, a, externalIDs)
	if err == nil {
		s.notify()
	}
	return r, err
}

// RetryAllNow makes every waiting lead due and wakes the dispatcher.
func (s dashboardSource) RetryAllNow(ctx context.Context) (int, error) {
	n, err := s.Store.RetryAllNow(ctx)
	if err == nil && n > 0 {
		s.notify()
	}
	return n, err
}

// Resume lifts a pause and wakes the dispatcher for what it released.
func (s dashboardSource) Resume(ctx context.Context, p crm.Pause) (int, error) {
	n, err := s.Store.Resume(ctx, p)
	if err == nil && n > 0 {
		s.notify()
	}
	return n, err
}

// listenerWatch turns the callback handler's counters into the
// dashboard's ListenerHealth: when the verified count last grew, and
// how many refusals the last minute added. Safe for concurrent use.
type listenerWatch struct {
	stats func() callbacks.Stats
	since time.Time

	mu           sync.Mutex
	lastVerified time.Time
	verified     uint64
	refused      []refusalSample // oldest first, a minute's worth
}

// refusalSample is the refused counter at one moment.
type refusalSample struct {
	at time.Time
	n  uint64
}

// sample reads the counters at now; nil for a nil watch (no listener).
func (w *listenerWatch) sample(now time.Time) *ui.ListenerHealth {
	if w == nil {
		return nil
	}
	s := w.stats()
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.Verified > w.verified {
		w.verified, w.lastVerified = s.Verified, now
	}
	w.refused = append(w.refused, refusalSample{now, s.Refused})
	// Keep the newest sample at least a minute old as the baseline.
	for len(w.refused) > 1 && now.Sub(w.refused[1].at) >= time.Minute {
		w.refused = w.refused[1:]
	}
	return &ui.ListenerHealth{
		Since:        w.since,
		LastVerified: w.lastVerified,
		RefusedMin:   int(s.Refused - w.refused[0].n),
	}
}

// storedRefusalsCap bounds the refusals read to count the last minute's:
// more show as the cap.
const storedRefusalsCap = 500

// watchStoredCallbacks puts in into what the store says of the callback
// traffic every interval until ctx ends: the newest stored callback and
// the refusals of the last minute (at most storedRefusalsCap). Both are
// newest-first reads of a few rows.
func watchStoredCallbacks(ctx context.Context, db store.Store, into *atomic.Pointer[ui.ListenerHealth], interval time.Duration) {
	since := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		h := ui.ListenerHealth{Since: since}
		if cbs, err := db.Callbacks(qctx, crm.EventQuery{Limit: 1}); err == nil && len(cbs) > 0 {
			h.LastVerified = cbs[0].ReceivedAt
		}
		if refs, err := db.Refusals(qctx, crm.EventQuery{Limit: storedRefusalsCap}); err == nil {
			from := time.Now().Add(-time.Minute)
			for _, r := range refs {
				if r.At.After(from) {
					h.RefusedMin++
				}
			}
		}
		cancel()
		into.Store(&h)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
