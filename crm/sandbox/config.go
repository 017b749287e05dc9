package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Defaults applied by New to zero-valued Config fields.
const (
	// DefaultStatusDelay is the pause between two lifecycle status changes
	// of a lead: long enough to watch on the dashboard, short enough that a
	// demo lead settles in a few seconds.
	DefaultStatusDelay = 2 * time.Second

	// DefaultRetryAfter is the Retry-After of an injected 429.
	DefaultRetryAfter = time.Second

	// DefaultCallbackBackoff is the wait before the first redelivery of a
	// callback; each further one doubles it, up to MaxCallbackBackoff.
	DefaultCallbackBackoff = 500 * time.Millisecond

	// MaxCallbackBackoff caps the redelivery wait.
	MaxCallbackBackoff = 30 * time.Second

	// DefaultCallbackAttempts bounds the deliveries of one callback
	// (the first plus redeliveries) before it is counted as failed.
	DefaultCallbackAttempts = 8

	// DefaultCallbackTimeout is the timeout of the default callback client.
	DefaultCallbackTimeout = 10 * time.Second

	// DefaultCallbackConcurrency bounds callback POSTs in flight at once,
	// so a burst of accepted leads cannot open thousands of connections to
	// the listener.
	DefaultCallbackConcurrency = 32
)

// Config configures a Sandbox. The zero value of every fault knob is "off".
type Config struct {
	APIKey         string // expected in "Authorization: Bearer ..."
	HMACSecret     []byte // verifies X-Signature on requests
	CallbackSecret []byte // signs the callbacks it sends
	CallbackURL    string // where callbacks go; "" sends none (the lifecycle still runs)

	// Seed makes fault injection reproducible: the same seed and the same
	// order of requests give the same faults, and the same seed gives each
	// lead (numbered in order of creation) the same lifecycle and the same
	// callback faults.
	Seed int64

	// Shares of authenticated API requests answered with a fault instead of
	// being processed: 503, 429 (with Retry-After), and a connection closed
	// without an answer. Their sum must not exceed 1.
	FailRate, ThrottleRate, DropRate float64

	RetryAfter time.Duration // Retry-After on injected 429s, in whole seconds rounded up; 0 = DefaultRetryAfter
	Latency    time.Duration // added to each processed lead/status request

	// BlockCountries are ISO 3166-1 alpha-2 codes whose leads are rejected
	// with reason geo_not_allowed.
	BlockCountries []string

	StatusDelay time.Duration // between lifecycle status changes; 0 = DefaultStatusDelay

	// Shares of status changes whose callback is delivered twice, first
	// signed with a wrong secret, first sent with a stale X-Timestamp, or
	// held back and delivered after the next change.
	CallbackDupRate, CallbackBadSigRate, CallbackStaleRate, CallbackReorderRate float64
	// CallbackLossRate is the share of status changes whose callback is
	// never delivered, not even retried: what only a status lookup
	// (reconciliation, docs/protocol.md §6) can heal.
	CallbackLossRate float64

	// CallbackBackoff is the wait before the first redelivery; 0 =
	// DefaultCallbackBackoff. Tests set a few milliseconds.
	CallbackBackoff time.Duration
	// CallbackAttempts bounds deliveries of one callback; 0 =
	// DefaultCallbackAttempts.
	CallbackAttempts int

	Now        func() time.Time // clock for timestamps; nil = time.Now
	Logger     *slog.Logger     // nil = discard
	HTTPClient *http.Client     // sends callbacks; nil = a client with DefaultCallbackTimeout
}

// FlagSet is what RegisterFlags needs of a flag set. The standard
// library's *flag.FlagSet and spf13/pflag's *pflag.FlagSet both have it,
// so the sandbox binds its knobs to either without depending on a flag
// library.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	Int64Var(p *int64, name string, value int64, usage string)
	Float64Var(p *float64, name string, value float64, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	Func(name, usage string, fn func(string) error)
}

// RegisterFlags defines the sandbox's fault and callback flags on fs, bound
// to c's fields, with c's current values as the flags' defaults. Durations
// left at 0 keep meaning "the default" (and DemoFaults may still fill them),
// so the flags do not write the defaults into c. Secrets are not flags: they
// come from the environment, so they never show in a process list.
func (c *Config) RegisterFlags(fs FlagSet) {
	fs.StringVar(&c.CallbackURL, "callback-url", c.CallbackURL, "`URL` to POST signed status callbacks to (empty: none)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the fault randomness (same seed, same faults)")
	fs.Float64Var(&c.FailRate, "fail-rate", c.FailRate, "share of requests answered 503 (0..1)")
	fs.Float64Var(&c.ThrottleRate, "throttle-rate", c.ThrottleRate, "share of requests answered 429 with Retry-After (0..1)")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After of injected 429s, whole seconds rounded up (0: 1s)")
	fs.Float64Var(&c.DropRate, "drop-rate", c.DropRate, "share of requests whose connection is closed without an answer (0..1)")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "latency added to each lead/status request")
	// Codes are trimmed and upper-cased, empty items skipped, and an
	// unknown code is an error, so a typo does not silently block nothing.
	fs.Func("block-countries", "comma-separated ISO alpha-2 `codes` whose leads are rejected (geo_not_allowed), e.g. US,KP",
		func(v string) error {
			codes, err := ParseCountries(v)
			if err != nil {
				return err
			}
			c.BlockCountries = codes
			return nil
		})
	fs.DurationVar(&c.StatusDelay, "status-delay", c.StatusDelay, "delay between a lead's status changes (0: 2s)")
	fs.Float64Var(&c.CallbackDupRate, "callback-dup-rate", c.CallbackDupRate, "share of callbacks delivered twice (0..1)")
	fs.Float64Var(&c.CallbackBadSigRate, "callback-bad-sig-rate", c.CallbackBadSigRate, "share of callbacks first sent with a bad signature (0..1)")
	fs.Float64Var(&c.CallbackStaleRate, "callback-stale-rate", c.CallbackStaleRate, "share of callbacks first sent with a stale X-Timestamp (0..1)")
	fs.Float64Var(&c.CallbackReorderRate, "callback-reorder-rate", c.CallbackReorderRate, "share of callbacks delivered after the next change's (0..1)")
	fs.Float64Var(&c.CallbackLossRate, "callback-loss-rate", c.CallbackLossRate, "share of callbacks never delivered, not even retried (0..1)")
}

