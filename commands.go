package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/store"
)

func cmdServe(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "serve", "[--config FILE] [--db FILE] [--listen ADDR]",
		"Run the callback listener and the sender without the dashboard. Logs go to stderr.", true)
	listen := f.String("listen", "", "listener address (default callbacks.listen)")
	logJSON := f.Bool("log-json", false, "log JSON instead of text")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	cfg, err := f.loadForServices(e, *listen)
	if err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(e.stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(e.stderr, nil)
	}
	log := slog.New(h)
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := startServices(cfg, db, log, serviceOptions{sender: true, listener: true})
	if err != nil {
		return err
	}
	log.Info("leadwatch serving", "listen", svc.ListenAddr(), "path", cfg.Callbacks.Path,
		"crm", redactURL(cfg.CRM.BaseURL), "db", cfg.Store.Path, "owner", svc.disp.Owner())
	err = svc.Run(ctx)
	log.Info("leadwatch stopped", "attempts_recorded", svc.disp.Sent())
	return err
}

func cmdSandbox(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "sandbox", "[--addr A] [--callback-url U] [--seed N] [faults]",
		"Run the fake CartelCRM. It takes CARTELCRM_API_KEY, CARTELCRM_HMAC_SECRET and\nCALLBACK_SECRET from the environment (or the config file), like leadwatch.", false)
	f.StringVar(&f.configPath, "config", "", "config file (default ./"+config.DefaultFile+" when present)")
	addr := f.String("addr", "127.0.0.1:8081", "address to listen on")
	var sc sandbox.Config
	sc.RegisterFlags(f.FlagSet)
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	// A wrong flag is a usage error (exit 2) whatever the environment.
	if err := sc.ValidateFaults(); err != nil {
		return f.usageErr("%v", err)
	}
	cfg, err := f.load(e)
	if err != nil {
		return err
	}
	if cfg.CRM.APIKey == "" || cfg.CRM.HMACSecret == "" {
		return errors.New("the sandbox needs CARTELCRM_API_KEY and CARTELCRM_HMAC_SECRET (or [crm] in the config file) to check requests")
	}
	sc.APIKey = string(cfg.CRM.APIKey.Reveal())
	sc.HMACSecret = cfg.CRM.HMACSecret.Reveal()
	if sc.CallbackURL != "" {
		if len(cfg.Callbacks.Secrets) == 0 {
			return errors.New("--callback-url needs CALLBACK_SECRET (or [callbacks] secrets) to sign callbacks")
		}
		sc.CallbackSecret = cfg.Callbacks.Secrets[0].Reveal()
	}
	if err := sc.Validate(); err != nil {
		return err
	}
	sc.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	srv, err := sandbox.Start(sc, *addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	fmt.Fprintf(e.stdout, "sandbox listening on %s\n", srv.URL)
	<-ctx.Done()
	srv.Close()
	return nil
}

