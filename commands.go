package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/internal/leadfile"
	"github.com/leadwatch/leadwatch/store"
)

// The environment the commands read, space-separated, for their help.
const (
	senderEnv = "CARTELCRM_BASE_URL CARTELCRM_API_KEY CARTELCRM_HMAC_SECRET"
	storeEnv  = "LEADWATCH_DB"
)

func sandboxCmd(e env) *cobra.Command {
	var o storeFlags
	var addr string
	var sc sandbox.Config
	c := &cobra.Command{
		Use:   "sandbox [--addr A] [--callback-url U] [--seed N] [faults]",
		Short: "the fake CartelCRM on its own",
		Long: "Run the fake CartelCRM. It checks requests with the same API key and HMAC secret as\n" +
			"leadwatch sends them (environment or config file), and signs callbacks with the\n" +
			"first callback secret.",
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			return cmdSandbox(cmd.Context(), e, o, addr, sc)
		}),
	}
	o.addConfig(c.Flags())
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8081", "listen on `ADDR`")
	sc.RegisterFlags(c.Flags())
	return readsEnv(c, "CARTELCRM_API_KEY CARTELCRM_HMAC_SECRET CALLBACK_SECRET")
}

func cmdSandbox(ctx context.Context, e env, o storeFlags, addr string, sc sandbox.Config) error {
	// A wrong flag is a usage error whatever the environment.
	if err := sc.ValidateFaults(); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	sc.APIKey = string(cfg.CRM.APIKey.Reveal())
	sc.HMACSecret = cfg.CRM.HMACSecret.Reveal()
	if sc.CallbackURL != "" && len(cfg.Callbacks.Secrets) > 0 {
		sc.CallbackSecret = cfg.Callbacks.Secrets[0].Reveal()
	}
	if err := sc.Validate(); err != nil {
		return configError(err)
	}
	sc.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	srv, err := sandbox.Start(sc, addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	fmt.Fprintf(e.stdout, "sandbox listening on %s\n", srv.URL)
	<-ctx.Done()
	return srv.Close()
}

func submitCmd(e env) *cobra.Command {
	var o storeFlags
	var wait, strict bool
	c := &cobra.Command{
		Use:   "submit [--wait] [--strict] FILE|-",
		Short: "enqueue JSONL or CSV leads; --wait sends and shows progress",
		Long: "Enqueue leads from FILE (- for standard input): JSONL, one object a line, or CSV\n" +
			"with a header row. A bad line is reported by number, in line order; the good ones\n" +
			"are still enqueued. JSONL on standard input is enqueued line by line as it arrives\n" +
			"(a pipe from a tracker), not at its end. --wait also needs the CRM's settings; after\n" +
			"its summary it exits 1 when any lead ended neither accepted nor duplicate (rejected,\n" +
			"invalid, failed).",
		Args: oneArg("FILE (or - for stdin)"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdSubmit(cmd.Context(), e, o, args[0], wait, strict)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().BoolVar(&wait, "wait", false, "send the leads now and show progress until all are final")
	c.Flags().BoolVar(&strict, "strict", false, "refuse phones that are not valid E.164 (default: send them, marked)")
	return readsEnv(c, storeEnv+" "+senderEnv)
}

func cmdSubmit(ctx context.Context, e env, o storeFlags, name string, wait, strict bool) error {
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	if wait {
		if err := cfg.Validate(config.NeedSender); err != nil {
			return err
		}
	}
	if name == "-" {
		// Standard input may be a tracker's pipe: each line is enqueued
		// as it arrives (submit_stream.go).
		return cmdSubmitStream(ctx, e, cfg, wait, strict)
	}
	file, err := os.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	leads, readErr := leadfile.Read(file)
	if readErr != nil && len(leads) == 0 {
		return fmt.Errorf("read leads: %w", readErr)
	}
	db, err := openStore(ctx, cfg, store.Options{Logger: discardLog()})
	if err != nil {
		return err
	}
	defer db.Close()

	// The store checks each lead (crm.CheckLead) as it enqueues it; what
	// could not even be framed is reported without going there.
	var payloads [][]byte
	for _, l := range leads {
		if l.Err == nil {
			payloads = append(payloads, l.Payload)
		}
	}
	var stored []crm.Lead
	var errs []error
	if len(payloads) > 0 {
		stored, errs, err = db.EnqueueBatch(ctx, payloads, store.EnqueueOptions{Strict: strict})
		if err != nil {
			return fmt.Errorf("enqueue: %w (nothing was stored)", err)
		}
	}
	// Report in line order, whichever step refused a line.
	var ids []string
	bad, j := 0, 0
	for _, l := range leads {
		lineErr := l.Err
		if lineErr == nil {
			lineErr = errs[j]
			if lineErr == nil {
				ids = append(ids, stored[j].ExternalID)
				if stored[j].PhoneInvalid {
					fmt.Fprintf(e.stderr, "leadwatch submit: line %d: warning: phone is not valid E.164; sending anyway (use --strict to refuse)\n", l.Line)
				}
			}
			j++
		}
		if lineErr != nil {
			fmt.Fprintf(e.stderr, "leadwatch submit: line %d: %v\n", l.Line, lineErr)
			bad++
		}
	}
	if readErr != nil {
		fmt.Fprintf(e.stderr, "leadwatch submit: %v\n", readErr)
		bad++
	}
	return finishSubmit(ctx, e, cfg, db, ids, bad, wait)
}

func statusCmd(e env) *cobra.Command {
	var o storeFlags
	c := &cobra.Command{
		Use:   "status EXTERNAL_ID",
		Short: "signed status lookup at the CRM, JSON out",
		Long:  "Ask CartelCRM for a lead's status (a signed GET) and print it as JSON.",
		Args:  oneArg("EXTERNAL_ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdStatus(cmd.Context(), e, o, args[0])
		}),
	}
	o.addConfig(c.Flags())
	// status asks the CRM, and its help is about that; --db is accepted
	// all the same, for a script passing it to every command, and names
	// the store that explains a lead the CRM does not know.
	o.addDB(c.Flags())
	_ = c.Flags().MarkHidden("db")
	return readsEnv(c, senderEnv)
}

// storedLead is the lead id in the configured store, when the store
// exists and has it. It never creates a store, and any trouble reading
// one is the same as no lead: this only adds to an answer already given.
func storedLead(ctx context.Context, cfg config.Config, id string) (crm.Lead, bool) {
	kind, err := store.Backend(cfg.Store.Path)
	if err != nil || cfg.Store.Path == "" {
		return crm.Lead{}, false
	}
	if kind == store.SQLite {
		if _, err := os.Stat(cfg.Store.Path); err != nil {
			return crm.Lead{}, false
		}
	}
	db, err := openStore(ctx, cfg, store.Options{Logger: discardLog(), ReadOnly: true})
	if err != nil {
		return crm.Lead{}, false
	}
	defer db.Close()
	l, err := db.Lead(ctx, id)
	return l, err == nil
}

// knownOf is what the store says of a lead: "state failed (HTTP 401:
// bad key), 1 attempt(s), no CRM id", on one line whatever the reason
// holds.
func knownOf(l crm.Lead) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state %s", l.State)
	if r := strings.Join(strings.Fields(l.Reason), " "); r != "" {
		fmt.Fprintf(&b, " (%s)", r)
	}
	fmt.Fprintf(&b, ", %d attempt(s)", l.Attempts)
	if l.CRMID != "" {
		fmt.Fprintf(&b, ", CRM id %s", l.CRMID)
	} else {
		b.WriteString(", no CRM id")
	}
	return b.String()
}

func cmdStatus(ctx context.Context, e env, o storeFlags, id string) error {
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.NeedSender); err != nil {
		return err
	}
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	sr, err := client.Status(ctx, id)
	if errors.Is(err, crm.ErrNotFound) {
		// The CRM never created it: a lead still queued, held, refused
		// before it got an id, or withdrawn. What the store knows says
		// which, where a bare "not found" would send the operator looking.
		if l, ok := storedLead(ctx, cfg, id); ok {
			fmt.Fprintf(e.stderr, "leadwatch status: %s is not at the CRM; leadwatch's store has it: %s\n", id, knownOf(l))
		}
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sr)
}

