package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

func serveCmd(e env) *cobra.Command {
	var o storeFlags
	var listen, logLevel string
	var logJSON bool
	c := &cobra.Command{
		Use:   "serve [--config FILE] [--db FILE] [--listen ADDR] [--log-level LEVEL] [--log-json]",
		Short: "headless listener + sender; logs to stderr",
		Long: "Run the callback listener and the sender without the dashboard. Logs go to stderr.\n" +
			"warn shows each lead that ends failed, and why, and every store or listener problem\n" +
			"(a repeated one once per interval, with a count); info adds start and stop; debug\n" +
			"adds each attempt.\n\n" +
			"SIGTERM drains first: /healthz answers 503 \"draining\" for callbacks.drain (5s) while\n" +
			"callbacks are still served, so a balancer takes the instance out; then it stops\n" +
			"accepting and finishes what is in flight. SIGINT skips the drain. SIGHUP reloads the\n" +
			"callback secrets, the CRM's URL and secrets and the TLS files (docs/deploy.md).",
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(logLevel)
			if err != nil {
				return err
			}
			return cmdServe(cmd.Context(), e, o, listen, level, logJSON)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	o.addForwardTo(c.Flags())
	c.Flags().StringVar(&listen, "listen", "", "listen for callbacks on `ADDR` (default callbacks.listen)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "log at `LEVEL` and above: debug, info or warn")
	c.Flags().BoolVar(&logJSON, "log-json", false, "log JSON instead of text")
	return readsEnv(c, allEnv())
}

// parseLogLevel is --log-level's value as a slog level; anything but
// debug, info or warn is a usage error.
func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	}
	return 0, usageErrorf("--log-level is debug, info or warn, not %q", s)
}

// cmdServe runs the listener and the sender until ctx ends (SIGTERM or
// SIGINT), then stops gracefully. On SIGTERM it first drains for
// callbacks.drain (/healthz answers 503 "draining" while callbacks are
// still served, so a balancer takes the instance out on its checks); then,
// on any stop, it stops accepting and finishes what is in flight (Run).
// SIGHUP reloads the secrets and the CRM settings (reload).
func cmdServe(ctx context.Context, e env, o storeFlags, listen string, level slog.Level, logJSON bool) error {
	cfg, err := o.loadForServices(e, listen)
	if err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(e.stderr, opts)
	if logJSON {
		h = slog.NewJSONHandler(e.stderr, opts)
	}
	log := slog.New(h)
	db, err := openStore(ctx, cfg, store.Options{Logger: log})
	if err != nil {
		return tooNewHint(err)
	}
	defer db.Close()
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	sender := newSwapSender(client)
	msrv, m, err := listenMetrics(cfg, db, log)
	if err != nil {
		return err
	}
	svc, err := newServices(cfg, db, log, serviceOptions{send: true, listen: true, sender: sender})
	if err != nil {
		if msrv != nil {
			msrv.Close()
		}
		return err
	}
	// SIGHUP would otherwise end the process; from here on it reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("leadwatch serving", "listen", svc.ListenAddr(), "scheme", svc.Scheme(), "path", cfg.Callbacks.Path,
		"crm", crm.RedactURL(cfg.CRM.BaseURL), "db", store.RedactLocation(cfg.Store.Path), "owner", svc.disp.Owner(),
		"drain", cfg.Callbacks.Drain.D().String(), "intake", svc.IntakeState(), "forward", svc.ForwardURL())
	// The services stop when stopRun says, not when ctx ends: between the
	// two lies the drain.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	waitMetrics := startMetrics(runCtx, msrv, m, svc, log)
	defer func() { stopRun(); waitMetrics() }()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()

	stopping := ctx.Done()
	var drained <-chan time.Time
	for {
		select {
		case err = <-done:
			log.Info("leadwatch stopped", "attempts_recorded", svc.disp.Sent())
			return err
		case <-hup:
			reload(e, o, listen, cfg.Store.Path, svc, sender, log)
		case <-stopping:
			stopping = nil
			d := cfg.Callbacks.Drain.D()
			if d <= 0 || !terminated(ctx) {
				stopRun()
				continue
			}
			svc.Drain()
			log.Info("draining: /healthz answers 503 while callbacks are still served", "for", d.String())
			drained = time.After(d)
		case <-drained:
			drained = nil
			log.Info("drained: no new connections; finishing what is in flight")
			stopRun()
		}
	}
}

// terminated reports whether ctx ended on SIGTERM, what systemd and
// orchestrators send to stop a service behind a balancer: only then does
// serve drain. Ctrl-C (SIGINT) and a cancelled context (tests, the demo)
// stop at once, still finishing what is in flight. main's
// signal.NotifyContext cancels with a cause that names the signal.
func terminated(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return cause != nil && strings.HasPrefix(cause.Error(), syscall.SIGTERM.String())
}

// reload reads the configuration file and the environment again and
// applies what may change without a restart (services.Reload). A bad
// configuration is logged and the settings in use stay.
func reload(e env, o storeFlags, listen, dbPath string, svc *services, sender *swapSender, log *slog.Logger) {
	cfg, err := o.loadForServices(e, listen)
	if err == nil {
		err = svc.Reload(cfg, sender)
	}
	if err != nil {
		log.Error("reload failed; the settings in use stay", "err", err)
		return
	}
	// The environment wins over the file, and a running process's
	// environment is the one it started with: say so, or a rotation in the
	// file would look applied.
	var fixed []string
	for _, v := range config.Environment() {
		if reloadable[v.Key] && e.getenv(v.Name) != "" {
			fixed = append(fixed, v.Name)
		}
	}
	if len(fixed) > 0 {
		log.Warn("set in the environment, which wins over the config file and cannot change without a restart",
			"vars", strings.Join(fixed, " "))
	}
	if cfg.Store.Path != dbPath {
		log.Warn("store.path changed: a new store needs a restart; the reload applied the rest")
	}
	log.Info("reloaded: callback secrets and CRM settings", "callback_secrets", len(cfg.Callbacks.Secrets),
		"crm", crm.RedactURL(cfg.CRM.BaseURL))
}

// reloadable are the keys a SIGHUP applies (services.Reload).
var reloadable = map[string]bool{
	"crm.base_url": true, "crm.api_key": true, "crm.hmac_secret": true, "callbacks.secrets": true,
}

// tooNewHint makes the error of a database migrated by a newer leadwatch
// say what to do: during a rolling upgrade an old instance meets the new
// schema and must stop, not write to tables it does not know.
func tooNewHint(err error) error {
	if !errors.Is(err, store.ErrTooNew) {
		return err
	}
	return fmt.Errorf("stopping: this leadwatch (%s) is older than its database; upgrade leadwatch on this host before starting it again (rolling upgrades: docs/deploy.md): %w", version, err)
}
