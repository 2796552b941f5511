package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/limiter"
)

// TestGateProjectLimitSharedByTokens: two tokens of one project share its
// limit; the refusal is project_rate_limited and names the project's
// bucket; a token's own limit is checked first (its refusal stays
// rate_limited and spends nothing of the project's); another project and
// a project whose limit is removed are not limited, and cost no bucket.
func TestGateProjectLimitSharedByTokens(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	l.SetProjectLimits(map[int64]limiter.Limit{42: {Rate: tinyRate, Burst: 3}})
	f := newGate(t, l)
	a, b := f.token(t, nil), f.token(t, nil)
	own := f.token(t, func(t *auth.Token) { t.RateLimit, t.RateBurst = tinyRate, 1 })
	now := time.Now()
	f.warm(t, own, now) // 1 of the project's 3 (and own's only one)
	if v := f.gate.Decide(context.Background(), own, now); v.Code != auth.CodeRateLimited || v.Limit.Project.Over {
		t.Fatalf("a token over its own limit: %v %+v, want rate_limited by the token", v.Code, v.Limit)
	}
	for i, req := range []*auth.Request{a, b} {
		v := f.gate.Decide(context.Background(), req, now)
		if v.Code != auth.OK || !v.Limit.Project.Enabled || v.Limit.Project.Limit != 3 {
			t.Fatalf("request %d within the project limit: %v %+v", i, v.Code, v.Limit)
		}
	}
	for _, req := range []*auth.Request{a, b} {
		v := f.gate.Decide(context.Background(), req, now)
		if v.Code != auth.CodeProjectRateLimited || !v.Limit.Project.Over || v.RetryAfter <= 0 {
			t.Fatalf("over the project limit: %v %+v, want project_rate_limited with a Retry-After", v.Code, v.Limit)
		}
	}

	other := f.token(t, func(t *auth.Token) { t.ProjectID = 43 })
	other.RawQuery = "ProjectId=43"
	f.warm(t, other, now)
	if v := f.gate.Decide(context.Background(), other, now); v.Code != auth.OK || v.Limit.Enabled {
		t.Fatalf("a project without a limit: %v %+v", v.Code, v.Limit)
	}
	l.SetProjectLimits(nil)
	if v := f.gate.Decide(context.Background(), a, now); v.Code != auth.OK || v.Limit.Enabled {
		t.Fatalf("after the project limit was removed: %v %+v", v.Code, v.Limit)
	}
	if allocs := testing.AllocsPerRun(100, func() { f.gate.Decide(context.Background(), other, now) }); allocs != 0 {
		t.Errorf("deciding for a token of a project without a limit allocates %v times", allocs)
	}
}

// TestClusterProjectLimitAcrossReplicas: the project's budget is shared
// by every replica and every token of the project, with the leased design
// of a token's: exactly the burst is admitted (no refill), within the
// same bound on Redis calls.
func TestClusterProjectLimitAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	var replicas []*limiter.Cluster
	for range 3 {
		c := limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout})
		c.SetProjectLimits(map[int64]limiter.Limit{42: {Rate: tinyRate, Burst: 30}})
		replicas = append(replicas, c)
	}
	a := newToken("tsw_project0000000000001", 0, 0)
	b := newToken("tsw_project0000000000002", 0, 0)
	got := hammer(replicas, a, 4, 50) + hammer(replicas, b, 4, 50)
	if got != 30 {
		t.Fatalf("3 replicas admitted %d of 400 requests of two tokens sharing a project burst of 30, want exactly 30", got)
	}
	if n := budget.takes.Load(); n > 33 {
		t.Fatalf("%d Redis operations for 30 admissions and 370 refusals, want at most 33", n)
	}
	st := replicas[0].Allow(context.Background(), a, time.Now())
	if st.Allowed || !st.Project.Over {
		t.Fatalf("over the project's budget: %+v, want refused by the project", st)
	}
}

// TestSetProjectLimit: one project's limit is set, replaced and removed
// alone; the other projects' stay.
func TestSetProjectLimit(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	l.SetProjectLimits(map[int64]limiter.Limit{43: {Rate: tinyRate, Burst: 5}})
	a := newToken("tsw_setproject0000000001", 0, 0)
	other := newToken("tsw_setproject0000000002", 0, 0)
	other.ProjectID = 43
	now := time.Now()
	limitOf := func(tok *auth.Token) int {
		t.Helper()
		st := l.Allow(context.Background(), tok, now)
		if !st.Project.Enabled {
			return 0
		}
		return st.Project.Limit
	}
	if got := limitOf(a); got != 0 {
		t.Fatalf("project 42 before SetProjectLimit: limit %d, want none", got)
	}
	l.SetProjectLimit(42, limiter.Limit{Rate: tinyRate, Burst: 3})
	if got, o := limitOf(a), limitOf(other); got != 3 || o != 5 {
		t.Fatalf("after SetProjectLimit(42, burst 3): limits %d and %d, want 3 and 5", got, o)
	}
	l.SetProjectLimit(42, limiter.Limit{Rate: tinyRate, Burst: 7})
	if got := limitOf(a); got != 7 {
		t.Fatalf("after replacing: limit %d, want 7", got)
	}
	l.SetProjectLimit(42, limiter.Limit{})
	if got, o := limitOf(a), limitOf(other); got != 0 || o != 5 {
		t.Fatalf("after removing 42's limit: limits %d and %d, want none and 5", got, o)
	}
	l.SetProjectLimit(43, limiter.Limit{})
	if allocs := testing.AllocsPerRun(100, func() { l.Allow(context.Background(), a, now) }); allocs != 0 {
		t.Errorf("with no project limit left, Allow allocates %v times", allocs)
	}
}
