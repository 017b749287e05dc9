package sandbox

import (
	"errors"
	"flag"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	var c Config
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{
		"--callback-url", "http://127.0.0.1:8080/cartelcrm/callback",
		"--seed", "42",
		"--fail-rate", "0.1",
		"--throttle-rate", "0.2",
		"--retry-after", "3s",
		"--drop-rate", "0.05",
		"--latency", "25ms",
		"--block-countries", " us,kp ,,IR",
		"--status-delay", "1s",
		"--callback-dup-rate", "0.3",
		"--callback-bad-sig-rate", "0.4",
		"--callback-stale-rate", "0.5",
		"--callback-reorder-rate", "0.6",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		CallbackURL: "http://127.0.0.1:8080/cartelcrm/callback", Seed: 42,
		FailRate: 0.1, ThrottleRate: 0.2, RetryAfter: 3 * time.Second, DropRate: 0.05,
		Latency: 25 * time.Millisecond, BlockCountries: []string{"US", "KP", "IR"}, StatusDelay: time.Second,
		CallbackDupRate: 0.3, CallbackBadSigRate: 0.4, CallbackStaleRate: 0.5, CallbackReorderRate: 0.6,
	}
	if c.CallbackURL != want.CallbackURL || c.Seed != want.Seed || c.FailRate != want.FailRate ||
		c.ThrottleRate != want.ThrottleRate || c.RetryAfter != want.RetryAfter || c.DropRate != want.DropRate ||
		c.Latency != want.Latency || !slices.Equal(c.BlockCountries, want.BlockCountries) ||
		c.StatusDelay != want.StatusDelay || c.CallbackDupRate != want.CallbackDupRate ||
		c.CallbackBadSigRate != want.CallbackBadSigRate || c.CallbackStaleRate != want.CallbackStaleRate ||
		c.CallbackReorderRate != want.CallbackReorderRate {
		t.Errorf("parsed %+v\nwant %+v", c, want)
	}

	t.Run("Names", func(t *testing.T) {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		want := []string{
			"block-countries", "callback-bad-sig-rate", "callback-dup-rate", "callback-loss-rate", "callback-reorder-rate",
			"callback-stale-rate", "callback-url", "drop-rate", "fail-rate", "latency", "retry-after",
			"seed", "status-delay", "throttle-rate",
		}
		if !slices.Equal(names, want) {
			t.Errorf("flags %v\nwant %v", names, want)
		}
	})
	t.Run("UnknownCountry", func(t *testing.T) {
		var c Config
		fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := fs.Parse([]string{"--block-countries", "US,ZZ"}); err == nil {
			t.Error("--block-countries US,ZZ parsed")
		}
	})
	t.Run("DefaultsKept", func(t *testing.T) {
		c := Config{Seed: 9, FailRate: 0.5}
		fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if c.Seed != 9 || c.FailRate != 0.5 || c.StatusDelay != 0 {
			t.Errorf("defaults changed: %+v", c)
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // substring; "" = valid
	}{
		{"Valid", func(c *Config) {}, ""},
		{"AllRatesAtBounds", func(c *Config) {
			c.FailRate, c.CallbackDupRate, c.CallbackBadSigRate, c.CallbackStaleRate, c.CallbackReorderRate = 1, 1, 1, 1, 1
		}, ""},
		{"NegativeRate", func(c *Config) { c.FailRate = -0.1 }, "fail-rate"},
		{"RateAboveOne", func(c *Config) { c.CallbackReorderRate = 1.5 }, "callback-reorder-rate"},
		{"NaNRate", func(c *Config) { c.DropRate = math.NaN() }, "drop-rate"},
		{"RequestRatesSumAboveOne", func(c *Config) { c.FailRate, c.ThrottleRate, c.DropRate = 0.5, 0.4, 0.2 }, "must not exceed 1"},
		{"NegativeLatency", func(c *Config) { c.Latency = -time.Second }, "latency"},
		{"NegativeStatusDelay", func(c *Config) { c.StatusDelay = -1 }, "status-delay"},
		{"UnknownBlockedCountry", func(c *Config) { c.BlockCountries = []string{"US", "XX"} }, "XX"},
		{"NoAPIKey", func(c *Config) { c.APIKey = "" }, "API key"},
		{"NoHMACSecret", func(c *Config) { c.HMACSecret = nil }, "HMAC secret"},
		{"CallbackURLRelative", func(c *Config) { c.CallbackURL = "/cartelcrm/callback" }, "callback-url"},
		{"CallbackURLScheme", func(c *Config) { c.CallbackURL = "ftp://x/y" }, "callback-url"},
		{"CallbackWithoutSecret", func(c *Config) {
			c.CallbackURL = "http://127.0.0.1:1/cb"
			c.CallbackSecret = nil
		}, "secret to sign callbacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateNeverShowsSecrets(t *testing.T) {
	t.Parallel()
	c := testConfig()
	c.FailRate = 2
	c.CallbackURL = "nope"
	for _, err := range []error{c.Validate()} {
		for _, secret := range []string{TestAPIKey, TestHMACSecret, TestCallbackSecret} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a secret", err)
			}
		}
	}
}

func TestDemoFaults(t *testing.T) {
	t.Parallel()
	d := DemoFaults(testConfig())
	if err := d.Validate(); err != nil {
		t.Fatalf("demo config invalid: %v", err)
	}
	if d.FailRate == 0 || d.ThrottleRate == 0 || d.DropRate == 0 || len(d.BlockCountries) == 0 ||
		d.CallbackDupRate == 0 || d.CallbackBadSigRate == 0 || d.CallbackStaleRate == 0 || d.CallbackReorderRate == 0 {
		t.Errorf("demo leaves a fault off: %+v", d)
	}
	// Moderate: most requests still get through at the first try.
	if d.FailRate+d.ThrottleRate+d.DropRate > 0.25 {
		t.Errorf("demo request faults sum to %v", d.FailRate+d.ThrottleRate+d.DropRate)
	}
	t.Run("ExplicitKept", func(t *testing.T) {
		c := testConfig()
		c.FailRate = 0.5
		c.BlockCountries = []string{"DE"}
		d := DemoFaults(c)
		if d.FailRate != 0.5 || !slices.Equal(d.BlockCountries, []string{"DE"}) || d.ThrottleRate == 0 {
			t.Errorf("DemoFaults overrode explicit settings: %+v", d)
		}
	})
}

func TestCountryTable(t *testing.T) {
	t.Parallel()
	codes := strings.Fields(isoAlpha2)
	if len(codes) != 249 {
		t.Errorf("%d codes, want the 249 officially assigned", len(codes))
	}
	if !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Error("table not sorted or has repeats")
	}
	for _, c := range codes {
		if !IsCountryCode(c) {
			t.Errorf("IsCountryCode(%q) = false", c)
		}
	}
	for _, c := range []string{"", "D", "de", "DEU", "XX", "XK", "AC", "EU", "UK", "A ", " D", "D E"} {
		if IsCountryCode(c) {
			t.Errorf("IsCountryCode(%q) = true", c)
		}
	}
}

func TestParseCountries(t *testing.T) {
	t.Parallel()
	got, err := ParseCountries(" de, us ,,KP")
	if err != nil || !slices.Equal(got, []string{"DE", "US", "KP"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if got, err := ParseCountries(""); err != nil || got != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	if _, err := ParseCountries("DE,Germany"); err == nil {
		t.Error("Germany parsed")
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	cfg := testConfig()
	cfg.CallbackURL = rc.srv.URL
	cfg.StatusDelay = time.Hour
	srv, err := Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %q", srv.URL)
	}
	a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("start-1", "+380501234567", nil), "s", time.Now()))
	if r := leadResp(t, a); r.Status != crm.StatusAccepted {
		t.Fatalf("answer %s", a)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+PathStats, nil)
	if a := mustSend(t, timeoutClient(), req); a.code != 200 {
		t.Fatalf("stats: %s", a)
	}
	// A lifecycle waits an hour: Close must still return at once.
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	if n := srv.Sandbox.Pending(); n != 0 {
		t.Errorf("%d pending after Close", n)
	}
	if _, err := timeoutClient().Get(srv.URL + PathStats); err == nil {
		t.Error("server still answers after Close")
	}

	t.Run("InvalidConfig", func(t *testing.T) {
		c := testConfig()
		c.FailRate = 3
		if _, err := Start(c, "127.0.0.1:0"); err == nil {
			t.Error("Start accepted fail-rate 3")
		}
	})
	t.Run("BadAddress", func(t *testing.T) {
		if _, err := Start(testConfig(), "256.0.0.1:http"); err == nil {
			t.Error("Start listened on a bad address")
		}
	})
}

// TestValidateFaultsIgnoresSecrets: the flags can be judged before the
// environment that holds the secrets is read.
func TestValidateFaultsIgnoresSecrets(t *testing.T) {
	if err := (Config{FailRate: 0.2}).ValidateFaults(); err != nil {
		t.Fatalf("no secrets, good flags: %v", err)
	}
	if err := (Config{FailRate: 2}).ValidateFaults(); err == nil || !strings.Contains(err.Error(), "fail-rate") {
		t.Fatalf("bad rate: %v", err)
	}
	err := (Config{FailRate: 0.2}).Validate()
	if !errors.Is(err, ErrNoAPIKey) || !errors.Is(err, ErrNoHMACSecret) {
		t.Fatalf("Validate without secrets: %v, want both missing secrets named at once", err)
	}
}

// TestValidateRedactsCallbackURL: a callback URL that is refused is quoted
// without the credentials or token it may carry.
func TestValidateRedactsCallbackURL(t *testing.T) {
	c := testConfig()
	c.CallbackURL = "ftp://user:hunter2@example.test/cb?token=t0ps3cret#frag"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "callback-url") {
		t.Fatalf("Validate = %v, want a callback-url error", err)
	}
	for _, secret := range []string{"hunter2", "t0ps3cret", "user", "frag"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
}
