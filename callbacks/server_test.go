package callbacks_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// TestSlowloris: a client trickling its request a byte at a time must be
// cut off by the server's own timeouts, not hold a connection forever. The
// timeouts are shortened through WithTimeouts so the test is quick; the
// client sends a byte every 100 ms, well inside any per-read deadline, so
// only the whole-request deadlines can stop it.
func TestSlowloris(t *testing.T) {
	sink := newFakeSink()
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Now: nowFunc}, sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	timeouts := callbacks.ServerTimeouts{
		ReadHeader:     400 * time.Millisecond,
		Read:           700 * time.Millisecond,
		Write:          time.Second,
		Idle:           time.Second,
		MaxHeaderBytes: 4 << 10,
	}
	srv := callbacks.NewServer(ln.Addr().String(), h, callbacks.WithTimeouts(timeouts))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tests := []struct {
		name    string
		prefix  string // sent at once
		trickle string // then a byte every 100 ms
	}{
		{"SlowHeaders", "POST /cartelcrm/callback HTTP/1.1\r\nHost: x\r\n", "X-Padding: " + strings.Repeat("a", 200)},
		{"SlowBody", "POST /cartelcrm/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\nX-Timestamp: 1790000000\r\n\r\n", strings.Repeat("{", 200)},
		// A signed callback's connection is kept alive (every other answer
		// closes it), so the idle timeout is what must end it.
		{"IdleKeepAlive", signedRequest(callbackBody(1, "e")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, tt.prefix); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < len(tt.trickle); i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := conn.Write([]byte{tt.trickle[i]}); err != nil {
						return
					}
				}
			}()
			// The server must close the connection: reading ends in EOF
			// (or a reset) long before this deadline.
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection still open after %v", time.Since(start))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("connection closed only after %v", d)
			}
		})
	}
}

func TestHeaderTooLarge(t *testing.T) {
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Now: nowFunc}, newFakeSink())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := callbacks.NewServer("", h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes == 0 {
		t.Fatalf("NewServer left a limit unset: %+v", srv)
	}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /cartelcrm/callback HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", res.StatusCode)
	}
}

