package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// The operator actions on queued and waiting leads: retry-now, hold,
// cancel, release, pause and resume. Each writes to the store only; the
// sender of every leadwatch sharing it (dashboard or serve) picks the
// change up, so none of them needs the CRM's settings.

// actionVerbs says, for each action, what it did to a lead: the word of
// the summary line ("3 of 4 lead(s) held").
var actionVerbs = map[crm.Action]string{
	crm.ActRetryNow: "made due now",
	crm.ActHold:     "held",
	crm.ActRelease:  "released",
	crm.ActCancel:   "canceled",
}

func retryNowCmd(e env) *cobra.Command {
	var o storeFlags
	var all bool
	c := &cobra.Command{
		Use:   "retry-now [EXTERNAL_ID…|--all]",
		Short: "send retry-waiting leads now, same key",
		Long: "Make retry-waiting leads due now, skipping the rest of their backoff: the named\n" +
			"leads, or with --all every lead waiting for a retry. Each keeps its idempotency key\n" +
			"and its attempt count. A running leadwatch (dashboard or serve) sends them. Exits 1\n" +
			"when a named lead is not found or is not waiting for a retry.",
		RunE: action(func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErrorf("--all takes no EXTERNAL_ID (got %q)", args[0])
			case !all && len(args) == 0:
				return usageErrorf("need EXTERNAL_ID… or --all")
			}
			if all {
				return cmdRetryAllNow(cmd.Context(), e, o)
			}
			return cmdAct(cmd.Context(), e, o, crm.ActRetryNow, args)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().BoolVar(&all, "all", false, "every lead waiting for a retry")
	return readsEnv(c, storeEnv)
}

// withStore opens the store o names (read-only for commands that only
// read), runs f on it and closes it again: every command here is one
// short visit to the store.
func withStore(ctx context.Context, e env, o storeFlags, readOnly bool, f func(db store.Store) error) error {
	db, err := o.openDB(ctx, e, readOnly)
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}

func cmdRetryAllNow(ctx context.Context, e env, o storeFlags) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		n, err := db.RetryAllNow(ctx)
		if err != nil {
			return fmt.Errorf("retry-now: %w", err)
		}
		fmt.Fprintf(e.stdout, "made %d retry-waiting lead(s) due now, same keys; a running leadwatch (dashboard or serve) sends them\n", n)
		return nil
	})
}

// actCmd is hold, cancel or release: the same shape, one action each.
func actCmd(e env, a crm.Action, short, long string) *cobra.Command {
	var o storeFlags
	c := &cobra.Command{
		Use:   string(a) + " EXTERNAL_ID…",
		Short: short,
		Long:  long,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("need at least one EXTERNAL_ID")
			}
			return nil
		},
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdAct(cmd.Context(), e, o, a, args)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	return readsEnv(c, storeEnv)
}

func holdCmd(e env) *cobra.Command {
	return actCmd(e, crm.ActHold, "keep queued or retry-waiting leads from being sent",
		"Hold queued or retry-waiting leads: they stay in the outbox, with their key and\n"+
			"attempts, and are not sent until 'leadwatch release'. Exits 1 when a lead is not\n"+
			"found or is in another state (in flight, final, already held).")
}

func releaseCmd(e env) *cobra.Command {
	return actCmd(e, crm.ActRelease, "let held leads be sent again",
		"Put held leads back in the queue, due now. A lead whose source or sub_id is still\n"+
			"paused stays held by that pause ('leadwatch resume' lets it go). Exits 1 when a\n"+
			"lead is not found or is not held.")
}

func cancelCmd(e env) *cobra.Command {
	return actCmd(e, crm.ActCancel, "withdraw queued, retry-waiting or held leads",
		"Cancel leads that are still to be sent (queued, retry-waiting or held): they end\n"+
			"failed with the reason \""+crm.CanceledReason+"\" and are not sent. 'leadwatch\n"+
			"resubmit' brings one back (an unchanged payload keeps its key). Exits 1 when a lead\n"+
			"is not found or is in another state.")
}

// cmdAct applies a to each lead of ids and prints one line per lead: what
// changed on stdout, why nothing did on stderr. Any lead it did not apply
// to makes the run a failure, after every line is printed.
func cmdAct(ctx context.Context, e env, o storeFlags, a crm.Action, ids []string) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		return act(ctx, e, db, a, ids)
	})
}

