// Package config loads leadwatch's configuration: defaults, then a TOML
// file, then environment, then flags (main applies those). It is its own
// package because main, the tests that start leadwatch in-process, and the
// example file's test all need the same loader, and because it owns the
// rule that secrets never leave it in printable form.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/forward"
)

// IntakePath is where the intake takes leads, on the callback listener.
const IntakePath = "/v1/leads"

// DefaultFile is read from the working directory when --config is not
// given and the file exists.
const DefaultFile = "leadwatch.toml"

// Secret is a string that refuses to be printed: fmt, slog and JSON all see
// "[redacted]". Use Reveal where the value is really needed.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the value from TOML.
func (s *Secret) UnmarshalText(b []byte) error { *s = Secret(b); return nil }

// Reveal returns the secret's bytes.
func (s Secret) Reveal() []byte { return []byte(s) }

// Duration is a time.Duration written as "30s", "2m", "1h30m" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"30s\", \"2m\" or \"1h\")", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is every setting, one struct per TOML table.
type Config struct {
	CRM       CRM       `toml:"crm"`
	Retry     Retry     `toml:"retry"`
	Callbacks Callbacks `toml:"callbacks"`
	Store     Store     `toml:"store"`
	Metrics   Metrics   `toml:"metrics"`
	Forward   Forward   `toml:"forward"`
	Intake    Intake    `toml:"intake"`
	Reconcile Reconcile `toml:"reconcile"`
}

// CRM is the [crm] table: where and how leads are sent.
type CRM struct {
	BaseURL     string   `toml:"base_url"`
	APIKey      Secret   `toml:"api_key"`
	HMACSecret  Secret   `toml:"hmac_secret"`
	Timeout     Duration `toml:"timeout"`
	Concurrency int      `toml:"concurrency"`
	RateLimit   float64  `toml:"rate_limit"` // attempts per second; 0 = unlimited
}

// Retry is the [retry] table.
type Retry struct {
	MaxAttempts      int      `toml:"max_attempts"`
	BaseDelay        Duration `toml:"base_delay"`
	MaxDelay         Duration `toml:"max_delay"`
	RateLimitedDelay Duration `toml:"rate_limited_delay"`
}