// ParseCountries parses a comma-separated list of ISO 3166-1 alpha-2 codes
// (any case, spaces allowed) into upper-case codes. main uses it for the
// environment, the flag for --block-countries.
func ParseCountries(v string) ([]string, error) {
	var codes []string
	for item := range strings.SplitSeq(v, ",") {
		code := strings.ToUpper(strings.TrimSpace(item))
		if code == "" {
			continue
		}
		if !IsCountryCode(code) {
			return nil, fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code", strings.TrimSpace(item))
		}
		codes = append(codes, code)
	}
	return codes, nil
}

// The secrets a Config may lack. Validate's error wraps each one missing,
// so that a caller can say where its users set them (leadwatch names its
// config keys and environment variables).
var (
	ErrNoAPIKey         = errors.New("no API key to check requests with")
	ErrNoHMACSecret     = errors.New("no HMAC secret to check request signatures with")
	ErrNoCallbackSecret = errors.New("no secret to sign callbacks with")
)

// Validate reports what is wrong with c: anything ValidateFaults reports,
// or else every secret missing (errors.Is finds each).
func (c Config) Validate() error {
	if err := c.ValidateFaults(); err != nil {
		return err
	}
	var missing missingSecrets
	if c.APIKey == "" {
		missing = append(missing, ErrNoAPIKey)
	}
	if len(c.HMACSecret) == 0 {
		missing = append(missing, ErrNoHMACSecret)
	}
	if c.CallbackURL != "" && len(c.CallbackSecret) == 0 {
		missing = append(missing, ErrNoCallbackSecret)
	}
	if len(missing) > 0 {
		return missing
	}
	return nil
}

// missingSecrets is Validate's error: one line, unlike errors.Join.
type missingSecrets []error

func (m missingSecrets) Error() string {
	parts := make([]string, len(m))
	for i, err := range m {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (m missingSecrets) Unwrap() []error { return m }

// ValidateFaults checks what the flags set, secrets aside, so a command
// line can be judged before the environment is read: rates outside [0,1],
// the three request-fault rates summing past 1 (they share one draw),
// negative durations, an unknown blocked country, a callback URL that is
// not absolute http(s).
func (c Config) ValidateFaults() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"fail-rate", c.FailRate}, {"throttle-rate", c.ThrottleRate}, {"drop-rate", c.DropRate},
		{"callback-dup-rate", c.CallbackDupRate}, {"callback-bad-sig-rate", c.CallbackBadSigRate},
		{"callback-stale-rate", c.CallbackStaleRate}, {"callback-reorder-rate", c.CallbackReorderRate},
		{"callback-loss-rate", c.CallbackLossRate},
	}
	for _, r := range rates {
		// The negated form also catches NaN.
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("%s must be between 0 and 1, not %v", r.name, r.v)
		}
	}
	if sum := c.FailRate + c.ThrottleRate + c.DropRate; sum > 1 {
		return fmt.Errorf("fail-rate + throttle-rate + drop-rate must not exceed 1, not %v", sum)
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"retry-after", c.RetryAfter}, {"latency", c.Latency}, {"status-delay", c.StatusDelay},
		{"callback backoff", c.CallbackBackoff},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative, not %s", d.name, d.v)
		}
	}
	if c.CallbackAttempts < 0 {
		return fmt.Errorf("callback attempts must not be negative, not %d", c.CallbackAttempts)
	}
	for _, code := range c.BlockCountries {
		if !IsCountryCode(strings.ToUpper(code)) {
			return fmt.Errorf("block-countries: %q is not an ISO 3166-1 alpha-2 country code", code)
		}
	}
	if c.CallbackURL != "" {
		u, err := url.Parse(c.CallbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("callback-url must be an absolute http(s) URL, not %q", crm.RedactURL(c.CallbackURL))
		}
	}
	return nil
}

// DemoFaults returns c with the moderate faults of --demo set on every knob
// c leaves at zero, so an explicit flag still wins: about 5% 503s, 5% 429s
// (Retry-After 2 s), 2% dropped connections, 40 ms of latency, leads from
// US, KP and IR rejected, status changes 3 s apart, and a few callbacks
// duplicated, badly signed, stale or reordered. Every fault is
// one the client and listener must absorb without losing or doubling a lead.
func DemoFaults(c Config) Config {
	setRate := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setRate(&c.FailRate, 0.05)
	setRate(&c.ThrottleRate, 0.05)
	setRate(&c.DropRate, 0.02)
	setDur(&c.RetryAfter, 2*time.Second)
	setDur(&c.Latency, 40*time.Millisecond)
	setDur(&c.StatusDelay, 3*time.Second)
	if len(c.BlockCountries) == 0 {
		c.BlockCountries = []string{"US", "KP", "IR"}
	}
	setRate(&c.CallbackDupRate, 0.05)
	setRate(&c.CallbackBadSigRate, 0.03)
	setRate(&c.CallbackStaleRate, 0.02)
	setRate(&c.CallbackReorderRate, 0.05)
	return c
}