// act is cmdAct on a store already open.
func act(ctx context.Context, e env, db store.Store, a crm.Action, ids []string) error {
	results, err := db.Act(ctx, a, ids)
	if err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	missed := 0
	for _, r := range results {
		if r.Err != nil {
			missed++
			fmt.Fprintf(e.stderr, "leadwatch %s: %s: %s\n", a, r.ExternalID, whyNot(a, r))
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", r.ExternalID, applied(ctx, db, a, r))
	}
	if missed > 0 {
		return fmt.Errorf("%d of %d lead(s) not %s", missed, len(results), actionVerbs[a])
	}
	return nil
}

// applied says what a did to one lead: "queued → held".
func applied(ctx context.Context, db store.Store, a crm.Action, r crm.ActionResult) string {
	switch {
	case a == crm.ActRetryNow:
		return fmt.Sprintf("%s → due now (same key)", r.After)
	case a == crm.ActRelease && r.After == crm.StateHeld:
		// Released by the operator, held again by a pause: say which, so
		// the operator knows what to resume.
		why := "a pause"
		if l, err := db.Lead(ctx, r.ExternalID); err == nil && l.Hold != "" {
			why = fmt.Sprintf("the pause of its %s %q", l.Hold, pausedValue(l))
		}
		return fmt.Sprintf("%s → %s (still held by %s)", r.Before, r.After, why)
	}
	return fmt.Sprintf("%s → %s", r.Before, r.After)
}

// pausedValue is the value of the field that holds l.
func pausedValue(l crm.Lead) string {
	if l.Hold == crm.HoldSubID {
		return l.SubID
	}
	return l.Source
}

// whyNot says why a did not apply to a lead: not found, or its state with
// the states a applies to.
func whyNot(a crm.Action, r crm.ActionResult) string {
	if errors.Is(r.Err, crm.ErrNotFound) {
		return "not found"
	}
	if errors.Is(r.Err, crm.ErrWrongState) {
		var ok []string
		for _, s := range crm.States {
			if a.Applies(s) {
				ok = append(ok, string(s))
			}
		}
		return fmt.Sprintf("%s, and %s applies only to %s leads", r.Before, a, orList(ok))
	}
	return r.Err.Error()
}

// orList is "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// pauseFlags are pause's and resume's --source and --sub-id.
type pauseFlags struct {
	source, subID string
}

func (p *pauseFlags) add(fs *pflag.FlagSet, verb string) {
	fs.StringVar(&p.source, "source", "", verb+" the leads whose source is `S`")
	fs.StringVar(&p.subID, "sub-id", "", verb+" the leads whose sub_id is `S`")
}

// rule is the pause the flags name; none is true when neither was given.
// Both, or an empty value, is a usage error.
func (p *pauseFlags) rule(c *cobra.Command) (pause crm.Pause, none bool, err error) {
	src, sub := c.Flags().Changed("source"), c.Flags().Changed("sub-id")
	switch {
	case src && sub:
		return pause, false, usageErrorf("--source and --sub-id are exclusive: one rule at a time")
	case !src && !sub:
		return pause, true, nil
	case src:
		pause = crm.Pause{Field: crm.GroupSource, Value: p.source}
	default:
		pause = crm.Pause{Field: crm.GroupSubID, Value: p.subID}
	}
	if pause.Value == "" {
		// An empty value would name every lead that has no such field,
		// which nobody means by typing a flag with an unset variable.
		return pause, false, usageErrorf("--%s needs a value", flagName(pause.Field))
	}
	return pause, false, nil
}

// flagName is the flag that names a pause's field.
func flagName(field string) string { return strings.ReplaceAll(field, "_", "-") }

// ruleCmd is pause or resume: the same flags and checks, then run with
// the rule the flags name, or alone when they name none.
func ruleCmd(e env, verb, use, short, long string, alone func(context.Context, env, storeFlags) error,
	run func(context.Context, env, storeFlags, crm.Pause) error) *cobra.Command {
	var o storeFlags
	var p pauseFlags
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			rule, none, err := p.rule(cmd)
			if err != nil {
				return err
			}
			if none {
				return alone(cmd.Context(), e, o)
			}
			return run(cmd.Context(), e, o, rule)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	p.add(c.Flags(), verb)
	return readsEnv(c, storeEnv)
}

func pauseCmd(e env) *cobra.Command {
	return ruleCmd(e, "pause", "pause [--source S | --sub-id S]",
		"stop sending the leads of a source or sub_id; alone, list the pauses",
		"Stop sending for one traffic source or one sub_id: its queued and retry-waiting\n"+
			"leads are held, new ones are held as they are enqueued, and a lead whose attempt\n"+
			"ends in a retry is held instead of waiting. Every leadwatch sharing the store obeys\n"+
			"it at once. 'leadwatch resume' with the same flag lets them go. Without a flag,\n"+
			"pause lists the pauses in force.",
		cmdPauses, cmdPause)
}

func resumeCmd(e env) *cobra.Command {
	return ruleCmd(e, "resume", "resume --source S | --sub-id S",
		"send the leads of a paused source or sub_id again",
		"Lift a pause: the leads it held go back to the queue, due now (a lead whose other\n"+
			"field is paused too stays held by that pause). Exits 1 when no such pause is in\n"+
			"force ('leadwatch pause' lists them).",
		func(context.Context, env, storeFlags) error { return usageErrorf("need --source S or --sub-id S") },
		cmdResume)
}

// findPause is the rule in force that matches p, if any.
func findPause(ctx context.Context, db store.Store, p crm.Pause) (crm.Pause, bool, error) {
	rules, err := db.Pauses(ctx)
	if err != nil {
		return crm.Pause{}, false, fmt.Errorf("list pauses: %w", err)
	}
	for _, r := range rules {
		if r.Field == p.Field && r.Value == p.Value {
			return r, true, nil
		}
	}
	return crm.Pause{}, false, nil
}

func cmdPause(ctx context.Context, e env, o storeFlags, p crm.Pause) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		// Pausing twice changes nothing; say so rather than "0 held", which
		// reads as if the pause found no leads.
		had, already, err := findPause(ctx, db, p)
		if err != nil {
			return err
		}
		held, err := db.Pause(ctx, p)
		if err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		if already {
			fmt.Fprintf(e.stdout, "%s %q was already paused (since %s); %d more lead(s) held\n",
				p.Field, p.Value, had.At.Local().Format(time.DateTime), held)
			return nil
		}
		fmt.Fprintf(e.stdout, "paused %s %q: %d queued or retry-waiting lead(s) held; new ones are held as they arrive\n",
			p.Field, p.Value, held)
		return nil
	})
}

