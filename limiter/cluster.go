package limiter

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Budget is the shared store of token buckets that a Cluster leases from:
// one bucket per token, shared by every replica.
type Budget interface {
	// Take leases up to want requests from the bucket of id, which refills
	// at lim.Rate up to lim.Burst. The bucket may go into debt, down to
	// -debt: requests granted beyond what it holds are reservations that
	// mature as it refills (see Lease). It grants want unless that would
	// pass the debt bound; when it grants nothing, Lease.Wait says when a
	// lease fits again.
	Take(ctx context.Context, id string, lim Limit, want, debt int) (Lease, error)
}

// Lease is a Budget's answer to Take. The k-th request granted (k from 1)
// may be used once the bucket would have held it: at once when k <= Held,
// else (k-Held)/Rate seconds after the grant.
type Lease struct {
	// Granted is the number of requests leased, 0 to want.
	Granted int
	// Held is what the shared bucket held before the grant (negative when
	// in debt); Left what it holds after.
	Held, Left float64
	// Wait is, when nothing was granted, the time until a lease fits.
	Wait time.Duration
}

// Outage says what a Cluster does while its Budget cannot be reached.
type Outage uint8

// Outage policies.
const (
	// OutageShare decides on this replica alone, holding each token to its
	// share of the limit: rate/n and ceil(burst/n) for n live replicas.
	OutageShare Outage = iota
	// OutageRefuse refuses the requests of limited tokens
	// (LimitStatus.Unavailable).
	OutageRefuse
)

// ClusterOptions configure a Cluster limiter.
type ClusterOptions struct {
	Options
	// Budget holds the shared buckets. Required.
	Budget Budget
	// LeaseTime sizes leases: a replica leases about Rate × LeaseTime
	// requests at a time (at least 1, at most the burst and MaxLease).
	// Default 100ms.
	LeaseTime time.Duration
	// MaxLease caps a lease. Default 1000.
	MaxLease int
	// Timeout bounds a Take. Default 100ms.
	Timeout time.Duration
	// Outage is the policy while the Budget fails. Default OutageShare.
	Outage Outage
	// Retry is how long a replica decides alone after a failed Take before
	// it tries the Budget again. Default 1s.
	Retry time.Duration
	// Replicas returns the number of live replicas sharing the Budget
	// (for OutageShare); nil, or a value below 1, means 1.
	Replicas func() int
	// Logger receives a line when the Budget fails and when it is back.
	Logger *slog.Logger
	// ObserveTake, when set, is called after every Take with its error.
	ObserveTake func(err error)
	// Idle is how long a token's state outlives its last use (Sweep drops
	// it then). Default 1 minute.
	Idle time.Duration
}

// Cluster limits each token against one bucket shared by every replica,
// kept in a Budget (Redis). A replica does not ask the Budget for every
// request: it leases a batch of requests (about Rate × LeaseTime) and
// admits from the batch until it is spent. When the shared bucket is
// empty, a lease is a reservation: its requests mature one by one as the
// bucket refills (the bucket goes into debt, by at most one lease per live
// replica and one more), and the replica refuses locally until the next
// one matures. So a token over its limit costs one round trip per lease,
// not one per request, and replicas do not poll an empty bucket.
//
// Every admitted request was taken from the shared bucket and used no
// earlier than the bucket would have held it, so over any interval of
// length T the cluster admits at most Rate×T + Burst plus the leases
// replicas held mature and unspent at its start (at most replicas × lease
// size). It may admit less than a single bucket would when leases sit
// unspent on replicas whose traffic stopped; that error is bounded by the
// leases and the debt outstanding. Safe for concurrent use.
type Cluster struct {
	policy    policy
	projects  projectLimits
	budget    Budget
	leaseTime float64 // seconds
	maxLease  int
	timeout   time.Duration
	outage    Outage
	retry     time.Duration
	replicas  func() int
	log       *slog.Logger
	observe   func(error)
	idle      time.Duration

	// downUntil (Unix nanoseconds) is when to try the Budget again after a
	// failure; 0 while it answers.
	downUntil atomic.Int64
	// fallback holds the buckets of the shares while the Budget fails.
	fallback *Local

	seed   maphash.Seed
	shards [shards]clusterShard
}

