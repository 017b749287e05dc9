package callbacks_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/logtest"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// answerDeadline bounds every raw-connection read of these tests: far
// above what an answer takes, far below the server timeouts they set.
const answerDeadline = 10 * time.Second

// rawServer serves a handler over loopback through NewServer (so through
// its real timeouts and options), for tests that speak raw TCP.
type rawServer struct {
	h    *callbacks.Handler
	addr string
	lim  *callbacks.ConnLimiter
}

func startRaw(t *testing.T, sink callbacks.EventSink, mod func(*callbacks.Config), timeouts callbacks.ServerTimeouts, lim *callbacks.ConnLimiter) *rawServer {
	t.Helper()
	cfg := callbacks.Config{Secrets: testSecrets, Now: nowFunc}
	if mod != nil {
		mod(&cfg)
	}
	h, err := callbacks.NewHandler(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []callbacks.ServerOption{callbacks.WithTimeouts(timeouts)}
	var served net.Listener = ln
	if lim != nil {
		opts = append(opts, callbacks.WithConnLimiter(lim))
		served = lim.Listener(ln)
	}
	srv := callbacks.NewServer(ln.Addr().String(), h, opts...)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(served) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		h.Close()
	})
	return &rawServer{h: h, addr: ln.Addr().String(), lim: lim}
}

// longTimeouts are server timeouts no test waits for: an answer that
// arrives proves the handler did not wait for one.
func longTimeouts() callbacks.ServerTimeouts {
	return callbacks.ServerTimeouts{ReadHeader: time.Hour, Read: time.Hour, Write: time.Hour, Idle: time.Hour, MaxHeaderBytes: 16 << 10}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// signedRequest is the raw HTTP/1.1 text of a signed callback.
func signedRequest(body []byte) string {
	return "POST " + callbacks.DefaultPath + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		crm.HeaderTimestamp + ": " + tsNow(0) + "\r\n" +
		crm.HeaderSignature + ": " + crm.Sign(testSecrets[0], body) + "\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + string(body)
}

// readAnswer reads one response from br within answerDeadline.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader) response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(answerDeadline))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return response{status: res.StatusCode, body: string(b), header: res.Header}
}

// expectClosed requires the server to close c (EOF or reset) within
// answerDeadline.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(answerDeadline))
	_, err := io.Copy(io.Discard, br)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept the connection open")
	}
}

// TestDeclaredBodyTooLargeAtOnce: a Content-Length over max_body is
// answered 413 before the body is read, so at once even when the client
// sends a few bytes and waits; the server's read timeout (an hour here)
// is never what ends it.
func TestDeclaredBodyTooLargeAtOnce(t *testing.T) {
	sink := newFakeSink()
	s := startRaw(t, sink, nil, longTimeouts(), nil)
	c := dial(t, s.addr)
	io.WriteString(c, "POST "+callbacks.DefaultPath+" HTTP/1.1\r\nHost: x\r\n"+
		crm.HeaderTimestamp+": "+tsNow(0)+"\r\nContent-Length: 10737418240\r\n\r\n{\"a\":1}")
	br := bufio.NewReader(c)
	res := readAnswer(t, c, br)
	if res.status != 413 || res.body != wantTooLarge {
		t.Fatalf("answer = %d %s, want 413 %s", res.status, res.body, wantTooLarge)
	}
	expectClosed(t, c, br)
	poll.Until(t, "the refusal to be stored", func() bool { return len(sink.refusalList()) == 1 })
	if rf := sink.refusalList()[0]; rf.Detail != "body too large (10737418240 bytes > 1048576)" || len(rf.Head) != 0 {
		t.Errorf("refusal = %q head %q", rf.Detail, rf.Head)
	}
}