func cmdResume(ctx context.Context, e env, o storeFlags, p crm.Pause) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		// A mistyped value must not pass for a resume that released nothing.
		if _, ok, err := findPause(ctx, db, p); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s %q is not paused ('leadwatch pause' lists the pauses)", p.Field, p.Value)
		}
		released, err := db.Resume(ctx, p)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		fmt.Fprintf(e.stdout, "resumed %s %q: %d held lead(s) back in the queue; a running leadwatch (dashboard or serve) sends them\n",
			p.Field, p.Value, released)
		return nil
	})
}

func cmdPauses(ctx context.Context, e env, o storeFlags) error {
	return withStore(ctx, e, o, true, func(db store.Store) error {
		rules, err := db.Pauses(ctx)
		if err != nil {
			return fmt.Errorf("list pauses: %w", err)
		}
		if len(rules) == 0 {
			fmt.Fprintln(e.stdout, "no pauses in force")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FIELD\tVALUE\tSINCE")
		for _, r := range rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Field, r.Value, r.At.Local().Format(time.DateTime))
		}
		return tw.Flush()
	})
}

// bulkPage is how many leads a bulk resubmit reads at a time.
const bulkPage = 500

// bulkStep is how far past its bound a short page is taken to have
// looked. A backend may stop a filtered id-ordered page early, after a
// window of ids with no match (the stores examine the next 100,000), so
// a short page does not mean the end; it does mean every match in the
// next bulkStep ids was returned, for any window at least this wide.
// Smaller than the stores' windows by a margin, at the cost of a query
// per 10,000 ids where matches are rare.
const bulkStep = 10_000

