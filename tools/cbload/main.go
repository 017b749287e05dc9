// Command cbload posts signed CartelCRM callbacks to a leadwatch listener
// at a fixed rate, to check that the dashboard stays responsive under
// callback traffic (issue #5: 1,000 callbacks/s):
//
//	CALLBACK_SECRET=… go run ./tools/cbload -url http://127.0.0.1:8088/cartelcrm/callback -rate 1000 -duration 30s
//
// With -rate 0 each connection sends its next callback as soon as the last
// one is answered: the most the listener takes at -workers connections.
//
// With -nostore ADDR it is instead the ceiling to compare a listener with
// (issue #9): a stdlib Go server on a loopback ADDR that reads each body
// and answers {"ok":true} as the listener answers a fresh callback,
// checking and storing nothing (with -verify it checks the timestamp and
// the signature, still storing nothing). Run it and `leadwatch serve` side
// by side and load both with the same cbload:
//
//	go run ./tools/cbload -nostore 127.0.0.1:9090
//	CALLBACK_SECRET=… go run ./tools/cbload -url http://127.0.0.1:9090/cartelcrm/callback -rate 0 -duration 10s
//
// -url may list several listeners, comma-separated (several `serve`
// instances on one PostgreSQL database, issue #10): connection i sends to
// URL i mod n, so the load spreads evenly, and the summary adds each
// target's count.
//
//	CALLBACK_SECRET=… go run ./tools/cbload -url http://127.0.0.1:8088/cartelcrm/callback,http://127.0.0.1:8089/cartelcrm/callback -rate 0
//
// Requests are signed with crm.NewSignedCallback, so they are verified and
// stored like real ones. Each callback names a lead of a store made by
// tools/fillstore (internal id "crm-N", N up to -leads; with -unmatched
// "crm-N-u", which names none of them but sorts among the ids of the
// store's callbacks) with a unique millisecond timestamp, so none is a
// duplicate. It prints sent, ok
// (2xx), non-2xx, transport errors, late sends (the pacer fell behind),
// latency p50/p99/max and its own CPU time per request (on a shared
// machine the load generator's cost is part of what a rate measures). Load is bounded: at most 10 minutes and 100,000/s,
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	target := flag.String("url", "", "callback URL on a loopback address, or several comma-separated (required)")
	rate := flag.Int("rate", 1000, "callbacks per second")
	duration := flag.Duration("duration", 30*time.Second, "how long to send")
	leads := flag.Int64("leads", 1_000_000, "callbacks name leads crm-1 … crm-N")
	unmatched := flag.Bool("unmatched", false, `name "crm-N-u" instead: no lead of a filled store, but the ids sort among its callbacks'`)
	workers := flag.Int("workers", 32, "concurrent keep-alive connections")
	nostore := flag.String("nostore", "", "serve the no-storage ceiling on this loopback address instead of sending")
	verify := flag.Bool("verify", false, "with -nostore: check the timestamp and signature (CALLBACK_SECRET), still storing nothing")
	flag.Parse()
	secret := os.Getenv("CALLBACK_SECRET")
	if *nostore != "" {
		if flag.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q", flag.Arg(0))
		}
		return serveNoStore(*nostore, *verify, secret)
	}
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	case secret == "":
		return errors.New("set CALLBACK_SECRET (the first of the listener's secrets)")
	case *rate < 0 || *rate > maxRate:
		return fmt.Errorf("-rate must be 0 (as fast as answered) or 1…%d", maxRate)
	case *duration <= 0 || *duration > maxDuration:
		return fmt.Errorf("-duration must be positive and at most %v", maxDuration)
	case *workers < 1 || *workers > 1024:
		return errors.New("-workers must be 1…1024")
	case *leads < 1:
		return errors.New("-leads must be at least 1")
	}
	targets, err := parseTargets(*target, *workers)
	if err != nil {
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
		st   = stats{perTarget: make([]atomic.Int64, len(targets))}
		jobs = make(chan int, *workers)
		wg   sync.WaitGroup
	)
	base := time.Now().UnixMilli()
	suffix := ""
	if *unmatched {
		suffix = "-u"
	}
	for w := range *workers {
		wg.Add(1)
		ti := w % len(targets) // each connection keeps to one target
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			for seq := range jobs {
				body, _ := json.Marshal(crm.CallbackBody{
					InternalID: "crm-" + strconv.FormatInt(1+rng.Int64N(*leads), 10) + suffix,
					Event:      "lead.contacted",
					Status:     "contacted",
					Timestamp:  base + int64(seq), // unique: no duplicate keys
				})
				st.record(post(ctx, client, targets[ti], body, key))
				st.perTarget[ti].Add(1)
			}
		}()
	}

	start := time.Now()
	cpu0, _ := processCPU()
	if *rate == 0 {
		// Unpaced: the workers take the next number as soon as they are
		// free, until the duration is over.
		deadline := time.NewTimer(*duration)
		defer deadline.Stop()
	feed:
		for i := 0; ; i++ {
			select {
			case jobs <- i:
			case <-deadline.C:
				break feed
			case <-ctx.Done():
				break feed
			}
		}
	} else {
		pace(ctx, jobs, &st, start, total, time.Second/time.Duration(*rate))
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if cpu1, ok := processCPU(); ok {
		st.cpu = cpu1 - cpu0
	}
	st.print(os.Stdout, elapsed)
	if st.ok.Load() == 0 {
		return errors.New("no callback was accepted")
	}
	return nil
}

