package ui

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// timelineEntry is one line of a lead's story.
type timelineEntry struct {
	at    time.Time
	order int // tie-break: enqueue, then attempts, then callbacks, then their forwards
	text  string
}

// timelineIndent is where a timeline entry's text starts: two cells, the
// 23-cell stamp, two cells.
const timelineIndent = 27

// renderLead is a lead's story: its state, a timeline across both
// directions, the payload as sent and the last answer.
func (d detailView) renderLead() string {
	st, l := d.st, d.lead.Lead
	var b strings.Builder
	b.WriteString(d.field("state", st.State(l.State).Render(string(l.State))) + "\n")
	b.WriteString(d.field("idempotency key", clean(l.IdempotencyKey)) + "\n")
	if l.CRMID != "" || l.CRMStatus != "" {
		b.WriteString(d.field("crm", clean(strings.TrimSpace(l.CRMID+"  "+l.CRMStatus))) + "\n")
	}
	if l.Reason != "" {
		b.WriteString(d.field("reason", clean(l.Reason)) + "\n")
	}
	if l.PhoneInvalid {
		b.WriteString(d.field("phone", st.Warn.Render("not valid E.164 (sent anyway)")) + "\n")
	}
	if l.State == crm.StateRetryWait {
		b.WriteString(d.field("next attempt", fmtCountdown(l.NextAttemptAt, d.now)+"  "+d.stamp(l.NextAttemptAt)) + "\n")
	}
	b.WriteString(d.field("attempts", strconv.Itoa(l.Attempts)+" under the current key") + "\n")

	b.WriteString("\n" + st.Section.Render("Timeline") + "\n")
	var tl []timelineEntry
	tl = append(tl, timelineEntry{l.CreatedAt, 0, st.Info.Render("→ enqueued") + "  " + st.Muted.Render("key "+clean(firstKey(d.lead)))})
	for _, a := range d.lead.Attempts {
		tl = append(tl, timelineEntry{a.StartedAt, 1, d.attemptLine(a)})
	}
	for _, c := range d.lead.Callbacks {
		tl = append(tl, timelineEntry{c.ReceivedAt, 2, d.callbackLine(c)})
	}
	tl = append(tl, d.forwardLines()...)
	sort.SliceStable(tl, func(i, j int) bool {
		if !tl[i].at.Equal(tl[j].at) {
			return tl[i].at.Before(tl[j].at)
		}
		return tl[i].order < tl[j].order
	})
	for _, e := range tl {
		// Wrapped between words, continuing under the entry's text.
		line := "  " + st.Muted.Render(d.stamp(e.at)) + "  " + e.text
		b.WriteString(hangWrap(line, d.vp.Width, timelineIndent) + "\n")
	}

	b.WriteString("\n" + st.Section.Render("Payload") + st.Muted.Render(fmt.Sprintf("  %d bytes, as signed and sent", len(l.Payload))) + "\n")
	b.WriteString(prettyJSON(l.Payload) + "\n")
	if a, ok := lastSend(d.lead.Attempts); ok {
		head := fmt.Sprintf("  attempt %d", a.Number)
		if a.HTTPStatus != 0 {
			head += fmt.Sprintf(" · HTTP %d", a.HTTPStatus)
		}
		b.WriteString("\n" + st.Section.Render("Last response") + st.Muted.Render(head) + "\n")
		switch {
		case len(a.ResponseBody) > 0:
			b.WriteString(prettyJSON(a.ResponseBody) + "\n")
		case a.Error != "":
			b.WriteString(st.Bad.Render(clean(a.Error)) + "\n")
		default:
			b.WriteString(st.Muted.Render("(no body)") + "\n")
		}
	}
	for i := len(d.lead.Attempts) - 1; i >= 0; i-- {
		a := d.lead.Attempts[i]
		if a.Kind == crm.KindResubmit && len(a.PrevPayload) > 0 {
			b.WriteString("\n" + st.Section.Render("Payload before the last edit") + "\n")
			b.WriteString(prettyJSON(a.PrevPayload) + "\n")
			break
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// firstKey is the key the lead was enqueued with: the first history row's
// key, or the current one when nothing was sent yet.
func firstKey(ld crm.LeadDetail) string {
	for _, a := range ld.Attempts {
		if a.IdempotencyKey != "" {
			return a.IdempotencyKey
		}
	}
	return ld.Lead.IdempotencyKey
}

// lastSend is the most recent HTTP attempt.
func lastSend(as []crm.Attempt) (crm.Attempt, bool) {
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].Kind != crm.KindResubmit {
			return as[i], true
		}
	}
	return crm.Attempt{}, false
}

func (d detailView) attemptLine(a crm.Attempt) string {
	st := d.st
	if a.Kind == crm.KindResubmit {
		line := st.Dup.Render("↻ resubmitted")
		if a.Note != "" {
			line += "  " + clean(a.Note)
		}
		if !strings.Contains(a.Note, a.IdempotencyKey) {
			// The note may already say the key ("new key X").
			line += st.Muted.Render("  · key " + clean(a.IdempotencyKey))
		}
		if len(a.PrevPayload) > 0 {
			line += st.Warn.Render("  · payload edited")
		}
		return line
	}
	line := st.Info.Render(fmt.Sprintf("→ attempt %d", a.Number)) + "  "
	switch {
	case a.HTTPStatus != 0:
		line += httpStyle(st, a.HTTPStatus).Render(fmt.Sprintf("HTTP %d", a.HTTPStatus))
	case a.Error != "":
		line += st.Bad.Render("error: " + clean(a.Error))
	default:
		line += st.Muted.Render("no answer")
	}
	line += st.Muted.Render(" · " + fmtDur(a.Duration))
	if a.Outcome != "" {
		line += " → " + st.State(a.Outcome).Render(string(a.Outcome))
	}
	switch {
	case a.Delay > 0:
		why := "retry in " + fmtDur(a.Delay)
		if a.DelayWhy != "" {
			why += " (" + clean(a.DelayWhy) + ")"
		}
		line += "  " + st.Warn.Render(why)
	case a.DelayWhy != "":
		// A final outcome: the classifier's reason, no delay.
		line += st.Muted.Render("  (" + clean(a.DelayWhy) + ")")
	}
	if a.IdempotencyKey != "" && a.IdempotencyKey != d.lead.Lead.IdempotencyKey {
		line += st.Muted.Render("  · old key " + clean(a.IdempotencyKey))
	}
	return line
}

// callbackLine is a stored status: a verified callback, or a status
// leadwatch learned by a lookup (polled), which the CRM never signed and
// so has no skew or dedup key of its own; it must never read as one.
func (d detailView) callbackLine(c crm.CallbackEvent) string {
	st := d.st
	if c.Kind == crm.KindPolled {
		line := st.Info.Render("◇ polled status") + "  " + clean(strings.TrimSpace(c.Status+" "+c.Reason))
		return line + st.Muted.Render("  · status lookup, not a callback")
	}
	line := st.Good.Render("← callback "+clean(c.Event)) + "  " + clean(strings.TrimSpace(c.Status+" "+c.Reason))
	return line + st.Muted.Render(fmt.Sprintf("  · skew %s · %s", fmtSkew(c.Skew), clean(c.DedupKey)))
}
