package sandbox

import "testing"

// Credentials StartTest fills in. They are constants so that a test (of
// any package) can sign requests and verify callbacks without copying
// them, and no test can change them for another.
const (
	TestAPIKey         = "test-api-key"
	TestHMACSecret     = "test-hmac-secret"
	TestCallbackSecret = "test-callback-secret"
)

// StartTest serves a Sandbox for cfg on a free loopback port and closes it
// when tb's test ends; a config that does not validate, or a port that
// cannot be had, fails tb. Credentials cfg leaves empty are filled with
// TestAPIKey, TestHMACSecret and TestCallbackSecret. It lives outside the
// _test files so that every package's tests (crm, callbacks, main) start
// the CRM the same way, as httptest does for servers.
func StartTest(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = TestAPIKey
	}
	if len(cfg.HMACSecret) == 0 {
		cfg.HMACSecret = []byte(TestHMACSecret)
	}
	if len(cfg.CallbackSecret) == 0 {
		cfg.CallbackSecret = []byte(TestCallbackSecret)
	}
	s, err := Start(cfg, "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("start sandbox: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close sandbox: %v", err)
		}
	})
	return s
}
