package limiter

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// AuthGuard limits failed authentications per client address, so that
// guessing token ids or secrets is slow for the guesser and cheap for the
// gateway: once an address has spent its failures, its requests are
// refused before any credential is parsed or any store read is made.
//
// IPv6 addresses are grouped by their /64 (one host usually holds a whole
// /64). Each replica keeps its own buckets. Safe for concurrent use.
type AuthGuard struct {
	rate   rate.Limit
	burst  int
	seed   maphash.Seed
	shards [shards]guardShard
}

type guardShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*guardBucket
}

type guardBucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewAuthGuard allows each address burst failures at once and perSecond on
// average. It returns nil (no limit) when perSecond is not positive.
func NewAuthGuard(perSecond float64, burst int) *AuthGuard {
	if perSecond <= 0 {
		return nil
	}
	g := &AuthGuard{rate: rate.Limit(perSecond), burst: max(burst, 1), seed: maphash.MakeSeed()}
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

func (g *AuthGuard) shard(a netip.Addr) *guardShard {
	b := a.As16()
	return &g.shards[maphash.Bytes(g.seed, b[:])%shards]
}

// Blocked reports whether addr has no failure left at now, and if so how
// long until it has one. It spends nothing.
func (g *AuthGuard) Blocked(addr netip.Addr, now time.Time) (retryAfter time.Duration, blocked bool) {
	addr = key(addr)
	sh := g.shard(addr)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[addr]
	if b == nil {
		return 0, false
	}
	if tokens := b.lim.TokensAt(now); tokens < 1 {
		return secondsToDuration((1 - tokens) / float64(g.rate)), true
	}
	return 0, false
}

// Failed spends one failure of addr at now.
func (g *AuthGuard) Failed(addr netip.Addr, now time.Time) {
	addr = key(addr)
	sh := g.shard(addr)
	sh.mu.Lock()
	b := sh.buckets[addr]
	if b == nil {
		b = &guardBucket{lim: rate.NewLimiter(g.rate, g.burst)}
		sh.buckets[addr] = b
	}
	b.lim.AllowN(now, 1)
	b.last = now
	sh.mu.Unlock()
}

// Sweep drops the buckets that are full again at now. Call it periodically.
func (g *AuthGuard) Sweep(now time.Time) (dropped int) {
	full := secondsToDuration(float64(g.burst) / float64(g.rate))
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for a, b := range sh.buckets {
			if !now.Before(b.last.Add(full)) {
				delete(sh.buckets, a)
				dropped++
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}
