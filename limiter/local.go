// Package limiter applies per-token rate limits with token buckets
// (golang.org/x/time/rate).
package limiter

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tswgate/tswgate/auth"
)

const shards = 64

// Local limits each token with its own bucket in this process. A token's
// limit is its own override (Token.RateLimit, Token.RateBurst) when it has
// one, else its role's; a token with neither is not limited and costs no
// bucket. A token made by a token is also held to the buckets of the
// tokens above it (Token.Lineage), each at that token's limit as it is
// now (Options.Lookup). A bucket is named by its token and its limit, as
// RedisBudget's are: when a token's limit changes, it starts a new (full)
// bucket at the new limit, and one that goes back to a limit finds that
// limit's bucket as it left it, so flipping a limit refills nothing.
// Buckets idle long enough to have refilled are dropped by Sweep, since a
// full bucket and a new one are the same; memory stays proportional to
// the limited tokens active within one refill time. Local is safe for
// concurrent use.
type Local struct {
	policy   policy
	projects projectLimits
	seed     maphash.Seed
	shards   [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

// bucketKey names a bucket: its token (or project key) and its limit.
type bucketKey struct {
	id  string
	lim Limit
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
	l := &Local{policy: newPolicy(opts), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[bucketKey]*bucket)
	}
	return l
}

// Allow takes one request from t's bucket at now, then, each time that
// let it pass, from the bucket of each token above t that has a limit (a
// token made by a token: withAncestors), and from the bucket of t's project when the
// project has a limit (SetProjectLimits). A token without a limit, in a
// project without one, gets LimitStatus{} (Enabled false) without any
// bucket or lock.
func (l *Local) Allow(ctx context.Context, t *auth.Token, now time.Time) auth.LimitStatus {
	var st auth.LimitStatus
	if lim, shadow, ok := l.policy.limitOf(t); ok {
		st = l.allow(t.ID, lim, shadow, now)
		if !st.Allowed {
			return st
		}
	}
	if t.Lineage.Root != "" {
		st = withAncestors(ctx, &l.policy, t, st, func(id string, lim Limit, shadow bool) auth.LimitStatus {
			return l.allow(id, lim, shadow, now)
		})
		if !st.Allowed {
			return st
		}
	}
	if pl, ok := l.projects.of(t.ProjectID); ok {
		st = withProject(st, l.allow(pl.key, pl.lim, false, now))
	}
	return st
}

// SetProjectLimits replaces the project-wide limits: each project's
// limit is shared by all its tokens, besides their own. A Rate of 0 means
// none, a Burst of 0 ceil(Rate).
func (l *Local) SetProjectLimits(limits map[int64]Limit) { l.projects.set(limits) }

// SetProjectLimit replaces the limit of one project, leaving the others';
// a Rate of 0 removes it.
func (l *Local) SetProjectLimit(project int64, lim Limit) { l.projects.setOne(project, lim) }

// allow takes one request from the bucket of id at limit lim.
func (l *Local) allow(id string, lim Limit, shadow bool, now time.Time) auth.LimitStatus {
	key := bucketKey{id, lim}
	sh := &l.shards[maphash.String(l.seed, id)%shards]
	sh.mu.Lock()
	b := sh.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(lim.Rate), lim.Burst)}
		sh.buckets[key] = b
	}
	allowed := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	b.last = now
	// full is read below from this copy: b.full is only read or written
	// under sh.mu.
	full := secondsToDuration((float64(lim.Burst) - tokens) / lim.Rate)
	b.full = full
	sh.mu.Unlock()

	st := auth.LimitStatus{
		Enabled:   true,
		Allowed:   allowed,
		Rate:      lim.Rate,
		Limit:     lim.Burst,
		Remaining: max(int(math.Floor(tokens)), 0),
		Reset:     full,
	}
	if !allowed {
		st.Over = true
		st.RetryAfter = secondsToDuration((1 - tokens) / lim.Rate)
	}
	if shadow {
		st.Allowed, st.Shadow = true, true
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

// secondsToDuration rounds s seconds up to a Duration, 0 for s <= 0 and
// at most the longest Duration (tiny rates give huge waits: they must not
// wrap around to negative ones).
func secondsToDuration(s float64) time.Duration {
	switch ns := math.Ceil(s * float64(time.Second)); {
	case !(ns > 0):
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	default:
		return time.Duration(ns)
	}
}
