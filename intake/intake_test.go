package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/intake"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

const testToken = "intake-test-token"

// next stands in for the callback listener behind the intake.
var next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Next", "1")
	http.Error(w, `{"error":"not_found"}`, http.StatusNotFound)
})

// startIntake serves an intake over db on a loopback port and returns its
// base URL and handler.
func startIntake(t testing.TB, db intake.Outbox, cfg intake.Config) (string, *intake.Handler) {
	t.Helper()
	if cfg.Token == nil {
		cfg.Token = []byte(testToken)
	}
	h, err := intake.New(cfg, db, next)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return srv.URL, h
}

// post sends body to the intake with the token (unless tok is "-": none)
// and returns the status, the decoded answer and the response.
func post(t testing.TB, base, tok string, body []byte) (int, map[string]any, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+intake.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "-" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var ans map[string]any
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, ans, resp
}

func lead(id string) []byte {
	return []byte(fmt.Sprintf(`{"external_id":%q,"phone":"+380501234567","country":"UA"}`, id))
}

func TestPathMatchesConfig(t *testing.T) {
	if intake.Path != config.IntakePath {
		t.Fatalf("intake.Path %q, config.IntakePath %q", intake.Path, config.IntakePath)
	}
}

func TestNewNeedsToken(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	if _, err := intake.New(intake.Config{}, db, next); !errors.Is(err, intake.ErrNoToken) {
		t.Fatalf("New without a token: %v, want ErrNoToken", err)
	}
}

// testStore is what the tests read back from either backend.
type testStore interface {
	intake.Outbox
	Lead(ctx context.Context, externalID string) (crm.Lead, error)
}

// backends runs f against SQLite and, when LEADWATCH_TEST_POSTGRES is
// set, PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, db testStore)) {
	t.Run("sqlite", func(t *testing.T) { f(t, storetest.Open(t, store.Options{})) })
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), storetest.Postgres(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f(t, db)
	})
}