// TestHalfCloseGetsCommitAnswer: a client that sends a complete request and
// then half-closes its side still reads the answer, so it must say what
// the commit did: 200 for a committed event, not 503. The sink is held
// until the server has seen the half-close (net/http cancels the request's
// context then), so the commit ends after the cancellation.
func TestHalfCloseGetsCommitAnswer(t *testing.T) {
	sink := newFakeSink()
	sink.gate = make(chan struct{})
	sink.entered = make(chan int, 1)
	h, err := callbacks.NewHandler(callbacks.Config{Secrets: testSecrets, Now: nowFunc}, sink)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan struct{})
	var once sync.Once
	watch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			<-r.Context().Done()
			once.Do(func() { close(cancelled) })
		}()
		h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := callbacks.NewServer("", watch, callbacks.WithTimeouts(longTimeouts()))
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})

	c := dial(t, ln.Addr().String())
	body := callbackBody(1, "e")
	io.WriteString(c, signedRequest(body))
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sink.entered:
	case <-time.After(answerDeadline):
		t.Fatal("the event never reached the sink")
	}
	select {
	case <-cancelled:
	case <-time.After(answerDeadline):
		t.Fatal("the server never noticed the half-close")
	}
	close(sink.gate)
	res := readAnswer(t, c, bufio.NewReader(c))
	if res.status != 200 || res.body != wantOK {
		t.Fatalf("answer = %d %s, want 200 %s", res.status, res.body, wantOK)
	}
	if _, ok := sink.event(dedupKey(1, "e")); !ok {
		t.Fatal("the event was answered 200 but not stored")
	}
}

