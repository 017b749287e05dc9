package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/store"
)

// parseAge reads --older-than: a Go duration ("720h", "90m"), or whole
// days ("30d"), optionally followed by a Go duration ("1d12h"). Operators
// think of retention in days, and time.ParseDuration stops at hours. It
// must be positive: "older than 0" would mean everything.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (30d, 72h, 1d12h)", s)
		}
		d, rest = time.Duration(days)*24*time.Hour, s[i+1:]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil || more < 0 {
			return 0, fmt.Errorf("%q is not a duration (30d, 72h, 1d12h)", s)
		}
		d += more
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (30d, 72h, 1d12h)", s)
	}
	return d, nil
}

func pruneCmd(e env) *cobra.Command {
	var o storeFlags
	var olderThan string
	c := &cobra.Command{
		Use:   "prune --older-than D",
		Short: "drop raw bodies, old attempts and refusals older than D",
		Long: "Keep the store bounded: drop what only explains the past and is older than D\n" +
			"(30d, 72h, 1d12h): callbacks' raw bodies, the attempts of leads in a final state,\n" +
			"and refusals. Every lead and every callback stays, so the counts do not move and a\n" +
			"replayed old callback is still recognised. Safe while leadwatch runs; the file\n" +
			"does not shrink (SQLite reuses the pages), 'leadwatch backup' writes a compact copy.",
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if olderThan == "" {
				return usageErrorf("need --older-than D (e.g. 30d)")
			}
			age, err := parseAge(olderThan)
			if err != nil {
				return usageErrorf("--older-than: %v", err)
			}
			return cmdPrune(cmd.Context(), e, o, age)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().StringVar(&olderThan, "older-than", "", "drop what is older than `D`: days (30d) or a duration (72h)")
	return readsEnv(c, storeEnv)
}

func cmdPrune(ctx context.Context, e env, o storeFlags, age time.Duration) error {
	db, err := o.openDB(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	before := time.Now().Add(-age)
	st, err := db.Prune(ctx, before)
	if err != nil {
		// The chunks done before the error stay done: say what they were.
		if st != (store.PruneStats{}) {
			fmt.Fprintf(e.stdout, "pruned before the error: %s\n", pruned(st))
		}
		return fmt.Errorf("prune: %w", err)
	}
	fmt.Fprintf(e.stdout, "pruned what is older than %s: %s\n", before.Local().Format(time.DateTime), pruned(st))
	return nil
}

// pruned says what Prune dropped.
func pruned(st store.PruneStats) string {
	return fmt.Sprintf("%d raw callback bodies, %d attempts, %d refusals (%s)",
		st.RawBodies, st.Attempts, st.Refusals, byteSize(st.Bytes))
}

func backupCmd(e env) *cobra.Command {
	var o storeFlags
	c := &cobra.Command{
		Use:   "backup FILE",
		Short: "write a consistent copy of the store to FILE",
		Long: "Write a consistent, compact copy of the store to FILE, which must not exist. Safe\n" +
			"while leadwatch runs: the copy is one snapshot, and writers go on meanwhile. The copy\n" +
			"holds the same personal data as the store and is created readable by you only.\n" +
			"For a SQLite store only: back up a PostgreSQL store with pg_dump.",
		Args: oneArg("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdBackup(cmd.Context(), e, o, args[0])
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	return readsEnv(c, storeEnv)
}

func cmdBackup(ctx context.Context, e env, o storeFlags, path string) error {
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	if kind, err := store.Backend(cfg.Store.Path); err == nil && kind == store.Postgres {
		return fmt.Errorf("backup copies SQLite stores only; back up the PostgreSQL store %s with pg_dump, "+
			"e.g. pg_dump --format=custom --file=%s \"$DATABASE_URL\"", store.RedactLocation(cfg.Store.Path), path)
	}
	db, err := o.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, path); err != nil {
		return err // it names the target already
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(e.stdout, "backed up to %s (%s)\n", path, byteSize(fi.Size()))
	return nil
}

func forgetCmd(e env) *cobra.Command {
	var o storeFlags
	c := &cobra.Command{
		Use:   "forget EXTERNAL_ID",
		Short: "erase a person's data from the store, keeping counts",
		Long: "Erase one lead's personal data: its payload (phone, email, every field), its\n" +
			"attempts' response bodies and the raw bodies of callbacks and refusals that name it.\n" +
			"The lead's row, state, CRM id and the callbacks' dedup keys stay, so counts stay\n" +
			"right and a replayed callback is still recognised; a lead still to be sent is\n" +
			"withdrawn (failed). It does not ask: there is no undo, and backups keep their copy.",
		Args: oneArg("EXTERNAL_ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdForget(cmd.Context(), e, o, args[0])
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	return readsEnv(c, storeEnv)
}

func cmdForget(ctx context.Context, e env, o storeFlags, id string) error {
	db, err := o.openDB(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.Forget(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "forgot %s: payload erased; cleaned %d attempt(s), %d callback(s), %d refusal(s)\n",
		id, st.Attempts, st.Callbacks, st.Refusals)
	if st.Withdrawn {
		fmt.Fprintf(e.stdout, "%s was still to be sent: it is now failed and will not be sent\n", id)
	}
	// Checkpointed is SQLite's WAL; PostgreSQL's old row versions are
	// vacuum's business, not something forget can wait for.
	if kind, _ := store.Backend(db.Location()); kind == store.SQLite && !st.Checkpointed {
		fmt.Fprintln(e.stderr, "leadwatch forget: warning: another process holds old pages of the log; "+
			"the erased bytes leave the files at its next checkpoint")
	}
	return nil
}

// byteSize is n bytes for a person: 512 B, 3.4 KiB, 12.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
