package proxy

import (
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client that sent a request, given
// its connection's peer (http.Request.RemoteAddr) and its X-Forwarded-For
// fields: the peer itself, unless the peer is in one of the trusted proxy
// ranges; then the right-most X-Forwarded-For address that is not trusted
// (each trusted proxy appends the peer it saw, so everything to the left
// of the first untrusted address is the client's own say and is ignored).
// When every listed address is trusted, the left-most of them is returned.
// It returns the zero Addr when the peer is not an address.
func ClientAddr(remoteAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(remoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var item string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				item, list = list[j+1:], list[:j]
			} else {
				item, list = list, ""
			}
			a := parseAddr(strings.TrimSpace(item))
			if !a.IsValid() {
				// Not written by a trusted proxy: stop at the last hop
				// that was.
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
		}
	}
	return client
}

// parseAddr parses "host:port", "[v6]:port" or a bare address; the zero
// Addr when s is none of them, or names an IPv6 zone (a zone is free text
// from the client, and no client address).
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap()
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
