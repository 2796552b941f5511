package limiter_test

// The cluster limiter against real redis-servers: replicas are Cluster
// values sharing one RedisBudget key space, as separate gateway processes
// would. Limits use tiny rates where a test counts exact admissions, so
// that refill during the test cannot change the count.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/limiter"
)

// takeTimeout is ClusterOptions.Timeout in the tests against real Redis
// that do not test timeouts. The default (100ms) suits production, but a
// loaded machine running -race can exceed it; a replica whose Take fails
// then decides alone on its share of the limit (the whole limit when it
// knows of no other replica), and a test counting the shared budget's
// admissions would count those instead. Only a broken test waits it out.
const takeTimeout = 10 * time.Second

// countingBudget counts Take calls (the limiter's Redis operations) and
// their failures.
type countingBudget struct {
	limiter.Budget
	takes    atomic.Int64
	failures atomic.Int64
	outage   atomic.Bool // the test makes Takes fail on purpose

	mu       sync.Mutex
	firstErr error
}

func (b *countingBudget) Take(ctx context.Context, id string, lim limiter.Limit, want, debt int) (limiter.Lease, error) {
	b.takes.Add(1)
	l, err := b.Budget.Take(ctx, id, lim, want, debt)
	if err != nil && b.failures.Add(1) == 1 {
		b.mu.Lock()
		b.firstErr = err
		b.mu.Unlock()
	}
	return l, err
}

// expectOutage says that the test makes Takes fail on purpose.
func (b *countingBudget) expectOutage() { b.outage.Store(true) }

// checkNoFailure fails the test if a Take failed and the test did not
// expect it: the Cluster then decided on the replica's share, and the
// admissions the test counted were not (all) the shared budget's.
func (b *countingBudget) checkNoFailure(tb testing.TB) {
	tb.Helper()
	n := b.failures.Load()
	if n == 0 || b.outage.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tb.Errorf("%d of %d Takes of the shared budget failed (the first: %v): those decisions fell back to the "+
		"replica's share, so the admissions counted are not the shared budget's", n, b.takes.Load(), b.firstErr)
}

var prefixes atomic.Int64

// newPrefix keeps tests that share a server apart.
func newPrefix() string { return fmt.Sprintf("lt%d:", prefixes.Add(1)) }

func newBudget(t *testing.T, rdb redis.UniversalClient, prefix string) *countingBudget {
	t.Helper()
	b, err := limiter.NewRedisBudget(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBudget{Budget: b}
	t.Cleanup(func() { cb.checkNoFailure(t) })
	return cb
}

// tinyRate refills one request in about three hours: no refill during a
// test.
const tinyRate = 1e-4

func newToken(id string, rate float64, burst int) *auth.Token {
	return &auth.Token{ID: id, ProjectID: 42, Role: auth.RoleOwner, Status: auth.StatusActive, RateLimit: rate, RateBurst: burst}
}

// hammer sends n requests of tok from each of goroutines goroutines, each
// to the replicas in turn, and returns how many were admitted.
func hammer(replicas []*limiter.Cluster, tok *auth.Token, goroutines, n int) int {
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range n {
				st := replicas[(g+i)%len(replicas)].Allow(context.Background(), tok, time.Now())
				if st.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(admitted.Load())
}

func TestClusterAdmitsExactlyTheBurstAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	budget := newBudget(t, rdb, newPrefix())
	var replicas []*limiter.Cluster
	for range 3 {
		replicas = append(replicas, limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout}))
	}
	tok := newToken("tsw_cluster0000000000001", tinyRate, 30)
	if got := hammer(replicas, tok, 8, 50); got != 30 {
		t.Fatalf("3 replicas admitted %d of 400 requests of a token with burst 30 (and no refill), want exactly 30", got)
	}
	// Leases of 1 (rate × 100ms rounds up to 1): 30 grants, plus at most one
	// empty answer per replica, after which each refuses locally until the
	// bucket could hold a lease again (hours).
	if n := budget.takes.Load(); n > 33 {
		t.Fatalf("%d Redis operations for 30 admissions and 370 refusals, want at most 33", n)
	}
	// A fourth replica started later sees the same empty bucket.
	late := limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout})
	if st := late.Allow(context.Background(), tok, time.Now()); st.Allowed || st.RetryAfter < time.Hour {
		t.Fatalf("a new replica: %+v, want refused with a Retry-After of hours", st)
	}
}

func TestClusterLeasesInBatches(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: budget, LeaseTime: 100 * time.Millisecond, Timeout: takeTimeout})
	// 1000/s, burst 1000: leases of 100.
	tok := newToken("tsw_cluster0000000000002", 1000, 1000)
	admitted := 0
	for range 1000 {
		st := c.Allow(context.Background(), tok, time.Now())
		if !st.Enabled || st.Limit != 1000 || st.Rate != 1000 {
			t.Fatalf("status %+v, want the token's own limit", st)
		}
		if st.Allowed {
			admitted++
		}
	}
	if admitted != 1000 {
		t.Fatalf("admitted %d of 1000 requests within a burst of 1000", admitted)
	}
	// 10 full leases; refill while the loop ran can only make the last
	// ones partial, never more numerous than one per 100 admitted.
	if n := budget.takes.Load(); n > 10 {
		t.Fatalf("%d Redis operations for 1000 requests with leases of 100, want at most 10", n)
	}
}

