// Command hostile plays the unauthenticated clients of issue 9 against a
// leadwatch listener, to measure what they cost it and whether signed
// callbacks (tools/cbload, run beside it) still get through:
//
//	go run ./tools/hostile -addr 127.0.0.1:8088 -mode idle -conns 10000 -duration 60s
//	go run ./tools/hostile -addr 127.0.0.1:8088 -mode stall -conns 300 -duration 30s
//
// Modes, each on -conns connections that it reopens when the server
// closes them (at most -rate connects per second), so it keeps trying to
// hold them all:
//   - idle: one unsigned callback (answered 403), then idle; with
//     -request healthz a GET /healthz (answered 200), then idle.
//   - silent: connect and say nothing.
//   - stall: headers announcing a -body byte body, -sent bytes of it (all
//     but the last by default: what a body costs the server while it is
//     read), then nothing.
//
// Every second it prints how many connections it holds, has opened, and
// has seen closed by the server. Load is bounded: at most 20,000
// connections (less the process's open-file limit), 10 minutes, and only
// loopback addresses. One process cannot hold the full 20,000 under a
// 20,000 open-file limit: run two.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// Bounds on one run, so a typo cannot turn the tool into a real attack.
const (
	maxConns    = 20_000
	maxDuration = 10 * time.Minute
	fdReserve   = 64 // descriptors kept for the runtime and stdio
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// counters are what the tool reports.
type counters struct {
	held, opened, closedByServer, dialErrors, answered atomic.Int64
}

func run() error {
	addr := flag.String("addr", "", "listener address host:port on loopback (required)")
	mode := flag.String("mode", "idle", "idle, silent or stall")
	request := flag.String("request", "refused", "idle mode: refused (an unsigned callback) or healthz")
	conns := flag.Int("conns", 1000, "connections to hold")
	body := flag.Int64("body", 1<<20, "stall mode: the announced Content-Length")
	sent := flag.Int64("sent", -1, "stall mode: bytes of the body sent before stalling (-1: all but the last)")
	path := flag.String("path", "/cartelcrm/callback", "the callback path")
	duration := flag.Duration("duration", 30*time.Second, "how long to hold them")
	connectRate := flag.Int("rate", 2000, "connects per second at most")
	flag.Parse()

	limit := maxConns
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && int(rl.Cur)-fdReserve < limit {
		limit = int(rl.Cur) - fdReserve
	}
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	case *conns < 1 || *conns > limit:
		return fmt.Errorf("-conns must be 1…%d here (the open-file limit; run several processes for more)", limit)
	case *duration <= 0 || *duration > maxDuration:
		return fmt.Errorf("-duration must be positive and at most %v", maxDuration)
	case *connectRate < 1 || *connectRate > 100_000:
		return errors.New("-rate must be 1…100000")
	case *body < 1 || *body > 1<<40:
		return errors.New("-body must be 1…2^40")
	case *sent >= *body || *sent > 64<<20:
		return errors.New("-sent must be below -body and at most 64 MiB")
	}
	if *sent < 0 {
		*sent = min(*body-1, 64<<20)
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	var greeting string
	switch *mode {
	case "idle":
		switch *request {
		case "refused":
			b := `{"internal_id":"x","event":"e","timestamp":1}`
			greeting = "POST " + *path + " HTTP/1.1\r\nHost: x\r\nX-Timestamp: " + fmt.Sprint(time.Now().Unix()) +
				"\r\nX-Signature: sha256=" + strings.Repeat("00", 32) + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(b)) + b
		case "healthz":
			greeting = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
		default:
			return fmt.Errorf("-request must be refused or healthz, not %q", *request)
		}
	case "silent":
	case "stall":
		greeting = "POST " + *path + " HTTP/1.1\r\nHost: x\r\nX-Timestamp: " + fmt.Sprint(time.Now().Unix()) +
			fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", *body) + strings.Repeat("a", int(*sent))
	default:
		return fmt.Errorf("-mode must be idle, silent or stall, not %q", *mode)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var c counters
	lim := rate.NewLimiter(rate.Limit(*connectRate), 1)
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() { hold(ctx, *addr, greeting, *mode == "idle", lim, &c) })
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		fmt.Printf("%5.1fs held %d opened %d closed-by-server %d answered %d dial-errors %d\n",
			time.Since(start).Seconds(), c.held.Load(), c.opened.Load(), c.closedByServer.Load(), c.answered.Load(), c.dialErrors.Load())
	}
	wg.Wait()
	return nil
}

// hold keeps one connection open until ctx ends, reopening it whenever the
// server closes it.
func hold(ctx context.Context, addr, greeting string, readAnswer bool, lim *rate.Limiter, c *counters) {
	d := net.Dialer{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		if lim.Wait(ctx) != nil {
			return
		}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			c.dialErrors.Add(1)
			continue
		}
		c.opened.Add(1)
		c.held.Add(1)
		closed := make(chan struct{})
		go func() {
			// Unblocks the read below when the run ends.
			select {
			case <-ctx.Done():
				conn.Close()
			case <-closed:
			}
		}()
		if greeting != "" {
			io.WriteString(conn, greeting) //nolint:errcheck // a failed write shows as the read's error
		}
		br := bufio.NewReader(conn)
		if readAnswer {
			if res, err := http.ReadResponse(br, nil); err == nil {
				io.Copy(io.Discard, res.Body) //nolint:errcheck // only the end of the answer matters
				res.Body.Close()
				c.answered.Add(1)
			}
		}
		// Idle: wait for the server to close the connection.
		io.Copy(io.Discard, br) //nolint:errcheck // any end is a close
		close(closed)
		conn.Close()
		c.held.Add(-1)
		if ctx.Err() == nil {
			c.closedByServer.Add(1)
		}
	}
}

// checkLoopback refuses any address that is not a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr must be a loopback address, not %q", host)
	}
	return nil
}