// TestConnLimit: with max_conns = 20, connections that idle (refused or
// not) or never speak cannot keep a signed callback from a slot, and the
// server never holds more than the cap.
func TestConnLimit(t *testing.T) {
	const maxConns = 20
	timeouts := callbacks.ServerTimeouts{ReadHeader: time.Hour, Read: time.Hour, Write: time.Hour, Idle: time.Hour, MaxHeaderBytes: 16 << 10}

	// signedGetsThrough posts a signed callback on a new connection.
	signedGetsThrough := func(t *testing.T, s *rawServer, n int) {
		t.Helper()
		c := dial(t, s.addr)
		io.WriteString(c, signedRequest(callbackBody(n, "e")))
		if res := readAnswer(t, c, bufio.NewReader(c)); res.status != 200 || res.body != wantOK {
			t.Fatalf("signed callback at the cap: answer = %d %s", res.status, res.body)
		}
		if open := s.lim.Open(); open > maxConns {
			t.Fatalf("%d connections open, cap %d", open, maxConns)
		}
	}

	t.Run("HealthProbesAreClosed", func(t *testing.T) {
		s := startRaw(t, newFakeSink(), nil, timeouts, callbacks.NewConnLimiter(maxConns, time.Hour))
		for range maxConns {
			c := dial(t, s.addr)
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			if res := readAnswer(t, c, br); res.status != 200 {
				t.Fatalf("healthz: %d %s", res.status, res.body)
			}
			expectClosed(t, c, br)
		}
		signedGetsThrough(t, s, 1)
		if ev := s.lim.Evicted(); ev != 0 {
			t.Errorf("%d evicted: probes' connections should be gone already", ev)
		}
	})

	t.Run("RefusedAreClosed", func(t *testing.T) {
		s := startRaw(t, newFakeSink(), nil, timeouts, callbacks.NewConnLimiter(maxConns, time.Hour))
		for i := range maxConns {
			c := dial(t, s.addr)
			body := callbackBody(i, "e")
			io.WriteString(c, "POST "+callbacks.DefaultPath+" HTTP/1.1\r\nHost: x\r\n"+crm.HeaderTimestamp+": "+tsNow(0)+
				"\r\n"+crm.HeaderSignature+": sha256="+strings.Repeat("00", 32)+fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))+string(body))
			br := bufio.NewReader(c)
			if res := readAnswer(t, c, br); res.status != 403 {
				t.Fatalf("answer = %d %s, want 403", res.status, res.body)
			}
			// A refusal closes the connection: it never idles, holding a
			// descriptor, for the idle timeout (an hour here).
			expectClosed(t, c, br)
		}
		signedGetsThrough(t, s, 1)
		if ev := s.lim.Evicted(); ev != 0 {
			t.Errorf("%d evicted: refused connections should be gone already", ev)
		}
	})

	t.Run("IdleMakeRoom", func(t *testing.T) {
		s := startRaw(t, newFakeSink(), nil, timeouts, callbacks.NewConnLimiter(maxConns, time.Hour))
		idle := make([]net.Conn, maxConns)
		readers := make([]*bufio.Reader, maxConns)
		for i := range idle {
			// A signed callback answered 200 keeps its connection.
			idle[i] = dial(t, s.addr)
			readers[i] = bufio.NewReader(idle[i])
			io.WriteString(idle[i], signedRequest(callbackBody(100+i, "e")))
			if res := readAnswer(t, idle[i], readers[i]); res.status != 200 {
				t.Fatalf("answer %d %s", res.status, res.body)
			}
			// The server marks a connection idle after it wrote the answer
			// the client may have read already: wait, so they go idle in
			// this order and the one idle the longest is idle[0].
			poll.Until(t, "the connection to go idle", func() bool { return s.lim.Idle() == i+1 })
		}
		signedGetsThrough(t, s, 1)
		// The connection idle the longest made room.
		expectClosed(t, idle[0], readers[0])
		if ev := s.lim.Evicted(); ev != 1 {
			t.Errorf("%d evicted, want 1", ev)
		}
	})

	t.Run("SilentMakeRoom", func(t *testing.T) {
		s := startRaw(t, newFakeSink(), nil, timeouts, callbacks.NewConnLimiter(maxConns, 50*time.Millisecond))
		for range maxConns {
			dial(t, s.addr)
		}
		poll.Until(t, "the cap to be full", func() bool { return s.lim.Open() == maxConns })
		// Accept waits for the oldest silent connection to pass its grace,
		// then closes it.
		signedGetsThrough(t, s, 1)
		if ev := s.lim.Evicted(); ev != 1 {
			t.Errorf("%d evicted, want 1", ev)
		}
	})

	t.Run("BusyAreKept", func(t *testing.T) {
		s := startRaw(t, newFakeSink(), nil, timeouts, callbacks.NewConnLimiter(maxConns, time.Hour))
		busy := make([]net.Conn, maxConns)
		for i := range busy {
			busy[i] = dial(t, s.addr)
			// Headers sent, body pending: a request in progress.
			io.WriteString(busy[i], "POST "+callbacks.DefaultPath+" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
		}
		poll.Until(t, "the cap to be full", func() bool { return s.lim.Open() == maxConns && s.h.Stats().Reading == maxConns })
		answered := make(chan response, 1)
		go func() {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				answered <- response{}
				return
			}
			defer c.Close()
			io.WriteString(c, signedRequest(callbackBody(1, "e")))
			c.SetReadDeadline(time.Now().Add(answerDeadline))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answered <- response{}
				return
			}
			res.Body.Close()
			answered <- response{status: res.StatusCode}
		}()
		// No request in progress is cut to make room: the newcomer waits
		// until one ends.
		busy[0].Close()
		if res := <-answered; res.status != 200 {
			t.Fatalf("after a slot freed: answer %d, want 200", res.status)
		}
		if ev := s.lim.Evicted(); ev != 0 {
			t.Errorf("%d busy connections evicted", ev)
		}
	})
}

func TestMaxConns(t *testing.T) {
	tests := []struct {
		configured int
		fdLimit    uint64
		want       int
	}{
		{0, 20_000, 20_000 - callbacks.FDHeadroom},
		{30_000, 20_000, 20_000 - callbacks.FDHeadroom},
		{5_000, 20_000, 5_000},
		{0, 256, 128},
		{0, 0, callbacks.DefaultMaxConnsUnknownLimit},
		{100_000, 0, 100_000},
		{-1, 1024, 1024 - callbacks.FDHeadroom},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.configured, tt.fdLimit), func(t *testing.T) {
			if got := callbacks.MaxConns(tt.configured, tt.fdLimit); got != tt.want {
				t.Errorf("MaxConns = %d, want %d", got, tt.want)
			}
		})
	}
	if lim, err := callbacks.FDLimit(); err != nil || lim == 0 {
		t.Errorf("FDLimit = %d, %v", lim, err)
	}
}
