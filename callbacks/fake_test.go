package callbacks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
)

// fakeSink is an in-memory EventSink for the handler's logic: a map under
// a mutex, with switches to fail and to block.
type fakeSink struct {
	mu       sync.Mutex
	events   map[string]crm.CallbackEvent
	order    []string
	refusals []crm.Refusal
	batches  []int
	fail     error // SaveCallbacks and Ping fail with it when set

	// gate, when set, makes SaveCallbacks block until it is closed (or
	// the commit context ends); entered receives the batch size on entry.
	gate    chan struct{}
	entered chan int

	// refusalGate, when set, blocks SaveRefusal likewise.
	refusalGate chan struct{}
}

func newFakeSink() *fakeSink {
	return &fakeSink{events: make(map[string]crm.CallbackEvent)}
}

func (s *fakeSink) SaveCallbacks(ctx context.Context, evs []crm.CallbackEvent) ([]bool, error) {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if entered != nil {
		entered <- len(evs)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(evs))
	if s.fail != nil {
		return nil, s.fail
	}
	fresh := make([]bool, len(evs))
	for i, ev := range evs {
		if _, ok := s.events[ev.DedupKey]; ok {
			continue
		}
		ev.RawBody = bytes.Clone(ev.RawBody)
		s.events[ev.DedupKey] = ev
		s.order = append(s.order, ev.DedupKey)
		fresh[i] = true
	}
	return fresh, nil
}

func (s *fakeSink) SaveRefusal(ctx context.Context, r crm.Refusal) error {
	s.mu.Lock()
	gate := s.refusalGate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals = append(s.refusals, r)
	return nil
}

func (s *fakeSink) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func (s *fakeSink) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func (s *fakeSink) event(key string) (crm.CallbackEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev, ok := s.events[key]
	return ev, ok
}

func (s *fakeSink) eventCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *fakeSink) refusalList() []crm.Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]crm.Refusal(nil), s.refusals...)
}

func (s *fakeSink) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

// Fixed test clock and secrets.
var (
	testNow     = time.Unix(1_790_000_000, 0)
	testSecrets = [][]byte{[]byte("callback-secret-current"), []byte("callback-secret-next")}
)

// newTestListener serves a Handler over real loopback HTTP.
func newTestListener(t testing.TB, sink callbacks.EventSink, mod func(*callbacks.Config)) (*httptest.Server, *callbacks.Handler) {
	t.Helper()
	cfg := callbacks.Config{
		Secrets: testSecrets,
		Now:     func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := callbacks.NewHandler(cfg, sink)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv, h
}

// callbackBody returns a typical callback body for internal id n.
func callbackBody(n int, event string) []byte {
	return []byte(fmt.Sprintf(`{"internal_id":"crm-%d","external_id":"lead-%d","event":%q,"status":"interested","reason":null,"timestamp":%d,"extra":{"k":[1,2,3]}}`,
		n, n, event, n))
}

// dedupKey is the key callbackBody(n, event) stores under.
func dedupKey(n int, event string) string {
	return "crm-" + strconv.Itoa(n) + ":" + event + ":" + strconv.Itoa(n)
}

// response is what a test request got back.
type response struct {
	status int
	body   string
	header http.Header
}

// postRaw posts body with exactly the given header values (nil: absent).
func postRaw(t testing.TB, client *http.Client, url string, body []byte, hdr map[string][]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return do(t, client, req)
}

// postSigned posts body signed with secret at testNow.
func postSigned(t testing.TB, client *http.Client, url string, body, secret []byte) response {
	t.Helper()
	req, err := crm.NewSignedCallback(url, body, secret, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, client, req)
}

func do(t testing.TB, client *http.Client, req *http.Request) response {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return response{}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("read answer: %v", err)
	}
	return response{status: res.StatusCode, body: string(b), header: res.Header}
}

var errSinkDown = errors.New("disk on fire")