// TestOneLead: 202 once committed, then 409 with its state, 422 with the
// reason of a bad lead.
func TestOneLead(t *testing.T) {
	backends(t, func(t *testing.T, db testStore) {
		base, h := startIntake(t, db, intake.Config{})
		code, ans, resp := post(t, base, testToken, lead("one-1"))
		if code != http.StatusAccepted || ans["external_id"] != "one-1" || ans["state"] != "queued" || len(ans) != 2 {
			t.Fatalf("first post: %d %v", code, ans)
		}
		if resp.Close {
			t.Error("an accepted lead's connection was closed")
		}
		// Answered 202, so committed: the store has it.
		l, err := db.Lead(context.Background(), "one-1")
		if err != nil || l.State != crm.StateQueued || string(l.Payload) != string(lead("one-1")) || l.IdempotencyKey == "" {
			t.Fatalf("stored %+v %v", l, err)
		}
		code, ans, _ = post(t, base, testToken, lead("one-1"))
		if code != http.StatusConflict || ans["external_id"] != "one-1" || ans["state"] != "queued" || ans["error"] != "duplicate" {
			t.Fatalf("second post: %d %v", code, ans)
		}
		code, ans, _ = post(t, base, testToken, []byte(`{"external_id":"one-2"}`))
		if code != http.StatusUnprocessableEntity || ans["error"] != "invalid_lead" || ans["reason"] != "phone is required" || ans["external_id"] != "one-2" {
			t.Fatalf("bad lead: %d %v", code, ans)
		}
		if _, err := db.Lead(context.Background(), "one-2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the bad lead was stored: %v", err)
		}
		code, ans, _ = post(t, base, testToken, []byte(`{"external_id":"one-3","phone":"12"}`))
		if code != http.StatusAccepted || ans["phone_invalid"] != true {
			t.Fatalf("lead with a non-E.164 phone: %d %v, want 202 flagged (submit's rule)", code, ans)
		}
		st := h.Stats()
		if st.Accepted != 2 || st.Duplicates != 1 || st.Invalid != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestStrict: Config.Strict refuses what submit --strict refuses.
func TestStrict(t *testing.T) {
	base, _ := startIntake(t, storetest.Open(t, store.Options{}), intake.Config{Strict: true})
	code, ans, _ := post(t, base, testToken, []byte(`{"external_id":"st-1","phone":"12"}`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(ans["reason"].(string), "E.164") {
		t.Fatalf("strict: %d %v", code, ans)
	}
}

// TestStoreSizeLimit: the intake checks a lead in its request, but the
// size limit is the store's (store.Options.MaxPayload), not crm's default:
// a lead under intake.max_body and over the store's limit is 422 with the
// store's reason, and a good lead of the same request is stored.
func TestStoreSizeLimit(t *testing.T) {
	db := storetest.Open(t, store.Options{MaxPayload: 100})
	base, h := startIntake(t, db, intake.Config{})
	big := []byte(`{"external_id":"sz-1","phone":"+380501234567","note":"` + strings.Repeat("x", 100) + `"}`)
	code, ans, _ := post(t, base, testToken, []byte(`[`+string(big)+`,`+string(lead("sz-2"))+`]`))
	res, _ := ans["results"].([]any)
	if code != http.StatusMultiStatus || len(res) != 2 {
		t.Fatalf("%d %v", code, ans)
	}
	first, second := res[0].(map[string]any), res[1].(map[string]any)
	if first["status"] != float64(422) || first["external_id"] != "sz-1" ||
		first["reason"] != fmt.Sprintf("payload is %d bytes, over the 100-byte limit", len(big)) {
		t.Errorf("lead over the store's limit: %v", first)
	}
	if second["status"] != float64(202) {
		t.Errorf("good lead: %v", second)
	}
	if _, err := db.Lead(context.Background(), "sz-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the lead over the limit was stored: %v", err)
	}
	if st := h.Stats(); st.Invalid != 1 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestArray: an array with bad leads among good ones stores the good ones
// and answers each, in order.
func TestArray(t *testing.T) {
	backends(t, func(t *testing.T, db testStore) {
		base, _ := startIntake(t, db, intake.Config{})
		if code, _, _ := post(t, base, testToken, lead("arr-0")); code != http.StatusAccepted {
			t.Fatal(code)
		}
		body := []byte(`[` + string(lead("arr-1")) + `, {"external_id":"arr-2"}, ` + string(lead("arr-0")) + `, "nope", ` +
			string(lead("arr-3")) + `, ` + string(lead("arr-1")) + `]`)
		code, ans, _ := post(t, base, testToken, body)
		if code != http.StatusMultiStatus {
			t.Fatalf("array: %d %v", code, ans)
		}
		got, _ := json.Marshal(ans["results"])
		want := `[{"external_id":"arr-1","state":"queued","status":202},` +
			`{"error":"invalid_lead","external_id":"arr-2","reason":"phone is required","status":422},` +
			`{"error":"duplicate","external_id":"arr-0","reason":"external_id already in the outbox","state":"queued","status":409},` +
			`{"error":"invalid_lead","reason":"not a JSON object","status":422},` +
			`{"external_id":"arr-3","state":"queued","status":202},` +
			`{"error":"duplicate","external_id":"arr-1","reason":"external_id already in the outbox","state":"queued","status":409}]`
		if string(got) != want {
			t.Fatalf("results\n%s\nwant\n%s", got, want)
		}
		for _, id := range []string{"arr-0", "arr-1", "arr-3"} {
			if _, err := db.Lead(context.Background(), id); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		if _, err := db.Lead(context.Background(), "arr-2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("arr-2 stored: %v", err)
		}
	})
}

// TestBadBodies: a body that is no lead nor an array of leads is 400 with
// the reason, and closes the connection.
func TestBadBodies(t *testing.T) {
	base, h := startIntake(t, storetest.Open(t, store.Options{}), intake.Config{})
	for _, tc := range []struct{ name, body, reason string }{
		{"EmptyArray", `[]`, "an empty array: no leads"},
		{"BrokenArray", `[{"external_id":"x","phone":"+380501234567"}, {`, "not a JSON array of leads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ans, resp := post(t, base, testToken, []byte(tc.body))
			if code != http.StatusBadRequest || ans["error"] != "invalid_body" || !strings.Contains(ans["reason"].(string), tc.reason) || !resp.Close {
				t.Fatalf("%d %v close=%v", code, ans, resp.Close)
			}
		})
	}
	if st := h.Stats(); st.BadRequests != 2 || st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestUnauthorized: without the token, with a wrong one, a wrong scheme or
// two Authorization headers, the answer is 401 before the body is read,
// the connection is closed and nothing is stored.
func TestUnauthorized(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	base, h := startIntake(t, db, intake.Config{})
	for _, tc := range []struct {
		name string
		auth []string
	}{
		{"NoToken", nil},
		{"WrongToken", []string{"Bearer " + testToken + "x"}},
		{"Prefix", []string{"Bearer " + testToken[:5]}},
		{"Empty", []string{"Bearer "}},
		{"BasicScheme", []string{"Basic " + testToken}},
		{"TokenAlone", []string{testToken}},
		{"TwoHeaders", []string{"Bearer " + testToken, "Bearer " + testToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				req, _ := http.NewRequest(method, base+intake.Path, bytes.NewReader(lead("un-1")))
				for _, a := range tc.auth {
					req.Header.Add("Authorization", a)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || string(raw) != `{"error":"unauthorized"}` ||
					!resp.Close || resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("%s: %d %q close=%v", method, resp.StatusCode, raw, resp.Close)
				}
				if strings.Contains(string(raw), testToken) {
					t.Fatal("the answer quotes the token")
				}
			}
		})
	}
	if _, err := db.Lead(context.Background(), "un-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unauthorized lead was stored: %v", err)
	}
	if st := h.Stats(); st.Unauthorized != 14 || st.Commits != 0 {
		t.Errorf("stats %+v, want 14 unauthorized and no commit", st)
	}
	// The intake's refusals are not the listener's callback refusals.
	if rs, err := db.Refusals(context.Background(), crm.EventQuery{Limit: 10}); err != nil || len(rs) != 0 {
		t.Errorf("refusals stored: %v %v", rs, err)
	}
}

// TestTooLarge: a 10 MiB body is 413 whether its length is declared or
// not, and nothing of it is stored.
func TestTooLarge(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	base, h := startIntake(t, db, intake.Config{})
	// An array of valid leads, so that only its size refuses it.
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; b.Len() < 10<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(lead(fmt.Sprintf("big-%06d", i)))
	}
	b.WriteByte(']')
	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"Declared", false}, {"Chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(b.Bytes())
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, base+intake.Path, body)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close before the client has sent it all;
				// that is a refusal too, but then the answer is unseen.
				t.Fatalf("post: %v", err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), `"error":"body_too_large"`) || !resp.Close {
				t.Fatalf("%d %q close=%v", resp.StatusCode, raw, resp.Close)
			}
		})
	}
	if n, _, err := db.CountLeads(context.Background(), crm.LeadQuery{}, 10); err != nil || n != 0 {
		t.Fatalf("%d leads stored from refused bodies (%v)", n, err)
	}
	if st := h.Stats(); st.TooLarge != 2 || st.Commits != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestOtherPaths: every other path, and the intake's path with another