// Callbacks is the [callbacks] table: the listener.
type Callbacks struct {
	Listen    string   `toml:"listen"`
	Path      string   `toml:"path"`
	Secrets   []Secret `toml:"secrets"`
	Tolerance Duration `toml:"tolerance"`
	MaxBody   int64    `toml:"max_body"`
	// MaxConns caps open connections; 0 means as many as the open-file
	// limit allows with headroom for the store and the sender, and a
	// larger value is lowered to that.
	MaxConns int `toml:"max_conns"`
	// MaxBodyBytesInFlight caps the bytes of request bodies being read at
	// once (at least max_body).
	MaxBodyBytesInFlight int64 `toml:"max_body_bytes_in_flight"`
	// Drain is how long serve, told to stop (SIGTERM), answers /healthz 503
	// "draining" while still serving callbacks, so that a balancer's
	// health checks take the instance out before it stops accepting. 0
	// stops at once (no balancer).
	Drain Duration `toml:"drain"`
	// TrustedProxies are the balancers (IP addresses or CIDRs) whose
	// X-Forwarded-For is believed: behind them, the client address of a
	// refusal is the rightmost forwarded address not itself trusted.
	TrustedProxies []string `toml:"trusted_proxies"`
	// TLSCert and TLSKey are PEM files; set both for a listener that
	// faces the CRM over HTTPS without a proxy, or neither.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// Intake is the [intake] table: POST /v1/leads on the callback listener,
// where landing pages and trackers hand leads over one by one.
type Intake struct {
	// Token is the bearer token the intake requires; "" leaves the intake
	// off (/v1/leads is then a 404 like any unknown path).
	Token Secret `toml:"token"`
	// MaxBody is the largest intake request body (one lead or an array).
	MaxBody int64 `toml:"max_body"`
}

// Forward is the [forward] table: every stored callback and polled
// status handed on to the user's app, signed the Standard Webhooks way
// (docs/protocol.md §5). An empty URL is off.
type Forward struct {
	URL string `toml:"url"`
	// Secret is whsec_ followed by base64; several, comma-separated,
	// during a rotation (each delivery then carries a signature per
	// secret, the first the current one).
	Secret      Secret   `toml:"secret"`
	Timeout     Duration `toml:"timeout"`
	MaxAttempts int      `toml:"max_attempts"`
	Concurrency int      `toml:"concurrency"`
	BaseDelay   Duration `toml:"base_delay"`
	MaxDelay    Duration `toml:"max_delay"`
}

// Reconcile is the [reconcile] table: status lookups (docs/protocol.md
// §6) of accepted leads that got no status callback within After, or
// whose last status is older than Stale and not in Final, at Rate
// lookups per second apart from the sender's rate. They run wherever the
// sender runs.
type Reconcile struct {
	Enabled bool     `toml:"enabled"`
	After   Duration `toml:"after"`
	Stale   Duration `toml:"stale"`
	Rate    float64  `toml:"rate"`
	Final   []string `toml:"final"`
}

// Store is the [store] table.
type Store struct {
	Path string `toml:"path"`
}

// Metrics is the [metrics] table: Prometheus's /metrics.
type Metrics struct {
	// Listen is the address /metrics is served on, its own, apart from
	// the callback listener (which may face the internet); "" is off.
	Listen string `toml:"listen"`
}

// Default returns the configuration with every default set and no
// secrets.
func Default() Config {
	return Config{
		CRM: CRM{
			Timeout:     Duration(15 * time.Second),
			Concurrency: 8,
		},
		Retry: Retry{
			MaxAttempts:      8,
			BaseDelay:        Duration(time.Second),
			MaxDelay:         Duration(5 * time.Minute),
			RateLimitedDelay: Duration(30 * time.Second),
		},
		Callbacks: Callbacks{
			Listen:               ":8080",
			Path:                 "/cartelcrm/callback",
			Tolerance:            Duration(300 * time.Second),
			MaxBody:              1 << 20,
			MaxBodyBytesInFlight: 16 << 20,
			Drain:                Duration(5 * time.Second),
		},
		Store: Store{Path: "leadwatch.db"},
		Reconcile: Reconcile{
			Enabled: true,
			After:   Duration(crm.DefaultReconcileAfter),
			Stale:   Duration(crm.DefaultReconcileStale),
			Rate:    crm.DefaultReconcileRate,
			Final:   crm.DefaultReconcileFinal(),
		},
		Intake: Intake{MaxBody: 1 << 20},
		Forward: Forward{
			Timeout:     Duration(10 * time.Second),
			MaxAttempts: 12,
			Concurrency: 32,
			BaseDelay:   Duration(time.Second),
			MaxDelay:    Duration(10 * time.Minute),
		},
	}
}

// LoadFile reads path over c. Unknown keys are errors (a typo must not
// silently fall back to a default), and every error names the key and the
// line. It returns warnings that do not stop the load, such as a file that
// others can read.
func (c *Config) LoadFile(path string) (warnings []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if secretLine(string(data), pe.Position.Line, pe.LastKey) {
				// The parser quotes what it found, and here that may be
				// a secret: say where, never what.
				msg = "malformed value (not shown: the line holds a secret)"
			}
			if pe.LastKey != "" {
				return nil, fmt.Errorf("config %s: line %d: key %s: %s", path, pe.Position.Line, pe.LastKey, msg)
			}
			return nil, fmt.Errorf("config %s: line %d: %s", path, pe.Position.Line, msg)
		}
		for _, k := range secretKeys {
			if strings.Contains(err.Error(), k) {
				return nil, fmt.Errorf("config %s: malformed value of %s (not shown: it is a secret)", path, k)
			}
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, fmt.Errorf("config %s: line %d: unknown key %s", path, lineOf(string(data), und[0][len(und[0])-1]), k)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("config %s is readable by group/other (mode %04o) and may hold secrets: chmod 600 %s", path, fi.Mode().Perm(), path))
	}
	return warnings, nil
}

