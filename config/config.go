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
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

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
}

// Store is the [store] table.
type Store struct {
	Path string `toml:"path"`
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
			Listen:    ":8080",
			Path:      "/cartelcrm/callback",
			Tolerance: Duration(300 * time.Second),
			MaxBody:   1 << 20,
		},
		Store: Store{Path: "leadwatch.db"},
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
var secretKeys = []string{"api_key", "hmac_secret", "secrets"}

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

// ApplyEnv overrides c with the environment: the seed's names first
// (CARTELCRM_BASE_URL, CARTELCRM_API_KEY, CARTELCRM_HMAC_SECRET,
// CALLBACK_SECRET comma-separated for rotation, PORT), then
// LEADWATCH_LISTEN and LEADWATCH_DB.
func (c *Config) ApplyEnv(getenv Getenv) error {
	if v := getenv("CARTELCRM_BASE_URL"); v != "" {
		c.CRM.BaseURL = v
	}
	if v := getenv("CARTELCRM_API_KEY"); v != "" {
		c.CRM.APIKey = Secret(v)
	}
	if v := getenv("CARTELCRM_HMAC_SECRET"); v != "" {
		c.CRM.HMACSecret = Secret(v)
	}
	if v := getenv("CALLBACK_SECRET"); v != "" {
		c.Callbacks.Secrets = SplitSecrets(v)
	}
	if v := getenv("PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("PORT=%q is not a port number", v)
		}
		c.Callbacks.Listen = ":" + v
	}
	if v := getenv("LEADWATCH_LISTEN"); v != "" {
		c.Callbacks.Listen = v
	}
	if v := getenv("LEADWATCH_DB"); v != "" {
		c.Store.Path = v
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
)

// Validate checks c for the parts need asks for, with errors that say
// where to set what is missing.
func (c Config) Validate(need Need) error {
	if need&NeedSender != 0 {
		switch {
		case c.CRM.BaseURL == "":
			return errors.New("crm.base_url is not set: put it in [crm] of the config file or set CARTELCRM_BASE_URL")
		case c.CRM.APIKey == "":
			return errors.New("crm.api_key is not set: put it in [crm] of the config file or set CARTELCRM_API_KEY")
		case c.CRM.HMACSecret == "":
			return errors.New("crm.hmac_secret is not set: put it in [crm] of the config file or set CARTELCRM_HMAC_SECRET")
		case c.CRM.Concurrency < 1:
			return fmt.Errorf("crm.concurrency must be at least 1, not %d", c.CRM.Concurrency)
		case c.CRM.RateLimit < 0:
			return fmt.Errorf("crm.rate_limit must not be negative, not %g", c.CRM.RateLimit)
		case c.CRM.Timeout <= 0:
			return fmt.Errorf("crm.timeout must be positive, not %s", c.CRM.Timeout.D())
		}
		if c.Retry.MaxAttempts < 1 || c.Retry.BaseDelay <= 0 || c.Retry.MaxDelay < c.Retry.BaseDelay || c.Retry.RateLimitedDelay <= 0 {
			return fmt.Errorf("retry: need max_attempts ≥ 1, base_delay > 0, max_delay ≥ base_delay and rate_limited_delay > 0 (have %d, %s, %s, %s)",
				c.Retry.MaxAttempts, c.Retry.BaseDelay.D(), c.Retry.MaxDelay.D(), c.Retry.RateLimitedDelay.D())
		}
	}
	if need&NeedListener != 0 {
		switch {
		case len(c.Callbacks.Secrets) == 0:
			return errors.New("callbacks.secrets is empty: put them in [callbacks] of the config file or set CALLBACK_SECRET (comma-separated for rotation)")
		case !strings.HasPrefix(c.Callbacks.Path, "/"):
			return fmt.Errorf("callbacks.path must start with /, not %q", c.Callbacks.Path)
		case c.Callbacks.Tolerance <= 0:
			return fmt.Errorf("callbacks.tolerance must be positive, not %s", c.Callbacks.Tolerance.D())
		case c.Callbacks.MaxBody <= 0:
			return fmt.Errorf("callbacks.max_body must be positive, not %d", c.Callbacks.MaxBody)
		}
	}
	if c.Store.Path == "" {
		return errors.New("store.path is empty: set it in [store], LEADWATCH_DB or --db")
	}
	return nil
}

// CallbackSecrets returns the callback secrets as bytes.
func (c Config) CallbackSecrets() [][]byte {
	out := make([][]byte, len(c.Callbacks.Secrets))
	for i, s := range c.Callbacks.Secrets {
		out[i] = s.Reveal()
	}
	return out
}