// method, is not the intake's.
func TestOtherPaths(t *testing.T) {
	base, _ := startIntake(t, storetest.Open(t, store.Options{}), intake.Config{})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Next") != "1" {
		t.Errorf("/healthz did not reach the next handler")
	}
	req, _ := http.NewRequest(http.MethodGet, base+intake.Path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET with the token: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// failingOutbox fails every commit, as a full disk would.
type failingOutbox struct{ intake.Outbox }

func (failingOutbox) EnqueueBatch(context.Context, [][]byte, store.EnqueueOptions) ([]crm.Lead, []error, error) {
	return nil, nil, errors.New("disk full")
}

// TestStoreFailure: a lead whose commit failed is 503, never 202; in an
// array, each lead says so.
func TestStoreFailure(t *testing.T) {
	base, h := startIntake(t, failingOutbox{}, intake.Config{})
	code, ans, _ := post(t, base, testToken, lead("sf-1"))
	if code != http.StatusServiceUnavailable || ans["error"] != "unavailable" || ans["external_id"] != "sf-1" {
		t.Fatalf("%d %v", code, ans)
	}
	if strings.Contains(fmt.Sprint(ans), "disk full") {
		t.Error("the answer shows the store's error")
	}
	code, ans, _ = post(t, base, testToken, []byte(`[`+string(lead("sf-2"))+`]`))
	res, _ := ans["results"].([]any)
	if code != http.StatusMultiStatus || len(res) != 1 || res[0].(map[string]any)["status"] != float64(503) {
		t.Fatalf("array: %d %v", code, ans)
	}
	if st := h.Stats(); st.Unavailable != 2 || st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestConcurrentLoad: 32 clients post leads at once, each lead offered
// twice by different clients, some in arrays: every lead is answered 202
// exactly once, every 202'd lead is in the store when its answer
// arrives (checked through a second handle, as another process), and
// the others are 409s naming a state.
func TestConcurrentLoad(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	other := storetest.OpenPath(t, db.Path(), store.Options{ReadOnly: true})
	base, h := startIntake(t, db, intake.Config{})
	const clients, perClient = 32, 60
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				// Client c and client c^1 offer the same ids.
				id := fmt.Sprintf("load-%02d-%03d", c/2, i)
				body := lead(id)
				if i%10 == 9 {
					body = []byte("[" + string(body) + "]")
				}
				code, ans, _ := post(t, base, testToken, body)
				if res, ok := ans["results"].([]any); ok && code == http.StatusMultiStatus && len(res) == 1 {
					ans = res[0].(map[string]any)
					code = int(ans["status"].(float64))
				}
				switch {
				case code == http.StatusAccepted:
					if _, err := other.Lead(context.Background(), id); err != nil {
						errs <- fmt.Errorf("%s answered 202 but not in the store: %v", id, err)
						return
					}
					mu.Lock()
					accepted[id]++
					mu.Unlock()
				case code == http.StatusConflict && ans["state"] == "queued":
				default:
					errs <- fmt.Errorf("%s: %d %v", id, code, ans)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(accepted) != clients/2*perClient {
		t.Errorf("%d leads accepted, want %d", len(accepted), clients/2*perClient)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	n, _, err := db.CountLeads(context.Background(), crm.LeadQuery{}, 1<<20)
	if err != nil || n != clients/2*perClient {
		t.Errorf("store has %d leads (%v), want %d", n, err, clients/2*perClient)
	}
	st := h.Stats()
	t.Logf("%d leads in %d commits", st.Accepted+st.Duplicates, st.Commits)
}
