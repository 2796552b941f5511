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
	// IPv4-mapped IPv6 is the IPv4 address.
	if _, blocked := g.Blocked(netip.MustParseAddr("::ffff:203.0.113.7"), t0); !blocked {
		t.Fatal("the IPv4-mapped form of a blocked address is not blocked")
	}
	// Checking spends nothing: after the retry time one more failure fits.
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
	// Buckets full again are dropped.
	if n := g.Sweep(t0.Add(time.Minute)); n != 2 || g.Len() != 0 {
		t.Fatalf("Sweep dropped %d buckets (%d left), want 2 (0 left)", n, g.Len())
	}
}

// TestAuthGuardParallelGuesses: guesses made at once after one check all
// count, up to the debt's bound (burst): the address then owes them, and
// stays blocked until they are paid back at the rate, so a wave of parallel
// guesses buys no more guesses over time than the same guesses one by one.
func TestAuthGuardParallelGuesses(t *testing.T) {
	g := NewAuthGuard(1, 20)
	a := netip.MustParseAddr("198.51.100.1")
	var tried atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 500 {
		wg.Go(func() {
			<-start
			if _, blocked := g.Blocked(a, t0); !blocked {
				tried.Add(1)
				g.Failed(a, t0) // the guess is decided: it fails
			}
		})
	}
	close(start)
	wg.Wait()
	n := tried.Load()
	if n < 20 {
		t.Fatalf("%d of 500 parallel guesses were tried, want at least the burst, 20", n)
	}
	// Owed: n failures against a burst of 20 at 1/s, at most 20 in debt.
	want := time.Duration(min(n, 40)-20+1) * time.Second
	if d, blocked := g.Blocked(a, t0); !blocked || d < want {
		t.Fatalf("after %d parallel failures: blocked %v for %v, want at least %v", n, blocked, d, want)
	}
	if _, blocked := g.Blocked(a, t0.Add(want)); blocked {
		t.Fatalf("still blocked once %d failures are paid back", n)
	}
}

// TestAuthGuardDebtBound: however long an address keeps failing, it is let
// in again within 2×burst/rate of its last failure: a misconfigured job in
// a retry loop does not shut its address out for hours once it stops.
func TestAuthGuardDebtBound(t *testing.T) {
	g := NewAuthGuard(2, 5)
	a := netip.MustParseAddr("2001:db8::1")
	for i := range 10000 {
		g.Failed(a, t0.Add(time.Duration(i)*time.Millisecond))
	}
	last := t0.Add(9999 * time.Millisecond)
	// In debt by the burst (5): one failure is allowed again after
	// (5+1)/2 = 3s.
	if _, blocked := g.Blocked(a, last.Add(2900*time.Millisecond)); !blocked {
		t.Fatal("not blocked 2.9s after 10000 failures")
	}
	if d, blocked := g.Blocked(a, last.Add(3001*time.Millisecond)); blocked {
		t.Fatalf("still blocked (%v) 3s after the last of 10000 failures", d)
	}
}

// TestAuthGuardMemoryBound: an address-spraying attacker cannot grow the
// guard past its bound (MaxAddresses; here a small one, for speed); the
// overflow shares wider buckets.
func TestAuthGuardMemoryBound(t *testing.T) {
	g := NewAuthGuard(0.001, 1)
	g.perShard = 32 // 2048 addresses in all
	const sprayed = 32*shards + 20000
	for i := range sprayed {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.Failed(a, t0)
	}
	// The bound, plus the wide buckets (one per /16 sprayed).
	if n := g.Len(); n > 32*shards+sprayed>>16+1 {
		t.Fatalf("%d buckets after spraying %d addresses, want at most about %d", n, sprayed, 32*shards)
	}
	// A sprayed newcomer shares its /16's bucket: already spent.
	if _, blocked := g.Blocked(netip.MustParseAddr("10.0.255.1"), t0); !blocked {
		t.Fatalf("a newcomer of a sprayed /16 is not blocked (%d buckets)", g.Len())
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
