package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tt := range []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"peer, nothing trusted", "203.0.113.7:5000", nil, nil, "203.0.113.7"},
		{"XFF ignored from an untrusted peer", "203.0.113.7:5000", []string{"198.51.100.1"}, lb, "203.0.113.7"},
		{"XFF ignored when nothing is trusted", "10.1.1.1:5000", []string{"198.51.100.1"}, nil, "10.1.1.1"},
		{"trusted peer: right-most XFF", "10.1.1.1:5000", []string{"198.51.100.1"}, lb, "198.51.100.1"},
		{"client's own entries to the left are ignored", "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.1"}, lb, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.1.1:5000", []string{"198.51.100.1, 10.2.2.2", "10.3.3.3"}, lb, "198.51.100.1"},
		{"several fields, the last one last", "10.1.1.1:5000", []string{"6.6.6.6", "198.51.100.1"}, lb, "198.51.100.1"},
		{"all trusted: the left-most", "10.1.1.1:5000", []string{"10.2.2.2"}, lb, "10.2.2.2"},
		{"trusted peer without XFF", "10.1.1.1:5000", nil, lb, "10.1.1.1"},
		{"garbage stops the walk at the last trusted hop", "10.1.1.1:5000", []string{"198.51.100.1, junk, 10.2.2.2"}, lb, "10.2.2.2"},
		{"garbage right after the peer", "10.1.1.1:5000", []string{"not-an-ip"}, lb, "10.1.1.1"},
		{"empty entries are garbage", "10.1.1.1:5000", []string{"198.51.100.1,,"}, lb, "10.1.1.1"},
		{"IPv6 peer", "[2001:db8::1]:443", nil, nil, "2001:db8::1"},
		{"IPv6 in XFF, bracketed with port", "[fd00::1]:443", []string{"[2001:db8::2]:1234"}, lb, "2001:db8::2"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:10.1.1.1]:80", []string{"198.51.100.1"}, lb, "198.51.100.1"},
		{"zones are refused", "10.1.1.1:5000", []string{"fe80::1%eth0"}, lb, "10.1.1.1"},
		{"zones are refused with a port too", "10.1.1.1:5000", []string{`[fe80::1%x"}{"code":"ok"]:1`}, lb, "10.1.1.1"},
		{"not an address", "pipe", nil, lb, "invalid IP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientAddr(tt.remote, tt.xff, tt.trusted).String(); got != tt.want {
				t.Fatalf("ClientAddr(%q, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "6.6.6.6, 198.51.100.1, 10.2.2.2", "[2001:db8::2]:1", ",,,", "junk", "", strings.Repeat("10.0.0.1,", 50)} {
		f.Add("10.1.1.1:5000", s)
		f.Add("[fd00::1]:1", s)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got := ClientAddr(remote, []string{xff}, trusted)
		peer := parseAddr(remote)
		switch {
		case !peer.IsValid():
			if got.IsValid() {
				t.Fatalf("no peer address, yet %s", got)
			}
		case !isTrusted(peer, trusted):
			if got != peer {
				t.Fatalf("untrusted peer %s, yet %s", peer, got)
			}
		default:
			// A trusted peer: the answer is the peer or an address listed.
			listed := got == peer
			for item := range strings.SplitSeq(xff, ",") {
				if parseAddr(strings.TrimSpace(item)) == got {
					listed = true
				}
			}
			if !listed || !got.IsValid() {
				t.Fatalf("ClientAddr(%q, %q) = %s: neither the peer nor listed", remote, xff, got)
			}
		}
	})
}
