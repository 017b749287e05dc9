package forward

import (
	"bytes"
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/ratelog"
)

// Queue is the store's delivery queue, as the Forwarder uses it; the
// store satisfies it.
type Queue interface {
	// StartForwarding marks the store as forwarded from now on.
	StartForwarding(ctx context.Context) error
	// ClaimDeliveries leases up to limit due deliveries to owner, in
	// stored order; one lead's deliveries are claimed one at a time or
	// in order.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]crm.Delivery, error)
	// RecordDeliveries stores the attempts' outcomes; lost are the ids
	// whose lease owner no longer held (nothing was recorded for them).
	RecordDeliveries(ctx context.Context, owner string, rs []crm.DeliveryResult) (lost []int64, err error)
	// ReleaseDeliveries gives claimed deliveries back, due at once.
	ReleaseDeliveries(ctx context.Context, owner string, ids []int64) error
	// Watch signals (coalesced) that the store changed.
	Watch(ctx context.Context) <-chan struct{}
}

// Observer learns of every attempt as its answer arrives, for metrics. It
// is called from the attempt's goroutine and must be quick and never
// block.
type Observer interface {
	// Forwarded reports one attempt: the app's HTTP status (0 when no
	// answer came), how long it took, and whether it was delivered.
	Forwarded(status int, took time.Duration, delivered bool)
}

// Defaults of Config.
const (
	DefaultConcurrency = 32
	DefaultTimeout     = 10 * time.Second
	// HeadBytes is how much of the app's answer is kept per attempt: its
	// status line says the rest; an error message fits.
	HeadBytes = 512
	// drainBytes is how much more of an answer is read (and dropped) so
	// that its connection can carry the next delivery; an answer longer
	// than that costs a new connection, never the memory to hold it.
	drainBytes = 4 << 10
)

// Config tunes a Forwarder. Zero values take the defaults named.
type Config struct {
	// URL is the app's endpoint; required.
	URL string
	// Signer signs every delivery; required.
	Signer *Signer
	// Timeout bounds one attempt, answer included; default 10 s.
	Timeout time.Duration
	// Concurrency is how many attempts are on the wire at once; default 32.
	Concurrency int
	// Batch is how many deliveries one claim may lease; default
	// 4×Concurrency, so the senders never wait for a claim and a claim
	// (a store write) is shared by many deliveries.
	Batch int
	// Policy is the retry schedule.
	Policy Policy
	// Lease is how long a claim holds a delivery; default long enough for
	// a full batch to be sent at Timeout each, plus its recording.
	Lease time.Duration
	// Owner names the lease holder; default host:pid:random.
	Owner string
	// IdleCheck is how often to look for work when nothing wakes the
	// Forwarder (another instance's retries come due); default 1 s.
	IdleCheck time.Duration
	// ClaimGap is the least time between two claims; default 10 ms. A
	// burst of stored callbacks fires the store's change signal hundreds
	// of times a second, and a claim per signal would take the writer
	// from the listener for a handful of deliveries each.
	ClaimGap time.Duration
	// Busy, when set, says the store's writer is wanted elsewhere (the
	// listener is taking a burst of callbacks, see RateAbove): while it
	// says so, the Forwarder claims at most once per BusyGap, so the
	// listener keeps its rate and the queue lags instead; it drains at
	// full speed when the burst ends.
	Busy func() bool
	// BusyGap is the least time between two claims while Busy; default
	// 2 s: a claim moves every callback stored since the last into the
	// queue, in the writer's one transaction the listener waits behind,
	// so during a burst there are few; a burst that does not end still
	// has its callbacks forwarded, a batch per gap.
	BusyGap time.Duration
	// BusyMax bounds how long the Forwarder yields in a row; default
	// 10 s. Traffic that keeps Busy true longer is the campaign's steady
	// rate, not a burst: yielding to it would let the queue grow without
	// end (a batch per BusyGap is far below it), so the Forwarder then
	// claims as usual, sharing the writer, until Busy says false again.
	BusyMax time.Duration
	// Clock and Jitter are injectable for tests.
	Clock  crm.Clock
	Jitter func() float64
	// Client sends the requests; default one that never follows a
	// redirect and keeps Concurrency connections to the app.
	Client *http.Client
	Logger *slog.Logger
	// LogEvery is how often a repeated problem is logged; default 30 s.
	LogEvery time.Duration
}

