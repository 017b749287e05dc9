package ui

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// Bulk resubmit: one key resubmits every lead the focused pane's filter
// shows. It counts first (exact up to bulkCap), asks with the count and
// the key rule, then pages the query by id and resubmits each lead, one
// page per Cmd so the dashboard keeps drawing and the status bar shows
// the progress.

// bulkCap bounds one bulk resubmit: the count is exact up to it, and no
// more leads than it are resubmitted at once (R again does the rest).
const bulkCap = 10000

// bulkPage is how many leads one step reads and resubmits.
const bulkPage = 100

// bulkPane is a pane whose rows a bulk resubmit can take: its query
// narrowed to the states a resubmission allows. The lead panes have it;
// the events pane does not.
type bulkPane interface {
	bulkQuery() (q crm.LeadQuery, ok bool)
}

// bulkQuery is the pane's query (its states, or those its filter names,
// and its filter) without window, keeping only resubmittable states.
func (p leadPane) bulkQuery() (crm.LeadQuery, bool) {
	q, _ := p.query()
	var states []crm.State
	for _, s := range q.States {
		if s.Resubmittable() {
			states = append(states, s)
		}
	}
	if len(states) == 0 {
		return crm.LeadQuery{}, false
	}
	return crm.LeadQuery{States: states, Filter: q.Filter}, true
}

var _ bulkPane = leadPane{}

// bulkPlan is what the confirmation states: the query, how many leads
// it matches and how many of them keep their key.
type bulkPlan struct {
	pane   string // the pane's title
	filter string // as typed
	q      crm.LeadQuery
	n      int
	capped bool
	kept   int // unchanged failed leads: same key (docs/protocol.md §1)
}

// bulkCountedMsg carries the counts for the confirmation.
type bulkCountedMsg struct {
	plan bulkPlan
	err  error
}

// bulkStartMsg is the confirmation's yes.
type bulkStartMsg struct{ plan bulkPlan }

// bulkStepMsg is one page's resubmissions.
type bulkStepMsg struct {
	run     int     // which bulk run it belongs to
	lastID  int64   // the highest id read, where the next page starts
	ids     []int64 // the leads read this page that no earlier page had
	done    int
	kept    int            // of done, those that kept their key
	skipped map[string]int // by reason
	err     error          // the page could not be read: the run stops
}

// bulkRun is a bulk resubmit under way.
type bulkRun struct {
	id      int
	plan    bulkPlan
	afterID int64
	seen    map[int64]bool
	read    int
	done    int
	kept    int
	skipped map[string]int
}

// startBulk counts what the focused pane's filter shows, for the
// confirmation.
func (m Model) startBulk() (tea.Model, tea.Cmd) {
	if m.bulk != nil {
		m.bar.say(fmt.Sprintf("a bulk resubmit is running (%d of %d)", m.bulk.read, m.bulk.plan.n))
		return m, nil
	}
	bp, ok := m.focused().(bulkPane)
	if !ok {
		m.bar.say("bulk resubmit works on a pane of leads")
		return m, nil
	}
	q, ok := bp.bulkQuery()
	if !ok {
		m.bar.say("only failed, rejected, validation_error or duplicate leads can be resubmitted (s sends a waiting one now)")
		return m, nil
	}
	plan := bulkPlan{pane: m.focus.title(), filter: m.focused().filterText(), q: q}
	m.bar.say("counting the leads to resubmit…")
	return m, countBulk(m.cfg.Source, plan)
}

// countBulk counts the plan's leads and the failed ones among them,
// which keep their key.
func countBulk(src Source, plan bulkPlan) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		n, capped, err := src.CountLeads(ctx, plan.q, bulkCap)
		if err != nil {
			return bulkCountedMsg{plan: plan, err: fmt.Errorf("count leads to resubmit: %w", err)}
		}
		plan.n, plan.capped = n, capped
		if hasState(plan.q.States, crm.StateFailed) {
			fq := plan.q
			fq.States = []crm.State{crm.StateFailed}
			if plan.kept, _, err = src.CountLeads(ctx, fq, bulkCap); err != nil {
				return bulkCountedMsg{plan: plan, err: fmt.Errorf("count failed leads: %w", err)}
			}
			plan.kept = min(plan.kept, plan.n)
		}
		return bulkCountedMsg{plan: plan}
	}
}

func hasState(states []crm.State, s crm.State) bool {
	for _, v := range states {
		if v == s {
			return true
		}
	}
	return false
}

// askBulk is the confirmation: how many leads, of which states and
// filter, and which key each gets.
func (m Model) askBulk(plan bulkPlan) overlay {
	st := m.st
	n := countText(plan.n, plan.capped)
	names := make([]string, len(plan.q.States))
	for i, s := range plan.q.States {
		names[i] = string(s)
	}
	what := plan.pane
	if plan.filter != "" {
		what += ` · filter "` + clean(plan.filter) + `"`
	}
	lines := []string{
		st.Muted.Render("leads      ") + what,
		st.Muted.Render("states     ") + strings.Join(names, ", "),
		st.Muted.Render("payloads   ") + "each as stored, unchanged",
		st.Muted.Render("keys       ") + keyRuleText(plan),
	}
	if plan.capped {
		lines = append(lines, st.Warn.Render(fmt.Sprintf("more match: the oldest %s now; R again for the rest", leadsText(bulkCap))))
	}
	return newAsk(m.st, m.keys.Confirm, "Confirm", "Resubmit "+n+"?", strings.Join(lines, "\n"),
		func() tea.Msg { return bulkStartMsg{plan: plan} })
}

