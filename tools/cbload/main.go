// Command cbload posts signed CartelCRM callbacks to a leadwatch listener
// at a fixed rate, to check that the dashboard stays responsive under
// callback traffic (issue #5: 1,000 callbacks/s):
//
//	CALLBACK_SECRET=… go run ./tools/cbload -url http://127.0.0.1:8088/cartelcrm/callback -rate 1000 -duration 30s
//
// Requests are signed with crm.NewSignedCallback, so they are verified and
// stored like real ones. Each callback names a lead of a store made by
// tools/fillstore (internal id "crm-N", N up to -leads) with a unique
// millisecond timestamp, so none is a duplicate. It prints sent, ok
// (2xx), non-2xx, transport errors, late sends (the pacer fell behind) and
// latency p50/p99/max. Load is bounded: at most 10 minutes and 100,000/s,
// and only to loopback addresses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Bounds on one run, so a typo cannot turn the tool into a flood.
const (
	maxDuration = 10 * time.Minute
	maxRate     = 100_000
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cbload:", err)
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("url", "", "callback URL on a loopback address (required)")
	rate := flag.Int("rate", 1000, "callbacks per second")
	duration := flag.Duration("duration", 30*time.Second, "how long to send")
	leads := flag.Int64("leads", 1_000_000, "callbacks name leads crm-1 … crm-N")
	workers := flag.Int("workers", 32, "concurrent keep-alive connections")
	flag.Parse()
	secret := os.Getenv("CALLBACK_SECRET")
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	case secret == "":
		return errors.New("set CALLBACK_SECRET (the first of the listener's secrets)")
	case *rate < 1 || *rate > maxRate:
		return fmt.Errorf("-rate must be 1…%d", maxRate)
	case *duration <= 0 || *duration > maxDuration:
		return fmt.Errorf("-duration must be positive and at most %v", maxDuration)
	case *workers < 1 || *workers > 1024:
		return errors.New("-workers must be 1…1024")
	case *leads < 1:
		return errors.New("-leads must be at least 1")
	}
	if err := checkLoopback(*target); err != nil {
		return err
	}
	// The first secret signs, as the CRM would with the current one.
	key := []byte(strings.TrimSpace(strings.Split(secret, ",")[0]))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	total := int(int64(*rate) * int64(*duration) / int64(time.Second))
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers},
	}

	var (
		st   stats
		jobs = make(chan int, *workers)
		wg   sync.WaitGroup
	)
	base := time.Now().UnixMilli()
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			for seq := range jobs {
				body, _ := json.Marshal(crm.CallbackBody{
					InternalID: fmt.Sprintf("crm-%d", 1+rng.Int64N(*leads)),
					Event:      "lead.contacted",
					Status:     "contacted",
					Timestamp:  base + int64(seq), // unique: no duplicate keys
				})
				st.record(post(ctx, client, *target, body, key))
			}
		}()
	}

	// Pace by schedule, not by ticker: request i is due at start + i/rate,
	// so a slow moment is caught up on instead of lowering the rate.
	start := time.Now()
	interval := time.Second / time.Duration(*rate)
send:
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				break send
			case <-time.After(d):
			}
		}
		select {
		case jobs <- i:
			if time.Since(due) > 10*time.Millisecond {
				st.late.Add(1)
			}
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	st.print(os.Stdout, elapsed)
	if st.ok.Load() == 0 {
		return errors.New("no callback was accepted")
	}
	return nil
}

// checkLoopback refuses any target that is not a loopback address, so the
// tool cannot load someone else's server.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: need an http(s) URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: only loopback targets (127.0.0.0/8, ::1, localhost)", raw)
	}
	return nil
}

// result is one request's outcome.
type result struct {
	status  int // 0 on a transport error
	latency time.Duration
}

func post(ctx context.Context, c *http.Client, target string, body, secret []byte) result {
	req, err := crm.NewSignedCallback(target, body, secret, time.Now())
	if err != nil {
		return result{}
	}
	req = req.WithContext(ctx)
	t := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return result{latency: time.Since(t)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return result{status: resp.StatusCode, latency: time.Since(t)}
}

// stats collects outcomes from the workers.
type stats struct {
	sent, ok, non2xx, errs, late atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
	statuses  map[int]int
}

func (s *stats) record(r result) {
	s.sent.Add(1)
	switch {
	case r.status == 0:
		s.errs.Add(1)
	case r.status >= 200 && r.status < 300:
		s.ok.Add(1)
	default:
		s.non2xx.Add(1)
	}
	s.mu.Lock()
	s.latencies = append(s.latencies, r.latency)
	if r.status != 0 && (r.status < 200 || r.status >= 300) {
		if s.statuses == nil {
			s.statuses = map[int]int{}
		}
		s.statuses[r.status]++
	}
	s.mu.Unlock()
}

func (s *stats) print(w io.Writer, elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.latencies)
	q := func(p float64) time.Duration {
		if len(s.latencies) == 0 {
			return 0
		}
		return s.latencies[min(len(s.latencies)-1, int(p*float64(len(s.latencies))))]
	}
	fmt.Fprintf(w, "sent=%d ok=%d non2xx=%d errors=%d late=%d in %v (%.0f/s)\n",
		s.sent.Load(), s.ok.Load(), s.non2xx.Load(), s.errs.Load(), s.late.Load(),
		elapsed.Round(time.Millisecond), float64(s.sent.Load())/elapsed.Seconds())
	fmt.Fprintf(w, "latency p50=%v p99=%v max=%v\n",
		q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), q(1).Round(10*time.Microsecond))
	if len(s.statuses) > 0 {
		fmt.Fprintf(w, "non-2xx statuses: %v\n", s.statuses)
	}
}
