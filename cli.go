package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/leadwatch/leadwatch/config"
)

// newRootCmd builds the command tree for one run. It is built per call,
// every command closing over e, so that nothing outlives a run and tests
// run commands in-process side by side.
func newRootCmd(e env) *cobra.Command {
	root := dashboardCmd(e)
	root.SilenceErrors = true // run prints the one line
	root.SilenceUsage = true  // and a hint, not the whole usage
	root.SuggestionsMinimumDistance = 2
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { writeHelp(c.OutOrStdout(), c) })
	root.SetUsageFunc(func(c *cobra.Command) error { writeHelp(c.OutOrStderr(), c); return nil })
	root.AddCommand(
		serveCmd(e),
		sandboxCmd(e),
		submitCmd(e),
		statusCmd(e),
		tailCmd(e),
		resubmitCmd(e),
		retryNowCmd(e),
		reconcileCmd(e),
		holdCmd(e),
		releaseCmd(e),
		cancelCmd(e),
		pauseCmd(e),
		resumeCmd(e),
		reportCmd(e),
		exportCmd(e),
		pruneCmd(e),
		backupCmd(e),
		forgetCmd(e),
		triggerCmd(e),
		forwardCmd(e),
		versionCmd(e),
	)
	// cobra would add its completion command at Execute; made now, it is
	// tuned with the others.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		c.DisableFlagsInUseLine = true // each Use spells its flags out
		if c.Name() == "completion" {
			tuneCompletion(c)
		}
	}
	return root
}

// tuneCompletion makes cobra's completion command read like the others,
// and makes a shell it does not know a usage error rather than its help
// and exit 0.
func tuneCompletion(c *cobra.Command) {
	c.Use = "completion bash|zsh|fish|powershell"
	c.Short = "print a shell completion script"
	c.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("no completion for %q: bash, zsh, fish or powershell", args[0])
		}
		return nil
	}
	c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

// flagError is pflag's error as a usage error. A single-dash long flag,
// which leadwatch took before it moved to pflag, gets a pointer to the
// two-dash form instead of pflag's "unknown shorthand flag: 'd' in -db".
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "unknown shorthand flag: "); ok {
		if _, arg, ok := strings.Cut(rest, " in -"); ok {
			name, _, _ := strings.Cut(arg, "=")
			if c.Flags().Lookup(name) != nil {
				msg = fmt.Sprintf("unknown flag -%s: long flags take two dashes, --%s", name, name)
			}
		}
	}
	return usageError{msg}
}

// usageError is a wrong command, flag or argument: run prints it with a
// pointer to --help and exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// failure is an error a command's work returned: run prints it and exits
// 1. Errors cobra raises itself (an unknown flag, a bad argument count)
// are not failures, so they are usage errors without each being marked.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

// action adapts a command's work to cobra: what it returns is a failure
// unless it is a usageError.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return failure{err}
	}
}

// noArgs is the Args of a command that takes flags only.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// oneArg is the Args of a command that takes exactly one argument, named
// what in the error.
func oneArg(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageErrorf("need one %s", what)
		}
		return nil
	}
}

// noCommand is the root's Args: the dashboard takes no argument, so one is
// a mistyped command.
func noCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		return usageErrorf("unknown command %q (did you mean %q?)", args[0], s[0])
	}
	return usageErrorf("unknown command %q", args[0])
}

// storeFlags are the --config and --db flags of the commands that read the
// configuration.
type storeFlags struct {
	configPath string
	dbPath     string
	forwardTo  string // --forward-to, on the commands that forward
}

func (o *storeFlags) addConfig(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "read the configuration from `FILE` (default ./"+config.DefaultFile+" when present)")
}

// addForwardTo adds --forward-to, as stripe listen has it: the app's URL
// for this run, over forward.url.
func (o *storeFlags) addForwardTo(fs *pflag.FlagSet) {
	fs.StringVar(&o.forwardTo, "forward-to", "", "forward every stored callback, signed, to the app at `URL` (default forward.url;\n"+
		"needs forward.secret or LEADWATCH_FORWARD_SECRET)")
}

func (o *storeFlags) addDB(fs *pflag.FlagSet) {
	fs.StringVar(&o.dbPath, "db", "", "the database: a SQLite `FILE`, or a postgres:// URL (default store.path, LEADWATCH_DB)")
}

// annEnv is the annotation that lists, space-separated, the environment
// variables a command reads, for its help.
const annEnv = "leadwatch/env"

// readsEnv records in c's help which environment variables it reads
// (names, space-separated).
func readsEnv(c *cobra.Command, names string) *cobra.Command {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[annEnv] = names
	return c
}

// allEnv is every variable of the configuration, for the commands that
// read them all.
func allEnv() string {
	var names []string
	for _, v := range config.Environment() {
		names = append(names, v.Name)
	}
	return strings.Join(names, " ")
}

// rootSynopsis is the root's usage: its two forms, then the commands.
const rootSynopsis = `  leadwatch [--config FILE] [--db FILE|URL] [--listen ADDR]   the dashboard: listener + sender + panes
  leadwatch --no-listen --no-send [--db FILE|URL]             attach: watch a store other instances feed
  leadwatch --demo [--db FILE]                                the dashboard against an embedded sandbox CRM
  leadwatch COMMAND [ARGS] [FLAGS]
`

// writeHelp writes c's help: what it does, its usage, its commands, its
// flags and the environment it reads. It stands in for cobra's template so
// that the columns line up and no section is empty.
func writeHelp(w io.Writer, c *cobra.Command) {
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n", strings.TrimSpace(desc))
	if c.HasParent() {
		fmt.Fprintf(w, "  %s\n", c.UseLine())
	} else {
		fmt.Fprint(w, rootSynopsis)
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprint(w, "\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(tw, "  %s\t%s\n", sub.Name(), sub.Short)
			}
		}
		tw.Flush()
	}
	if fs := c.LocalFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
	if fs := c.InheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nGlobal flags:\n%s", fs.FlagUsages())
	}
	if names := strings.Fields(c.Annotations[annEnv]); len(names) > 0 {
		fmt.Fprint(w, "\nEnvironment:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, v := range config.Environment() {
			for _, n := range names {
				if n == v.Name {
					fmt.Fprintf(tw, "  %s\t%s (%s)\n", v.Name, v.Help, v.Key)
				}
			}
		}
		tw.Flush()
	}
	if !c.HasParent() {
		fmt.Fprintf(w, "\nConfiguration comes from --config FILE (default ./%s when present), then the\n"+
			"environment, then flags. Run 'leadwatch COMMAND --help' for a command's flags.\n", config.DefaultFile)
	}
}