// cmdResubmitBulk resubmits, unchanged, every lead in state st whose
// reason contains reason: it counts them, says which key rule applies,
// asks when a person is at the terminal, then walks them oldest first.
// It resubmits at most the count it announced, so leads that fail while
// it runs wait for the next run rather than slipping past the
// confirmation.
func cmdResubmitBulk(ctx context.Context, e env, o storeFlags, st crm.State, reason string) error {
	return withStore(ctx, e, o, false, func(db store.Store) error {
		return resubmitBulk(ctx, e, db, st, reason)
	})
}

// resubmitBulk is cmdResubmitBulk on a store already open.
func resubmitBulk(ctx context.Context, e env, db store.Store, st crm.State, reason string) error {
	q := crm.LeadQuery{States: []crm.State{st}, Reason: reason}
	n, _, err := db.CountLeads(ctx, q, math.MaxInt32)
	if err != nil {
		return fmt.Errorf("count %s leads: %w", st, err)
	}
	what := fmt.Sprintf("%d %s lead(s)", n, st)
	if reason != "" {
		what += fmt.Sprintf(" with %q in the reason", reason)
	}
	if n == 0 {
		fmt.Fprintf(e.stdout, "%s: nothing to resubmit\n", what)
		return nil
	}
	// docs/protocol.md §1, for payloads left as they are.
	rule := "each gets a new idempotency key (a final outcome starts over at the CRM)"
	if crm.KeepsKey(st, nil, nil) {
		rule = "each keeps its idempotency key (unchanged failed leads: the CRM replays a lead it already took instead of creating a second)"
	}
	fmt.Fprintf(e.stdout, "%s; %s\n", what, rule)
	if isTerminalReader(e.stdin) {
		fmt.Fprintf(e.stderr, "Resubmit %d leads? [y/N] ", n)
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("not confirmed: nothing resubmitted")
		}
	}
	// The walk ends at the newest lead now: those counted are behind it.
	newest, err := db.Leads(ctx, crm.LeadQuery{Order: crm.OrderNewest, Limit: 1})
	if err != nil {
		return fmt.Errorf("list leads: %w", err)
	}
	var last int64
	if len(newest) > 0 {
		last = newest[0].ID
	}
	q.Order, q.Limit = crm.OrderOldest, bulkPage
	done, kept, failed := 0, 0, 0
	// Each resubmit is a commit of its own: thousands take a while, so a
	// person watching sees the count move.
	progress := n > bulkPage && isTerminal(e.stderr)
	finish := func() {
		if progress {
			fmt.Fprintln(e.stderr)
		}
		summarizeBulk(e, done, kept, failed)
	}
	for done+failed < n && q.AfterID < last {
		page, err := db.Leads(ctx, q)
		if err != nil {
			finish()
			return fmt.Errorf("list %s leads: %w", st, err)
		}
		next := q.AfterID + bulkStep
		if len(page) == bulkPage {
			next = page[len(page)-1].ID
		}
		for _, l := range page {
			if done+failed == n {
				break
			}
			next = max(next, l.ID)
			res, err := db.Resubmit(ctx, l.ExternalID, nil)
			if err != nil && ctx.Err() != nil {
				finish()
				return fmt.Errorf("interrupted: %d of %d lead(s) not resubmitted; run it again for them", n-done-failed, n)
			}
			if err != nil {
				// Another operator or process may have resubmitted it
				// meanwhile; that one lead is reported, the rest go on.
				failed++
				fmt.Fprintf(e.stderr, "leadwatch resubmit: %s: %v\n", l.ExternalID, err)
				continue
			}
			done++
			if res.KeyKept {
				kept++
			}
		}
		q.AfterID = next
		if progress {
			fmt.Fprintf(e.stderr, "\rresubmitted %d/%d", done+failed, n)
		}
	}
	finish()
	if failed > 0 {
		return fmt.Errorf("%d of %d lead(s) not resubmitted", failed, done+failed)
	}
	return nil
}

// summarizeBulk prints what a bulk resubmit did.
func summarizeBulk(e env, done, kept, failed int) {
	fmt.Fprintf(e.stdout, "re-queued %d lead(s) (%d with the same key, %d with a new key), %d not; a running leadwatch (dashboard or serve) sends them\n",
		done, kept, done-kept, failed)
}

// isTerminalReader reports whether r is a terminal: a person who can
// answer a question, not a script's pipe.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