func TestClusterRetryAfterAdmitsALoneClient(t *testing.T) {
	srv := redistest.Start(t)
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: newBudget(t, srv.Client(t), newPrefix()), Timeout: takeTimeout})
	tok := newToken("tsw_cluster0000000000003", 20, 2)
	ctx := context.Background()
	for round := range 3 {
		var st auth.LimitStatus
		for {
			if st = c.Allow(ctx, tok, time.Now()); !st.Allowed {
				break
			}
		}
		if st.RetryAfter <= 0 || st.RetryAfter > time.Second || !st.Over {
			t.Fatalf("round %d: refused with %+v, want a Retry-After within a second (2 requests at 20/s)", round, st)
		}
		// The client honours Retry-After: its next request is admitted.
		time.Sleep(st.RetryAfter)
		if st := c.Allow(ctx, tok, time.Now()); !st.Allowed {
			t.Fatalf("round %d: refused again after waiting Retry-After: %+v", round, st)
		}
	}
}

func TestClusterLimitChangeStartsAFullBucket(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	replicas := []*limiter.Cluster{
		limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout}),
		limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout}),
	}
	tok := newToken("tsw_cluster0000000000004", tinyRate, 2)
	if got := hammer(replicas, tok, 2, 10); got != 2 {
		t.Fatalf("admitted %d, want the burst of 2", got)
	}
	raised := *tok
	raised.RateBurst = 5
	if got := hammer(replicas, &raised, 2, 10); got != 5 {
		t.Fatalf("after raising the burst to 5: admitted %d, want 5", got)
	}
}

func TestClusterShadowModeReportsButAdmits(t *testing.T) {
	srv := redistest.Start(t)
	c := limiter.NewCluster(limiter.ClusterOptions{
		Options: limiter.Options{
			ByRole:      map[auth.Role]limiter.Limit{auth.RoleAccounting: {Rate: tinyRate, Burst: 1}},
			ShadowRoles: []auth.Role{auth.RoleAccounting},
		},
		Budget:  newBudget(t, srv.Client(t), newPrefix()),
		Timeout: takeTimeout,
	})
	acct := &auth.Token{ID: "tsw_cluster0000000000005", Role: auth.RoleAccounting}
	ctx := context.Background()
	if st := c.Allow(ctx, acct, time.Now()); !st.Allowed || !st.Shadow || st.Over {
		t.Fatalf("first request: %+v, want allowed, in shadow mode, not over", st)
	}
	if st := c.Allow(ctx, acct, time.Now()); !st.Allowed || !st.Shadow || !st.Over {
		t.Fatalf("second request: %+v, want allowed in shadow mode although over", st)
	}
	// A token in shadow mode on its own record.
	own := newToken("tsw_cluster0000000000006", tinyRate, 1)
	own.RateShadow = true
	c.Allow(ctx, own, time.Now())
	if st := c.Allow(ctx, own, time.Now()); !st.Allowed || !st.Shadow || !st.Over {
		t.Fatalf("token in shadow mode, over: %+v", st)
	}
	// The same token out of shadow mode is refused.
	own.RateShadow = false
	if st := c.Allow(ctx, own, time.Now()); st.Allowed || st.Shadow || !st.Over {
		t.Fatalf("token out of shadow mode, over: %+v, want refused", st)
	}
}

func TestClusterRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	budget := newBudget(t, rdb, newPrefix())
	budget.expectOutage()
	newReplica := func(outage limiter.Outage) *limiter.Cluster {
		return limiter.NewCluster(limiter.ClusterOptions{
			Budget: budget, Outage: outage, Replicas: func() int { return 2 },
			Timeout: takeTimeout, Retry: time.Second,
		})
	}
	share, refuse := newReplica(limiter.OutageShare), newReplica(limiter.OutageRefuse)
	tok := newToken("tsw_cluster0000000000007", tinyRate, 10)
	ctx := context.Background()
	if st := share.Allow(ctx, tok, time.Now()); !st.Allowed || st.Fallback {
		t.Fatalf("with Redis up: %+v", st)
	}
	srv.Stop()

	// Share: this replica holds the token to ceil(10/2) = 5, counted as
	// fallback decisions; no Redis call while it is known down.
	now := time.Now()
	admitted := 0
	for range 20 {
		st := share.Allow(ctx, tok, now)
		if !st.Fallback || st.Limit != 5 {
			t.Fatalf("Redis down, share: %+v, want a fallback decision against the share (burst 5)", st)
		}
		if st.Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("Redis down: admitted %d on one of 2 replicas, want its share of the burst, 5", admitted)
	}
	takes := budget.takes.Load()
	for range 10 {
		share.Allow(ctx, tok, now.Add(500*time.Millisecond))
	}
	if n := budget.takes.Load() - takes; n != 0 {
		t.Fatalf("%d Redis calls within the retry second after a failure, want 0", n)
	}
	// Refuse: limited tokens get Unavailable (the gate's store_unavailable).
	if st := refuse.Allow(ctx, tok, now); !st.Unavailable || st.Allowed {
		t.Fatalf("Redis down, refuse: %+v, want unavailable", st)
	}
	// A token without a limit is never refused for an outage.
	free := &auth.Token{ID: "tsw_cluster0000000000008", Role: auth.RoleOwner}
	if st := refuse.Allow(ctx, free, now); st.Enabled {
		t.Fatalf("unlimited token during an outage: %+v", st)
	}

	// Redis back (empty: it keeps nothing): after the retry second the
	// shared budget decides again.
	srv.Restart()
	later := time.Now().Add(2 * time.Second)
	for _, c := range []*limiter.Cluster{share, refuse} {
		if st := c.Allow(ctx, tok, later); !st.Allowed || st.Fallback || st.Unavailable {
			t.Fatalf("Redis back: %+v, want allowed by the shared budget", st)
		}
	}
}