func resubmitCmd(e env) *cobra.Command {
	var o storeFlags
	var payloadFile, state, reason string
	c := &cobra.Command{
		Use:   "resubmit [--payload FILE] EXTERNAL_ID | --state S [--reason TEXT]",
		Short: "re-queue a final lead, or every lead in a state",
		Long: "Put a final lead back in the outbox. An unchanged failed lead keeps its idempotency\n" +
			"key; any other final lead, or an edited payload, gets a new one. A running leadwatch\n" +
			"(dashboard or serve) sends it.\n\n" +
			"With --state S instead of an EXTERNAL_ID, every lead in state S (duplicate,\n" +
			"validation_error, rejected or failed) whose reason contains --reason TEXT (any\n" +
			"case), oldest first, with its payload unchanged. It says how many and which key rule\n" +
			"applies, and asks before it starts when standard input is a terminal (not otherwise,\n" +
			"for scripts).",
		RunE: action(func(cmd *cobra.Command, args []string) error {
			bulk := cmd.Flags().Changed("state")
			switch {
			case bulk && len(args) > 0:
				return usageErrorf("EXTERNAL_ID and --state are exclusive: one lead, or every lead in a state")
			case !bulk && len(args) != 1:
				return usageErrorf("need one EXTERNAL_ID, or --state S")
			case bulk && payloadFile != "":
				return usageErrorf("--payload goes with one EXTERNAL_ID, not with --state")
			case !bulk && cmd.Flags().Changed("reason"):
				return usageErrorf("--reason goes with --state")
			}
			if !bulk {
				return cmdResubmit(cmd.Context(), e, o, payloadFile, args[0])
			}
			st := crm.State(state)
			if !st.Resubmittable() {
				return usageErrorf("--state is %s, not %q", orList(resubmittableStates()), state)
			}
			return cmdResubmitBulk(cmd.Context(), e, o, st, reason)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().StringVar(&payloadFile, "payload", "", "replace the payload with the JSON object in `FILE` (- for stdin)")
	c.Flags().StringVar(&state, "state", "", "resubmit every lead in state `S`")
	c.Flags().StringVar(&reason, "reason", "", "with --state: only leads whose reason contains `TEXT` (any case)")
	_ = c.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(resubmittableStates(), cobra.ShellCompDirectiveNoFileComp))
	return readsEnv(c, storeEnv)
}

// resubmittableStates are the states resubmit --state takes.
func resubmittableStates() []string {
	var out []string
	for _, s := range crm.States {
		if s.Resubmittable() {
			out = append(out, string(s))
		}
	}
	return out
}

func cmdResubmit(ctx context.Context, e env, o storeFlags, payloadFile, id string) error {
	var payload []byte
	var err error
	switch payloadFile {
	case "":
	case "-":
		payload, err = io.ReadAll(io.LimitReader(e.stdin, leadfile.MaxLine))
	default:
		payload, err = os.ReadFile(payloadFile)
	}
	if err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	if payload != nil {
		payload = bytes.TrimSpace(payload)
	}
	db, err := o.openDB(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Resubmit(ctx, id, payload)
	if err != nil {
		return err
	}
	how := "with a new idempotency key " + res.Lead.IdempotencyKey
	if res.KeyKept {
		how = "with the same idempotency key " + res.Lead.IdempotencyKey + " (unchanged failed lead)"
	}
	fmt.Fprintf(e.stdout, "re-queued %s %s; a running leadwatch (dashboard or serve) sends it\n", res.Lead.ExternalID, how)
	return nil
}

func exportCmd(e env) *cobra.Command {
	var o storeFlags
	var format string
	c := &cobra.Command{
		Use:   "export leads|callbacks [--format jsonl|csv]",
		Short: "write the store out",
		Long:  "Write every lead or every verified callback to stdout, one record a line.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("unexpected argument %q", args[1])
			}
			if len(args) == 0 || (args[0] != "leads" && args[0] != "callbacks") {
				return usageErrorf("export leads or callbacks, not %q", strings.Join(args, ""))
			}
			return nil
		},
		RunE: action(func(cmd *cobra.Command, args []string) error {
			f := leadfile.Format(format)
			if f != leadfile.JSONL && f != leadfile.CSV {
				return usageErrorf("--format is jsonl or csv, not %q", format)
			}
			return cmdExport(cmd.Context(), e, o, args[0], f)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().StringVar(&format, "format", string(leadfile.JSONL), "jsonl or csv")
	return readsEnv(c, storeEnv)
}

func cmdExport(ctx context.Context, e env, o storeFlags, what string, format leadfile.Format) error {
	db, err := o.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	w := leadfile.NewWriter(e.stdout, format)
	if what == "leads" {
		err = db.ExportLeads(ctx, func(l crm.Lead) error { return w.Write(leadfile.LeadRecord(l)) })
	} else {
		err = db.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error { return w.Write(leadfile.CallbackRecord(ev)) })
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", what, err)
	}
	return w.Flush()
}

func versionCmd(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Long:  "Print leadwatch's version (and, for a development build, its commit and Go version).",
		Args:  noArgs,
		Run: func(*cobra.Command, []string) {
			v := version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						v += "+" + s.Value[:12]
					}
				}
				fmt.Fprintf(e.stdout, "leadwatch %s (%s)\n", v, bi.GoVersion)
				return
			}
			fmt.Fprintf(e.stdout, "leadwatch %s\n", v)
		},
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