// TestBodyBudget: bodies hold the budget with the bytes they have really
// sent; once it is full, the next body that needs room waits Config.
// BodyWait and is answered 503, its connection closed; a small callback
// (its own pool) is still taken; the budget comes back when a body ends.
func TestBodyBudget(t *testing.T) {
	sink := newFakeSink()
	const maxBody = 256 << 10
	s := startRaw(t, sink, func(c *callbacks.Config) {
		c.MaxBody = maxBody
		c.MaxBodyBytesInFlight = maxBody
		c.BodyWait = 50 * time.Millisecond
	}, longTimeouts(), nil)
	// sending announces a maximum-size body and sends part of it.
	sending := func(part int) net.Conn {
		c := dial(t, s.addr)
		io.WriteString(c, "POST "+callbacks.DefaultPath+" HTTP/1.1\r\nHost: x\r\n"+
			crm.HeaderTimestamp+": "+tsNow(0)+fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", maxBody)+strings.Repeat("x", part))
		return c
	}
	staller := sending(maxBody - 1)
	poll.Until(t, "the almost complete body to hold the large pool", func() bool { return s.h.Stats().BodyBytes >= maxBody/2 })

	late := sending(64 << 10)
	br := bufio.NewReader(late)
	res := readAnswer(t, late, br)
	if res.status != 503 || res.body != wantUnavail {
		t.Fatalf("over budget: answer = %d %s, want 503 %s", res.status, res.body, wantUnavail)
	}
	expectClosed(t, late, br)
	if st := s.h.Stats(); st.Shed != 1 {
		t.Errorf("stats %+v, want Shed 1", st)
	}

	c := dial(t, s.addr)
	io.WriteString(c, signedRequest(callbackBody(1, "e")))
	if res := readAnswer(t, c, bufio.NewReader(c)); res.status != 200 || res.body != wantOK {
		t.Fatalf("small callback beside a full large pool: answer = %d %s", res.status, res.body)
	}

	// The stalled body's reservation is given back when it ends.
	staller.Close()
	poll.Until(t, "the budget to be given back", func() bool { return s.h.Stats().BodyBytes == 0 })
}

// TestBodyBudgetStallersHoldNothing: clients that announce bodies and send
// (almost) nothing of them, declared small or large or chunked, hold no
// budget, however many they are: a signed callback behind them is taken at
// once (with the default budget, 64 declared 64 KiB bodies used to fill
// the small-body pool, and a dozen chunked ones the large pool).
func TestBodyBudgetStallersHoldNothing(t *testing.T) {
	s := startRaw(t, newFakeSink(), func(c *callbacks.Config) { c.BodyWait = 50 * time.Millisecond }, longTimeouts(), nil)
	head := "POST " + callbacks.DefaultPath + " HTTP/1.1\r\nHost: x\r\n" + crm.HeaderTimestamp + ": " + tsNow(0) + "\r\n"
	const each = 80
	for i := range 3 * each {
		c := dial(t, s.addr)
		switch i / each {
		case 0:
			io.WriteString(c, head+"Content-Length: 65536\r\n\r\nabc")
		case 1:
			io.WriteString(c, head+fmt.Sprintf("Content-Length: %d\r\n\r\nabc", callbacks.DefaultMaxBody))
		default:
			io.WriteString(c, head+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
		}
	}
	poll.Until(t, "every staller to be reading", func() bool { return s.h.Stats().Reading == 3*each })
	if st := s.h.Stats(); st.BodyBytes != 0 {
		t.Fatalf("stallers hold %d bytes of the budget, want 0", st.BodyBytes)
	}
	c := dial(t, s.addr)
	io.WriteString(c, signedRequest(callbackBody(1, "e")))
	if res := readAnswer(t, c, bufio.NewReader(c)); res.status != 200 || res.body != wantOK {
		t.Fatalf("signed callback behind %d stallers: answer = %d %s", 3*each, res.status, res.body)
	}
	if st := s.h.Stats(); st.Shed != 0 {
		t.Errorf("stats %+v, want nothing shed", st)
	}
}

// TestBodyBudgetChunked: a body of undeclared length grows its
// reservation with what arrives, and gives it back once answered.
func TestBodyBudgetChunked(t *testing.T) {
	sink := newFakeSink()
	s := startRaw(t, sink, nil, longTimeouts(), nil)
	c := dial(t, s.addr)
	body := callbackBody(1, "e")
	pad := strings.Repeat(" ", 100<<10) // JSON whitespace: a 100 KiB body
	full := append([]byte(pad), body...)
	io.WriteString(c, "POST "+callbacks.DefaultPath+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"+
		crm.HeaderTimestamp+": "+tsNow(0)+"\r\n"+crm.HeaderSignature+": "+crm.Sign(testSecrets[0], full)+"\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n", len(pad), pad))
	poll.Until(t, "the arrived bytes to be reserved", func() bool {
		n := s.h.Stats().BodyBytes
		return n >= 64<<10 && n < callbacks.DefaultMaxBody
	})
	io.WriteString(c, fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body))
	if res := readAnswer(t, c, bufio.NewReader(c)); res.status != 200 || res.body != wantOK {
		t.Fatalf("answer = %d %s", res.status, res.body)
	}
	poll.Until(t, "the budget to be given back", func() bool { return s.h.Stats().BodyBytes == 0 })
}

// healthSink is a fakeSink with a HealthChecker.
type healthSink struct {
	*fakeSink
	mu   sync.Mutex
	code string
	err  error
}

func (s *healthSink) Health(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, s.err
}

func (s *healthSink) set(code string, err error) {
	s.mu.Lock()
	s.code, s.err = code, err
	s.mu.Unlock()
}