// Forwarder drains the store's delivery queue: it claims batches under a
// lease, sends each delivery signed to the app with bounded concurrency,
// one lead's deliveries in stored order, and records the answers in
// batches. Several Forwarders, in one process or several, may share a
// store. Safe for concurrent use.
type Forwarder struct {
	q      Queue
	cfg    Config
	client *http.Client
	log    *slog.Logger
	rlog   *ratelog.Logger

	wake     chan struct{}
	inFlight atomic.Int64 // claimed, not yet recorded or released
	observer atomic.Pointer[observerRef]

	delivered atomic.Int64
	failures  atomic.Int64

	retryMu sync.Mutex
	retries timeHeap // when retries this process recorded come due
}

type observerRef struct{ Observer }

// New returns a Forwarder over q; Run starts it. It fails only on a
// Config without a URL or a Signer.
func New(q Queue, cfg Config) (*Forwarder, error) {
	if cfg.URL == "" {
		return nil, errors.New("forward: no URL")
	}
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward: %q is not an absolute http(s) URL", crm.RedactURL(cfg.URL))
	}
	if cfg.Signer == nil {
		return nil, errors.New("forward: no secret")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 4 * cfg.Concurrency
	}
	cfg.Policy = cfg.Policy.withDefaults()
	if cfg.Lease <= 0 {
		// A claimed delivery may wait behind Batch/Concurrency others
		// on its sender, each bounded by Timeout.
		cfg.Lease = time.Duration(cfg.Batch/cfg.Concurrency+2)*cfg.Timeout + 10*time.Second
	}
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = time.Second
	}
	if cfg.ClaimGap <= 0 {
		cfg.ClaimGap = 10 * time.Millisecond
	}
	if cfg.BusyGap <= 0 {
		cfg.BusyGap = 2 * time.Second
	}
	if cfg.BusyMax <= 0 {
		cfg.BusyMax = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 30 * time.Second
	}
	client := cfg.Client
	if client == nil {
		client = NewClient(cfg.Timeout, cfg.Concurrency)
	}
	log := cfg.Logger.With("component", "forwarder", "owner", cfg.Owner)
	return &Forwarder{
		q:      q,
		cfg:    cfg,
		client: client,
		log:    log,
		rlog:   ratelog.New(log, cfg.LogEvery, ratelog.WithClock(cfg.Clock.Now)),
		wake:   make(chan struct{}, 1),
	}, nil
}

