package crm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLatencyBucket(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{-time.Hour, 0}, // a status recorded before the acceptance
		{0, 0},
		{400 * time.Millisecond, 0},
		{time.Second, 0}, // bounds are inclusive
		{time.Second + time.Millisecond, 1},
		{2 * time.Second, 1},
		{7 * time.Second, 3},
		{45 * time.Second, 6},
		{90 * time.Second, 7},
		{3 * time.Minute, 8},
		{25 * time.Minute, 11},
		{24 * time.Hour, 16},
		{24*time.Hour + time.Millisecond, 17},
		{30 * 24 * time.Hour, 17},
	}
	for _, tt := range tests {
		if got := LatencyBucket(tt.d); got != tt.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	// Every bound falls in its own bucket, a nanosecond past it in the next.
	for i, b := range LatencyBounds {
		if LatencyBucket(b) != i || LatencyBucket(b+1) != i+1 {
			t.Errorf("bound %d (%v): buckets %d and %d", i, b, LatencyBucket(b), LatencyBucket(b+1))
		}
	}
}

func TestMedianFirstStatus(t *testing.T) {
	hist := func(kv ...int) ReportRow {
		var r ReportRow
		for i := 0; i < len(kv); i += 2 {
			r.FirstStatus[kv[i]] = kv[i+1]
		}
		return r
	}
	tests := []struct {
		name string
		r    ReportRow
		want time.Duration
	}{
		// One lead in (30 s, 1 min]: half of it is the middle of the bucket.
		{"one_lead", hist(6, 1), 45 * time.Second},
		// Two leads in bucket 0, [0, 1 s]: the median is half way.
		{"bucket_zero", hist(0, 2), 500 * time.Millisecond},
		// Three leads, one each in 7 s, 45 s and 3 min buckets: the middle
		// one's bucket, (30 s, 1 min], interpolated at 1.5 of 1.
		{"three_buckets", hist(3, 1, 6, 1, 8, 1), 30*time.Second + 15*time.Second},
		// Four leads, two below: the median is the top of the lower half.
		{"even_split", hist(2, 2, 9, 2), 5 * time.Second},
		// Ten leads in (2 min, 5 min]: half way, 3.5 min.
		{"one_bucket_many", hist(8, 10), 2*time.Minute + 90*time.Second},
		// The last bucket is unbounded: its lower bound.
		{"last_bucket", hist(17, 3), 24 * time.Hour},
		{"mostly_last", hist(0, 1, 17, 5), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.r.MedianFirstStatus()
			if !ok || got != tt.want {
				t.Fatalf("median = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
	if d, ok := (ReportRow{Sent: 10, Accepted: 5}).MedianFirstStatus(); ok || d != 0 {
		t.Fatalf("no statuses: %v, %v; want 0, false", d, ok)
	}
}

// TestMedianInItsBucket: whatever the histogram, the median lands in the
// bucket of the middle lead.
func TestMedianInItsBucket(t *testing.T) {
	delays := []time.Duration{300 * time.Millisecond, 7 * time.Second, 8 * time.Second, 45 * time.Second,
		3 * time.Minute, 11 * time.Minute, 50 * time.Minute, 3 * time.Hour, 13 * time.Hour}
	for n := 1; n <= len(delays); n += 2 {
		var r ReportRow
		for _, d := range delays[:n] {
			r.FirstStatus[LatencyBucket(d)]++
		}
		mid := delays[n/2]
		b := LatencyBucket(mid)
		lo := time.Duration(0)
		if b > 0 {
			lo = LatencyBounds[b-1]
		}
		got, ok := r.MedianFirstStatus()
		if !ok || got < lo || got > LatencyBounds[b] {
			t.Errorf("%d leads: median %v, want in [%v, %v] (the bucket of %v)", n, got, lo, LatencyBounds[b], mid)
		}
	}
}

func TestActionApplies(t *testing.T) {
	want := map[Action][]State{
		ActRetryNow: {StateRetryWait},
		ActHold:     {StateQueued, StateRetryWait},
		ActRelease:  {StateHeld},
		ActCancel:   {StateQueued, StateRetryWait, StateHeld},
		"bogus":     nil,
		"":          nil,
	}
	for a, states := range want {
		for _, s := range States {
			applies := false
			for _, w := range states {
				applies = applies || w == s
			}
			if a.Applies(s) != applies {
				t.Errorf("%q.Applies(%s) = %v, want %v", a, s, a.Applies(s), applies)
			}
		}
		// No action applies to a lead in flight: its sender owns it.
		if a.Applies(StateInFlight) {
			t.Errorf("%q applies to in_flight", a)
		}
	}
	err := WrongState(ActHold, StateAccepted)
	if !errors.Is(err, ErrWrongState) || !strings.Contains(err.Error(), "hold") || !strings.Contains(err.Error(), "accepted") {
		t.Errorf("WrongState = %v", err)
	}
}

func TestPauseValidate(t *testing.T) {
	for _, f := range []string{GroupSource, GroupSubID} {
		if err := (Pause{Field: f, Value: "x"}).Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range []string{GroupFunnel, GroupCountry, "", "Source", "sub-id"} {
		if err := (Pause{Field: f, Value: "x"}).Validate(); err == nil {
			t.Errorf("pause on %q accepted", f)
		}
	}
	for _, f := range GroupFields {
		if !ValidGroup(f) {
			t.Errorf("ValidGroup(%q) = false", f)
		}
	}
	for _, f := range []string{"", "phone", "SOURCE"} {
		if ValidGroup(f) {
			t.Errorf("ValidGroup(%q) = true", f)
		}
	}
}

func TestReportRowRates(t *testing.T) {
	r := ReportRow{Sent: 8, Accepted: 4, Duplicate: 2, Rejected: 1, ValidationError: 1, FTD: 1, WithStatus: 3}
	r.FirstStatus[2] = 3
	if r.AcceptedRate() != 0.5 || r.DuplicateRate() != 0.25 || r.RejectedRate() != 0.125 ||
		r.InvalidRate() != 0.125 || r.FailedRate() != 0 || r.FTDRate() != 0.25 {
		t.Errorf("rates %v %v %v %v %v %v", r.AcceptedRate(), r.DuplicateRate(), r.RejectedRate(),
			r.InvalidRate(), r.FailedRate(), r.FTDRate())
	}
	if (ReportRow{}).AcceptedRate() != 0 || (ReportRow{Sent: 3}).FTDRate() != 0 || Rate(1, -1) != 0 {
		t.Error("a rate over zero is not 0")
	}
	sum := ReportRow{Value: "a"}
	sum.Add(r)
	sum.Add(r)
	if sum.Value != "a" || sum.Sent != 16 || sum.FTD != 2 || sum.WithStatus != 6 || sum.FirstStatus[2] != 6 || sum.ValidationError != 2 {
		t.Errorf("Add = %+v", sum)
	}
}

// TestGroupFields: CheckLead's source, funnel and sub_id as the Sources
// view groups them: strings as they are, numbers as their JSON text,
// anything else "", cut to MaxGroupValue at a rune boundary.
func TestGroupFields(t *testing.T) {
	long := strings.Repeat("s", 300)
	runes := strings.Repeat("x", MaxGroupValue-1) + "é" // é is 2 bytes: it would be cut in two
	tests := []struct {
		name, fields        string
		source, funnel, sub string
	}{
		{"strings", `"source":"fb","funnel":"quiz-1","sub_id":"aff 7"`, "fb", "quiz-1", "aff 7"},
		{"numbers_as_text", `"source":12,"funnel":-3,"sub_id":1.50`, "12", "-3", "1.50"},
		{"big_number_exact", `"sub_id":12345678901234567890`, "", "", "12345678901234567890"},
		{"exponent", `"sub_id":1e3`, "", "", "1e3"},
		{"objects_and_others", `"source":{"a":1},"funnel":[1,2],"sub_id":true`, "", "", ""},
		{"null_and_false", `"source":null,"sub_id":false`, "", "", ""},
		{"absent", ``, "", "", ""},
		{"empty_string", `"source":""`, "", "", ""},
		{"escapes_decoded", `"source":"a\u00e9\"b"`, `aé"b`, "", ""},
		{"long_cut", `"source":"` + long + `"`, long[:MaxGroupValue], "", ""},
		{"cut_at_rune", `"funnel":"` + runes + `"`, "", runes[:MaxGroupValue-1], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"external_id":"g","phone":"+380501234567"`
			if tt.fields != "" {
				body += "," + tt.fields
			}
			f, err := CheckLead([]byte(body+"}"), LeadCheck{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Source != tt.source || f.Funnel != tt.funnel || f.SubID != tt.sub {
				t.Fatalf("source %q funnel %q sub_id %q; want %q %q %q", f.Source, f.Funnel, f.SubID, tt.source, tt.funnel, tt.sub)
			}
		})
	}
}

func TestCutGroupValue(t *testing.T) {
	exact := strings.Repeat("a", MaxGroupValue)
	tests := []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{exact, exact},
		{exact + "b", exact},
		{strings.Repeat("a", MaxGroupValue-1) + "€uro", strings.Repeat("a", MaxGroupValue-1)}, // € is 3 bytes
		{strings.Repeat("a", MaxGroupValue-3) + "€uro", strings.Repeat("a", MaxGroupValue-3) + "€"},
		{strings.Repeat("é", MaxGroupValue), strings.Repeat("é", MaxGroupValue/2)},
	}
	for _, tt := range tests {
		got := CutGroupValue(tt.in)
		if got != tt.want {
			t.Errorf("CutGroupValue(%d bytes) = %d bytes %q…, want %d bytes", len(tt.in), len(got), got[max(0, len(got)-6):], len(tt.want))
		}
		if len(got) > MaxGroupValue {
			t.Errorf("cut to %d bytes", len(got))
		}
	}
}
