package crm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
)

// newClient is a client of the sandbox at url with its test credentials.
func newClient(tb testing.TB, url string, mod ...func(*crm.ClientConfig)) *crm.Client {
	tb.Helper()
	cfg := crm.ClientConfig{BaseURL: url, APIKey: sandbox.TestAPIKey, HMACSecret: []byte(sandbox.TestHMACSecret), Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := crm.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestClientAgainstSandbox drives the real client against the real sandbox
// for each answer of docs/protocol.md §4 and checks the §1 classification.
func TestClientAgainstSandbox(t *testing.T) {
	sb := sandbox.StartTest(t, sandbox.Config{BlockCountries: []string{"RU", "KP"}})
	c := newClient(t, sb.URL)
	ctx := context.Background()
	submit := func(body, key string) crm.Result { return c.Submit(ctx, []byte(body), key) }

	// Seed leads the duplicate rows refer to.
	first := submit(`{"external_id":"c-1","phone":"+380501234567","country":"UA"}`, "c-1-k")
	if first.Outcome.State != crm.StateAccepted || first.Outcome.CRMID == "" {
		t.Fatalf("seed lead: %+v", first)
	}

	tests := []struct {
		name   string
		body   string
		key    string
		status int
		state  crm.State
		reason string
	}{
		{"NonCanonicalJSONVerifiesByteForByte", "{ \"external_id\" : \"c-2\",\n \"phone\":\"+48512345678\", \"note\":\"\\u00e9 ✓\", \"extra\": {\"k\": [1,2]} }", "c-2-k", 200, crm.StateAccepted, ""},
		{"DuplicateByExternalID", `{"external_id":"c-1","phone":"+4915112345678"}`, "c-1-other", 409, crm.StateDuplicate, "external_id_exists"},
		{"DuplicateByPhone", `{"external_id":"c-3","phone":"+380501234567"}`, "c-3-k", 409, crm.StateDuplicate, "phone_exists"},
		{"RejectedGeo", `{"external_id":"c-4","phone":"+79121234567","country":"RU"}`, "c-4-k", 200, crm.StateRejected, "geo_not_allowed"},
		{"NoPhone", `{"external_id":"c-5"}`, "c-5-k", 422, crm.StateValidationError, "phone"},
		{"PhoneNotE164", `{"external_id":"c-6","phone":"0501234567"}`, "c-6-k", 422, crm.StateValidationError, "phone"},
		{"BadEmail", `{"external_id":"c-7","phone":"+380501234500","email":"lead@"}`, "c-7-k", 422, crm.StateValidationError, "email"},
		{"BadCountry", `{"external_id":"c-8","phone":"+380501234501","country":"Ukraine"}`, "c-8-k", 422, crm.StateValidationError, "country"},
		{"LongExternalID", `{"external_id":"` + strings.Repeat("x", 129) + `","phone":"+380501234502"}`, "c-9-k", 422, crm.StateValidationError, "external_id"},
		{"NotJSON", `this is not json`, "c-10-k", 0, crm.StateValidationError, ""},
		{"KeyReusedWithOtherBody", `{"external_id":"c-1","phone":"+380501234567","country":"PL"}`, "c-1-k", 422, crm.StateValidationError, "idempotency_key_reused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := submit(tt.body, tt.key)
			if res.Err != nil {
				t.Fatalf("transport error %v", res.Err)
			}
			if tt.status != 0 && res.StatusCode != tt.status {
				t.Errorf("HTTP %d, want %d (%s)", res.StatusCode, tt.status, res.Body)
			}
			if res.Outcome.State != tt.state || !strings.Contains(res.Outcome.Reason, tt.reason) {
				t.Errorf("outcome %+v, want %s with reason containing %q", res.Outcome, tt.state, tt.reason)
			}
		})
	}

	t.Run("KeysPerExternalIDCounted", func(t *testing.T) {
		// c-1 went under "c-1-k" and, as a duplicate, "c-1-other".
		if got := sb.Sandbox.Stats().KeysPerExternalIDMax; got != 2 {
			t.Fatalf("keys per external_id max = %d, want 2", got)
		}
	})
	t.Run("ReplaySameKeySameBody", func(t *testing.T) {
		again := submit(`{"external_id":"c-1","phone":"+380501234567","country":"UA"}`, "c-1-k")
		if again.Outcome.State != crm.StateAccepted || !again.Outcome.Replay || again.Outcome.CRMID != first.Outcome.CRMID {
			t.Fatalf("replay %+v, first %+v", again.Outcome, first.Outcome)
		}
	})
	t.Run("StatusKnownAndEscaped", func(t *testing.T) {
		for _, id := range []string{"c-1", "odd/id?x=1 ü#"} {
			if id != "c-1" {
				body := `{"external_id":"` + id + `","phone":"+380501234599"}`
				if r := submit(body, "odd-k"); r.Outcome.State != crm.StateAccepted {
					t.Fatalf("odd id: %+v %s", r.Outcome, r.Body)
				}
			}
			sr, err := c.Status(ctx, id)
			if err != nil {
				t.Fatalf("status %q: %v", id, err)
			}
			if sr.ExternalID != id || sr.ID == "" || sr.Status == "" || sr.UpdatedAt.IsZero() {
				t.Fatalf("status %+v", sr)
			}
		}
	})
	t.Run("StatusUnknown", func(t *testing.T) {
		if _, err := c.Status(ctx, "never-sent"); !errors.Is(err, crm.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

// TestClientOperatorFailures: a wrong key, secret or clock is final
// (failed), never retried.
func TestClientOperatorFailures(t *testing.T) {
	sb := sandbox.StartTest(t, sandbox.Config{})
	body := []byte(`{"external_id":"f-1","phone":"+380501234567"}`)
	tests := []struct {
		name   string
		mod    func(*crm.ClientConfig)
		status int
		reason string
	}{
		{"WrongAPIKey", func(c *crm.ClientConfig) { c.APIKey = "nope" }, 401, "unauthorized"},
		{"WrongSecret", func(c *crm.ClientConfig) { c.HMACSecret = []byte("nope") }, 403, "bad_signature"},
		{"SkewedClock", func(c *crm.ClientConfig) { c.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) } }, 401, "timestamp_out_of_range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, sb.URL, tt.mod)
			res := c.Submit(context.Background(), body, "f-1-k")
			if res.StatusCode != tt.status || res.Outcome.State != crm.StateFailed || !strings.Contains(res.Outcome.Reason, tt.reason) {
				t.Fatalf("result %d %+v", res.StatusCode, res.Outcome)
			}
			if _, err := c.Status(context.Background(), "f-1"); err == nil {
				t.Fatal("status with bad credentials succeeded")
			}
		})
	}
}

// TestClientRetryableAnswers: injected 503, 429 with Retry-After, dropped
// connections and request_in_progress are all retryable.
func TestClientRetryableAnswers(t *testing.T) {
	body := []byte(`{"external_id":"r-1","phone":"+380501234567"}`)
	t.Run("Unavailable", func(t *testing.T) {
		c := newClient(t, sandbox.StartTest(t, sandbox.Config{FailRate: 1}).URL)
		res := c.Submit(context.Background(), body, "r-1-k")
		if res.StatusCode != 503 || !res.Outcome.Retryable() || res.Outcome.RateLimited {
			t.Fatalf("%d %+v", res.StatusCode, res.Outcome)
		}
	})
	t.Run("Throttled", func(t *testing.T) {
		c := newClient(t, sandbox.StartTest(t, sandbox.Config{ThrottleRate: 1, RetryAfter: 3 * time.Second}).URL)
		res := c.Submit(context.Background(), body, "r-1-k")
		if res.StatusCode != 429 || !res.Outcome.RateLimited || !res.Outcome.HasRetryAfter || res.Outcome.RetryAfter != 3*time.Second {
			t.Fatalf("%d %+v", res.StatusCode, res.Outcome)
		}
	})
	t.Run("Dropped", func(t *testing.T) {
		c := newClient(t, sandbox.StartTest(t, sandbox.Config{DropRate: 1}).URL)
		res := c.Submit(context.Background(), body, "r-1-k")
		if res.Err == nil || res.StatusCode != 0 || !res.Outcome.Retryable() {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("InProgress", func(t *testing.T) {
		c := newClient(t, sandbox.StartTest(t, sandbox.Config{Latency: 300 * time.Millisecond}).URL)
		var wg sync.WaitGroup
		results := make([]crm.Result, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = c.Submit(context.Background(), body, "r-1-same-key")
			}()
		}
		wg.Wait()
		var accepted, busy int
		for _, r := range results {
			switch {
			case r.Outcome.State == crm.StateAccepted:
				accepted++
			case r.StatusCode == 409 && r.Outcome.Retryable() && strings.Contains(r.Outcome.Reason, "request_in_progress"):
				busy++
			}
		}
		if accepted != 1 || busy != 1 {
			t.Fatalf("accepted %d, in progress %d: %+v", accepted, busy, results)
		}
	})
}
