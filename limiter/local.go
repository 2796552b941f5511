// Package limiter applies per-token rate limits with token buckets
// (golang.org/x/time/rate).
package limiter

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tswgate/tswgate/auth"
)

// Limit is a token-bucket limit: Rate requests per second on average, up to
// Burst at once. A zero Rate means unlimited.
type Limit struct {
	Rate  float64
	Burst int
}

// Options configure a Local limiter.
type Options struct {
	// ByRole gives the limit of each role; roles without an entry are
	// unlimited. A token's own limit (Token.RateLimit) overrides its
	// role's.
	ByRole map[auth.Role]Limit
}

const shards = 64

// Local limits each token with its own bucket in this process. A token's
// limit is its own override (Token.RateLimit, Token.RateBurst) when it has
// one, else its role's; a token with neither is not limited and costs no
// bucket. When a token's limit changes, its bucket starts anew (full) at
// the new limit. Buckets idle long enough to have refilled are dropped by
// Sweep, since a full bucket and a new one are the same; memory stays
// proportional to the limited tokens active within one refill time. Local
// is safe for concurrent use.
type Local struct {
	// byRole is indexed by role (a small slice, not a map, so that an
	// unlimited token's lookup touches no map); Rate 0 means unlimited.
	byRole []Limit
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
	// full is how long after last the bucket is full again.
	full time.Duration
}

var _ auth.Limiter = (*Local)(nil)

// NewLocal returns a Local limiter.
func NewLocal(opts Options) *Local {
	l := &Local{seed: maphash.MakeSeed()}
	for r, lim := range opts.ByRole {
		if lim.Rate > 0 {
			if lim.Burst <= 0 {
				lim.Burst = defaultBurst(lim.Rate)
			}
			if int(r) >= len(l.byRole) {
				l.byRole = append(l.byRole, make([]Limit, int(r)+1-len(l.byRole))...)
			}
			l.byRole[r] = lim
		}
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// defaultBurst is the burst of a limit given without one: ceil(rate),
// bounded so that it fits an int on every platform.
func defaultBurst(rate float64) int {
	return int(min(math.Ceil(rate), math.MaxInt32))
}

// limitOf returns the limit that applies to t: its own, else its role's.
// ok is false when t is not limited.
func (l *Local) limitOf(t *auth.Token) (lim Limit, ok bool) {
	if t.RateLimit > 0 {
		lim = Limit{Rate: t.RateLimit, Burst: t.RateBurst}
		if lim.Burst <= 0 {
			lim.Burst = defaultBurst(lim.Rate)
		}
		return lim, true
	}
	if r := int(t.Role); r < len(l.byRole) && l.byRole[r].Rate > 0 {
		return l.byRole[r], true
	}
	return Limit{}, false
}

// Allow takes one request from t's bucket at now. A token without a limit
// gets LimitStatus{} (Enabled false) without any bucket or lock.
func (l *Local) Allow(t *auth.Token, now time.Time) auth.LimitStatus {
	lim, ok := l.limitOf(t)
	if !ok {
		return auth.LimitStatus{}
	}
	sh := &l.shards[maphash.String(l.seed, t.ID)%shards]
	sh.mu.Lock()
	b := sh.buckets[t.ID]
	if b == nil || b.lim.Limit() != rate.Limit(lim.Rate) || b.lim.Burst() != lim.Burst {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(lim.Rate), lim.Burst)}
		sh.buckets[t.ID] = b
	}
	allowed := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	b.last = now
	b.full = secondsToDuration((float64(lim.Burst) - tokens) / lim.Rate)
	sh.mu.Unlock()

	st := auth.LimitStatus{
		Enabled:   true,
		Allowed:   allowed,
		Limit:     lim.Burst,
		Remaining: max(int(math.Floor(tokens)), 0),
		Reset:     b.full,
	}
	if !allowed {
		st.RetryAfter = secondsToDuration((1 - tokens) / lim.Rate)
	}
	return st
}

// Sweep drops the buckets that are full again at now. Call it periodically.
func (l *Local) Sweep(now time.Time) (dropped int) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for id, b := range sh.buckets {
			if !now.Before(b.last.Add(b.full)) {
				delete(sh.buckets, id)
				dropped++
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}

// Len returns the number of buckets held.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}