type clusterShard struct {
	mu      sync.Mutex
	entries map[bucketKey]*lease
}

// lease is a replica's state of one token.
type lease struct {
	mu sync.Mutex
	// lim is the limit the lease was taken under; a change of limit drops
	// the lease.
	lim Limit
	// left is what is left of the leased requests, used the number used.
	left, used int
	// held is what the shared bucket held before the last grant; request
	// k of the lease (from 1) matures (k-held)/rate after at, the time of
	// the grant. shared is what the bucket held after it.
	held, shared float64
	at           time.Time
	// notBefore is when a lease fits in the shared bucket again, after a
	// Take that granted nothing; retryAt is when the first request of that
	// lease will have matured (the Retry-After given meanwhile).
	notBefore, retryAt time.Time
	// dropped is set by Sweep when it removes the entry from its shard.
	dropped bool
	// last is the last request's time (for Sweep).
	last time.Time
}

var _ auth.Limiter = (*Cluster)(nil)

// NewCluster returns a Cluster limiter.
func NewCluster(opts ClusterOptions) *Cluster {
	c := &Cluster{
		policy:    newPolicy(opts.Options),
		budget:    opts.Budget,
		leaseTime: orDuration(opts.LeaseTime, 100*time.Millisecond).Seconds(),
		maxLease:  opts.MaxLease,
		timeout:   orDuration(opts.Timeout, 100*time.Millisecond),
		outage:    opts.Outage,
		retry:     orDuration(opts.Retry, time.Second),
		replicas:  opts.Replicas,
		log:       opts.Logger,
		observe:   opts.ObserveTake,
		idle:      orDuration(opts.Idle, time.Minute),
		fallback:  NewLocal(opts.Options),
		seed:      maphash.MakeSeed(),
	}
	if c.maxLease <= 0 {
		c.maxLease = 1000
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.observe == nil {
		c.observe = func(error) {}
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[bucketKey]*lease)
	}
	return c
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// leaseSize is how many requests a replica leases at a time under lim.
func (c *Cluster) leaseSize(lim Limit) int {
	n := math.Ceil(lim.Rate * c.leaseTime)
	return int(max(1, min(n, float64(lim.Burst), float64(c.maxLease))))
}

// Allow takes one request of t's budget at now: from this replica's lease,
// else from a new lease of the shared bucket; then, each time that let it
// pass, one of the budget of each token above it (a token made by a
// token: Token.Lineage, at each one's limit as it is now) and one of its project's,
// in the same way, when they have a limit (Token.Lineage,
// SetProjectLimits).
func (c *Cluster) Allow(ctx context.Context, t *auth.Token, now time.Time) auth.LimitStatus {
	var st auth.LimitStatus
	if lim, shadow, ok := c.policy.limitOf(t); ok {
		st = c.allow(ctx, t.ID, lim, shadow, now)
		if !st.Allowed {
			return st
		}
	}
	if t.Lineage.Root != "" {
		st = withAncestors(ctx, &c.policy, t, st, func(id string, lim Limit, shadow bool) auth.LimitStatus {
			return c.allow(ctx, id, lim, shadow, now)
		})
		if !st.Allowed {
			return st
		}
	}
	if pl, ok := c.projects.of(t.ProjectID); ok {
		st = withProject(st, c.allow(ctx, pl.key, pl.lim, false, now))
	}
	return st
}

// SetProjectLimits replaces the project-wide limits, as Local's does; each
// project's bucket is shared by every replica like a token's.
func (c *Cluster) SetProjectLimits(limits map[int64]Limit) { c.projects.set(limits) }

// SetProjectLimit replaces the limit of one project, as Local's does.
func (c *Cluster) SetProjectLimit(project int64, lim Limit) { c.projects.setOne(project, lim) }

// allow takes one request of the budget of id (a token, or a project's
// key) under lim.
func (c *Cluster) allow(ctx context.Context, id string, lim Limit, shadow bool, now time.Time) auth.LimitStatus {
	if c.down(now) {
		return c.degraded(id, lim, shadow, now)
	}
	e := c.lockedEntry(bucketKey{id, lim})
	defer e.mu.Unlock()
	// Requests that queued behind a Take that failed decide alone too,
	// rather than each waiting out its own timeout.
	if c.down(now) {
		return c.degraded(id, lim, shadow, now)
	}
	if e.lim != lim {
		// A new limit is a new bucket (RedisBudget keys it by the limit).
		e.lim, e.left, e.used, e.held, e.shared = lim, 0, 0, 0, 0
		e.at, e.notBefore, e.retryAt = time.Time{}, time.Time{}, time.Time{}
	}
	e.last = now
	if e.left == 0 && !now.Before(e.notBefore) {
		if err := c.takeLease(ctx, e, id, lim, now); err != nil {
			return c.degraded(id, lim, shadow, now)
		}
	}
	st := auth.LimitStatus{Enabled: true, Rate: lim.Rate, Limit: lim.Burst, Shadow: shadow}
	var wait time.Duration
	if e.left > 0 {
		// Request used+1 of the lease: at once if the bucket held it,
		// else when the refill reaches it.
		if k := float64(e.used + 1); k > e.held {
			wait = e.at.Add(secondsToDuration((k - e.held) / lim.Rate)).Sub(now)
		}
	} else {
		wait = later(e.notBefore, e.retryAt).Sub(now)
	}
	if wait <= 0 && e.left > 0 {
		e.left--
		e.used++
		st.Allowed = true
	} else {
		st.Allowed, st.Over = shadow, true
		st.RetryAfter = max(wait, time.Millisecond)
	}
	// What a client may still send at once: the matured part of this
	// replica's lease and its estimate of the shared bucket (as last seen,
	// refilled since).
	ready := 0
	if e.left > 0 {
		matured := math.Floor(e.held + lim.Rate*now.Sub(e.at).Seconds())
		ready = min(e.left, max(int(matured)-e.used, 0))
	}
	shared := min(e.shared+lim.Rate*now.Sub(e.at).Seconds(), float64(lim.Burst))
	st.Remaining = max(min(ready+int(math.Floor(shared)), lim.Burst), 0)
	st.Reset = secondsToDuration(float64(lim.Burst-st.Remaining) / lim.Rate)
	return st
}

// takeLease takes a new lease of id's shared bucket into e. On failure
// the budget counts as down (fail) and the caller decides alone.
func (c *Cluster) takeLease(ctx context.Context, e *lease, id string, lim Limit, now time.Time) error {
	want := c.leaseSize(lim)
	// Debt room for one reserved lease per live replica, and one more.
	debt := want * (c.liveReplicas() + 1)
	// The lease serves this replica, not this request: a client that
	// goes away must not cancel it (nor pass for a Redis failure).
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	l, err := c.budget.Take(tctx, id, lim, want, debt)
	cancel()
	c.observe(err)
	if err != nil {
		c.fail(now, err)
		return err
	}
	c.recover()
	// Maturities count from the grant's arrival, after the round trip
	// and any wait for the lock: counting from now would let a
	// request through that much early.
	at := now
	if arrived := time.Now(); arrived.After(at) {
		at = arrived
	}
	e.left, e.used, e.held, e.shared, e.at = l.Granted, 0, l.Held, l.Left, at
	if l.Granted == 0 {
		// Ask again once a lease fits; a client may come back when the
		// first request of that lease will have matured.
		e.notBefore = at.Add(max(l.Wait, time.Millisecond))
		e.retryAt = at.Add(secondsToDuration((1 - l.Left) / lim.Rate))
	}
	return nil
}

// lockedEntry returns the lease state of key, created if need be, locked.
// An entry Sweep dropped meanwhile is not used: its lease would be lost.
func (c *Cluster) lockedEntry(key bucketKey) *lease {
	for {
		e := c.entry(key)
		e.mu.Lock()
		if !e.dropped {
			return e
		}
		e.mu.Unlock()
	}
}

// entry returns the lease state of key, creating it. Entries are named
// by limit too, as the shared buckets are (RedisBudget): two limits of
// one id (an ancestor's limit before and after a change, while leases of
// both are in use) never take turns dropping each other's lease.
func (c *Cluster) entry(key bucketKey) *lease {
	sh := &c.shards[maphash.String(c.seed, key.id)%shards]
	sh.mu.Lock()
	e := sh.entries[key]
	if e == nil {
		e = &lease{}
		sh.entries[key] = e
	}
	sh.mu.Unlock()
	return e
}

// down reports whether the Budget failed recently enough that this replica
// decides alone.
func (c *Cluster) down(now time.Time) bool {
	u := c.downUntil.Load()
	return u != 0 && now.UnixNano() < u
}

func (c *Cluster) fail(now time.Time, err error) {
	if c.downUntil.Swap(now.Add(c.retry).UnixNano()) == 0 {
		c.log.Warn("rate-limit budget unreachable: deciding on this replica",
			slog.String("err", err.Error()), slog.String("policy", c.outageName()),
			slog.Int("replicas", c.liveReplicas()), slog.Duration("retry_in", c.retry))
	}
}

func (c *Cluster) recover() {
	if c.downUntil.Load() != 0 && c.downUntil.Swap(0) != 0 {
		c.log.Info("rate-limit budget reachable again")
	}
}

func (c *Cluster) outageName() string {
	if c.outage == OutageRefuse {
		return "refuse"
	}
	return "share"
}

func (c *Cluster) liveReplicas() int {
	if c.replicas == nil {
		return 1
	}
	return max(c.replicas(), 1)
}

// degraded decides without the Budget, by the outage policy.
func (c *Cluster) degraded(id string, lim Limit, shadow bool, now time.Time) auth.LimitStatus {
	if c.outage == OutageRefuse {
		// A limit in shadow mode never changes traffic, outage or not.
		return auth.LimitStatus{Enabled: true, Unavailable: !shadow, Allowed: shadow, Shadow: shadow, Rate: lim.Rate, Limit: lim.Burst}
	}
	st := c.fallback.allow(id, lim.share(c.liveReplicas()), shadow, now)
	st.Fallback = true
	return st
}

// idleSince is when e's token stopped needing its state: its last request,
// or, when later, when the last request of its lease matures or its next
// lease may be asked for (a client waiting out a long Retry-After is not
// idle: dropping its reservation would make it wait anew).
func (e *lease) idleSince() time.Time {
	t := later(later(e.last, e.notBefore), e.retryAt)
	if e.left > 0 && e.lim.Rate > 0 {
		if k := float64(e.used + e.left); k > e.held {
			t = later(t, e.at.Add(secondsToDuration((k-e.held)/e.lim.Rate)))
		}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Sweep drops the state of tokens idle for ClusterOptions.Idle (their unspent
// leases are forgotten, which only ever admits less), and the fallback
// buckets that are full again. Call it periodically.
func (c *Cluster) Sweep(now time.Time) (dropped int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for key, e := range sh.entries {
			// TryLock: an entry in use is not idle.
			if e.mu.TryLock() {
				if e.idleSince().Before(now.Add(-c.idle)) {
					e.dropped = true
					delete(sh.entries, key)
					dropped++
				}
				e.mu.Unlock()
			}
		}
		sh.mu.Unlock()
	}
	return dropped + c.fallback.Sweep(now)
}

// Len returns the number of tokens with lease state.
func (c *Cluster) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}