// TestHealthReportsStoreCode: /healthz asks the store's HealthChecker and
// answers its fixed code, never the error text, which goes to the log,
// once per interval however often the balancer asks.
func TestHealthReportsStoreCode(t *testing.T) {
	sink := &healthSink{fakeSink: newFakeSink()}
	var logs logtest.Buffer
	srv, _ := newTestListener(t, sink, func(c *callbacks.Config) { c.Logger = logs.Text() })
	secretish := errors.New("unlinked /var/lib/leadwatch/leadwatch.db (inode 1234)")
	tests := []struct {
		name, code string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"Healthy", "", nil, 200, `{"ok":true}`},
		{"Replaced", callbacks.HealthStoreReplaced, secretish, 503, `{"ok":false,"error":"unavailable","reason":"store_replaced"}`},
		{"DiskFull", callbacks.HealthDiskFull, secretish, 503, `{"ok":false,"error":"unavailable","reason":"disk_full"}`},
		{"ReadOnly", callbacks.HealthReadOnly, secretish, 503, `{"ok":false,"error":"unavailable","reason":"read_only"}`},
		{"Unreachable", callbacks.HealthUnreachable, secretish, 503, `{"ok":false,"error":"unavailable","reason":"unreachable"}`},
		{"UnknownCodeIsNotShown", "disk on fire at /var/lib", secretish, 503, `{"ok":false,"error":"unavailable","reason":"unreachable"}`},
		{"ErrorWithoutCode", "", context.DeadlineExceeded, 503, `{"ok":false,"error":"unavailable","reason":"unreachable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink.set(tt.code, tt.err)
			for range 3 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+callbacks.HealthPath, nil)
				res := do(t, srv.Client(), req)
				if res.status != tt.wantStatus || res.body != tt.wantBody {
					t.Fatalf("answer = %d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.wantBody)
				}
			}
		})
	}
	// Ping says the store is fine throughout; the checker is what counts.
	if n := logs.Count("inode 1234"); n != 4 {
		t.Errorf("%d log lines hold the detail, want 4: once per code, however often asked\n%s", n, logs.String())
	}
	if n := logs.Count("reason=unreachable"); n != 1 {
		t.Errorf("%d lines for unreachable, want 1 (rate-limited)\n%s", n, logs.String())
	}
}

// TestRefusalQueueFullLoggedOnce: a refusal flood that keeps the queue
// full logs the condition once per interval, not once per drop, even when
// some refusals get stored in between (which used to re-arm the warning).
func TestRefusalQueueFullLoggedOnce(t *testing.T) {
	sink := newFakeSink()
	sink.refusalGate = make(chan struct{})
	var logs logtest.Buffer
	srv, h := newTestListener(t, sink, func(c *callbacks.Config) {
		c.RefusalQueue = 1
		c.RefusalsPerSecond = 1_000_000
		c.Logger = logs.Text()
	})
	t.Cleanup(func() { close(sink.refusalGate) })
	unsigned := func(n int) {
		res := postRaw(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(n, "e"), map[string][]string{crm.HeaderTimestamp: {tsNow(0)}})
		if res.status != 403 {
			t.Fatalf("answer %d %s", res.status, res.body)
		}
	}
	// One in the sink, one queued, then drops.
	for i := range 5 {
		unsigned(i)
	}
	poll.Until(t, "drops", func() bool { return h.Stats().RefusalsDropped >= 3 })
	// Let one through, so the queue has room again, then flood again.
	sink.refusalGate <- struct{}{}
	poll.Until(t, "one refusal stored", func() bool { return len(sink.refusalList()) == 1 })
	for i := 5; i < 10; i++ {
		unsigned(i)
	}
	poll.Until(t, "more drops", func() bool { return h.Stats().RefusalsDropped >= 6 })
	if n := logs.Count("refusal queue full"); n != 1 {
		t.Errorf("%d warnings, want 1\n%s", n, logs.String())
	}
}

// TestCommitFailureLoggedOnce: a store that cannot commit (a full disk)
// fails every batch; the operator gets one line with a count per
// interval, not one per request.
func TestCommitFailureLoggedOnce(t *testing.T) {
	sink := newFakeSink()
	var logs logtest.Buffer
	srv, _ := newTestListener(t, sink, func(c *callbacks.Config) { c.Logger = logs.Text() })
	sink.setFail(errSinkDown)
	for i := range 5 {
		res := postSigned(t, srv.Client(), srv.URL+callbacks.DefaultPath, callbackBody(i, "e"), testSecrets[0])
		if res.status != 503 {
			t.Fatalf("answer %d %s, want 503", res.status, res.body)
		}
	}
	if n := logs.Count("group commit failed"); n != 1 {
		t.Errorf("%d lines for 5 failed commits, want 1\n%s", n, logs.String())
	}
}