// secretKeys are the keys whose values are secrets.
var secretKeys = []string{"api_key", "hmac_secret", "secrets", "token", "secret"}

// secretLine reports whether a parse error at line (1-based), after
// lastKey, may concern a secret's value.
func secretLine(data string, line int, lastKey string) bool {
	for _, k := range secretKeys {
		if strings.HasSuffix(lastKey, "."+k) || lastKey == k {
			return true
		}
	}
	lines := strings.Split(data, "\n")
	for _, l := range lines[max(0, line-2):min(len(lines), line)] {
		for _, k := range secretKeys {
			if strings.Contains(l, k) {
				return true
			}
		}
	}
	return false
}

// lineOf finds the line where key is assigned, for unknown-key errors
// (the TOML library reports positions only for keys it decoded).
func lineOf(data, key string) int {
	for i, line := range strings.Split(data, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, key) {
			rest := strings.TrimSpace(strings.TrimPrefix(l, key))
			if strings.HasPrefix(rest, "=") {
				return i + 1
			}
		}
	}
	return 0
}

// Getenv is os.Getenv's shape, so tests can pass a map.
type Getenv func(string) string

// EnvVar is one environment variable the configuration reads.
type EnvVar struct {
	Name string // e.g. "CARTELCRM_API_KEY"
	Key  string // the key it sets, e.g. "crm.api_key"
	Help string // what it is, for --help

	apply func(c *Config, v string) error
}

// Environment lists the variables ApplyEnv reads, in the order it applies
// them: the seed's names first, then leadwatch's own (LEADWATCH_LISTEN
// wins over PORT).
func Environment() []EnvVar {
	return []EnvVar{
		{"CARTELCRM_BASE_URL", "crm.base_url", "CartelCRM's base URL",
			func(c *Config, v string) error { c.CRM.BaseURL = v; return nil }},
		{"CARTELCRM_API_KEY", "crm.api_key", "bearer token of CartelCRM's API",
			func(c *Config, v string) error { c.CRM.APIKey = Secret(v); return nil }},
		{"CARTELCRM_HMAC_SECRET", "crm.hmac_secret", "key of the requests' HMAC-SHA256 signature",
			func(c *Config, v string) error { c.CRM.HMACSecret = Secret(v); return nil }},
		{"CALLBACK_SECRET", "callbacks.secrets", "secrets that sign callbacks, comma-separated for rotation",
			func(c *Config, v string) error { c.Callbacks.Secrets = SplitSecrets(v); return nil }},
		{"PORT", "callbacks.listen", "listen on :PORT", func(c *Config, v string) error {
			if p, err := strconv.Atoi(v); err != nil || p < 0 || p > 65535 {
				return fmt.Errorf("PORT=%q is not a port number", v)
			}
			c.Callbacks.Listen = ":" + v
			return nil
		}},
		{"LEADWATCH_LISTEN", "callbacks.listen", "listener address, e.g. 127.0.0.1:8080; wins over PORT",
			func(c *Config, v string) error { c.Callbacks.Listen = v; return nil }},
		{"LEADWATCH_DB", "store.path", "the database: a file path, or a postgres:// URL",
			func(c *Config, v string) error { c.Store.Path = v; return nil }},
		{"LEADWATCH_FORWARD_SECRET", "forward.secret", "whsec_ secret that signs deliveries to the app, comma-separated for rotation",
			func(c *Config, v string) error { c.Forward.Secret = Secret(v); return nil }},
		{"LEADWATCH_INTAKE_TOKEN", "intake.token", "bearer token of POST /v1/leads; unset leaves the intake off",
			func(c *Config, v string) error { c.Intake.Token = Secret(v); return nil }},
	}
}

// EnvFor is the environment variable that sets key, or "" when none does.
func EnvFor(key string) string {
	for _, v := range Environment() {
		if v.Key == key {
			return v.Name
		}
	}
	return ""
}

