package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

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
	var listen, logPath string
	c := &cobra.Command{
		Use:   "leadwatch",
		Short: "a signed CartelCRM outbox, callback listener and dashboard",
		Long: "leadwatch — a signed CartelCRM outbox, callback listener and dashboard\n\n" +
			"With no command it runs the callback listener and the sender with the live dashboard.\n" +
			"--demo runs it all against an embedded sandbox CRM: no config, no secrets, no network.",
		Args: noCommand,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if demo {
				return runDemo(cmd.Context(), e, o.dbPath, logPath)
			}
			return cmdDashboard(cmd.Context(), e, o, listen, logPath)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().BoolVar(&demo, "demo", false, "run against an embedded sandbox with a synthetic campaign")
	c.Flags().StringVar(&listen, "listen", "", "listen for callbacks on `ADDR` (default callbacks.listen)")
	c.Flags().StringVar(&logPath, "log", "", "log to `FILE` (default leadwatch.log beside the database)")
	return readsEnv(c, allEnv())
}

func cmdDashboard(ctx context.Context, e env, o storeFlags, listen, logPath string) error {
	cfg, err := o.loadForServices(e, listen)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) && slices.Contains(ve.Missing, "crm.base_url") {
			// Not even the CRM's address: most likely a first run.
			return fmt.Errorf("%w; to look around without a CRM, run 'leadwatch --demo'", err)
		}
		return err
	}
	log, closeLog, err := openLog(logPath, cfg.Store.Path)
	if err != nil {
		return err
	}
	defer closeLog()
	db, err := openStore(ctx, cfg, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := newServices(cfg, db, log, serviceOptions{send: true, listen: true, tolerateBindError: true})
	if err != nil {
		return err
	}
	return runDashboard(ctx, e, db, svc, cfg.CRM.BaseURL, cfg.Retry.MaxAttempts, log)
}

// openLog opens the dashboard's log file: the dashboard owns the terminal,
// so nothing may be logged to it.
func openLog(path, dbPath string) (*slog.Logger, func(), error) {
	if path == "" {
		path = filepath.Join(filepath.Dir(dbPath), "leadwatch.log")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
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
	// services' own state only.
	model := ui.New(ui.Config{
		Source:  dashboardSource{Store: db, notify: svc.disp.Notify},
		Changes: db.Watch(runCtx),
		Status: func() ui.Status {
			err := svc.ListenErr()
			return ui.Status{
				ListenerAddr: svc.ListenAddr(),
				ListenerErr:  err,
				Healthy:      err == nil && svc.ListenAddr() != "",
				BaseURL:      baseURL,
				Paused:       svc.disp.Paused(),
				MaxAttempts:  maxAttempts,
			}
		},
		Pause: svc.disp.SetPaused,
	})
	opts := []tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(runCtx), tea.WithOutput(e.stdout)}
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
