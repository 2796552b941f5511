package limiter

import (
	"net/netip"
	"sync"
	"sync/atomic"
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
		if _, _, blocked := g.Charge(a, t0); blocked {
			t.Fatalf("blocked after %d failures, burst 3", i)
		}
	}
	k, d, blocked := g.Charge(a, t0)
	if !blocked || d != 2*time.Second || k != a {
		t.Fatalf("after 3 failures: blocked %v, retry %v, key %v; want blocked for 2s", blocked, d, k)
	}
	if _, _, blocked := g.Charge(other, t0); blocked {
		t.Fatal("another address is blocked")
	}
	// A refused charge spends nothing: after the retry time one more fits.
	for range 5 {
		g.Charge(a, t0.Add(time.Second))
	}
	k, _, blocked = g.Charge(a, t0.Add(2*time.Second))
	if blocked {
		t.Fatal("still blocked after the retry time")
	}
	// Attempts that did not fail are refunded.
	g.Refund(k, t0.Add(2*time.Second))
	if _, _, blocked := g.Charge(a, t0.Add(2*time.Second)); blocked {
		t.Fatal("a refunded charge still counts")
	}
	// IPv6: one bucket per /64.
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	v6c := netip.MustParseAddr("2001:db8:1:3::1")
	for range 3 {
		g.Charge(v6a, t0)
	}
	if _, _, blocked := g.Charge(v6b, t0); !blocked {
		t.Fatal("an address of the same /64 is not blocked")
	}
	if _, _, blocked := g.Charge(v6c, t0); blocked {
		t.Fatal("an address of another /64 is blocked")
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	if _, _, blocked := g.Charge(netip.MustParseAddr("::ffff:203.0.113.7"), t0.Add(2*time.Second)); !blocked {
		t.Fatal("the IPv4-mapped form of a blocked address is not blocked")
	}
	// Buckets full again are dropped.
	if n := g.Sweep(t0.Add(time.Minute)); n != 4 || g.Len() != 0 {
		t.Fatalf("Sweep dropped %d buckets (%d left), want 4 (0 left)", n, g.Len())
	}
}

// TestAuthGuardParallelGuesses: guesses made at once are charged before
// they are decided, so no more than the burst get through however many are
// in flight.
func TestAuthGuardParallelGuesses(t *testing.T) {
	g := NewAuthGuard(0.001, 20)
	a := netip.MustParseAddr("198.51.100.1")
	var tried atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 500 {
		wg.Go(func() {
			<-start
			if _, _, blocked := g.Charge(a, t0); !blocked {
				tried.Add(1) // the guess is decided (and fails: no refund)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := tried.Load(); n != 20 {
		t.Fatalf("%d of 500 parallel guesses were tried, want the burst, 20", n)
	}
}

// TestAuthGuardMemoryBound: an address-spraying attacker cannot grow the
// guard past MaxAddresses; the overflow shares wider buckets.
func TestAuthGuardMemoryBound(t *testing.T) {
	g := NewAuthGuard(0.001, 1)
	for i := range MaxAddresses + 20000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.Charge(a, t0)
	}
	if n := g.Len(); n > MaxAddresses+256 {
		t.Fatalf("%d buckets after spraying %d addresses, want at most about %d", n, MaxAddresses+20000, MaxAddresses)
	}
	// A sprayed newcomer shares its /16's bucket: already spent.
	if _, _, blocked := g.Charge(netip.MustParseAddr("10.1.255.1"), t0); !blocked {
		t.Fatalf("a newcomer of a sprayed /16 is not blocked (%d buckets)", g.Len())
	}
}

func BenchmarkAuthGuardChargeRefund(b *testing.B) {
	g := NewAuthGuard(1, 20)
	a := netip.MustParseAddr("203.0.113.7")
	b.ReportAllocs()
	for b.Loop() {
		k, _, _ := g.Charge(a, t0)
		g.Refund(k, t0)
	}
}