func TestClusterGateAnswersStoreUnavailableWhenRefusing(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	budget.expectOutage()
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Outage: limiter.OutageRefuse, Timeout: takeTimeout})
	f := newGate(t, c)
	req := f.token(t, func(t *auth.Token) { t.RateLimit, t.RateBurst = tinyRate, 5 })
	f.warm(t, req, time.Now())
	srv.Stop()
	v := f.gate.Decide(context.Background(), req, time.Now())
	if v.Code != auth.CodeStoreUnavailable || v.RetryAfter <= 0 || v.Err == nil {
		t.Fatalf("limited token while the budget is down, refuse policy: %v (retry %v, err %v), want store_unavailable", v.Code, v.RetryAfter, v.Err)
	}
}

func TestRedisBudgetCountsLiveReplicas(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	prefix := newPrefix()
	a, err := limiter.NewRedisBudget(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, err := limiter.NewRedisBudget(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a.Live() != 1 {
		t.Fatalf("Live() = %d before any heartbeat, want 1", a.Live())
	}
	if _, err := b.Heartbeat(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Heartbeat(ctx, time.Minute); err != nil || n != 2 || a.Live() != 2 {
		t.Fatalf("two replicas: counted %d, Live %d (err %v), want 2", n, a.Live(), err)
	}
	// A replica silent for longer than the TTL is not counted (the scores
	// are the server's milliseconds: let a few pass).
	time.Sleep(5 * time.Millisecond)
	if n, err := a.Heartbeat(ctx, time.Millisecond); err != nil || n != 1 {
		t.Fatalf("with a TTL of 1ms, b (silent since) still counted: %d (err %v)", n, err)
	}
	if _, err := b.Heartbeat(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// RunHeartbeat removes its replica when its context ends (here: at once).
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	b.RunHeartbeat(stopped, time.Minute, time.Second, nil)
	if n, err := a.Heartbeat(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("after one replica left: %d live (err %v), want 1", n, err)
	}
}

// BenchmarkClusterAllow is the cluster decision of a limited token on a
// real Redis: most requests are served from the replica's lease; every
// lease (rate × 100ms) costs one script call, reported as redis-ops/op.
func BenchmarkClusterAllow(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"lease-1000", 1e9, 1e9}, // 1e9/s × 100ms, capped at MaxLease 1000
		{"lease-10", 100, 1e9},   // 100/s × 100ms: a round trip every 10 requests
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := redistest.Start(b)
			budget, err := limiter.NewRedisBudget(srv.Client(b), newPrefix())
			if err != nil {
				b.Fatal(err)
			}
			cb := &countingBudget{Budget: budget}
			c := limiter.NewCluster(limiter.ClusterOptions{Budget: cb, Timeout: time.Second})
			tok := newToken("tsw_clusterbench00000001", bc.rate, bc.burst)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if st := c.Allow(ctx, tok, time.Now()); !st.Enabled {
					b.Fatalf("status %+v", st)
				}
			}
			b.ReportMetric(float64(cb.takes.Load())/float64(b.N), "redis-ops/op")
		})
	}
}

// BenchmarkClusterAllowParallel is BenchmarkClusterAllow's first case
// from every core, on tokens of their own.
func BenchmarkClusterAllowParallel(b *testing.B) {
	srv := redistest.Start(b)
	budget, err := limiter.NewRedisBudget(srv.Client(b), newPrefix())
	if err != nil {
		b.Fatal(err)
	}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: time.Second})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		tok := newToken(fmt.Sprintf("tsw_clusterbench%08d", n.Add(1)), 1e9, 1e9)
		ctx := context.Background()
		for pb.Next() {
			c.Allow(ctx, tok, time.Now())
		}
	})
}
