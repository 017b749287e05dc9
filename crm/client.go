package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultUserAgent identifies leadwatch to the CRM.
const DefaultUserAgent = "leadwatch/1"

// DefaultMaxResponseBytes caps how much of an answer the client reads. A
// LeadResponse is a few hundred bytes; anything far larger is garbage and
// must not fill memory or the attempts table.
const DefaultMaxResponseBytes = 64 << 10

// ClientConfig configures a Client. BaseURL, APIKey and HMACSecret are
// required.
type ClientConfig struct {
	BaseURL          string
	APIKey           string
	HMACSecret       []byte
	Timeout          time.Duration // per request; default 15 s
	MaxResponseBytes int64         // default DefaultMaxResponseBytes
	MaxConns         int           // idle keep-alive connections kept; default 64
	UserAgent        string
	Transport        http.RoundTripper // default: a tuned clone of http.DefaultTransport
	Now              func() time.Time
}

// Client speaks docs/protocol.md §1–2 to CartelCRM. It is safe for concurrent
// use and reuses connections.
type Client struct {
	base      *url.URL
	apiKey    string
	secret    []byte
	http      *http.Client
	maxBody   int64
	userAgent string
	now       func() time.Time
}

// Errors of NewClient. They name what is missing or wrong in crm's terms,
// not where it is configured: crm does not know the config file or the
// environment, so main maps them to its own keys.
var (
	ErrNoBaseURL    = errors.New("no CRM base URL")
	ErrNoAPIKey     = errors.New("no CRM API key")
	ErrNoHMACSecret = errors.New("no CRM HMAC secret")
	// ErrBadBaseURL is a base URL that is not an absolute http or https
	// URL. The error quotes the URL without userinfo, query or fragment,
	// where credentials would sit.
	ErrBadBaseURL = errors.New("CRM base URL is not an http(s) URL")
)

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.BaseURL == "":
		return nil, ErrNoBaseURL
	case cfg.APIKey == "":
		return nil, ErrNoAPIKey
	case len(cfg.HMACSecret) == 0:
		return nil, ErrNoHMACSecret
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		// url.Parse's error quotes the input whole; say only that.
		return nil, fmt.Errorf("%w: it does not parse as a URL", ErrBadBaseURL)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q", ErrBadBaseURL, RedactURL(cfg.BaseURL))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host; a dispatcher
		// with 32 workers would then open and close connections all day.
		t.MaxIdleConnsPerHost = cfg.MaxConns
		t.MaxIdleConns = cfg.MaxConns
		tr = t
	}
	return &Client{
		base:    u,
		apiKey:  cfg.APIKey,
		secret:  cfg.HMACSecret,
		maxBody: cfg.MaxResponseBytes,
		http: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect would turn the POST into a GET and drop the
			// signature; report it instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		userAgent: cfg.UserAgent,
		now:       cfg.Now,
	}, nil
}

// RedactURL is raw without the parts that may carry credentials:
// userinfo, query and fragment. It is how any URL from the configuration
// is quoted in an error or a log line.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery, u.ForceQuery = "", false
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Result is one submission attempt: what was answered and what it means.
type Result struct {
	Outcome    Outcome
	StatusCode int // 0 when no answer came
	Body       []byte
	Duration   time.Duration
	Err        error // the transport error, when no answer came
}

// Submit sends body, exactly these bytes, signed, under idempotencyKey
// (docs/protocol.md §1) and classifies the answer. It never returns an error of
// its own: a failure to get an answer is a retryable Outcome with Err set.
func (c *Client) Submit(ctx context.Context, body []byte, idempotencyKey string) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+PathLeads, bytes.NewReader(body))
	if err != nil {
		return Result{Err: err, Outcome: Classify(0, nil, nil, err, c.now())}
	}
	c.sign(req, body)
	req.Header.Set(HeaderIdempotencyKey, idempotencyKey)
	req.Header.Set("Content-Type", "application/json")

	status, header, respBody, err := c.do(req)
	res := Result{StatusCode: status, Body: respBody, Duration: time.Since(start), Err: err}
	res.Outcome = Classify(status, header, respBody, err, c.now())
	return res
}

// StatusError is a status lookup that the CRM answered with an error.
type StatusError struct {
	HTTPStatus int
	Code       string
}

// Error describes the answer, e.g. "HTTP 401 unauthorized".
func (e *StatusError) Error() string { return describe(e.HTTPStatus, e.Code) }

// Status asks the CRM for a lead's status (docs/protocol.md §2). An unknown lead
// is ErrNotFound.
func (c *Client) Status(ctx context.Context, externalID string) (StatusResponse, error) {
	var sr StatusResponse
	u := c.base.String() + StatusPath(externalID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return sr, err
	}
	c.sign(req, nil)
	status, _, body, err := c.do(req)
	if err != nil {
		return sr, fmt.Errorf("status of %q: %w", externalID, err)
	}
	switch {
	case status == http.StatusNotFound:
		return sr, fmt.Errorf("status of %q: %w", externalID, ErrNotFound)
	case status != http.StatusOK:
		return sr, fmt.Errorf("status of %q: %w", externalID, &StatusError{HTTPStatus: status, Code: errorCode(body)})
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		return sr, fmt.Errorf("status of %q: unreadable answer: %w", externalID, err)
	}
	return sr, nil
}

func (c *Client) sign(req *http.Request, body []byte) {
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	SignRequest(req, c.secret, body, c.now())
}

// do sends req and reads at most maxBody bytes of the answer. An answer
// larger than that is an error: it cannot be a protocol answer, and reading
// on would let a broken CRM fill memory.
func (c *Client) do(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, cleanErr(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading HTTP %d answer: %w", resp.StatusCode, cleanErr(err))
	}
	if int64(len(body)) > c.maxBody {
		return resp.StatusCode, resp.Header, body[:c.maxBody], fmt.Errorf("HTTP %d answer: %w (over %d bytes)", resp.StatusCode, errResponseTooLarge, c.maxBody)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// cleanErr drops the request URL from *url.Error so that messages stay
// short; the URL holds no secret, but it is the same on every line.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}
