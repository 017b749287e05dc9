package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/config"
	"github.com/leadwatch/leadwatch/crm"
)

// setupTLS makes the listener speak HTTPS when callbacks.tls_cert and
// callbacks.tls_key are set (Validate checked they come together).
func (s *services) setupTLS(cfg config.Config) error {
	if cfg.Callbacks.TLSCert == "" {
		return nil
	}
	certs, err := callbacks.LoadCertFiles(cfg.Callbacks.TLSCert, cfg.Callbacks.TLSKey)
	if err != nil {
		return err
	}
	s.certs = certs
	s.ln = certs.TLSListener(s.ln)
	return nil
}

// Scheme is the listener's URL scheme, http or https.
func (s *services) Scheme() string {
	if s.certs != nil {
		return "https"
	}
	return "http"
}

// Drain is the first half of a graceful stop: /healthz answers 503
// "draining", so a balancer's checks take the instance out, and answers
// stop offering keep-alive, so pooled connections move elsewhere as they
// finish; callbacks are still served. Run's shutdown, when its context
// ends, does the rest.
func (s *services) Drain() {
	if s.handler != nil {
		s.handler.SetDraining(true)
	}
	if s.srv != nil {
		s.srv.SetKeepAlivesEnabled(false)
	}
}

// Reload applies what a SIGHUP may change: the callback secrets, the TLS
// certificate files, and through sender the CRM's base URL, API key and
// HMAC secret. It checks everything before it changes anything, so a bad
// configuration changes nothing and its error says what is wrong. Other
// settings (addresses, limits, the store) need a restart.
func (s *services) Reload(cfg config.Config, sender *swapSender) error {
	if err := cfg.Validate(config.NeedSender | config.NeedListener); err != nil {
		return err
	}
	for i, sec := range cfg.Callbacks.Secrets {
		if sec == "" {
			return fmt.Errorf("callbacks.secrets: item %d is empty", i)
		}
	}
	var client *crm.Client
	if sender != nil {
		c, err := newClient(cfg)
		if err != nil {
			return err
		}
		client = c
	}
	if s.certs != nil {
		if cfg.Callbacks.TLSCert == "" {
			return errors.New("callbacks.tls_cert and callbacks.tls_key were removed: turning TLS off needs a restart")
		}
		// A changed file name needs a restart too; the same files read again
		// take a renewed certificate.
		if err := s.certs.Reload(); err != nil {
			return err
		}
	} else if cfg.Callbacks.TLSCert != "" {
		return errors.New("callbacks.tls_cert is new: turning TLS on needs a restart")
	}
	if s.handler != nil {
		if err := s.handler.SetSecrets(cfg.CallbackSecrets()); err != nil {
			return fmt.Errorf("callbacks.secrets: %w", err)
		}
	}
	if client != nil {
		sender.Store(client)
	}
	return nil
}

// swapSender is a crm.Sender whose client a reload replaces: attempts
// already on the wire finish with the client they started with.
type swapSender struct{ c atomic.Pointer[crm.Client] }

// newSwapSender returns a swapSender sending with c.
func newSwapSender(c *crm.Client) *swapSender {
	s := &swapSender{}
	s.c.Store(c)
	return s
}

// Store makes c the client of the attempts that start from now on.
func (s *swapSender) Store(c *crm.Client) { s.c.Store(c) }

// Submit sends with the current client.
func (s *swapSender) Submit(ctx context.Context, body []byte, key string) crm.Result {
	return s.c.Load().Submit(ctx, body, key)
}

// Status looks a lead up with the current client (crm.StatusLooker), so
// the reconciler's lookups follow a reload as the attempts do.
func (s *swapSender) Status(ctx context.Context, externalID string) (crm.StatusResponse, error) {
	return s.c.Load().Status(ctx, externalID)
}
