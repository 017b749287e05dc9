// Command leadwatch sends leads to CartelCRM through a persistent, signed
// outbox, receives CartelCRM's signed status callbacks, and shows both on a
// live terminal dashboard. See README.md, docs/architecture.md and
// docs/protocol.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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

// run executes one command line and returns the exit code: 0 ok (help
// included), 1 a runtime failure, 2 a wrong command, flag or argument.
// Either failure is one line on stderr; a usage error adds a hint where
// the usage is.
func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var f failure
	switch {
	case err == nil:
		return 0
	case errors.As(err, &f):
		fmt.Fprintf(e.stderr, "leadwatch: %v\n", f.err)
		return 1
	default:
		fmt.Fprintf(e.stderr, "leadwatch: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return 2
	}
}
