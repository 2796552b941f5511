package limiter

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// AuthGuard limits failed authentications per client address, so that
// guessing token ids or secrets is slow for the guesser and cheap for the
// gateway: once an address has spent its failures, its requests are refused
// without any store read — unless they carry a credential the gateway
// recognises from its cache (a token the client has been using: see
// auth.Request.FailuresBlockedFor), so that a guesser behind a shared
// address (a carrier-grade NAT, a company proxy, a CI provider's egress)
// does not lock its neighbours out.
//
// An address is checked before its request is decided (Blocked) and
// charged only when it failed (Failed), so requests with valid tokens are
// never held back by their own number. Failures made in parallel after
// one check all count: the bucket goes into debt, down to -burst, and the
// address stays blocked until it is paid back, so over any time T an
// address fails at most burst + rate×T plus the failures it had in flight
// at once, and a client that stops failing is let in again within
// 2×burst/rate.
//
// IPv6 addresses are grouped by their /64 (one host usually holds a whole
// /64). Memory is bounded: past MaxAddresses buckets, new addresses are
// grouped by a wider prefix (IPv4 /16, IPv6 /32), so an attacker spraying
// addresses shares a few buckets rather than growing the map. Each replica
// keeps its own buckets. Safe for concurrent use.
type AuthGuard struct {
	rate     float64
	burst    float64
	perShard int
	seed     maphash.Seed
	shards   [shards]guardShard
}

type guardShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*guardBucket
}

// guardBucket holds the failures an address may still make, as of last.
type guardBucket struct {
	tokens float64
	last   time.Time
}

// MaxAddresses bounds the buckets of an AuthGuard (about 100 bytes each).
const MaxAddresses = 1 << 17

// NewAuthGuard allows each address burst failures at once and perSecond on
// average. It returns nil (no limit) when perSecond is not positive.
func NewAuthGuard(perSecond float64, burst int) *AuthGuard {
	if perSecond <= 0 {
		return nil
	}
	g := &AuthGuard{rate: perSecond, burst: float64(max(burst, 1)), perShard: MaxAddresses / shards, seed: maphash.MakeSeed()}
	for i := range g.shards {
		g.shards[i].buckets = make(map[netip.Addr]*guardBucket)
	}
	return g
}

// key is the address a bucket is kept for: IPv4 as is, IPv6 by its /64.
func key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// wideKey is the key of an address when the guard is full: IPv4 by /16,
// IPv6 by /32.
func wideKey(a netip.Addr) netip.Addr {
	bits := 16
	if a.Is6() {
		bits = 32
	}
	p, _ := a.Prefix(bits)
	return p.Addr()
}

func (g *AuthGuard) shard(a netip.Addr) *guardShard {
	b := a.As16()
	return &g.shards[maphash.Bytes(g.seed, b[:])%shards]
}

// refill brings b to now.
func (g *AuthGuard) refill(b *guardBucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(g.burst, b.tokens+d.Seconds()*g.rate)
		b.last = now
	}
}

// Blocked reports whether addr has no failure left at now, and if so how
// long until it has one. It spends nothing: a request that passes is
// decided, and only a failure is charged (Failed).
func (g *AuthGuard) Blocked(addr netip.Addr, now time.Time) (retryAfter time.Duration, blocked bool) {
	k := key(addr)
	for _, k := range [2]netip.Addr{k, wideKey(k)} {
		sh := g.shard(k)
		sh.mu.Lock()
		b := sh.buckets[k]
		if b != nil {
			g.refill(b, now)
			if b.tokens < 1 {
				retryAfter, blocked = secondsToDuration((1-b.tokens)/g.rate), true
			}
		}
		sh.mu.Unlock()
		if b != nil {
			return retryAfter, blocked
		}
	}
	return 0, false
}

// Failed spends one failure of addr at now. The bucket may go below zero,
// down to -burst: failures made in parallel after one check all count, and
// the address is then blocked until they are paid back at the rate.
func (g *AuthGuard) Failed(addr netip.Addr, now time.Time) {
	k := key(addr)
	if !g.spend(k, now, false) {
		// The shard is full of addresses that failed recently: group the
		// newcomer with its neighbours.
		g.spend(wideKey(k), now, true)
	}
}

// spend takes one failure from the bucket of k, creating it. Unless always
// is set it adds no bucket to a full shard, and reports false.
func (g *AuthGuard) spend(k netip.Addr, now time.Time, always bool) bool {
	sh := g.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[k]
	if b == nil {
		if len(sh.buckets) >= g.perShard {
			g.sweepShard(sh, now)
		}
		if len(sh.buckets) >= g.perShard && !always {
			return false
		}
		b = &guardBucket{tokens: g.burst, last: now}
		sh.buckets[k] = b
	}
	g.refill(b, now)
	b.tokens = max(b.tokens-1, -g.burst)
	return true
}

// Sweep drops the buckets that are full again at now. Call it every few
// seconds.
func (g *AuthGuard) Sweep(now time.Time) (dropped int) {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		dropped += g.sweepShard(sh, now)
		sh.mu.Unlock()
	}
	return dropped
}

func (g *AuthGuard) sweepShard(sh *guardShard, now time.Time) (dropped int) {
	for a, b := range sh.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*g.rate >= g.burst {
			delete(sh.buckets, a)
			dropped++
		}
	}
	return dropped
}

// Len returns the number of buckets held.
func (g *AuthGuard) Len() int {
	n := 0
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
