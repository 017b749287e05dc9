package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/crm"
)

// The report's output formats.
const (
	reportTable = "table"
	reportJSON  = "json"
	reportCSV   = "csv"
)

func reportCmd(e env) *cobra.Command {
	var o storeFlags
	var by, since, format string
	c := &cobra.Command{
		Use:   "report [--by source|funnel|sub_id|country] [--since D] [--format table|json|csv]",
		Short: "which sources convert: outcomes, statuses and FTDs by group",
		Long: "Print the Sources view's numbers: the leads created in the window, grouped by one of\n" +
			"the payload's fields, with how many were sent (a final outcome), the share accepted,\n" +
			"duplicate, rejected and invalid, how many got a CRM status and reached ftd, the FTD\n" +
			"rate (of accepted) and the median time from acceptance to the first status callback.\n" +
			"The median is read from an 18-bucket histogram (1s, 2s, 5s … 24h), interpolated\n" +
			"inside its bucket. --format json is one array of objects, csv has a header row.",
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if !crm.ValidGroup(by) {
				return usageErrorf("--by is %s, not %q", orList(crm.GroupFields), by)
			}
			switch format {
			case reportTable, reportJSON, reportCSV:
			default:
				return usageErrorf("--format is table, json or csv, not %q", format)
			}
			q := crm.ReportQuery{By: by}
			if since != "" {
				age, err := parseAge(since)
				if err != nil {
					return usageErrorf("--since: %v", err)
				}
				q.Since = time.Now().Add(-age)
			}
			return cmdReport(cmd.Context(), e, o, q, format)
		}),
	}
	o.addConfig(c.Flags())
	o.addDB(c.Flags())
	c.Flags().StringVar(&by, "by", crm.GroupSource, "group by `FIELD`: "+orList(crm.GroupFields))
	c.Flags().StringVar(&since, "since", "", "only leads created in the last `D` (1h, 30m, 7d; default the whole store)")
	c.Flags().StringVar(&format, "format", reportTable, "`FORMAT`: table, json or csv")
	_ = c.RegisterFlagCompletionFunc("by", cobra.FixedCompletions(crm.GroupFields, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{reportTable, reportJSON, reportCSV}, cobra.ShellCompDirectiveNoFileComp))
	return readsEnv(c, storeEnv)
}

