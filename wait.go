package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/progress"
	"github.com/mattn/go-isatty"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// sendAndWait runs a dispatcher in this process until every lead in ids is
// final, drawing a progress bar on stderr (a plain line every few seconds
// when stderr is not a terminal), then prints a summary by outcome. It
// returns the leads' final states by count.
func sendAndWait(ctx context.Context, e env, cfg config.Config, db store.Store, ids []string) (map[crm.State]int, error) {
	svc, err := newServices(cfg, db, discardLog(), serviceOptions{send: true, noReconcile: true})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()

	tty := isTerminal(e.stderr)
	bar := progress.New(progress.WithDefaultGradient(), progress.WithWidth(40))
	pending := make(map[string]bool, len(ids))
	for _, id := range ids {
		pending[id] = true
	}
	outcomes := map[crm.State]int{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLine := time.Time{}
	for len(pending) > 0 {
		waiting := make([]string, 0, len(pending))
		for id := range pending {
			waiting = append(waiting, id)
		}
		states, err := db.States(ctx, waiting)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted with %d lead(s) not final; they stay queued", len(pending))
			}
			return nil, err
		}
		for id, st := range states {
			if st.Final() {
				outcomes[st]++
				delete(pending, id)
			}
		}
		doneN := len(ids) - len(pending)
		frac := float64(doneN) / float64(len(ids))
		switch {
		case tty:
			fmt.Fprintf(e.stderr, "\r%s %d/%d final", bar.ViewAs(frac), doneN, len(ids))
		case time.Since(lastLine) >= 2*time.Second || len(pending) == 0:
			fmt.Fprintf(e.stderr, "progress: %d/%d final\n", doneN, len(ids))
			lastLine = time.Now()
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(e.stderr)
			return nil, fmt.Errorf("interrupted with %d lead(s) not final; they stay queued", len(pending))
		case <-tick.C:
		}
	}
	if tty {
		fmt.Fprintln(e.stderr)
	}
	fmt.Fprintln(e.stdout, summarize(outcomes))
	return outcomes, nil
}

// notTaken counts the leads that ended in a state other than accepted or
// duplicate: the CRM did not take them, so a script must not read the
// run as a success.
func notTaken(outcomes map[crm.State]int) int {
	n := 0
	for st, c := range outcomes {
		if st != crm.StateAccepted && st != crm.StateDuplicate {
			n += c
		}
	}
	return n
}

// summarize prints counts by outcome in the states' display order.
func summarize(outcomes map[crm.State]int) string {
	var parts []string
	for _, s := range crm.States {
		if n := outcomes[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return "outcomes: " + strings.Join(parts, ", ")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
