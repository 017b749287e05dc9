// Command intakeload posts leads to a leadwatch intake (POST /v1/leads)
// from -c connections, each sending its next request as soon as the last
// one is answered, and prints the leads answered 202 per second, the
// answers by status and the latency p50/p99/max:
//
//	LEADWATCH_INTAKE_TOKEN=… go run ./tools/intakeload -url http://127.0.0.1:8080/v1/leads -c 32 -n 20000
//
// Each lead has a unique external_id (-prefix, then a number) and phone,
// so none is a duplicate; -batch N sends arrays of N leads. Only loopback
// addresses are loaded, and at most 1,000,000 leads.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "intakeload:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("intakeload", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080/v1/leads", "the intake's `URL` (loopback only)")
	conns := fs.Int("c", 32, "`N` connections, one request in flight on each")
	n := fs.Int("n", 20000, "`N` leads in all")
	batch := fs.Int("batch", 1, "`N` leads a request (an array when more than 1)")
	prefix := fs.String("prefix", fmt.Sprintf("il%d", time.Now().Unix()), "external_id `PREFIX`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := getenv("LEADWATCH_INTAKE_TOKEN")
	if token == "" {
		return errors.New("LEADWATCH_INTAKE_TOKEN is not set")
	}
	if err := loopback(*target); err != nil {
		return err
	}
	if *conns < 1 || *batch < 1 || *n < 1 || *n > 1_000_000 {
		return errors.New("-c and -batch must be at least 1, -n between 1 and 1,000,000")
	}

	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	var lat []time.Duration
	var transport atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			for {
				first := next.Add(int64(*batch)) - int64(*batch)
				if first >= int64(*n) {
					return
				}
				k := int(min(int64(*batch), int64(*n)-first))
				body := leads(*prefix, first, k)
				req, err := http.NewRequest(http.MethodPost, *target, bytes.NewReader(body))
				if err != nil {
					transport.Add(1)
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					transport.Add(1)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(t0)
				mu.Lock()
				countAnswer(statuses, resp.StatusCode, raw, k)
				lat = append(lat, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	ok := statuses[http.StatusAccepted]
	var parts []string
	for _, s := range slices.Sorted(func(yield func(int) bool) {
		for s := range statuses {
			if !yield(s) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%d: %d", s, statuses[s]))
	}
	fmt.Fprintf(out, "%d leads in %s at c=%d, %d a request: %.0f leads/s answered 202\n", *n, elapsed.Round(time.Millisecond), *conns, *batch, float64(ok)/elapsed.Seconds())
	fmt.Fprintf(out, "leads by answer: %s; transport errors %d\n", strings.Join(parts, ", "), transport.Load())
	fmt.Fprintf(out, "latency per request: p50 %s, p99 %s, max %s\n", q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), q(1).Round(10*time.Microsecond))
	return nil
}

// countAnswer adds one answer's leads to statuses: an array's by each
// lead's own status, a lead's by the answer's.
func countAnswer(statuses map[int]int, status int, body []byte, k int) {
	var ans struct {
		Results []struct {
			Status int `json:"status"`
		} `json:"results"`
	}
	if status != http.StatusMultiStatus || json.Unmarshal(body, &ans) != nil || len(ans.Results) != k {
		statuses[status] += k
		return
	}
	for _, r := range ans.Results {
		statuses[r.Status]++
	}
}

// leads is the body of k leads from number first: one object, or an array.
func leads(prefix string, first int64, k int) []byte {
	var b bytes.Buffer
	if k > 1 {
		b.WriteByte('[')
	}
	for i := range int64(k) {
		if i > 0 {
			b.WriteByte(',')
		}
		id := first + i
		fmt.Fprintf(&b, `{"external_id":"%s-%d","phone":"+3806%08d","country":"UA","source":"intakeload"}`, prefix, id, id%100_000_000)
	}
	if k > 1 {
		b.WriteByte(']')
	}
	return b.Bytes()
}

// loopback refuses a URL whose host is not a loopback address: a load
// tool must not be pointed at someone else's server by a typo.
func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q is not an absolute URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %s: only loopback addresses are loaded", raw)
}
