package callbacks

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
)

// CertFiles serves a certificate and key read from PEM files to a TLS
// listener, and reads them again on Reload, so a renewed certificate is
// taken without a restart: new handshakes get it, established connections
// keep theirs.
type CertFiles struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCertFiles reads the pair; the error names the files (never their
// contents) and says what to fix.
func LoadCertFiles(certFile, keyFile string) (*CertFiles, error) {
	c := &CertFiles{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On error the certificate in use stays.
func (c *CertFiles) Reload() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("callbacks.tls_cert %s / callbacks.tls_key %s: %w (both must be PEM files, the key matching the certificate)",
			c.certFile, c.keyFile, err)
	}
	c.cert.Store(&cert)
	return nil
}

// TLSConfig is the listener's TLS configuration: TLS 1.2 at least, HTTP/1.1
// only (the handler's per-connection limits are HTTP/1's), the current
// certificate at each handshake.
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
	}
}

// TLSListener wraps ln (the ConnLimiter's listener) so its connections
// speak TLS. The handshake runs in the connection's first read, under the
// server's ReadHeader timeout, so a client that stalls it is cut off like
// one that stalls its headers; ConnLimiter sees through the TLS wrapper
// (ConnState unwraps it).
func (c *CertFiles) TLSListener(ln net.Listener) net.Listener {
	return tls.NewListener(ln, c.TLSConfig())
}
