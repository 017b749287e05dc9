package store

import (
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// MaxBuckets bounds Throughput's slices whatever range is asked for.
const MaxBuckets = 10000

// NewThroughput is the frame of a Store.Throughput answer from since to now,
// oldest bucket first, with every bucket zero, and the bounds a backend
// queries its per-second rows by: from (the first bucket's start, Unix
// seconds) and width (a bucket's length in seconds). The rows wanted are
// those with from <= sec < ThroughputEnd(t, from, width), grouped by
// (sec - from) / width; AddThroughput puts each group in its slot.
//
// The resolution is one second: since is truncated to a whole second and
// bucket rounded up to whole seconds (one second at least). The bucket
// holding now is included. At most MaxBuckets buckets are returned: a
// longer range keeps the newest MaxBuckets, and Start moves up to match.
func NewThroughput(since time.Time, bucket time.Duration, now time.Time) (t crm.Throughput, from, width int64) {
	bucket = max(time.Second, (bucket + time.Second - 1).Truncate(time.Second))
	since = since.Truncate(time.Second)
	n := int((now.Sub(since) + bucket) / bucket) // the bucket holding now included
	if n < 1 {
		n = 1
	}
	if n > MaxBuckets {
		n = MaxBuckets
		since = now.Truncate(time.Second).Add(-time.Duration(n-1) * bucket)
	}
	t = crm.Throughput{Start: since, Bucket: bucket, Sent: make([]int, n), Callbacks: make([]int, n)}
	return t, since.Unix(), int64(bucket / time.Second)
}

// ThroughputEnd is the end (Unix seconds, exclusive) of the window that
// NewThroughput framed as t, from and width.
func ThroughputEnd(t crm.Throughput, from, width int64) int64 {
	return from + int64(len(t.Sent))*width
}

// AddThroughput sets bucket i of t to one grouped row's sums. An index
// outside t's buckets (a row the query should not have returned) is
// ignored.
func AddThroughput(t crm.Throughput, i int64, sent, callbacks int) {
	if i >= 0 && i < int64(len(t.Sent)) {
		t.Sent[i], t.Callbacks[i] = sent, callbacks
	}
}
