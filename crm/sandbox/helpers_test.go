package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

// waitTimeout bounds every wait of the tests: generous, because a wait
// that succeeds returns at once.
const waitTimeout = poll.DefaultTimeout

// testConfig is a sandbox config with the test credentials (StartTest's)
// and no faults.
func testConfig() Config {
	return Config{
		APIKey:           TestAPIKey,
		HMACSecret:       []byte(TestHMACSecret),
		CallbackSecret:   []byte(TestCallbackSecret),
		StatusDelay:      5 * time.Millisecond,
		CallbackBackoff:  2 * time.Millisecond,
		CallbackAttempts: 5,
	}
}

// fixedClock returns a clock stopped at a round instant, so timestamp tests
// can aim at the edges of the window.
func fixedClock() func() time.Time {
	t0 := time.Unix(1_800_000_000, 0)
	return func() time.Time { return t0 }
}

// startSandbox serves a new Sandbox for cfg on loopback (StartTest) and
// returns it with its server, both closed at the end of the test.
func startSandbox(tb testing.TB, cfg Config) (*Sandbox, *Server) {
	tb.Helper()
	srv := StartTest(tb, cfg)
	return srv.Sandbox, srv
}

// leadJSON builds a lead body. extra fields are added as given.
func leadJSON(externalID, phone string, extra map[string]any) []byte {
	m := map[string]any{"external_id": externalID, "phone": phone}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// leadRequest builds a lead POST signed as the protocol says, at ts.
func leadRequest(tb testing.TB, baseURL string, body []byte, key string, ts time.Time) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+crm.PathLeads, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+TestAPIKey)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(crm.HeaderIdempotencyKey, key)
	}
	crm.SignRequest(req, []byte(TestHMACSecret), body, ts)
	return req
}

// statusRequest builds a status GET signed over the empty body, at ts.
func statusRequest(tb testing.TB, baseURL, externalID string, ts time.Time) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, baseURL+crm.StatusPath(externalID), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+TestAPIKey)
	crm.SignRequest(req, []byte(TestHMACSecret), nil, ts)
	return req
}

// answer is one HTTP answer, or the transport error when none came.
type answer struct {
	code   int
	body   []byte
	header http.Header
	err    error
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body))
}

// send does req with client and reads the whole answer.
func send(client *http.Client, req *http.Request) answer {
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: b, header: resp.Header, err: err}
}

// mustSend is send that fails the test on a transport error.
func mustSend(tb testing.TB, client *http.Client, req *http.Request) answer {
	tb.Helper()
	a := send(client, req)
	if a.err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, a.err)
	}
	return a
}

// leadResp decodes a LeadResponse answer.
func leadResp(tb testing.TB, a answer) crm.LeadResponse {
	tb.Helper()
	var r crm.LeadResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		tb.Fatalf("answer %s is not a LeadResponse: %v", a, err)
	}
	return r
}

// errCode decodes an ErrorResponse answer's code.
func errCode(tb testing.TB, a answer) string {
	tb.Helper()
	var r crm.ErrorResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		tb.Fatalf("answer %s is not an ErrorResponse: %v", a, err)
	}
	return r.Error
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// waitIdle waits for every lifecycle and delivery of sb to end.
func waitIdle(tb testing.TB, sb *Sandbox) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := sb.WaitIdle(ctx); err != nil {
		tb.Fatalf("sandbox not idle (%d pending): %v", sb.Pending(), err)
	}
}

// arrival is one POST the receiver got and what it answered.
type arrival struct {
	code int
	ev   crm.CallbackEvent // parsed when the body was verified
	why  string            // refusal reason, when refused
}

// receiver is a callback listener for tests: it verifies each callback
// with crm's helpers and answers as docs/protocol.md §3 does (401, 403, 400,
// then 200 with a replay flag for a dedup key seen before). refuse, when
// set, can override the answer of a verified callback (n counts the
// arrivals of that dedup key, from 1).
type receiver struct {
	srv    *httptest.Server
	refuse func(ev crm.CallbackEvent, n int) int

	mu       sync.Mutex
	arrivals []arrival
	seen     map[string]int
	stored   []crm.CallbackEvent // first 2xx of each dedup key, in order
}

func newReceiver(tb testing.TB, refuse func(ev crm.CallbackEvent, n int) int) *receiver {
	tb.Helper()
	rc := &receiver{refuse: refuse, seen: make(map[string]int)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		rc.record(w, arrival{code: http.StatusRequestEntityTooLarge, why: err.Error()})
		return
	}
	if _, err := crm.CheckTimestamp(r.Header.Get(crm.HeaderTimestamp), time.Now(), crm.DefaultTolerance); err != nil {
		rc.record(w, arrival{code: http.StatusUnauthorized, why: err.Error()})
		return
	}
	if _, err := crm.VerifySignature(r.Header.Get(crm.HeaderSignature), body, [][]byte{[]byte(TestCallbackSecret)}); err != nil {
		rc.record(w, arrival{code: http.StatusForbidden, why: err.Error()})
		return
	}
	ev, err := crm.ParseCallback(body)
	if err != nil {
		rc.record(w, arrival{code: http.StatusBadRequest, why: err.Error()})
		return
	}
	rc.mu.Lock()
	rc.seen[ev.DedupKey]++
	n := rc.seen[ev.DedupKey]
	rc.mu.Unlock()
	if rc.refuse != nil {
		if code := rc.refuse(ev, n); code != 0 {
			rc.record(w, arrival{code: code, ev: ev, why: "refused by test"})
			return
		}
	}
	rc.record(w, arrival{code: http.StatusOK, ev: ev})
}

func (rc *receiver) record(w http.ResponseWriter, a arrival) {
	rc.mu.Lock()
	rc.arrivals = append(rc.arrivals, a)
	replay := false
	if a.code == http.StatusOK {
		for _, s := range rc.stored {
			if s.DedupKey == a.ev.DedupKey {
				replay = true
			}
		}
		if !replay {
			rc.stored = append(rc.stored, a.ev)
		}
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.code)
	fmt.Fprintf(w, `{"ok":%s,"replay":%s}`, strconv.FormatBool(a.code == http.StatusOK), strconv.FormatBool(replay))
}

// snapshot returns copies of the arrivals and the stored events.
func (rc *receiver) snapshot() ([]arrival, []crm.CallbackEvent) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]arrival(nil), rc.arrivals...), append([]crm.CallbackEvent(nil), rc.stored...)
}

// byLead groups events by external_id, keeping their order.
func byLead(evs []crm.CallbackEvent) map[string][]crm.CallbackEvent {
	m := make(map[string][]crm.CallbackEvent)
	for _, ev := range evs {
		m[ev.ExternalID] = append(m[ev.ExternalID], ev)
	}
	return m
}

// timeoutClient is a client with a timeout, as every client should have,
// on the shared default transport.
func timeoutClient() *http.Client {
	return &http.Client{Timeout: waitTimeout}
}
