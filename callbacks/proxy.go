package callbacks

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// headerXFF is the header a balancer appends the address of each client it
// forwards to.
const headerXFF = "X-Forwarded-For"

// trustedProxies are the peers whose X-Forwarded-For is believed
// (Config.TrustedProxies). The zero value trusts nobody.
type trustedProxies []netip.Prefix

// contains reports whether a is one of the proxies.
func (t trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the host at the other end of r's connection,
// or false when RemoteAddr does not parse (a test's fake request).
func peerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// viaProxy reports whether r came over a connection from a trusted proxy:
// its connection is the proxy's, pooled and shared by many clients.
func (t trustedProxies) viaProxy(r *http.Request) bool {
	if len(t) == 0 {
		return false
	}
	a, ok := peerAddr(r)
	return ok && t.contains(a)
}

// clientAddr is the address a refusal or a log line names for r. From an
// untrusted peer it is RemoteAddr, whatever X-Forwarded-For says (anyone
// can write that header). From a trusted proxy it is the rightmost
// forwarded address that is not itself a trusted proxy: each proxy appends
// the address it received the request from, so everything right of that
// address was written by proxies we trust, and everything left of it by
// the client, who may lie. When every forwarded address is trusted, the
// leftmost is taken; when the header is missing or its rightmost untrusted
// item is not an address, RemoteAddr stays.
func (t trustedProxies) clientAddr(r *http.Request) string {
	if !t.viaProxy(r) {
		return r.RemoteAddr
	}
	// Several headers count as one list, in order (RFC 9110 §5.3).
	var items []string
	for _, v := range r.Header.Values(headerXFF) {
		items = append(items, strings.Split(v, ",")...)
	}
	client := ""
	for i := len(items) - 1; i >= 0; i-- {
		a, ok := parseForwarded(items[i])
		if !ok {
			break
		}
		client = a.String()
		if !t.contains(a) {
			return client
		}
	}
	if client == "" {
		return r.RemoteAddr
	}
	return client
}

// parseForwarded parses one X-Forwarded-For item: an address, possibly with
// a port or in brackets, as some proxies write it.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}