func cmdSubmit(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "submit", "[--wait] [--strict] FILE|-",
		"Enqueue leads from a JSONL file (one object a line) or a CSV file with a header row.\nA bad line is reported by number; the good ones are still enqueued.", true)
	wait := f.Bool("wait", false, "send the leads now and show progress until all are final")
	strict := f.Bool("strict", false, "refuse phones that are not valid E.164 (default: send them, marked)")
	name, err := f.parseOneArg(args, "FILE (or - for stdin)")
	if err != nil {
		return err
	}
	cfg, err := f.load(e)
	if err != nil {
		return err
	}
	if *wait {
		if err := cfg.Validate(config.NeedSender); err != nil {
			return err
		}
	}
	var in io.Reader = e.stdin
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	leads, readErr := readLeads(in)
	if readErr != nil && len(leads) == 0 {
		return fmt.Errorf("read leads: %w", readErr)
	}
	db, err := openStore(ctx, cfg, discardLog())
	if err != nil {
		return err
	}
	defer db.Close()

	var good [][]byte
	var goodLines []int
	bad := 0
	for _, l := range leads {
		if l.err != nil {
			fmt.Fprintf(e.stderr, "leadwatch submit: %v\n", l.err)
			bad++
			continue
		}
		good = append(good, l.payload)
		goodLines = append(goodLines, l.line)
	}
	var ids []string
	if len(good) > 0 {
		stored, errs, err := db.EnqueueBatch(ctx, good, store.EnqueueOptions{Strict: *strict})
		if err != nil {
			return fmt.Errorf("enqueue: %w (nothing was stored)", err)
		}
		for i, err := range errs {
			if err != nil {
				fmt.Fprintf(e.stderr, "leadwatch submit: line %d: %v\n", goodLines[i], err)
				bad++
				continue
			}
			ids = append(ids, stored[i].ExternalID)
			if stored[i].PhoneInvalid {
				fmt.Fprintf(e.stderr, "leadwatch submit: line %d: warning: phone is not valid E.164; sending anyway (use --strict to refuse)\n", goodLines[i])
			}
		}
	}
	if readErr != nil {
		fmt.Fprintf(e.stderr, "leadwatch submit: %v\n", readErr)
		bad++
	}
	fmt.Fprintf(e.stdout, "enqueued %d lead(s), refused %d\n", len(ids), bad)
	if *wait && len(ids) > 0 {
		if err := sendAndWait(ctx, e, cfg, db, ids); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d line(s) refused", bad)
	}
	return nil
}

func cmdStatus(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "status", "EXTERNAL_ID", "Ask CartelCRM for a lead's status (a signed GET) and print it as JSON.", true)
	id, err := f.parseOneArg(args, "EXTERNAL_ID")
	if err != nil {
		return err
	}
	cfg, err := f.load(e)
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
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sr)
}

func cmdResubmit(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "resubmit", "[--payload FILE] EXTERNAL_ID",
		"Put a final lead back in the outbox. An unchanged failed lead keeps its idempotency\nkey; any other final lead, or an edited payload, gets a new one (PROTOCOL.md §1).", true)
	payloadFile := f.String("payload", "", "replace the payload with this file's JSON object (- for stdin)")
	id, err := f.parseOneArg(args, "EXTERNAL_ID")
	if err != nil {
		return err
	}
	var payload []byte
	switch *payloadFile {
	case "":
	case "-":
		payload, err = io.ReadAll(io.LimitReader(e.stdin, maxLeadLine))
	default:
		payload, err = os.ReadFile(*payloadFile)
	}
	if err != nil {
		return err
	}
	if payload != nil {
		payload = trimSpace(payload)
	}
	db, err := f.openDB(ctx, e, false)
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

