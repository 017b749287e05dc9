package store

import "testing"

// TestReportRanges checks the window cover against the minutes it stands
// for: contiguous from the start on, each range on its span's bounds, the
// last one open and the only one reaching past now, and at most 9 + 5 +
// 23 rows per value before the days.
func TestReportRanges(t *testing.T) {
	day := int64(24 * 60 * 60000)
	now := 20_000*day + 13*60*60000 + 37*60000 + 1234
	for _, from := range []int64{0, 60000, 9 * 60000, 10 * 60000, 59 * 60000, day - 60000, day, 19_999 * day,
		19_999*day + 13*60*60000 + 37*60000, now - 5*60000 - 1234, now - 60*60000 - 1234, now - 1234, now + 60000 - 1234} {
		rs := ReportRanges(from, now)
		at, rows := from, int64(0)
		for i, r := range rs {
			step := max(r.Span, 60000)
			if r.Lo != at || r.Lo%step != 0 || (r.Hi >= 0 && (r.Hi <= r.Lo || r.Hi%step != 0 || r.Hi > now)) {
				t.Fatalf("from %d: range %d = %+v after %d", from, i, r, at)
			}
			if r.Hi < 0 {
				if i != len(rs)-1 {
					t.Fatalf("from %d: open range %+v is not the last", from, r)
				}
				break
			}
			rows += (r.Hi - r.Lo) / step
			at = r.Hi
		}
		if rows > 9+5+23 {
			t.Errorf("from %d: %d rows per value before the last range: %+v", from, rows, rs)
		}
		if last := rs[len(rs)-1]; last.Hi >= 0 || (now-last.Lo)/max(last.Span, 60000) > max(9, 5, 23, (now-from)/day) {
			t.Errorf("from %d: last range %+v covers too many buckets up to now", from, last)
		}
	}
}
