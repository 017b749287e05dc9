package callbacks_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
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
		{"IdleKeepAlive", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ""},
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
