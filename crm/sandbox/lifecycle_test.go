package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// submitLeads accepts n leads "<prefix>-<i>" and returns their CRM ids by
// external_id.
func submitLeads(t *testing.T, baseURL, prefix string, n int) map[string]string {
	t.Helper()
	ids := make(map[string]string)
	for i := range n {
		ext := fmt.Sprintf("%s-%d", prefix, i)
		a := mustSend(t, timeoutClient(), leadRequest(t, baseURL, leadJSON(ext, fmt.Sprintf("+4930%08d", i), nil), ext, time.Now()))
		r := leadResp(t, a)
		if r.Status != crm.StatusAccepted {
			t.Fatalf("submit %s: %s", ext, a)
		}
		ids[ext] = *r.ID
	}
	return ids
}

// checkLifecycle checks that each lead's stored callbacks are its whole
// lifecycle: new, a middle status, a final one, with strictly increasing
// timestamps and the lead's CRM id.
func checkLifecycle(t *testing.T, ids map[string]string, evs []crm.CallbackEvent) map[string][]string {
	t.Helper()
	paths := make(map[string][]string)
	grouped := byLead(evs)
	for ext, id := range ids {
		got := grouped[ext]
		// Sort by the event's own timestamp: arrival order is what the
		// reorder fault changes, the event order is not.
		slices.SortFunc(got, func(a, b crm.CallbackEvent) int { return a.EventTime.Compare(b.EventTime) })
		var statuses []string
		for i, ev := range got {
			statuses = append(statuses, ev.Status)
			if ev.InternalID != id || ev.Event != EventStatusChanged {
				t.Errorf("%s: event %+v, want internal_id %s and event %s", ext, ev, id, EventStatusChanged)
			}
			if i > 0 && !ev.EventTime.After(got[i-1].EventTime) {
				t.Errorf("%s: timestamps not increasing: %s then %s", ext, got[i-1].Timestamp, ev.Timestamp)
			}
		}
		if len(statuses) != 3 || statuses[0] != StatusNew ||
			!slices.Contains([]string{StatusNoAnswer, StatusCallback, StatusInterested}, statuses[1]) ||
			!slices.Contains([]string{StatusFTD, StatusNotInterested}, statuses[2]) {
			t.Errorf("%s: statuses %v, want new, a middle status, a final one", ext, statuses)
		}
		paths[ext] = statuses
	}
	if len(grouped) != len(ids) {
		t.Errorf("callbacks for %d leads, want %d", len(grouped), len(ids))
	}
	return paths
}

func TestLifecycleCallbacks(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	cfg := testConfig()
	cfg.CallbackURL = rc.srv.URL + "/cartelcrm/callback"
	sb, srv := startSandbox(t, cfg)

	ids := submitLeads(t, srv.URL, "life", 4)
	waitIdle(t, sb)

	arrivals, stored := rc.snapshot()
	for _, a := range arrivals {
		if a.code != 200 {
			t.Errorf("a callback was refused: %d %s", a.code, a.why)
		}
	}
	paths := checkLifecycle(t, ids, stored)

	// The status endpoint ends where the callbacks did.
	for ext, path := range paths {
		a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, ext, time.Now()))
		var r crm.StatusResponse
		if err := json.Unmarshal(a.body, &r); err != nil || a.code != 200 {
			t.Fatalf("status %s: %s", ext, a)
		}
		last := path[len(path)-1]
		if r.Status != last || r.ID != ids[ext] {
			t.Errorf("status of %s: %+v, want %s", ext, r, last)
		}
		if wantReason := last == StatusNotInterested; (r.Reason != nil) != wantReason {
			t.Errorf("status of %s: reason %s", ext, deref(r.Reason))
		}
		var lastEv crm.CallbackEvent
		for _, ev := range stored {
			if ev.ExternalID == ext && ev.Status == last {
				lastEv = ev
			}
		}
		if !r.UpdatedAt.Equal(lastEv.EventTime) {
			t.Errorf("status of %s: updated_at %s, last callback at %s", ext, r.UpdatedAt, lastEv.EventTime)
		}
		if got, ok := sb.Lookup(ext); !ok || got.Status != r.Status || !got.UpdatedAt.Equal(r.UpdatedAt) {
			t.Errorf("Lookup(%s) = %+v, %v; the endpoint said %+v", ext, got, ok, r)
		}
	}
	st := sb.Stats()
	if st.StatusChanges != 12 || st.CallbacksSent != 12 || st.CallbacksDelivered != 12 ||
		st.CallbacksRedelivered != 0 || st.CallbacksFailed != 0 || st.CallbacksPending != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLifecycleWithoutCallbackURL(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	ids := submitLeads(t, srv.URL, "quiet", 2)
	waitIdle(t, sb)
	for ext := range ids {
		a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, ext, time.Now()))
		var r crm.StatusResponse
		_ = json.Unmarshal(a.body, &r)
		if r.Status != StatusFTD && r.Status != StatusNotInterested {
			t.Errorf("%s: status %q, want a final one", ext, r.Status)
		}
	}
	if _, ok := sb.Lookup("no-such-lead"); ok {
		t.Error("Lookup found an unknown lead")
	}
	if st := sb.Stats(); st.StatusChanges != 6 || st.CallbacksSent != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLifecycleDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []string {
		cfg := testConfig()
		cfg.Seed = 11
		sb, srv := startSandbox(t, cfg)
		ids := submitLeads(t, srv.URL, "det", 8)
		waitIdle(t, sb)
		var finals []string
		for i := range len(ids) {
			ext := "det-" + strconv.Itoa(i)
			a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, ext, time.Now()))
			var r crm.StatusResponse
			_ = json.Unmarshal(a.body, &r)
			finals = append(finals, r.Status)
		}
		return finals
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different lifecycles: %v vs %v", a, b)
	}
}

func TestCallbackRedelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		refuse        func(ev crm.CallbackEvent, n int) int
		wantDelivered bool
	}{
		{"After500", func(_ crm.CallbackEvent, n int) int {
			if n == 1 {
				return http.StatusInternalServerError
			}
			return 0
		}, true},
		{"After503Twice", func(_ crm.CallbackEvent, n int) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return 0
		}, true},
		{"GiveUp", func(crm.CallbackEvent, int) int { return http.StatusBadGateway }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tt.refuse)
			cfg := testConfig()
			cfg.CallbackURL = rc.srv.URL
			sb, srv := startSandbox(t, cfg)
			ids := submitLeads(t, srv.URL, "redo", 2)
			waitIdle(t, sb)
			arrivals, stored := rc.snapshot()
			st := sb.Stats()
			if !tt.wantDelivered {
				want := int64(6 * cfg.CallbackAttempts)
				if len(stored) != 0 || st.CallbacksFailed != 6 || st.CallbacksSent != want || int64(len(arrivals)) != want {
					t.Fatalf("stored %d, stats %+v; want 6 failed after %d POSTs", len(stored), st, want)
				}
				return
			}
			checkLifecycle(t, ids, stored)
			if st.CallbacksRedelivered == 0 || st.CallbacksFailed != 0 || st.CallbacksDelivered != 6 ||
				st.CallbacksSent != int64(len(arrivals)) {
				t.Errorf("stats %+v with %d arrivals", st, len(arrivals))
			}
		})
	}
}