// ApplyEnv overrides c with the environment variables of Environment that
// are set (non-empty).
func (c *Config) ApplyEnv(getenv Getenv) error {
	for _, ev := range Environment() {
		if v := getenv(ev.Name); v != "" {
			if err := ev.apply(c, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// SplitSecrets splits a comma-separated list, dropping empty items.
func SplitSecrets(v string) []Secret {
	var out []Secret
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, Secret(s))
		}
	}
	return out
}

// Load is the whole chain short of flags: defaults, the file (explicit
// path, else DefaultFile when it exists), the environment.
func Load(path string, getenv Getenv) (Config, []string, error) {
	c := Default()
	var warnings []string
	if path == "" {
		if _, err := os.Stat(DefaultFile); err == nil {
			path = DefaultFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return c, nil, fmt.Errorf("config: %w", err)
		}
	}
	if path != "" {
		w, err := c.LoadFile(path)
		if err != nil {
			return c, nil, err
		}
		warnings = w
	}
	if err := c.ApplyEnv(getenv); err != nil {
		return c, nil, err
	}
	return c, warnings, nil
}

// Need says which parts of the configuration a command uses, so that a
// missing secret is reported only where it matters.
type Need int

// What a command needs.
const (
	NeedSender Need = 1 << iota
	NeedListener
	// NeedForward checks [forward] when forward.url is set (the commands
	// that run a forwarder).
	NeedForward
)

// ValidationError is everything Validate found wrong, so that one run
// reports it all rather than one key per run.
type ValidationError struct {
	Missing []string // required keys that are not set, e.g. "crm.api_key"
	Invalid []string // one sentence per value out of range
}

// Error names every missing key with the environment variable that sets
// it, then the invalid values, on one line.
func (e *ValidationError) Error() string {
	var parts []string
	if n := len(e.Missing); n > 0 {
		named := make([]string, n)
		for i, k := range e.Missing {
			named[i] = k
			if v := EnvFor(k); v != "" {
				named[i] += " (" + v + ")"
			}
		}
		list, verb, it := named[0], "is", "it"
		if n > 1 {
			list = strings.Join(named[:n-1], ", ") + " and " + named[n-1]
			verb, it = "are", "them"
		}
		parts = append(parts, fmt.Sprintf("%s %s not set: put %s in the config file or the environment", list, verb, it))
	}
	parts = append(parts, e.Invalid...)
	return strings.Join(parts, "; ")
}

// Validate checks c for the parts need asks for. Its error is a
// *ValidationError listing every problem at once, each saying where to set
// what is missing.
func (c Config) Validate(need Need) error {
	var e ValidationError
	missing := func(key string, unset bool) {
		if unset {
			e.Missing = append(e.Missing, key)
		}
	}
	invalid := func(bad bool, format string, a ...any) {
		if bad {
			e.Invalid = append(e.Invalid, fmt.Sprintf(format, a...))
		}
	}
	if need&NeedSender != 0 {
		missing("crm.base_url", c.CRM.BaseURL == "")
		missing("crm.api_key", c.CRM.APIKey == "")
		missing("crm.hmac_secret", c.CRM.HMACSecret == "")
	}
	if need&NeedListener != 0 {
		missing("callbacks.secrets", len(c.Callbacks.Secrets) == 0)
	}
	if need&NeedSender != 0 {
		if c.CRM.BaseURL != "" {
			u, err := url.Parse(c.CRM.BaseURL)
			invalid(err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "",
				"crm.base_url must be an absolute http(s) URL, not %q", crm.RedactURL(c.CRM.BaseURL))
		}
		invalid(c.CRM.Concurrency < 1, "crm.concurrency must be at least 1, not %d", c.CRM.Concurrency)
		invalid(c.CRM.RateLimit < 0, "crm.rate_limit must not be negative, not %g", c.CRM.RateLimit)
		invalid(c.CRM.Timeout <= 0, "crm.timeout must be positive, not %s", c.CRM.Timeout.D())
		invalid(c.Retry.MaxAttempts < 1 || c.Retry.BaseDelay <= 0 || c.Retry.MaxDelay < c.Retry.BaseDelay || c.Retry.RateLimitedDelay <= 0,
			"retry: need max_attempts ≥ 1, base_delay > 0, max_delay ≥ base_delay and rate_limited_delay > 0 (have %d, %s, %s, %s)",
			c.Retry.MaxAttempts, c.Retry.BaseDelay.D(), c.Retry.MaxDelay.D(), c.Retry.RateLimitedDelay.D())
	}
	if need&NeedListener != 0 {
		invalid(!strings.HasPrefix(c.Callbacks.Path, "/"), "callbacks.path must start with /, not %q", c.Callbacks.Path)
		invalid(c.Callbacks.Tolerance <= 0, "callbacks.tolerance must be positive, not %s", c.Callbacks.Tolerance.D())
		invalid(c.Callbacks.MaxBody <= 0, "callbacks.max_body must be positive, not %d", c.Callbacks.MaxBody)
		invalid(c.Callbacks.MaxConns < 0, "callbacks.max_conns must not be negative (0: as many as the open-file limit allows), not %d", c.Callbacks.MaxConns)
		invalid(c.Callbacks.MaxBodyBytesInFlight < c.Callbacks.MaxBody,
			"callbacks.max_body_bytes_in_flight must be at least callbacks.max_body (%d), not %d", c.Callbacks.MaxBody, c.Callbacks.MaxBodyBytesInFlight)
		invalid(c.Callbacks.Drain < 0, "callbacks.drain must not be negative (0: stop at once), not %s", c.Callbacks.Drain.D())
		if _, err := ParseTrustedProxies(c.Callbacks.TrustedProxies); err != nil {
			e.Invalid = append(e.Invalid, err.Error())
		}
		invalid(c.Callbacks.TLSCert != "" && c.Callbacks.TLSKey == "",
			"callbacks.tls_cert is set but callbacks.tls_key is not: set both (PEM files) for HTTPS, or neither")
		invalid(c.Callbacks.TLSKey != "" && c.Callbacks.TLSCert == "",
			"callbacks.tls_key is set but callbacks.tls_cert is not: set both (PEM files) for HTTPS, or neither")
		invalid(c.Intake.MaxBody <= 0, "intake.max_body must be positive, not %d", c.Intake.MaxBody)
		invalid(c.Intake.Token != "" && c.Callbacks.Path == IntakePath,
			"callbacks.path must differ from the intake's %s while intake.token is set", IntakePath)
	}
	if need&NeedSender != 0 {
		e.Invalid = append(e.Invalid, c.Reconcile.problems()...)
	}
	if need&NeedForward != 0 && c.Forward.URL != "" {
		e.Invalid = append(e.Invalid, c.Forward.problems()...)
		missing("forward.secret", c.Forward.Secret == "")
	}
	invalid(c.Store.Path == "", "store.path is empty: set it in [store], LEADWATCH_DB or --db")
	if c.Metrics.Listen != "" {
		if err := checkListenAddr(c.Metrics.Listen); err != nil {
			e.Invalid = append(e.Invalid, "metrics.listen: "+err.Error())
		}
		invalid(need&NeedListener != 0 && c.Metrics.Listen == c.Callbacks.Listen && !strings.HasSuffix(c.Metrics.Listen, ":0"),
			"metrics.listen must differ from callbacks.listen (%q): /metrics has its own address", c.Metrics.Listen)
	}
	if len(e.Missing) == 0 && len(e.Invalid) == 0 {
		return nil
	}
	return &e
}

// checkListenAddr checks addr is HOST:PORT (HOST may be empty: every
// interface) with a numeric port, so that a typo is a configuration error
// rather than a bind error after the store was opened.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT (write it like \"127.0.0.1:9464\" or \":9464\")", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has no port number (write it like \"127.0.0.1:9464\")", addr)
	}
	return nil
}