// NewClient is the HTTP client deliveries go out on: it never follows a
// redirect (the answer is recorded as it is: a redirect means forward.url
// is not the app's own address, and following it would send the signed
// body somewhere not configured), bounds each attempt by timeout and keeps
// conns connections to the app alive.
func NewClient(timeout time.Duration, conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Owner is the lease owner this Forwarder claims under.
func (f *Forwarder) Owner() string { return f.cfg.Owner }

// URL is the app's endpoint without credentials, fit to print.
func (f *Forwarder) URL() string { return crm.RedactURL(f.cfg.URL) }

// Delivered is how many deliveries this Forwarder has had answered 2xx
// (and recorded).
func (f *Forwarder) Delivered() int64 { return f.delivered.Load() }

// Failures is how many of its attempts were not delivered.
func (f *Forwarder) Failures() int64 { return f.failures.Load() }

// SetObserver makes o hear every attempt from now on; nil removes it. A
// setter, as crm.Dispatcher's, because main knows whether metrics are on
// only after it built the Forwarder; safe while Run runs.
func (f *Forwarder) SetObserver(o Observer) {
	if o == nil {
		f.observer.Store(nil)
		return
	}
	f.observer.Store(&observerRef{o})
}

// Notify wakes the Forwarder to claim now (a replay was queued). It never
// blocks.
func (f *Forwarder) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// outcome is what a sender hands the recorder: one attempt's result, or
// deliveries to give back unsent.
type outcome struct {
	d       crm.Delivery
	res     crm.DeliveryResult
	release bool
}

// Run forwards until ctx is done, then lets the attempts on the wire
// finish (each bounded by Timeout), records them and releases what was
// claimed but not sent. It returns an error only when the store cannot
// start forwarding; later store failures are logged and retried.
func (f *Forwarder) Run(ctx context.Context) error {
	if err := f.q.StartForwarding(ctx); err != nil {
		return fmt.Errorf("start forwarding: %w", err)
	}
	f.log.Info("forwarding", "url", f.URL(), "concurrency", f.cfg.Concurrency,
		"max_attempts", f.cfg.Policy.MaxAttempts, "timeout", f.cfg.Timeout.String())

	work := make(chan []crm.Delivery, f.cfg.Batch)
	results := make(chan outcome, f.cfg.Batch)
	var senders sync.WaitGroup
	for range f.cfg.Concurrency {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for g := range work {
				f.sendGroup(ctx, g, results)
			}
		}()
	}
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		f.record(results)
	}()
	defer func() {
		close(work)
		senders.Wait()
		close(results)
		<-recorded
	}()

	changes := f.q.Watch(ctx)
	clock := f.cfg.Clock
	var (
		lastClaim time.Time
		backoff   time.Duration
		retryAt   time.Time
		busySince time.Time // when Busy last turned true; zero while it says false
	)
	// yield says whether to hold off a claim for the listener's burst: for
	// as long as Busy says so, up to BusyMax in a row.
	yield := func(now time.Time) bool {
		if !f.cfg.Busy() {
			busySince = time.Time{}
			return false
		}
		if busySince.IsZero() {
			busySince = now
		}
		return now.Sub(busySince) < f.cfg.BusyMax
	}
	for {
		wait := f.cfg.IdleCheck
		now := clock.Now()
		free := f.cfg.Batch - int(f.inFlight.Load())
		switch {
		case now.Before(retryAt):
			wait = retryAt.Sub(now)
		case free <= 0:
		case f.inFlight.Load() > 0 && free < max(1, min(f.cfg.Concurrency, f.cfg.Batch/2)):
			// Under load, wait for a sender's worth of slots: a claim is a
			// store commit, worth sharing.
		case now.Sub(lastClaim) < f.cfg.ClaimGap:
			wait = f.cfg.ClaimGap - now.Sub(lastClaim)
		case f.cfg.Busy != nil && now.Sub(lastClaim) < f.cfg.BusyGap && yield(now):
			// Look again within IdleCheck: the burst may end before the
			// gap does, and nothing else would wake the loop then.
			wait = min(f.cfg.BusyGap-now.Sub(lastClaim), f.cfg.IdleCheck)
		default:
			lastClaim = now
			ds, err := f.q.ClaimDeliveries(ctx, f.cfg.Owner, now, f.cfg.Lease, free)
			if ctx.Err() != nil {
				f.releaseNow(ds)
				return nil
			}
			if err != nil {
				backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
				retryAt = clock.Now().Add(backoff)
				f.rlog.Error("claim", "claim deliveries failed", "err", err, "retry_in", backoff)
				wait = backoff
				break
			}
			backoff = 0
			f.dueRetries(now)
			if len(ds) > 0 {
				f.inFlight.Add(int64(len(ds)))
				for _, g := range groupByLead(ds) {
					work <- g // never blocks: at most Batch groups are claimed
				}
			}
			if len(ds) == free {
				// Maybe more due: claim again as soon as slots free up.
				continue
			}
			if next, ok := f.nextRetry(); ok {
				wait = min(wait, max(next.Sub(clock.Now()), time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-changes:
		case <-clock.After(wait):
		}
	}
}

// groupByLead splits a claim into what may be sent in parallel: each
// lead's deliveries, in claimed (stored) order, form one group sent one
// after the other; a delivery for no lead is a group of its own.
func groupByLead(ds []crm.Delivery) [][]crm.Delivery {
	var out [][]crm.Delivery
	at := map[int64]int{}
	for _, d := range ds {
		if d.LeadID == 0 {
			out = append(out, []crm.Delivery{d})
			continue
		}
		if i, ok := at[d.LeadID]; ok {
			out[i] = append(out[i], d)
			continue
		}
		at[d.LeadID] = len(out)
		out = append(out, []crm.Delivery{d})
	}
	return out
}

// sendGroup sends one lead's deliveries in order. One that is not
// delivered stops the rest, which go back to the queue: a later event
// must not reach the app before an earlier one. So do all of them once
// the Forwarder is stopping, rather than start an attempt it would have
// to wait for.
func (f *Forwarder) sendGroup(ctx context.Context, g []crm.Delivery, results chan<- outcome) {
	for i, d := range g {
		if ctx.Err() != nil {
			for _, rest := range g[i:] {
				results <- outcome{d: rest, release: true}
			}
			return
		}
		res := f.deliver(ctx, d)
		results <- outcome{d: d, res: res}
		if !res.Delivered {
			for _, rest := range g[i+1:] {
				results <- outcome{d: rest, release: true}
			}
			return
		}
	}
}

// deliver makes one attempt and decides what it means. Shutdown does not
// cut an attempt on the wire short: its answer decides whether the app
// has the event, and Timeout bounds the wait.
func (f *Forwarder) deliver(ctx context.Context, d crm.Delivery) crm.DeliveryResult {
	clock := f.cfg.Clock
	started := clock.Now()
	res := crm.DeliveryResult{ID: d.ID, At: started}
	if len(d.Body) == 0 {
		// Prune dropped the raw body: an empty POST would claim to be the
		// CRM's event and is not.
		res.Error = "the callback's raw body was pruned; nothing to forward"
		res.Final = true
		f.observe(res)
		return res
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, f.cfg.URL, bytes.NewReader(d.Body))
	if err != nil {
		res.Error = "bad forward.url"
		res.Final = true
		f.observe(res)
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "leadwatch-forward")
	f.cfg.Signer.Sign(req.Header, d.WebhookID, started, d.Body)
	resp, err := f.client.Do(req)
	if err != nil {
		res.Latency = clock.Now().Sub(started)
		res.Error = f.describe(err)
	} else {
		res.Status = resp.StatusCode
		res.Head = readHead(resp.Body)
		res.Latency = clock.Now().Sub(started)
		switch {
		case res.Status >= 200 && res.Status < 300:
			res.Delivered = true
		case res.Status >= 300 && res.Status < 400:
			// The same URL will redirect again: waiting helps nothing, an
			// operator must fix forward.url (and may replay then).
			res.Error = fmt.Sprintf("app answered a redirect (%d) to %s, not followed: set forward.url to the app's own address",
				res.Status, crm.RedactURL(resp.Header.Get("Location")))
			res.Final = true
		default:
			res.Error = fmt.Sprintf("app answered %d", res.Status)
		}
	}
	if !res.Delivered && !res.Final {
		made := d.Attempts + 1
		final, delay := f.cfg.Policy.Next(made, f.cfg.Jitter())
		if final {
			res.Final = true
			res.Error += fmt.Sprintf(" (gave up after %d attempts)", made)
		} else {
			res.NextAt = clock.Now().Add(delay)
		}
	}
	f.observe(res)
	return res
}

func (f *Forwarder) observe(res crm.DeliveryResult) {
	if !res.Delivered {
		f.failures.Add(1)
	}
	if o := f.observer.Load(); o != nil {
		o.Forwarded(res.Status, res.Latency, res.Delivered)
	}
}

// readHead keeps the first HeadBytes of an answer, reads at most
// drainBytes more so the connection can be reused, and closes it.
func readHead(body io.ReadCloser) []byte {
	defer body.Close()
	head, _ := io.ReadAll(io.LimitReader(body, HeadBytes))
	_, _ = io.CopyN(io.Discard, body, drainBytes)
	return head
}

// describe is an attempt's transport error as recorded and shown: without
// the URL net/http puts in front (it may hold a token), and a timeout
// named as one.
func (f *Forwarder) describe(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no answer within %s (forward.timeout)", f.cfg.Timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// maxRecord bounds one RecordDeliveries call, so one transaction stays
// short however far the queue runs ahead.
const maxRecord = 256

// record takes outcomes until results is closed and stores them in
// batches: whatever arrived while the previous batch was being written
// goes into the next, as the listener's group commit does.
func (f *Forwarder) record(results <-chan outcome) {
	batch := make([]outcome, 0, maxRecord)
	for o := range results {
		batch = append(batch[:0], o)
		var linger <-chan time.Time
	fill:
		for len(batch) < maxRecord {
			select {
			case o, ok := <-results:
				if !ok {
					break fill
				}
				batch = append(batch, o)
				continue
			default:
			}
			// Under load, wait a moment for a sender's worth of answers: a
			// record is a store commit, and the writer the listener shares
			// is the forwarder's bottleneck, not the app. Idle, or with
			// nothing more on the wire, record at once.
			if len(batch) >= f.cfg.Concurrency || int(f.inFlight.Load()) <= len(batch) {
				break
			}
			if linger == nil {
				linger = f.cfg.Clock.After(recordLinger)
			}
			select {
			case o, ok := <-results:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			case <-linger:
				break fill
			}
		}
		f.flush(batch)
	}
}

// recordLinger is the longest a result waits for others to share its
// record.
const recordLinger = 2 * time.Millisecond

// flush records one batch's results, then gives back its released
// deliveries (after, so that a lead's later delivery is never claimable
// before its earlier one's failure is stored).
func (f *Forwarder) flush(batch []outcome) {
	var (
		rs      []crm.DeliveryResult
		release []int64
	)
	for _, o := range batch {
		if o.release {
			release = append(release, o.d.ID)
		} else {
			rs = append(rs, o.res)
		}
	}
	ctx := context.Background()
	recordedOK := false
	if len(rs) > 0 {
		var (
			lost []int64
			err  error
		)
		// The store may be briefly locked by another process: the answers
		// are worth a few tries. If it still fails the leases expire and
		// the deliveries go out again under the same webhook-id, which the
		// app dedups on.
		for try := range 3 {
			if try > 0 {
				<-f.cfg.Clock.After(time.Duration(try) * 100 * time.Millisecond)
			}
			if lost, err = f.q.RecordDeliveries(ctx, f.cfg.Owner, rs); err == nil {
				break
			}
		}
		if err != nil {
			f.rlog.Error("record", "record deliveries failed; they will be sent again when their lease expires", "n", len(rs), "err", err)
		} else {
			recordedOK = true
			if len(lost) > 0 {
				f.rlog.Warn("lease_lost", "lease lost before deliveries were recorded; another instance owns them", "n", len(lost))
			}
			f.afterRecord(batch, lost)
		}
	}
	if len(release) > 0 && (recordedOK || len(rs) == 0) {
		if err := f.q.ReleaseDeliveries(ctx, f.cfg.Owner, release); err != nil && !errors.Is(err, crm.ErrLeaseLost) {
			f.rlog.Error("release", "release deliveries failed; they come back when their lease expires", "n", len(release), "err", err)
		}
	}
	f.inFlight.Add(-int64(len(batch)))
	f.Notify()
}

// afterRecord counts and logs what was stored, once per delivery, after
// the commit: a line never names an outcome the store does not have.
func (f *Forwarder) afterRecord(batch []outcome, lost []int64) {
	isLost := make(map[int64]bool, len(lost))
	for _, id := range lost {
		isLost[id] = true
	}
	for _, o := range batch {
		if o.release || isLost[o.d.ID] {
			continue
		}
		r := o.res
		switch {
		case r.Delivered:
			f.delivered.Add(1)
		case r.Final:
			f.log.Warn("delivery failed", "webhook_id", o.d.WebhookID, "external_id", o.d.ExternalID,
				"http", r.Status, "err", r.Error)
		default:
			f.noteRetry(r.NextAt)
			f.log.Debug("delivery retrying", "webhook_id", o.d.WebhookID, "http", r.Status, "err", r.Error, "next_at", r.NextAt)
		}
	}
}

// releaseNow gives back deliveries claimed just as the Forwarder stopped.
func (f *Forwarder) releaseNow(ds []crm.Delivery) {
	if len(ds) == 0 {
		return
	}
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.q.ReleaseDeliveries(ctx, f.cfg.Owner, ids); err != nil && !errors.Is(err, crm.ErrLeaseLost) {
		f.rlog.Error("release", "release deliveries failed; they come back when their lease expires", "n", len(ids), "err", err)
	}
}

// noteRetry remembers when a retry this process recorded comes due, so
// the claim loop wakes for it instead of waiting for its idle check.
func (f *Forwarder) noteRetry(at time.Time) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	heap.Push(&f.retries, at)
}

// dueRetries forgets the retries due by now: a claim at now took them.
func (f *Forwarder) dueRetries(now time.Time) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	for len(f.retries) > 0 && !f.retries[0].After(now) {
		heap.Pop(&f.retries)
	}
}

// nextRetry is the earliest retry still to come due.
func (f *Forwarder) nextRetry() (time.Time, bool) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	if len(f.retries) == 0 {
		return time.Time{}, false
	}
	return f.retries[0], true
}

// timeHeap is a min-heap of times (container/heap).
type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s:%d:fwd:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