// keyRuleText is the key rule of docs/protocol.md §1 for the plan: an
// unchanged failed lead keeps its key (the CRM never decided it), any
// other gets a new one (its answer was final).
func keyRuleText(plan bulkPlan) string {
	fresh := plan.n - plan.kept
	switch {
	case plan.kept == 0:
		return "all " + strconv.Itoa(plan.n) + " get a new key (the CRM's answer was final)"
	case fresh == 0:
		return "all " + strconv.Itoa(plan.n) + " keep their key (unchanged failed leads)"
	}
	return fmt.Sprintf("%d keep their key (unchanged failed leads)\n%s%d get a new key (a final CRM answer)", plan.kept, strings.Repeat(" ", 11), fresh)
}

// countText is "1 lead", "37 leads", "10,000+ leads".
func countText(n int, capped bool) string {
	s := leadsText(n)
	if capped {
		s = strings.Replace(s, " ", "+ ", 1)
	}
	return s
}

// leadsText is n leads with thousands separated.
func leadsText(n int) string {
	if n == 1 {
		return "1 lead"
	}
	return thousands(n) + " leads"
}

// thousands writes n with commas: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// beginBulk takes the yes: the first page starts.
func (m *Model) beginBulk(plan bulkPlan) tea.Cmd {
	m.bulkRuns++
	m.bulk = &bulkRun{id: m.bulkRuns, plan: plan, seen: map[int64]bool{}, skipped: map[string]int{}}
	m.bar.say(fmt.Sprintf("resubmitting 0/%d…", plan.n))
	return m.bulk.next(m.cfg.Source)
}

// next is the Cmd of the run's next page.
func (r *bulkRun) next(src Source) tea.Cmd {
	q := r.plan.q
	q.Order, q.AfterID, q.Limit = crm.OrderOldest, r.afterID, min(bulkPage, r.plan.n-r.read)
	seen := make(map[int64]bool, len(r.seen))
	for id := range r.seen {
		seen[id] = true
	}
	id := r.id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		out := bulkStepMsg{run: id, lastID: q.AfterID, skipped: map[string]int{}}
		rows, err := src.Leads(ctx, q)
		cancel()
		if err != nil {
			out.err = fmt.Errorf("read leads to resubmit: %w", err)
			return out
		}
		for _, l := range rows {
			out.lastID = max(out.lastID, l.ID)
			if seen[l.ID] {
				continue
			}
			out.ids = append(out.ids, l.ID)
			if !l.State.Resubmittable() {
				out.skipped["now "+string(l.State)]++
				continue
			}
			// Each resubmission has the whole timeout: a page of them
			// under a busy store takes longer than one query.
			rctx, rcancel := context.WithTimeout(context.Background(), queryTimeout)
			res, err := src.Resubmit(rctx, l.ExternalID, nil)
			rcancel()
			switch {
			case errors.Is(err, crm.ErrNotFound):
				out.skipped["gone"]++
			case errors.Is(err, context.DeadlineExceeded):
				out.skipped["timed out"]++
			case err != nil:
				// One reason for every lead it hit: the id is in the
				// message, and the summary counts by reason.
				out.skipped[strings.ReplaceAll(err.Error(), l.ExternalID, "…")]++
			default:
				out.done++
				if res.KeyKept {
					out.kept++
				}
			}
		}
		return out
	}
}

// stepBulk takes one page's result: the next page, or the summary.
func (m *Model) stepBulk(msg bulkStepMsg) tea.Cmd {
	r := m.bulk
	if r == nil || msg.run != r.id {
		return nil
	}
	r.afterID = max(r.afterID, msg.lastID)
	r.read += len(msg.ids)
	// The ids read are remembered, so a lead a page returns again (one
	// that could not be resubmitted stays in the query) counts once.
	for _, id := range msg.ids {
		r.seen[id] = true
	}
	r.done += msg.done
	r.kept += msg.kept
	for why, n := range msg.skipped {
		r.skipped[why] += n
	}
	if msg.err == nil && len(msg.ids) > 0 && r.read < r.plan.n {
		m.bar.say(fmt.Sprintf("resubmitting %d/%d…", r.read, r.plan.n))
		return tea.Batch(r.next(m.cfg.Source), m.refresh())
	}
	m.bulk = nil
	summary := r.summary()
	switch {
	case msg.err != nil:
		m.bar.fail(fmt.Errorf("%s; stopped: %w", summary, msg.err))
	case len(r.skipped) > 0:
		// Skips stay on screen until esc: someone should read why.
		m.bar.fail(errors.New(summary))
	default:
		m.bar.say(summary)
	}
	m.searchAfresh()
	return m.refresh()
}

// summary is the run's result in a line: "resubmitted 37 of 40 (12 same
// key, 25 new key) · skipped 3: 2 now queued, 1 gone".
func (r *bulkRun) summary() string {
	s := fmt.Sprintf("resubmitted %d of %d (%d same key, %d new key)", r.done, r.plan.n, r.kept, r.done-r.kept)
	if len(r.skipped) == 0 {
		return s
	}
	whys := make([]string, 0, len(r.skipped))
	total := 0
	for why, n := range r.skipped {
		whys = append(whys, fmt.Sprintf("%d %s", n, why))
		total += n
	}
	sort.Strings(whys)
	return s + fmt.Sprintf(" · skipped %d: %s", total, strings.Join(whys, ", "))
}
