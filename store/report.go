package store

// ReportSpans are the coarse spans of the Sources report's buckets, in
// ms, finest first (both backends' source_stats_coarse): 10 minutes, an
// hour, a day. Each divides the next, so a window's start rounds up span
// by span (ReportRanges).
var ReportSpans = [...]int64{10 * 60000, 60 * 60000, 24 * 60 * 60000}

// ReportRange is a range of one table's buckets: the per-minute buckets
// (Span 0) or one span of the coarse ones, from Lo up to Hi (-1: no end).
type ReportRange struct{ Span, Lo, Hi int64 }

// ReportRanges covers the minutes from (a minute's start, >= 0) on with
// the coarsest buckets that fit: the minutes up to the next 10 minutes'
// start, then the 10 minutes up to the next hour, the hours up to the
// next day and the days from there. A range reaching past now is the
// last, open-ended: a short window is one range of minutes, and rows
// ahead of the clock (another instance's) are counted. Empty ranges are
// left out. A window of any length is so read in at most 9 + 5 + 23 rows
// per value, plus one per day.
func ReportRanges(from, now int64) []ReportRange {
	var out []ReportRange
	span := int64(0)
	for _, next := range ReportSpans {
		hi := (from + next - 1) / next * next
		if hi > now {
			break
		}
		if hi > from {
			out = append(out, ReportRange{span, from, hi})
		}
		span, from = next, hi
	}
	return append(out, ReportRange{span, from, -1})
}
