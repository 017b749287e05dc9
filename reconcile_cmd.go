package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/progress"
	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// reconcileMaxLeads bounds one on-demand pass: at the default 5 lookups a
// second it is more than half an hour of lookups, and the claimed leads
// are held in memory. The rest are due still and a second run takes them.
const reconcileMaxLeads = 10_000

// reconcileProblemLines bounds the per-lead lines a pass prints for
// lookups that went wrong; the summary counts them all.
const reconcileProblemLines = 20

func reconcileCmd(e env) *cobra.Command {
	var (
		o     storeFlags
		since string
	)
	c := &cobra.Command{
		Use:   "reconcile [--since D] [EXTERNAL_ID…]",
		Short: "status lookups for leads without news",
		Long: "Ask the CRM (a signed status lookup, docs/protocol.md §2) for the status of accepted\n" +
			"leads without news, now, at reconcile.rate lookups per second, and store every status\n" +
			"found different from the last one known as a polled status (§6): it updates the\n" +
			"lead's CRM status, joins its timeline as \"polled\" and is forwarded like a callback.\n\n" +
			"Without arguments: the leads a running leadwatch would look up now, those with no\n" +
			"status callback reconcile.after after their acceptance and those whose last status is\n" +
			"older than reconcile.stale and not final (reconcile.final). With --since D: every\n" +
			"accepted lead with no news (status, acceptance or lookup) in the last D whose status\n" +
			"is not final (--since 0s: all of them). With EXTERNAL_IDs: exactly those leads,\n" +
			"whatever their status. A progress bar on a terminal, a line every few seconds\n" +
			"otherwise, then a summary. Exits 1 when a lookup failed, the CRM did not know a\n" +
			"lead, answered something unusable, or a named lead is not an accepted one.",
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var window time.Duration
			hasSince := cmd.Flags().Changed("since")
			if hasSince {
				if len(args) > 0 {
					return usageErrorf("--since and EXTERNAL_IDs are exclusive: named leads are looked up whatever their news")
				}
				// 0 is meaningful here (every lead not final), where
				// parseAge wants an age.
				if d, err := time.ParseDuration(since); err != nil || d != 0 {
					if window, err = parseAge(since); err != nil {
						return usageErrorf("--since: %v", err)
					}
				}
			}
			return cmdReconcile(cmd.Context(), e, o, hasSince, window, args)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().StringVar(&since, "since", "", "look up leads with no news in the last `D` (30m, 2h, 1d; default reconcile.after/stale)")
	return readsEnv(c, senderEnv+" "+storeEnv)
}

func cmdReconcile(ctx context.Context, e env, o storeFlags, hasSince bool, window time.Duration, ids []string) error {
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
	return withStore(ctx, e, o, false, func(db store.Store) error {
		rec, err := newReconciler(cfg, db, client, discardLog())
		if err != nil {
			return err
		}
		q := rec.Query(time.Now())
		q.ExternalIDs = ids
		if hasSince {
			q.After, q.Stale = window, window
		}
		leads, err := rec.Claim(ctx, q, reconcileMaxLeads)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		missing := notClaimed(ids, leads)
		for _, id := range missing {
			fmt.Fprintf(e.stderr, "leadwatch reconcile: %s: %s\n", id, whyNoLookup(ctx, db, id))
		}
		if len(leads) == 0 && len(ids) == 0 {
			fmt.Fprintln(e.stdout, "no lead is due for a status lookup")
			return nil
		}
		if len(leads) == reconcileMaxLeads {
			fmt.Fprintf(e.stderr, "leadwatch reconcile: %d leads this run (the most one run takes); run again for the rest\n", len(leads))
		}
		sum := lookUpWithProgress(ctx, e, rec, leads, len(ids) > 0)
		fmt.Fprintln(e.stdout, reconcileSummary(sum))
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d lookup(s); the rest are looked up after reconcile.after/stale", sum.Total(), len(leads))
		}
		bad := sum[crm.LookupNotFound] + sum[crm.LookupInvalid] + sum[crm.LookupFailed]
		switch {
		case bad > 0 && len(missing) > 0:
			return fmt.Errorf("%d of %d lookup(s) gave no status, and %d named lead(s) not looked up", bad, sum.Total(), len(missing))
		case bad > 0:
			return fmt.Errorf("%d of %d lookup(s) gave no status", bad, sum.Total())
		case len(missing) > 0:
			return fmt.Errorf("%d of %d named lead(s) not looked up", len(missing), len(ids))
		}
		return nil
	})
}