// pace hands out total request numbers, request i due at start +
// i·interval: by schedule, not by ticker, so a slow moment is caught up on
// instead of lowering the rate.
func pace(ctx context.Context, jobs chan<- int, st *stats, start time.Time, total int, interval time.Duration) {
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		select {
		case jobs <- i:
			if time.Since(due) > 10*time.Millisecond {
				st.late.Add(1)
			}
		case <-ctx.Done():
			return
		}
	}
}

// serveNoStore serves the no-storage ceiling on a loopback addr until
// interrupted. It answers every POST of the callback path as the listener
// answers a fresh callback; with verify it first checks the timestamp and
// the signature as the listener does (401/403 otherwise).
func serveNoStore(addr string, verify bool, secretList string) error {
	if err := checkLoopback("http://" + addr); err != nil {
		return fmt.Errorf("-nostore: %w", err)
	}
	var secrets [][]byte
	for _, s := range strings.Split(secretList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, []byte(s))
		}
	}
	if verify && len(secrets) == 0 {
		return errors.New("-verify needs CALLBACK_SECRET")
	}
	ok := []byte(`{"ok":true}`)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cartelcrm/callback", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
			return
		}
		if verify {
			if _, err := crm.CheckTimestamp(r.Header.Get(crm.HeaderTimestamp), time.Now(), crm.DefaultTolerance); err != nil {
				http.Error(w, `{"error":"timestamp_out_of_range"}`, http.StatusUnauthorized)
				return
			}
			if _, err := crm.VerifySignature(r.Header.Get(crm.HeaderSignature), body, secrets); err != nil {
				http.Error(w, `{"error":"bad_signature"}`, http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(ok)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "cbload: no-storage ceiling on http://%s/cartelcrm/callback (verify=%v)\n", addr, verify)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parseTargets splits -url's comma-separated list, checking each is a
// loopback URL and that each of the workers' connections has one.
func parseTargets(list string, workers int) ([]string, error) {
	var targets []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if err := checkLoopback(t); err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	switch {
	case len(targets) == 0:
		return nil, errors.New("need -url: the listener's callback URL (or several, comma-separated)")
	case len(targets) > workers:
		return nil, fmt.Errorf("-url lists %d targets but -workers is %d: need at least one connection per target", len(targets), workers)
	}
	return targets, nil
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
	perTarget                    []atomic.Int64 // requests sent to each -url target

	cpu time.Duration // this process's CPU time over the run; 0 when unknown

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
	if n := s.sent.Load(); s.cpu > 0 && n > 0 {
		fmt.Fprintf(w, "cbload cpu=%.1fµs/request\n", float64(s.cpu)/float64(time.Microsecond)/float64(n))
	}
	if len(s.perTarget) > 1 {
		counts := make([]int64, len(s.perTarget))
		for i := range s.perTarget {
			counts[i] = s.perTarget[i].Load()
		}
		fmt.Fprintf(w, "per target: %v\n", counts)
	}
	if len(s.statuses) > 0 {
		fmt.Fprintf(w, "non-2xx statuses: %v\n", s.statuses)
	}
}
