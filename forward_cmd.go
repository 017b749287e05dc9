package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/forward"
	"github.com/leadwatch/leadwatch/store"
)

// newForwarder is the Forwarder [forward] describes, over db. Validate
// has checked the settings; the errors here name keys, never values.
// With a listener h in this process the Forwarder yields to its bursts:
// callbacks acknowledged come first, forwarded ones may lag (and drain
// when the burst ends).
func newForwarder(cfg config.Config, db store.Store, h *callbacks.Handler, log *slog.Logger) (*forward.Forwarder, error) {
	signer, err := forward.NewSigner(cfg.Forward.Secrets()...)
	if err != nil {
		return nil, fmt.Errorf("forward.secret: %w", err)
	}
	// The cursor goes down now, before the listener takes its first
	// callback: StartForwarding forwards what is stored after it, and a
	// callback stored between the listener's start and the forwarder's
	// would otherwise never reach the app. (Run calls it again; later
	// calls do nothing.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.StartForwarding(ctx); err != nil {
		return nil, fmt.Errorf("start forwarding: %w", err)
	}
	var busy func() bool
	if h != nil {
		busy = forward.RateAbove(func() uint64 { return h.Stats().Verified }, forward.DefaultBusyRate, nil)
	}
	f := cfg.Forward
	return forward.New(db, forward.Config{
		Busy:        busy,
		URL:         f.URL,
		Signer:      signer,
		Timeout:     f.Timeout.D(),
		Concurrency: f.Concurrency,
		Policy:      forward.Policy{MaxAttempts: f.MaxAttempts, BaseDelay: f.BaseDelay.D(), MaxDelay: f.MaxDelay.D()},
		Logger:      log,
	})
}