func cmdReport(ctx context.Context, e env, o storeFlags, q crm.ReportQuery, format string) error {
	db, err := o.openDB(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Report(ctx, q)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	switch format {
	case reportJSON:
		return writeReportJSON(e.stdout, q.By, rows)
	case reportCSV:
		return writeReportCSV(e.stdout, q.By, rows)
	}
	return writeReportTable(e.stdout, q.By, rows)
}

// reportRecord is one group's numbers as json and csv write them, after
// the group's value (whose key is the field grouped by).
type reportRecord struct {
	Sent            int     `json:"sent"`
	Accepted        int     `json:"accepted"`
	Duplicate       int     `json:"duplicate"`
	Rejected        int     `json:"rejected"`
	ValidationError int     `json:"validation_error"`
	Failed          int     `json:"failed"`
	FTD             int     `json:"ftd"`
	WithStatus      int     `json:"with_status"`
	AcceptedRate    float64 `json:"accepted_rate"`
	DuplicateRate   float64 `json:"duplicate_rate"`
	RejectedRate    float64 `json:"rejected_rate"`
	InvalidRate     float64 `json:"invalid_rate"`
	FailedRate      float64 `json:"failed_rate"`
	FTDRate         float64 `json:"ftd_rate"`
	// MedianFirstStatusMS is null when no lead of the group has a status.
	MedianFirstStatusMS *int64 `json:"median_first_status_ms"`
}

func newReportRecord(r crm.ReportRow) reportRecord {
	rec := reportRecord{
		Sent: r.Sent, Accepted: r.Accepted, Duplicate: r.Duplicate, Rejected: r.Rejected,
		ValidationError: r.ValidationError, Failed: r.Failed, FTD: r.FTD, WithStatus: r.WithStatus,
		AcceptedRate: r.AcceptedRate(), DuplicateRate: r.DuplicateRate(), RejectedRate: r.RejectedRate(),
		InvalidRate: r.InvalidRate(), FailedRate: r.FailedRate(), FTDRate: r.FTDRate(),
	}
	if d, ok := r.MedianFirstStatus(); ok {
		ms := d.Milliseconds()
		rec.MedianFirstStatusMS = &ms
	}
	return rec
}

// reportKeys are the json keys of reportRecord in order, for the csv
// header.
var reportKeys = []string{
	"sent", "accepted", "duplicate", "rejected", "validation_error", "failed", "ftd", "with_status",
	"accepted_rate", "duplicate_rate", "rejected_rate", "invalid_rate", "failed_rate", "ftd_rate",
	"median_first_status_ms",
}

// writeReportJSON writes one JSON array, an object a line, each starting
// with the group's value under the key by: {"source":"fb","sent":…}.
// The key is not a struct field's, so the object is the record's with
// the pair spliced in front.
func writeReportJSON(w io.Writer, by string, rows []crm.ReportRow) error {
	key, err := json.Marshal(by)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rows {
		val, err := json.Marshal(r.Value)
		if err != nil {
			return err
		}
		rec, err := json.Marshal(newReportRecord(r))
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  {%s:%s,%s", key, val, rec[1:])
	}
	if len(rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err = io.WriteString(w, b.String())
	return err
}

func writeReportCSV(w io.Writer, by string, rows []crm.ReportRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{by}, reportKeys...)); err != nil {
		return err
	}
	itoa := strconv.Itoa
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	for _, r := range rows {
		rec := newReportRecord(r)
		median := ""
		if rec.MedianFirstStatusMS != nil {
			median = strconv.FormatInt(*rec.MedianFirstStatusMS, 10)
		}
		if err := cw.Write([]string{
			r.Value, itoa(rec.Sent), itoa(rec.Accepted), itoa(rec.Duplicate), itoa(rec.Rejected),
			itoa(rec.ValidationError), itoa(rec.Failed), itoa(rec.FTD), itoa(rec.WithStatus),
			ftoa(rec.AcceptedRate), ftoa(rec.DuplicateRate), ftoa(rec.RejectedRate),
			ftoa(rec.InvalidRate), ftoa(rec.FailedRate), ftoa(rec.FTDRate), median,
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeReportTable writes the rows as the Sources view shows them.
func writeReportTable(w io.Writer, by string, rows []crm.ReportRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no leads in this window")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// AlignRight lines numbers up; the group's column is padded by hand
	// so that names read from the left.
	width := len(by)
	for _, r := range rows {
		width = max(width, utf8.RuneCountInString(groupLabel(r.Value)))
	}
	fmt.Fprintf(tw, "%-*s\tSENT\tACCEPTED\tDUPLICATE\tREJECTED\tINVALID\tWITH STATUS\tFTD\tFTD RATE\tMEDIAN 1ST STATUS\t\n", width, strings.ToUpper(by))
	for _, r := range rows {
		median := "-"
		if d, ok := r.MedianFirstStatus(); ok {
			median = roughDuration(d)
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", width, groupLabel(r.Value), r.Sent,
			percent(r.AcceptedRate()), percent(r.DuplicateRate()), percent(r.RejectedRate()),
			percent(r.InvalidRate()), r.WithStatus, r.FTD, percent(r.FTDRate()), median)
	}
	return tw.Flush()
}

// groupLabel is a group's value for the table: leads without the field
// are one group too, and must not print as an empty cell.
func groupLabel(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// percent is a rate as the table shows it: "71.4%".
func percent(r float64) string { return strconv.FormatFloat(100*r, 'f', 1, 64) + "%" }

// roughDuration is a median read from a histogram, without the false
// precision of its interpolation: "<1s", "42s", "3m10s", "3m", "2h5m",
// "2h".
func roughDuration(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	if d.Round(time.Second) < time.Hour {
		s := d.Round(time.Second).String()
		if m, ok := strings.CutSuffix(s, "m0s"); ok {
			return m + "m"
		}
		return s
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if h, ok := strings.CutSuffix(s, "h0m"); ok {
		return h + "h"
	}
	return s
}