// lookUpWithProgress runs the lookups, drawing a bar on stderr when it is
// a terminal, else a line every few seconds and at the end. Named leads
// (perLead) get a line each on stdout; a pass prints only the lookups that
// went wrong, a few, on stderr.
func lookUpWithProgress(ctx context.Context, e env, rec *crm.Reconciler, leads []crm.Lead, perLead bool) crm.ReconcileSummary {
	tty := isTerminal(e.stderr)
	bar := progress.New(progress.WithDefaultGradient(), progress.WithWidth(40))
	total := len(leads)
	done, problems := 0, 0
	lastLine := time.Now()
	draw := func(force bool) {
		switch {
		case tty:
			fmt.Fprintf(e.stderr, "\r%s %d/%d looked up", bar.ViewAs(float64(done)/float64(max(total, 1))), done, total)
		case force || time.Since(lastLine) >= 2*time.Second:
			fmt.Fprintf(e.stderr, "progress: %d/%d looked up\n", done, total)
			lastLine = time.Now()
		}
	}
	draw(false) // the empty bar on a terminal; a plain line waits for news
	sum := rec.LookUp(ctx, leads, func(r crm.LookupResult) {
		done++
		ok := r.Outcome == crm.LookupChanged || r.Outcome == crm.LookupUnchanged
		switch {
		case perLead:
			clearBar(e.stderr, tty)
			fmt.Fprintln(e.stdout, lookupLine(r))
		case !ok && problems < reconcileProblemLines:
			problems++
			clearBar(e.stderr, tty)
			fmt.Fprintf(e.stderr, "leadwatch reconcile: %s\n", lookupLine(r))
		}
		draw(done == total)
	})
	if tty {
		fmt.Fprintln(e.stderr)
	}
	return sum
}

// clearBar wipes the bar's line on a terminal before a line is printed.
func clearBar(w io.Writer, tty bool) {
	if tty {
		fmt.Fprint(w, "\r\x1b[K")
	}
}

// lookupLine is one lookup: "L-1: interested (polled: was no_answer)".
func lookupLine(r crm.LookupResult) string {
	id := r.Lead.ExternalID
	was := r.Lead.CRMStatus
	if was == "" {
		was = "none"
	}
	switch r.Outcome {
	case crm.LookupChanged:
		return fmt.Sprintf("%s: %s (polled: was %s)", id, r.Status, was)
	case crm.LookupUnchanged:
		return fmt.Sprintf("%s: %s (unchanged)", id, r.Status)
	case crm.LookupNotFound:
		return fmt.Sprintf("%s: the CRM does not know this lead, which it accepted (CRM id %s)", id, orNone(r.Lead.CRMID))
	}
	return fmt.Sprintf("%s: %s: %v", id, r.Outcome, r.Err)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// reconcileSummary counts a pass by outcome in a fixed order:
// "looked up 12: changed 3, unchanged 8, not_found 1".
func reconcileSummary(sum crm.ReconcileSummary) string {
	parts := []string{}
	for _, o := range crm.LookupOutcomes {
		if n := sum[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n))
		}
	}
	if len(parts) == 0 {
		return "looked up 0"
	}
	return fmt.Sprintf("looked up %d: %s", sum.Total(), strings.Join(parts, ", "))
}

// notClaimed are the names in ids no claimed lead has, sorted.
func notClaimed(ids []string, leads []crm.Lead) []string {
	got := make(map[string]bool, len(leads))
	for _, l := range leads {
		got[l.ExternalID] = true
	}
	var out []string
	for _, id := range ids {
		if !got[id] {
			out = append(out, id)
			got[id] = true // a name given twice is reported once
		}
	}
	sort.Strings(out)
	return out
}

// whyNoLookup says why a named lead was not looked up: unknown, or not
// accepted (only the CRM's accepted leads have a status there).
func whyNoLookup(ctx context.Context, db store.Store, id string) string {
	l, err := db.Lead(ctx, id)
	if err != nil {
		return "not in the store"
	}
	return fmt.Sprintf("not looked up: state %s, only accepted leads have a status at the CRM", l.State)
}
