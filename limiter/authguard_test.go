package limiter

import (
	"net/netip"
	"testing"
	"time"
)

func TestAuthGuard(t *testing.T) {
	if NewAuthGuard(0, 10) != nil {
		t.Fatal("a guard with rate 0 should be nil (disabled)")
	}
	g := NewAuthGuard(0.5, 3) // 3 at once, then one per 2 s
	a := netip.MustParseAddr("203.0.113.7")
	other := netip.MustParseAddr("203.0.113.8")
	for i := range 3 {
		if _, blocked := g.Blocked(a, t0); blocked {
			t.Fatalf("blocked after %d failures, burst 3", i)
		}
		g.Failed(a, t0)
	}
	d, blocked := g.Blocked(a, t0)
	if !blocked || d != 2*time.Second {
		t.Fatalf("after 3 failures: blocked %v, retry %v; want blocked for 2s", blocked, d)
	}
	if _, blocked := g.Blocked(other, t0); blocked {
		t.Fatal("another address is blocked")
	}
	// Blocked spends nothing: after the retry time one more failure fits.
	for range 5 {
		g.Blocked(a, t0.Add(time.Second))
	}
	if _, blocked := g.Blocked(a, t0.Add(2*time.Second)); blocked {
		t.Fatal("still blocked after the retry time")
	}
	// IPv6: one bucket per /64.
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	v6c := netip.MustParseAddr("2001:db8:1:3::1")
	for range 3 {
		g.Failed(v6a, t0)
	}
	if _, blocked := g.Blocked(v6b, t0); !blocked {
		t.Fatal("an address of the same /64 is not blocked")
	}
	if _, blocked := g.Blocked(v6c, t0); blocked {
		t.Fatal("an address of another /64 is blocked")
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	if _, blocked := g.Blocked(netip.MustParseAddr("::ffff:203.0.113.7"), t0); !blocked {
		t.Fatal("the IPv4-mapped form of a blocked address is not blocked")
	}
	// Buckets full again are dropped.
	if n := g.Sweep(t0.Add(time.Minute)); n != 2 {
		t.Fatalf("Sweep dropped %d buckets, want 2", n)
	}
}

func BenchmarkAuthGuardBlocked(b *testing.B) {
	g := NewAuthGuard(1, 20)
	a := netip.MustParseAddr("203.0.113.7")
	g.Failed(a, t0)
	b.ReportAllocs()
	for b.Loop() {
		g.Blocked(a, t0)
	}
}