func cmdTail(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "tail", "[--json]", "Follow verified callbacks as they are stored, from any process sharing the database.", true)
	asJSON := f.Bool("json", false, "one JSON object a line (NDJSON)")
	last := f.Int("n", 10, "show this many stored callbacks first")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	db, err := f.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()

	// Start from the last n stored, then follow.
	var after int64
	recent, err := db.Callbacks(ctx, crm.EventQuery{Limit: max(*last, 1)})
	if err != nil {
		return err
	}
	if len(recent) > 0 {
		after = recent[0].ID
		if *last > 0 {
			after = recent[len(recent)-1].ID - 1
		}
	}
	changes := db.Watch(ctx, 200*time.Millisecond)
	enc := json.NewEncoder(e.stdout)
	for {
		for {
			evs, err := db.CallbacksAfter(ctx, after, 500)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			for _, ev := range evs {
				if *asJSON {
					if err := enc.Encode(callbackRecord(ev)); err != nil {
						return err
					}
				} else {
					fmt.Fprintln(e.stdout, formatCallback(ev))
				}
				after = ev.ID
			}
			if len(evs) < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
}

func formatCallback(ev crm.CallbackEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-16s %-24s %-14s crm=%s", ev.ReceivedAt.Local().Format("15:04:05"), ev.Event, orDash(ev.ExternalID), orDash(ev.Status), orDash(ev.InternalID))
	if ev.Skew != 0 {
		fmt.Fprintf(&b, " skew=%s", ev.Skew)
	}
	if ev.LeadID == 0 {
		b.WriteString("  [unmatched]")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdExport(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "export", "leads|callbacks [--format jsonl|csv]", "Write every lead or callback to stdout.", true)
	format := f.String("format", "jsonl", "jsonl or csv")
	// Accept the table before or after the flags.
	var what string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		what, args = args[0], args[1:]
	}
	if err := f.parse(args); err != nil {
		return err
	}
	if what == "" && f.NArg() > 0 {
		what = f.Arg(0)
	} else if f.NArg() > 0 {
		return f.usageErr("unexpected argument %q", f.Arg(0))
	}
	if what != "leads" && what != "callbacks" {
		return f.usageErr("export leads or callbacks, not %q", what)
	}
	if *format != "jsonl" && *format != "csv" {
		return f.usageErr("--format is jsonl or csv, not %q", *format)
	}
	db, err := f.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	w := newRecordWriter(e.stdout, *format)
	if what == "leads" {
		err = db.ExportLeads(ctx, func(l crm.Lead) error { return w.write(leadRecord(l)) })
	} else {
		err = db.ExportCallbacks(ctx, func(ev crm.CallbackEvent) error { return w.write(callbackRecord(ev)) })
	}
	if err != nil {
		return err
	}
	return w.flush()
}

// record is one exported row: ordered keys, so CSV columns are stable.
type record struct {
	keys []string
	vals []any
}

// MarshalJSON writes the keys in their order (a map would sort them).
func (r record) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(r.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func rfc3339(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func leadRecord(l crm.Lead) record {
	return record{
		keys: []string{"external_id", "state", "crm_id", "crm_status", "reason", "attempts", "idempotency_key", "phone_invalid", "next_attempt_at", "last_http_status", "created_at", "updated_at"},
		vals: []any{l.ExternalID, l.State, l.CRMID, l.CRMStatus, l.Reason, l.Attempts, l.IdempotencyKey, l.PhoneInvalid, rfc3339(l.NextAttemptAt), l.LastHTTPStatus, rfc3339(l.CreatedAt), rfc3339(l.UpdatedAt)},
	}
}

func callbackRecord(ev crm.CallbackEvent) record {
	matched := ev.LeadID != 0
	return record{
		keys: []string{"id", "dedup_key", "internal_id", "event", "timestamp", "external_id", "status", "reason", "received_at", "skew_seconds", "matched"},
		vals: []any{ev.ID, ev.DedupKey, ev.InternalID, ev.Event, ev.Timestamp, ev.ExternalID, ev.Status, ev.Reason, rfc3339(ev.ReceivedAt), ev.Skew.Seconds(), matched},
	}
}

// recordWriter writes records as JSONL or CSV (with a header row).
type recordWriter struct {
	format string
	enc    *json.Encoder
	csv    *csv.Writer
	header bool
}

func newRecordWriter(w io.Writer, format string) *recordWriter {
	if format == "csv" {
		return &recordWriter{format: format, csv: csv.NewWriter(w)}
	}
	return &recordWriter{format: format, enc: json.NewEncoder(w)}
}

func (w *recordWriter) write(r record) error {
	if w.enc != nil {
		return w.enc.Encode(r)
	}
	if !w.header {
		if err := w.csv.Write(r.keys); err != nil {
			return err
		}
		w.header = true
	}
	row := make([]string, len(r.vals))
	for i, v := range r.vals {
		switch v := v.(type) {
		case nil:
		case string:
			row[i] = v
		case crm.State:
			row[i] = string(v)
		case int:
			row[i] = strconv.Itoa(v)
		case int64:
			row[i] = strconv.FormatInt(v, 10)
		case bool:
			row[i] = strconv.FormatBool(v)
		case float64:
			row[i] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			row[i] = fmt.Sprint(v)
		}
	}
	return w.csv.Write(row)
}

func (w *recordWriter) flush() error {
	if w.csv != nil {
		w.csv.Flush()
		return w.csv.Error()
	}
	return nil
}

// redactURL drops credentials and the query from a URL before it is
// logged: a base URL may carry user:password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func trimSpace(b []byte) []byte { return []byte(strings.TrimSpace(string(b))) }
