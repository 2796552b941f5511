package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/limiter"
)

// lineageOf returns tokens made from root: each with its own copy of
// root's limit, and root's lineage (a token made by a token).
func lineageOf(root *auth.Token, ids ...string) []*auth.Token {
	out := make([]*auth.Token, len(ids))
	for i, id := range ids {
		c := newToken(id, root.RateLimit, root.RateBurst)
		c.Lineage = auth.Lineage{Root: root.ID, Rate: root.RateLimit, Burst: root.RateBurst}
		out[i] = c
	}
	return out
}

// TestLocalLineageSharesTheRootsBucket: a root and the tokens made from
// it (each with a bucket of its own at the root's limit) together get the
// root's burst, not one burst each; the refusal of a child by the lineage
// is rate_limited and names the lineage; a root pays no second check, and
// a lineage without a limit costs no bucket.
func TestLocalLineageSharesTheRootsBucket(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	root := newToken("tsw_lineageroot000000001", tinyRate, 4)
	all := append([]*auth.Token{root}, lineageOf(root, "tsw_lineagekid0000000001", "tsw_lineagekid0000000002", "tsw_lineagekid0000000003")...)
	admitted := 0
	now := time.Now()
	for range 2 {
		for _, tok := range all {
			if l.Allow(context.Background(), tok, now).Allowed {
				admitted++
			}
		}
	}
	if admitted != 4 {
		t.Fatalf("a root and 3 children admitted %d, want the root's burst of 4", admitted)
	}
	st := l.Allow(context.Background(), all[1], now)
	if st.Allowed || !st.Over || !st.Lineage.Enabled || !st.Lineage.Over || st.Lineage.Limit != 4 || st.RetryAfter <= 0 {
		t.Fatalf("a child over the lineage: %+v, want refused by the lineage with a Retry-After", st)
	}
	if st := l.Allow(context.Background(), root, now); st.Lineage.Enabled {
		t.Fatalf("a root: %+v, want no lineage check", st)
	}

	// A child whose maker had no limit is limited by its own alone.
	free := newToken("tsw_lineagekid0000000004", tinyRate, 1)
	free.Lineage = auth.Lineage{Root: "tsw_lineageroot000000002"}
	n := l.Len()
	if st := l.Allow(context.Background(), free, now); !st.Allowed || st.Lineage.Enabled {
		t.Fatalf("a lineage without a limit: %+v", st)
	}
	if l.Len() != n+1 {
		t.Fatalf("a lineage without a limit holds a bucket (%d, want %d)", l.Len(), n+1)
	}
}

// TestLocalLineageFlipDoesNotRefill: the root's own limit changed after
// its children were made; the root at its new limit and the children at
// the carried one use two buckets and never reset each other.
func TestLocalLineageFlipDoesNotRefill(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	root := newToken("tsw_lineageroot000000003", tinyRate, 2)
	kid := lineageOf(root, "tsw_lineagekid0000000005")[0]
	raised := *root
	raised.RateBurst = 3
	now := time.Now()
	admitted := 0
	for range 10 {
		for _, tok := range []*auth.Token{&raised, kid} {
			if l.Allow(context.Background(), tok, now).Allowed {
				admitted++
			}
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d, want 3 (root's new burst) + 2 (the lineage's carried burst)", admitted)
	}
}

// TestLocalLineageShadow: a lineage carried in shadow mode (its root's
// limit was) admits, and reports a request over it.
func TestLocalLineageShadow(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	kid := newToken("tsw_lineagekid0000000006", tinyRate, 5)
	kid.Lineage = auth.Lineage{Root: "tsw_lineageroot000000004", Rate: tinyRate, Burst: 1, Shadow: true}
	now := time.Now()
	l.Allow(context.Background(), kid, now)
	if st := l.Allow(context.Background(), kid, now); !st.Allowed || st.Lineage.Over || !st.ShadowOver() {
		t.Fatalf("over a lineage in shadow mode: %+v, want admitted and reported", st)
	}
}

// TestGateLineageRefusalIsRateLimited: the gate answers a lineage's
// refusal rate_limited (the token's own 429), with the lineage named in
// the status and a Retry-After.
func TestGateLineageRefusalIsRateLimited(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	f := newGate(t, l)
	var root *auth.Token
	parent := f.token(t, func(t *auth.Token) { t.RateLimit, t.RateBurst = tinyRate, 1; root = t })
	child := f.token(t, func(t *auth.Token) {
		t.RateLimit, t.RateBurst = tinyRate, 1
		t.Lineage = auth.Lineage{Root: root.ID, Rate: tinyRate, Burst: 1}
	})
	now := time.Now()
	f.warm(t, parent, now) // the lineage's one request
	v := f.gate.Decide(context.Background(), child, now)
	if v.Code != auth.CodeRateLimited || !v.Limit.Lineage.Over || v.Limit.Project.Over || v.RetryAfter <= 0 {
		t.Fatalf("a child of a spent root: %v %+v, want rate_limited by the lineage", v.Code, v.Limit)
	}
}

// TestClusterLineageAcrossReplicas: on the shared budget, a root and its
// children on two replicas together get exactly the root's burst.
func TestClusterLineageAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	replicas := []*limiter.Cluster{
		limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout}),
		limiter.NewCluster(limiter.ClusterOptions{Budget: budget, Timeout: takeTimeout}),
	}
	root := newToken("tsw_lineageroot000000005", tinyRate, 5)
	kids := lineageOf(root, "tsw_lineagekid0000000007", "tsw_lineagekid0000000008", "tsw_lineagekid0000000009")
	admitted := 0
	for _, tok := range append([]*auth.Token{root}, kids[:2]...) {
		admitted += hammer(replicas, tok, 2, 10)
	}
	if admitted != 5 {
		t.Fatalf("a root and 2 children on 2 replicas admitted %d, want the root's burst of 5", admitted)
	}
	st := replicas[0].Allow(context.Background(), kids[2], time.Now())
	if st.Allowed || !st.Lineage.Over {
		t.Fatalf("a child over the lineage: %+v, want refused by the lineage", st)
	}
}
