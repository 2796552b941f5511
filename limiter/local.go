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
	// unlimited.
	ByRole map[auth.Role]Limit
}

const shards = 64

// Local limits each token with its own bucket in this process. Buckets idle
// long enough to have refilled are dropped by Sweep, since a full bucket and
// a new one are the same; memory stays proportional to the tokens active
// within one refill time. Local is safe for concurrent use.
type Local struct {
	byRole map[auth.Role]Limit
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
	l := &Local{byRole: make(map[auth.Role]Limit, len(opts.ByRole)), seed: maphash.MakeSeed()}
	for r, lim := range opts.ByRole {
		if lim.Rate > 0 {
			if lim.Burst <= 0 {
				lim.Burst = int(math.Ceil(lim.Rate))
			}
			l.byRole[r] = lim
		}
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Allow takes one request from t's bucket at now.
func (l *Local) Allow(t *auth.Token, now time.Time) auth.LimitStatus {
	lim, ok := l.byRole[t.Role]
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
