package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress means an endpoint's host resolved to an address that
// is not on the public internet.
var ErrPrivateAddress = errors.New("webhook: endpoint address is not public")

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Timeout bounds an attempt, from dialing to the end of the response;
	// 15 s when zero.
	Timeout time.Duration
	// AllowPrivate lets it reach loopback, private, link-local and other
	// non-public addresses. Leave it off for customers' endpoints, so that
	// an endpoint URL cannot make the gateway call its own network; turn
	// it on for the operator's, or in tests.
	AllowPrivate bool
}

// NewClient returns the HTTP client a Dispatcher posts with: no proxy from
// the environment, no redirects followed (a 3xx is a failed attempt), and
// unless AllowPrivate every dialed address checked after name resolution
// (so DNS rebinding cannot slip one in).
func NewClient(opts ClientOptions) *http.Client {
	timeout := orDefault(opts.Timeout, 15*time.Second)
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = publicOnly
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// publicOnly refuses to connect to an address that is not public.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ap.Addr())
	}
	return nil
}

// nonPublic are ranges beyond netip's predicates that no endpoint should
// be reached on: "this network", carrier-grade NAT, IETF protocol
// assignments (IPv4 and IPv6), benchmarking, documentation, reserved,
// discard-only, deprecated site-local, and every IPv6 range that embeds an
// IPv4 address a translator or tunnel may reach: IPv4-compatible,
// IPv4-translated (SIIT), NAT64, 6to4 (Teredo is in the IETF range).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("::ffff:0:0:0/96"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

// Public reports whether a is a global unicast address outside every
// private, shared or reserved range.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
