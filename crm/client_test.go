package crm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestClient(t *testing.T, h http.Handler, mod ...func(*ClientConfig)) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := ClientConfig{BaseURL: srv.URL + "/", APIKey: "key-1", HMACSecret: []byte("hmac-1"), Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  ClientConfig
		is   error
		want string
	}{
		{"NoBaseURL", ClientConfig{APIKey: "k", HMACSecret: []byte("s")}, ErrNoBaseURL, "no CRM base URL"},
		{"NoAPIKey", ClientConfig{BaseURL: "http://x", HMACSecret: []byte("s")}, ErrNoAPIKey, "no CRM API key"},
		{"NoHMACSecret", ClientConfig{BaseURL: "http://x", APIKey: "k"}, ErrNoHMACSecret, "no CRM HMAC secret"},
		{"NotHTTP", ClientConfig{BaseURL: "ftp://x", APIKey: "k", HMACSecret: []byte("s")}, ErrBadBaseURL, `not an http(s) URL: "ftp://x"`},
		{"NoScheme", ClientConfig{BaseURL: "cartel.example.com", APIKey: "k", HMACSecret: []byte("s")}, ErrBadBaseURL, "not an http(s) URL"},
		{"CredentialsNotEchoed", ClientConfig{BaseURL: "ftp://user:pa55@cartel.example.com/v?token=t0k#f", APIKey: "k", HMACSecret: []byte("s")},
			ErrBadBaseURL, `"ftp://cartel.example.com/v"`},
		{"Unparsable", ClientConfig{BaseURL: "http://user:pa55@[::1", APIKey: "k", HMACSecret: []byte("s")}, ErrBadBaseURL, "does not parse"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.cfg)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient = %v, want %v containing %q", err, tt.is, tt.want)
			}
			// crm knows neither the config file nor the environment: main
			// names those. Nor may it repeat a credential.
			for _, leak := range []string{"crm.", "CARTELCRM", "pa55", "t0k", "user"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q contains %q", err, leak)
				}
			}
		})
	}
}

func TestSubmitSendsExactSignedBytes(t *testing.T) {
	body := []byte(`{"external_id":"e-1","phone":"+380501234567","first_name":"Олена"}`)
	var got *http.Request
	var gotBody []byte
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		io.WriteString(w, `{"id":"c-9","status":"accepted","reason":null}`)
	}))
	res := c.Submit(context.Background(), body, "e-1-123")
	if res.Outcome.State != StateAccepted || res.Outcome.CRMID != "c-9" || res.StatusCode != 200 {
		t.Fatalf("result %+v", res)
	}
	if !bytes.Equal(gotBody, body) {
		t.Fatalf("sent %q, want %q", gotBody, body)
	}
	checks := map[string]string{
		"Authorization":   "Bearer key-1",
		"X-Signature":     Sign([]byte("hmac-1"), body),
		"Idempotency-Key": "e-1-123",
		"Content-Type":    "application/json",
		"User-Agent":      DefaultUserAgent,
	}
	for k, v := range checks {
		if got.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	if got.Method != http.MethodPost || got.URL.Path != PathLeads {
		t.Errorf("%s %s", got.Method, got.URL.Path)
	}
	if _, err := CheckTimestamp(got.Header.Get("X-Timestamp"), time.Now(), 5*time.Second); err != nil {
		t.Errorf("timestamp: %v", err)
	}
}

func TestStatusEscapesAndSignsEmptyBody(t *testing.T) {
	ids := []string{"plain", "a/b", "q?x=1", "пример ünï", "100%", "#frag"}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			var rawPath, sig string
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rawPath = r.URL.EscapedPath()
				sig = r.Header.Get("X-Signature")
				if r.URL.RawQuery != "" {
					t.Errorf("query leaked: %q", r.URL.RawQuery)
				}
				io.WriteString(w, `{"external_id":"x","id":"c-1","status":"new","reason":null,"updated_at":"2026-11-27T10:00:00Z"}`)
			}))
			sr, err := c.Status(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if sr.Status != "new" || sr.UpdatedAt.IsZero() {
				t.Fatalf("%+v", sr)
			}
			if want := StatusPath(id); rawPath != want {
				t.Fatalf("path %q, want %q", rawPath, want)
			}
			if sig != Sign([]byte("hmac-1"), nil) {
				t.Fatalf("signature %q is not over the empty body", sig)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "missing"):
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"not_found"}`)
		case strings.Contains(r.URL.Path, "denied"):
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"unauthorized"}`)
		default:
			io.WriteString(w, `{"status":`)
		}
	}))
	if _, err := c.Status(context.Background(), "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	var se *StatusError
	if _, err := c.Status(context.Background(), "denied"); !errors.As(err, &se) || se.HTTPStatus != 401 || se.Code != "unauthorized" {
		t.Errorf("denied: %v", err)
	}
	if _, err := c.Status(context.Background(), "garbage"); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("garbage: %v", err)
	}
}

func TestSubmitHostileAnswers(t *testing.T) {
	t.Run("TenMiBResponse", func(t *testing.T) {
		c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("A"), 1<<20)
			for range 10 {
				w.Write(chunk)
			}
		}))
		res := c.Submit(context.Background(), []byte(`{}`), "k")
		if res.Err == nil || !errors.Is(res.Err, errResponseTooLarge) {
			t.Fatalf("err = %v", res.Err)
		}
		if len(res.Body) != DefaultMaxResponseBytes || !res.Outcome.Retryable() {
			t.Fatalf("kept %d bytes, outcome %+v", len(res.Body), res.Outcome)
		}
	})
	t.Run("ConnectionClosed", func(t *testing.T) {
		c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		}))
		res := c.Submit(context.Background(), []byte(`{}`), "k")
		if res.Err == nil || res.StatusCode != 0 || !res.Outcome.Retryable() || !strings.HasPrefix(res.Outcome.Reason, "network: ") {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		release := make(chan struct{})
		c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}), func(c *ClientConfig) { c.Timeout = 50 * time.Millisecond })
		defer close(release)
		res := c.Submit(context.Background(), []byte(`{}`), "k")
		if res.Err == nil || !strings.Contains(res.Err.Error(), "timeout") || !res.Outcome.Retryable() {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := NewClient(ClientConfig{BaseURL: url, APIKey: "k", HMACSecret: []byte("s")})
		if err != nil {
			t.Fatal(err)
		}
		res := c.Submit(context.Background(), []byte(`{}`), "k")
		if res.Err == nil || !res.Outcome.Retryable() {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("NoRedirectFollow", func(t *testing.T) {
		c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}))
		res := c.Submit(context.Background(), []byte(`{}`), "k")
		if res.Outcome.State != StateFailed || res.StatusCode != 302 {
			t.Fatalf("result %+v", res)
		}
	})
}

// TestRedactURL: what may carry credentials is gone, the rest stays, and
// garbage is not quoted at all.
func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://user:pw@crm.example:8443/api/v1?token=abc#frag", "https://crm.example:8443/api/v1"},
		{"http://crm.example/", "http://crm.example/"},
		{"http://%zz", "(unparsable URL)"},
		{"http://user:pw@[::1", "(unparsable URL)"},
	} {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