// ParseTrustedProxies parses callbacks.trusted_proxies: each item is an
// IP address (a single host) or a CIDR. The error names the bad item.
func ParseTrustedProxies(items []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if p, err := netip.ParsePrefix(it); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(it)
		if err != nil {
			return nil, fmt.Errorf("callbacks.trusted_proxies: %q is neither an IP address nor a CIDR (write it like \"10.0.0.5\" or \"10.0.0.0/24\")", it)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// problems are what is wrong with a [forward] whose url is set, one
// sentence each; a missing secret is Validate's. No sentence quotes the
// secret, and the URL is quoted without its credentials.
func (f Forward) problems() []string {
	var out []string
	if u, err := url.Parse(f.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		out = append(out, fmt.Sprintf("forward.url must be an absolute http(s) URL, not %q", crm.RedactURL(f.URL)))
	}
	if f.Secret != "" {
		secrets := f.Secrets()
		if len(secrets) == 0 {
			out = append(out, "forward.secret holds no secret: set whsec_ followed by base64 (e.g. whsec_ and the output of 'openssl rand -base64 32')")
		}
		for i, s := range secrets {
			if _, err := forward.ParseSecret(s); err != nil {
				which := "forward.secret"
				if len(secrets) > 1 {
					which = fmt.Sprintf("forward.secret (item %d of %d)", i+1, len(secrets))
				}
				out = append(out, fmt.Sprintf("%s is not whsec_ followed by the base64 of at least 16 bytes (not shown: it is a secret); make one with 'openssl rand -base64 32'", which))
			}
		}
	}
	if f.Timeout <= 0 {
		out = append(out, fmt.Sprintf("forward.timeout must be positive, not %s", f.Timeout.D()))
	}
	if f.MaxAttempts < 1 {
		out = append(out, fmt.Sprintf("forward.max_attempts must be at least 1, not %d", f.MaxAttempts))
	}
	if f.Concurrency < 1 {
		out = append(out, fmt.Sprintf("forward.concurrency must be at least 1, not %d", f.Concurrency))
	}
	if f.BaseDelay <= 0 || f.MaxDelay < f.BaseDelay {
		out = append(out, fmt.Sprintf("forward: need base_delay > 0 and max_delay ≥ base_delay (have %s, %s)", f.BaseDelay.D(), f.MaxDelay.D()))
	}
	return out
}

// problems are what is wrong with [reconcile], one sentence each. The
// values are checked even when lookups are off, so turning them on later
// cannot meet a bad value.
func (r Reconcile) problems() []string {
	var out []string
	if r.After <= 0 {
		out = append(out, fmt.Sprintf("reconcile.after must be positive, not %s", r.After.D()))
	}
	if r.Stale <= 0 {
		out = append(out, fmt.Sprintf("reconcile.stale must be positive, not %s", r.Stale.D()))
	}
	// The negated form also catches NaN.
	if !(r.Rate > 0) {
		out = append(out, fmt.Sprintf("reconcile.rate must be positive (lookups per second), not %g", r.Rate))
	}
	for _, f := range r.Final {
		if strings.TrimSpace(f) == "" {
			out = append(out, "reconcile.final must not hold an empty status")
			break
		}
	}
	return out
}

// Secrets is forward.secret split at commas, the current secret first.
func (f Forward) Secrets() []string {
	var out []string
	for _, s := range SplitSecrets(string(f.Secret)) {
		out = append(out, string(s))
	}
	return out
}

// CallbackSecrets returns the callback secrets as bytes.
func (c Config) CallbackSecrets() [][]byte {
	out := make([][]byte, len(c.Callbacks.Secrets))
	for i, s := range c.Callbacks.Secrets {
		out[i] = s.Reveal()
	}
	return out
}

// TrustedProxyPrefixes is callbacks.trusted_proxies parsed; a bad item
// (which Validate reports) is left out.
func (c Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, it := range c.Callbacks.TrustedProxies {
		if p, err := ParseTrustedProxies([]string{it}); err == nil {
			out = append(out, p...)
		}
	}
	return out
}