func forwardCmd(e env) *cobra.Command {
	var o storeFlags
	var replay, asJSON bool
	var since string
	c := &cobra.Command{
		Use:   "forward [--json] | forward --replay [--since D] [ID…]",
		Short: "the forward queue; hand callbacks to the app again",
		Long: "Show the queue of deliveries to the app (forward.url, --forward-to): pending, in\n" +
			"flight, failed after forward.max_attempts, delivered, and the last error.\n\n" +
			"--replay queues stored callbacks for the app once more, under their webhook-id\n" +
			"(the app dedups on it): those whose ids are named (the id 'leadwatch export\n" +
			"callbacks' shows, or the webhook-id cb_ID), or with --since D every one stored in\n" +
			"the last D. A running serve or dashboard forwarding to the app sends them.\n\n" +
			"A store forwards the callbacks stored after its first forwarder started; replay\n" +
			"sends older ones.",
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if !replay {
				switch {
				case len(args) > 0:
					return usageErrorf("unexpected argument %q (to replay callbacks: --replay ID…)", args[0])
				case since != "":
					return usageErrorf("--since goes with --replay")
				}
				return cmdForwardStatus(cmd.Context(), e, o, asJSON)
			}
			if asJSON {
				return usageErrorf("--json goes without --replay")
			}
			ids, err := parseCallbackIDs(args)
			if err != nil {
				return err
			}
			var from time.Time
			if since != "" {
				age, err := parseAge(since)
				if err != nil {
					return usageErrorf("--since: %v", err)
				}
				from = time.Now().Add(-age)
			}
			switch {
			case len(ids) == 0 && from.IsZero():
				return usageErrorf("--replay needs callback IDs or --since D")
			case len(ids) > 0 && !from.IsZero():
				return usageErrorf("--replay takes callback IDs or --since D, not both")
			}
			return cmdForwardReplay(cmd.Context(), e, o, ids, from)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().BoolVar(&replay, "replay", false, "queue the named callbacks (or --since's) for the app again")
	c.Flags().StringVar(&since, "since", "", "with --replay: every callback stored in the last `D` (1h, 30m, 7d)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the queue's state as one JSON object")
	return readsEnv(c, storeEnv)
}

// parseCallbackIDs reads callback ids as export shows them (123) or as
// the app saw them in webhook-id (cb_123).
func parseCallbackIDs(args []string) ([]int64, error) {
	ids := make([]int64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseInt(strings.TrimPrefix(a, crm.WebhookIDPrefix), 10, 64)
		if err != nil || n <= 0 {
			return nil, usageErrorf("%q is not a callback id (the id 'leadwatch export callbacks' shows, or cb_ID)", a)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

func cmdForwardReplay(ctx context.Context, e env, o storeFlags, ids []int64, since time.Time) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		n, err := db.Replay(ctx, ids, since)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		fmt.Fprintf(e.stdout, "queued %d callback(s) for the app again, same webhook-id; a running leadwatch forwarding to it sends them\n", n)
		return nil
	})
}

func cmdForwardStatus(ctx context.Context, e env, o storeFlags, asJSON bool) error {
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	return withStore(ctx, e, o, true, func(db store.Store) error {
		st, err := db.ForwardStats(ctx)
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		if asJSON {
			return writeForwardJSON(e, cfg, st)
		}
		writeForwardTable(e, cfg, st, time.Now())
		return nil
	})
}

func writeForwardJSON(e env, cfg config.Config, st crm.ForwardStats) error {
	out := map[string]any{
		"enabled": st.Enabled, "pending": st.Pending, "in_flight": st.InFlight, "failed": st.Failed,
		"delivered": st.Delivered, "lag": st.Lag, "last_error": st.LastError,
		"oldest_pending": rfc3339OrNil(st.OldestPending), "last_error_at": rfc3339OrNil(st.LastErrorAt),
		"last_delivered": rfc3339OrNil(st.LastDelivered),
	}
	if cfg.Forward.URL != "" {
		out["url"] = crm.RedactURL(cfg.Forward.URL)
	}
	enc := json.NewEncoder(e.stdout)
	return enc.Encode(out)
}

func writeForwardTable(e env, cfg config.Config, st crm.ForwardStats, now time.Time) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	app := "(forward.url unset here)"
	if cfg.Forward.URL != "" {
		app = crm.RedactURL(cfg.Forward.URL)
	}
	fmt.Fprintf(tw, "app\t%s\n", app)
	if !st.Enabled {
		fmt.Fprintf(tw, "forwarding\tnever started on this store (serve --forward-to URL, or [forward] url)\n")
	}
	pending := strconv.Itoa(st.Pending)
	if !st.OldestPending.IsZero() {
		pending += fmt.Sprintf(" (oldest %s)", ago(now, st.OldestPending))
	}
	fmt.Fprintf(tw, "pending\t%s\n", pending)
	fmt.Fprintf(tw, "in flight\t%d\n", st.InFlight)
	failed := strconv.Itoa(st.Failed)
	if st.Failed > 0 {
		failed += " (gave up; 'leadwatch forward --replay' sends them again)"
	}
	fmt.Fprintf(tw, "failed\t%s\n", failed)
	delivered := strconv.Itoa(st.Delivered)
	if !st.LastDelivered.IsZero() {
		delivered += fmt.Sprintf(" (last %s)", ago(now, st.LastDelivered))
	}
	fmt.Fprintf(tw, "delivered\t%s\n", delivered)
	if st.Lag > 0 {
		fmt.Fprintf(tw, "not yet queued\t%d\n", st.Lag)
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s (%s)\n", st.LastError, ago(now, st.LastErrorAt))
	}
}

// ago is t as an age from now, "12s ago", with the clock time for people
// who compare with a log.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%s ago, %s", d.Round(time.Second), t.Local().Format("15:04:05"))
}

// ForwardURL is where the services forward to, fit to print; "off" when
// they do not.
func (s *services) ForwardURL() string {
	if s.fwd == nil {
		return "off"
	}
	return s.fwd.URL()
}