func TestCallbackNetworkError(t *testing.T) {
	t.Parallel()
	// A listener that is not there: every POST is a connection error,
	// which is redelivered like a non-2xx and finally given up.
	rc := newReceiver(t, nil)
	url := rc.srv.URL
	rc.srv.Close()
	cfg := testConfig()
	cfg.CallbackURL = url
	cfg.CallbackAttempts = 3
	sb, srv := startSandbox(t, cfg)
	submitLeads(t, srv.URL, "net", 1)
	waitIdle(t, sb)
	if st := sb.Stats(); st.CallbacksFailed != 3 || st.CallbacksRedelivered != 6 || st.CallbacksDelivered != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCallbackFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		configure func(c *Config)
		check     func(t *testing.T, arrivals []arrival, st Stats)
	}{
		{"Duplicate", func(c *Config) { c.CallbackDupRate = 1 }, func(t *testing.T, arrivals []arrival, st Stats) {
			perKey := make(map[string]int)
			for _, a := range arrivals {
				if a.code != 200 {
					t.Errorf("refused arrival %d %s", a.code, a.why)
				}
				perKey[a.ev.DedupKey]++
			}
			for k, n := range perKey {
				if n != 2 {
					t.Errorf("%s arrived %d times, want 2", k, n)
				}
			}
			if st.CallbacksDuplicated != 6 || st.CallbacksSent != 12 || st.CallbacksDelivered != 12 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"BadSignature", func(c *Config) { c.CallbackBadSigRate = 1 }, func(t *testing.T, arrivals []arrival, st Stats) {
			refusedThenGood(t, arrivals, http.StatusForbidden)
			if st.CallbacksBadSig != 6 || st.CallbacksRedelivered != 6 || st.CallbacksFailed != 0 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"StaleTimestamp", func(c *Config) { c.CallbackStaleRate = 1 }, func(t *testing.T, arrivals []arrival, st Stats) {
			refusedThenGood(t, arrivals, http.StatusUnauthorized)
			if st.CallbacksStale != 6 || st.CallbacksRedelivered != 6 || st.CallbacksFailed != 0 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"Reorder", func(c *Config) { c.CallbackReorderRate = 1 }, func(t *testing.T, arrivals []arrival, st Stats) {
			// With every change eligible, "new" is held behind the
			// middle status (the final one cannot be held). The final
			// change goes out StatusDelay later in its own goroutine, so
			// only the order of the first two is certain.
			for ext, evs := range byLead(eventsOf(arrivals)) {
				var order []string
				for _, ev := range evs {
					order = append(order, ev.Status)
				}
				iNew := slices.Index(order, StatusNew)
				iMid := slices.IndexFunc(order, func(s string) bool {
					return s == StatusNoAnswer || s == StatusCallback || s == StatusInterested
				})
				if len(order) != 3 || iNew < 0 || iMid < 0 || iMid > iNew {
					t.Errorf("%s arrived as %v, want the middle status before new", ext, order)
				}
			}
			if st.CallbacksReordered != 2 || st.CallbacksDelivered != 6 {
				t.Errorf("stats %+v", st)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, nil)
			cfg := testConfig()
			cfg.CallbackURL = rc.srv.URL
			tt.configure(&cfg)
			sb, srv := startSandbox(t, cfg)
			ids := submitLeads(t, srv.URL, "cbf", 2)
			waitIdle(t, sb)
			arrivals, stored := rc.snapshot()
			// Whatever the fault, nothing is lost: every lead's whole
			// lifecycle is stored by the listener.
			checkLifecycle(t, ids, stored)
			tt.check(t, arrivals, sb.Stats())
		})
	}
}

// refusedThenGood checks that each callback body was first refused with
// code and then accepted.
func refusedThenGood(t *testing.T, arrivals []arrival, code int) {
	t.Helper()
	refused, good := 0, 0
	for _, a := range arrivals {
		switch a.code {
		case code:
			refused++
		case http.StatusOK:
			good++
		default:
			t.Errorf("unexpected arrival %d %s", a.code, a.why)
		}
	}
	if refused != 6 || good != 6 {
		t.Errorf("%d refused (%d), %d accepted; want 6 and 6", refused, code, good)
	}
}

// eventsOf returns the verified events among arrivals, in arrival order.
func eventsOf(arrivals []arrival) []crm.CallbackEvent {
	var evs []crm.CallbackEvent
	for _, a := range arrivals {
		if a.code == http.StatusOK {
			evs = append(evs, a.ev)
		}
	}
	return evs
}

func TestCloseStopsGoroutines(t *testing.T) {
	t.Parallel()
	// The listener holds the first callback until the test ends, so a
	// delivery is in flight when Close is called.
	release := make(chan struct{})
	hung := make(chan struct{}, 16)
	rc := newReceiver(t, func(crm.CallbackEvent, int) int {
		hung <- struct{}{}
		<-release
		return 0
	})
	defer close(release)

	cfg := testConfig()
	cfg.CallbackURL = rc.srv.URL
	cfg.StatusDelay = time.Hour
	transport := &http.Transport{}
	cfg.HTTPClient = &http.Client{Transport: transport, Timeout: time.Hour}
	sb := New(cfg)
	srv := httptestServer(t, sb)
	submitLeads(t, srv, "close", 3)
	select {
	case <-hung:
	case <-time.After(waitTimeout):
		t.Fatal("no callback reached the listener")
	}
	if sb.Pending() == 0 {
		t.Fatal("nothing pending before Close")
	}
	// The detector used below must see the goroutines while they run.
	if sandboxGoroutines(sb) == "" {
		t.Fatal("no sandbox goroutine found before Close")
	}

	closed := make(chan struct{})
	go func() {
		sb.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatalf("Close did not return; %d pending", sb.Pending())
	}
	if n := sb.Pending(); n != 0 {
		t.Errorf("%d pending after Close", n)
	}
	sent := sb.Stats().CallbacksSent
	sb.Close() // a second Close is harmless

	// Nothing more is sent, and no goroutine of this sandbox is left:
	// the stacks are searched for its lifecycle and delivery functions
	// with its address as receiver, so other tests' sandboxes do not
	// count.
	transport.CloseIdleConnections()
	if left := sandboxGoroutines(sb); left != "" {
		t.Errorf("goroutines left after Close:\n%s", left)
	}
	if got := sb.Stats().CallbacksSent; got != sent {
		t.Errorf("%d callbacks sent after Close", got-sent)
	}
}

// httptestServer serves sb's handler on loopback until the test ends, and
// returns its URL; unlike startSandbox it leaves closing sb to the test.
func httptestServer(t *testing.T, sb *Sandbox) string {
	t.Helper()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// sandboxGoroutines returns the stacks of goroutines running a lifecycle or
// a delivery of sb, "" when there are none.
func sandboxGoroutines(sb *Sandbox) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	self := fmt.Sprintf("(%p", sb)
	var left []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "sandbox.(*Sandbox).") && strings.Contains(g, self) {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}
