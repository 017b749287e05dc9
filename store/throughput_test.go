package store

import (
	"testing"
	"time"
)

func TestNewThroughputFrame(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	cases := []struct {
		name        string
		since       time.Time
		bucket      time.Duration
		wantStart   time.Time
		wantBucket  time.Duration
		wantBuckets int
	}{
		{"whole seconds", now.Add(-9 * time.Second), time.Second, now.Add(-9 * time.Second).Truncate(time.Second), time.Second, 10},
		{"bucket rounded up", now.Add(-10 * time.Second), 1500 * time.Millisecond, now.Add(-10 * time.Second).Truncate(time.Second), 2 * time.Second, 6},
		{"zero bucket is one second", now, 0, now.Truncate(time.Second), time.Second, 1},
		{"since after now", now.Add(time.Hour), time.Second, now.Add(time.Hour).Truncate(time.Second), time.Second, 1},
		{"clamped", now.Add(-24 * time.Hour), time.Second, now.Truncate(time.Second).Add(-(MaxBuckets - 1) * time.Second), time.Second, MaxBuckets},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp, from, width := NewThroughput(c.since, c.bucket, now)
			if !tp.Start.Equal(c.wantStart) || tp.Bucket != c.wantBucket {
				t.Errorf("start, bucket = %v, %v; want %v, %v", tp.Start, tp.Bucket, c.wantStart, c.wantBucket)
			}
			if len(tp.Sent) != c.wantBuckets || len(tp.Callbacks) != c.wantBuckets {
				t.Fatalf("%d sent and %d callback buckets, want %d", len(tp.Sent), len(tp.Callbacks), c.wantBuckets)
			}
			if from != tp.Start.Unix() || width != int64(tp.Bucket/time.Second) {
				t.Errorf("from, width = %d, %d; want %d, %d", from, width, tp.Start.Unix(), int64(tp.Bucket/time.Second))
			}
			end := ThroughputEnd(tp, from, width)
			if end != from+int64(c.wantBuckets)*width {
				t.Errorf("end = %d, want %d", end, from+int64(c.wantBuckets)*width)
			}
			// The bucket holding now is the last one (when the range has one).
			if sec := now.Unix(); !c.since.After(now) && (sec < end-width || sec >= end) {
				t.Errorf("now (%d) is not in the last bucket [%d, %d)", sec, end-width, end)
			}
		})
	}
}

func TestAddThroughput(t *testing.T) {
	now := time.Unix(1000, 0)
	tp, _, _ := NewThroughput(now.Add(-2*time.Second), time.Second, now)
	AddThroughput(tp, 0, 3, 4)
	AddThroughput(tp, 2, 5, 6)
	AddThroughput(tp, -1, 9, 9) // ignored
	AddThroughput(tp, 3, 9, 9)  // ignored
	if want := []int{3, 0, 5}; !equal(tp.Sent, want) {
		t.Errorf("sent = %v, want %v", tp.Sent, want)
	}
	if want := []int{4, 0, 6}; !equal(tp.Callbacks, want) {
		t.Errorf("callbacks = %v, want %v", tp.Callbacks, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
