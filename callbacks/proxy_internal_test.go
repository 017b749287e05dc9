package callbacks

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestClientAddr: X-Forwarded-For counts only from a trusted peer, and then
// the client is the rightmost address that is not itself a trusted proxy;
// whatever a client wrote to the left of it is ignored.
func TestClientAddr(t *testing.T) {
	trusted := trustedProxies{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/64")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer keeps RemoteAddr", "198.51.100.1:4000", []string{"203.0.113.5"}, "198.51.100.1:4000"},
		{"trusted peer without header", "10.0.0.2:4000", nil, "10.0.0.2:4000"},
		{"trusted peer, one hop", "10.0.0.2:4000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"client-written items left of the real one are ignored", "10.0.0.2:4000", []string{"1.2.3.4, 203.0.113.5"}, "203.0.113.5"},
		{"chain of trusted proxies", "10.0.0.2:4000", []string{"203.0.113.5, 192.0.2.7, 10.0.0.9"}, "203.0.113.5"},
		{"several headers are one list", "10.0.0.2:4000", []string{"1.2.3.4", "203.0.113.5"}, "203.0.113.5"},
		{"all trusted: the leftmost", "10.0.0.2:4000", []string{"10.0.0.8, 10.0.0.9"}, "10.0.0.8"},
		{"garbage rightmost: RemoteAddr", "10.0.0.2:4000", []string{"203.0.113.5, nonsense"}, "10.0.0.2:4000"},
		{"garbage left of the client is not reached", "10.0.0.2:4000", []string{"nonsense, 203.0.113.5"}, "203.0.113.5"},
		{"address with port", "10.0.0.2:4000", []string{"203.0.113.5:5555"}, "203.0.113.5"},
		{"IPv6 peer and client", "[2001:db8::1]:4000", []string{"[2001:db8:1::5]"}, "2001:db8:1::5"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:4000", []string{"203.0.113.5"}, "203.0.113.5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
			for _, v := range c.xff {
				r.Header.Add(headerXFF, v)
			}
			if got := trusted.clientAddr(r); got != c.want {
				t.Errorf("clientAddr = %q, want %q", got, c.want)
			}
		})
	}
	var none trustedProxies
	r := &http.Request{RemoteAddr: "10.0.0.2:4000", Header: http.Header{headerXFF: {"203.0.113.5"}}}
	if got := none.clientAddr(r); got != r.RemoteAddr {
		t.Errorf("no trusted proxies: clientAddr = %q, want RemoteAddr", got)
	}
}
