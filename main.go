// Command leadwatch sends leads to CartelCRM through a persistent, signed
// outbox, receives CartelCRM's signed status callbacks, and shows both on a
// live terminal dashboard. See README.md and ../shared/DESIGN.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}

// env is the process's outside world, passed in so tests can run commands
// in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// errUsage marks a wrong flag or argument: usage is printed and the exit
// code is 2.
var errUsage = errors.New("usage")

// command is one subcommand.
type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "[--config FILE] [--db FILE] [--listen ADDR]", "headless listener + sender; logs to stderr", cmdServe},
		{"sandbox", "[--addr A] [--callback-url U] [--seed N] [faults]", "the fake CartelCRM on its own", cmdSandbox},
		{"submit", "[--wait] [--strict] FILE|-", "enqueue JSONL or CSV leads; --wait sends and shows progress", cmdSubmit},
		{"status", "EXTERNAL_ID", "signed status lookup at the CRM, JSON out", cmdStatus},
		{"tail", "[--json]", "follow verified callbacks (NDJSON with --json)", cmdTail},
		{"resubmit", "[--payload FILE] EXTERNAL_ID", "re-queue a lead (key rules: PROTOCOL.md §1)", cmdResubmit},
		{"export", "leads|callbacks [--format jsonl|csv]", "write the store out", cmdExport},
		{"version", "", "print the version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `leadwatch — a signed CartelCRM outbox, callback listener and dashboard

Usage:
  leadwatch [--config FILE] [--db FILE] [--listen ADDR]   dashboard: listener + sender + panes
  leadwatch --demo [--db FILE]                            dashboard against an embedded sandbox
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  leadwatch %-8s %-45s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nEvery command takes --help. Configuration: %s, then environment, then flags.\n", config.DefaultFile)
}

// run executes one command line and returns the exit code: 0 ok, 1 a
// runtime failure (one clear line on stderr), 2 a usage error.
func run(ctx context.Context, args []string, e env) int {
	var err error
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name := args[0]
		var cmd *command
		for _, c := range commands() {
			if c.name == name {
				cmd = &c
				break
			}
		}
		if cmd == nil {
			fmt.Fprintf(e.stderr, "leadwatch: unknown command %q\n\n", name)
			usage(e.stderr)
			return 2
		}
		err = cmd.run(ctx, e, args[1:])
	} else {
		err = cmdDashboard(ctx, e, args)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(e.stderr, "leadwatch: %v\n", err)
		return 1
	}
}

// flags is a FlagSet with the options most commands share.
type flags struct {
	*flag.FlagSet
	configPath string
	dbPath     string
}

func newFlags(e env, name, args, summary string, withStore bool) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.SetOutput(e.stderr)
	f.Usage = func() {
		if name == "leadwatch" {
			// The root command: its usage is the whole command list.
			usage(e.stderr)
			fmt.Fprintf(e.stderr, "\n%s\n\nFlags:\n", summary)
		} else {
			fmt.Fprintf(e.stderr, "Usage: leadwatch %s %s\n\n%s\n\nFlags:\n", name, args, summary)
		}
		f.PrintDefaults()
	}
	if withStore {
		f.StringVar(&f.configPath, "config", "", "config file (default ./"+config.DefaultFile+" when present)")
		f.StringVar(&f.dbPath, "db", "", "SQLite database (default store.path, LEADWATCH_DB)")
	}
	return f
}

// parse parses args; a bad flag becomes errUsage (the FlagSet has printed
// why and the usage).
func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// parseNoArgs parses args for a command that takes flags only.
func (f *flags) parseNoArgs(args []string) error {
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("unexpected argument %q", f.Arg(0))
	}
	return nil
}

// parseOneArg parses args for a command that takes exactly one argument,
// named what in the usage error.
func (f *flags) parseOneArg(args []string, what string) (string, error) {
	if err := f.parse(args); err != nil {
		return "", err
	}
	if f.NArg() != 1 {
		return "", f.usageErr("need one %s", what)
	}
	return f.Arg(0), nil
}

// loadForServices loads the configuration of a command that runs the
// sender and the listener: --listen overrides callbacks.listen, and every
// secret they need must be there.
func (f *flags) loadForServices(e env, listen string) (config.Config, error) {
	cfg, err := f.load(e)
	if err != nil {
		return cfg, err
	}
	if listen != "" {
		cfg.Callbacks.Listen = listen
	}
	return cfg, cfg.Validate(config.NeedSender | config.NeedListener)
}

// usageErr prints msg and the usage, and returns errUsage.
func (f *flags) usageErr(format string, a ...any) error {
	fmt.Fprintf(f.Output(), "leadwatch %s: %s\n", f.Name(), fmt.Sprintf(format, a...))
	f.Usage()
	return errUsage
}

// load reads the configuration chain and applies --db; warnings go to
// stderr.
func (f *flags) load(e env) (config.Config, error) {
	cfg, warnings, err := config.Load(f.configPath, e.getenv)
	if err != nil {
		return cfg, err
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "leadwatch: warning: %s\n", w)
	}
	if f.dbPath != "" {
		cfg.Store.Path = f.dbPath
	}
	return cfg, nil
}

// openDB loads the configuration and opens its database, which must
// exist: these commands act on a store, and a mistyped --db must be an
// error, not a new empty store. readOnly is for commands that only read.
func (f *flags) openDB(ctx context.Context, e env, readOnly bool) (*store.DB, error) {
	cfg, err := f.load(e)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Store.Path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if readOnly {
		return openStoreWith(ctx, cfg, store.Options{Logger: discardLog(), ReadOnly: true})
	}
	return openStore(ctx, cfg, discardLog())
}

// openStore opens the configured database.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*store.DB, error) {
	return openStoreWith(ctx, cfg, store.Options{Logger: log})
}

func openStoreWith(ctx context.Context, cfg config.Config, opt store.Options) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.Store.Path, opt)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Store.Path, err)
	}
	return db, nil
}

func cmdVersion(_ context.Context, e env, args []string) error {
	f := newFlags(e, "version", "", "Print the version.", false)
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
		fmt.Fprintf(e.stdout, "leadwatch %s (%s)\n", v, bi.GoVersion)
		return nil
	}
	fmt.Fprintf(e.stdout, "leadwatch %s\n", v)
	return nil
}
