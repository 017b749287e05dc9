package main

import (
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

	"github.com/spf13/cobra"

	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
)

// triggerFlags are trigger's flags.
type triggerFlags struct {
	externalID, status, url string
	badSignature, stale     bool
}

// triggerTimeout bounds the one request trigger makes, answer included.
const triggerTimeout = 15 * time.Second

// triggerMaxAnswer is how much of the listener's answer trigger reads and
// prints: a listener's answer is a few bytes; a proxy's error page is cut.
const triggerMaxAnswer = 4 << 10

// triggerWrongSecretPrefix makes --bad-signature's key: the real secret behind a
// prefix can never be one of the configured secrets, and it is never
// printed either.
const triggerWrongSecretPrefix = "leadwatch-trigger-wrong-secret:"

func triggerCmd(e env) *cobra.Command {
	var o storeFlags
	var t triggerFlags
	c := &cobra.Command{
		Use:   "trigger EVENT --external-id ID [--status S] [--url U] [--bad-signature|--stale] [--config FILE]",
		Short: "send one signed test callback to a listener",
		Long: "Send one callback, signed as CartelCRM signs them with the first of callbacks.secrets\n" +
			"(CALLBACK_SECRET), to a listener, and print its answer: a check of an installation end to\n" +
			"end. The body is {\"internal_id\",\"external_id\",\"event\",\"status\",\"timestamp\"}, the\n" +
			"timestamp in unix milliseconds: the dedup key holds it, so two triggers in one second are\n" +
			"two events, not a replay. internal_id is \"trigger-\" and the external_id. The listener\n" +
			"links the event to the lead of that external_id, and --status becomes its CRM status,\n" +
			"as from the CRM.\n\n" +
			"The listener is the local one (callbacks.listen and callbacks.path, on 127.0.0.1 when the\n" +
			"address names no host), or --url: a full URL, or a base whose path is then callbacks.path.\n\n" +
			"--bad-signature signs with a wrong secret and --stale sends an X-Timestamp outside\n" +
			"callbacks.tolerance, to show what a refusal looks like. Exit 0 when the answer is the one\n" +
			"the mode expects (200; 403 bad_signature; 401 timestamp_out_of_range), else 1.",
		Args: oneArg("EVENT"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return cmdTrigger(cmd.Context(), e, o, args[0], t)
		}),
	}
	o.addConfig(c.Flags())
	c.Flags().StringVar(&t.externalID, "external-id", "", "the lead the event is about (`ID`; required)")
	c.Flags().StringVar(&t.status, "status", "", "the lead's new CRM status `S` (none when not given)")
	c.Flags().StringVar(&t.url, "url", "", "post to `U` instead of the local listener")
	c.Flags().BoolVar(&t.badSignature, "bad-signature", false, "sign with a wrong secret: expect 403 bad_signature")
	c.Flags().BoolVar(&t.stale, "stale", false, "send an X-Timestamp outside the tolerance: expect 401 timestamp_out_of_range")
	return readsEnv(c, "CALLBACK_SECRET PORT LEADWATCH_LISTEN")
}

// triggerMode is what trigger sends and which answer it expects.
type triggerMode struct {
	name   string // shown: "signed", "bad signature", "stale timestamp"
	expect int    // the HTTP status the listener must answer
	hint   string // what to check when it answers otherwise
}

func (t triggerFlags) mode() triggerMode {
	switch {
	case t.badSignature:
		return triggerMode{"signed with a wrong secret", http.StatusForbidden,
			"the listener took a callback signed with a wrong secret: is it leadwatch's listener?"}
	case t.stale:
		return triggerMode{"stale X-Timestamp", http.StatusUnauthorized,
			"the listener took a callback with an X-Timestamp outside its tolerance: is it leadwatch's listener?"}
	}
	return triggerMode{"signed", http.StatusOK,
		"403 bad_signature: the listener's callbacks.secrets lack this one; 401: a clock is off; 503: its store"}
}

func cmdTrigger(ctx context.Context, e env, o storeFlags, event string, t triggerFlags) error {
	switch {
	case strings.TrimSpace(event) == "":
		return usageErrorf("EVENT is empty (e.g. status_changed)")
	case t.externalID == "":
		return usageErrorf("need --external-id ID: the lead the event is about")
	case t.badSignature && t.stale:
		return usageErrorf("--bad-signature and --stale show one refusal each: pick one")
	}
	cfg, err := o.load(e)
	if err != nil {
		return err
	}
	if len(cfg.Callbacks.Secrets) == 0 || cfg.Callbacks.Secrets[0] == "" {
		return &config.ValidationError{Missing: []string{"callbacks.secrets"}}
	}
	target, err := triggerURL(cfg, t.url)
	if err != nil {
		return err
	}
	now := time.Now()
	body, err := json.Marshal(crm.CallbackBody{
		InternalID: "trigger-" + t.externalID,
		ExternalID: t.externalID,
		Event:      event,
		Status:     t.status,
		Timestamp:  now.UnixMilli(),
	})
	if err != nil {
		return err
	}
	mode := t.mode()
	secret := cfg.Callbacks.Secrets[0].Reveal()
	signedAt := now
	switch {
	case t.badSignature:
		secret = append([]byte(triggerWrongSecretPrefix), secret...)
	case t.stale:
		// Twice the tolerance: far enough out that a few seconds of clock
		// difference between here and the listener cannot bring it in.
		signedAt = now.Add(-2 * max(cfg.Callbacks.Tolerance.D(), time.Second))
	}
	req, err := crm.NewSignedCallback(target, body, secret, signedAt)
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	shown := crm.RedactURL(target)
	fmt.Fprintf(e.stdout, "POST %s (%s, X-Timestamp %s)\n%s\n", shown, mode.name, req.Header.Get(crm.HeaderTimestamp), body)

	client := &http.Client{
		Timeout: triggerTimeout,
		// A redirect would drop the body and the signature: show it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL is the one printed above, maybe with userinfo
		}
		return fmt.Errorf("trigger: POST %s: %w", shown, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, triggerMaxAnswer))
	if err != nil {
		return fmt.Errorf("trigger: reading the answer of HTTP %d: %w", resp.StatusCode, err)
	}
	fmt.Fprintf(e.stdout, "HTTP %d %s\n", resp.StatusCode, strings.TrimSpace(string(answer)))
	if resp.StatusCode != mode.expect {
		return fmt.Errorf("trigger: the listener answered %d, not the %d a callback %s gets (%s)",
			resp.StatusCode, mode.expect, mode.name, mode.hint)
	}
	return nil
}

// triggerURL is where trigger posts: --url when given (a bare base gets
// callbacks.path), else the local listener of the configuration.
func triggerURL(cfg config.Config, flag string) (string, error) {
	if flag != "" {
		u, err := url.Parse(flag)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", usageErrorf("--url must be an absolute http(s) URL, not %q", crm.RedactURL(flag))
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = cfg.Callbacks.Path
		}
		return u.String(), nil
	}
	host, port, err := net.SplitHostPort(cfg.Callbacks.Listen)
	if err != nil {
		return "", fmt.Errorf("callbacks.listen %q is not HOST:PORT: pass --url", cfg.Callbacks.Listen)
	}
	// A listener on every interface is reached on loopback from here.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http"
	if cfg.Callbacks.TLSCert != "" {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: cfg.Callbacks.Path}).String(), nil
}
