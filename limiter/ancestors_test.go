package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/limiter"
)

// records is a token store for Options.Lookup: the records as they are
// now, with a switch that makes it unavailable.
type records struct {
	mu   sync.Mutex
	m    map[string]*auth.Token
	down bool
}

func newRecords(toks ...*auth.Token) *records {
	r := &records{m: map[string]*auth.Token{}}
	for _, t := range toks {
		r.put(t)
	}
	return r
}

func (r *records) put(t *auth.Token) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *t
	r.m[t.ID] = &c
}

func (r *records) lookup(_ context.Context, id string) (*auth.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, fmt.Errorf("get %s: %w", id, auth.ErrUnavailable)
	}
	if t, ok := r.m[id]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("get %s: %w", id, auth.ErrNotFound)
}

// madeBy returns a token made by maker (whose limit it copies, as the
// token API does), in maker's lineage.
func madeBy(t *testing.T, maker *auth.Token, id string) *auth.Token {
	t.Helper()
	kid := newToken(id, maker.RateLimit, maker.RateBurst)
	l, err := auth.DescendLineage(maker, maker.RateLimit, maker.RateBurst, maker.RateShadow, false)
	if err != nil {
		t.Fatal(err)
	}
	kid.Lineage = l
	return kid
}

// branch returns a root A, a child B of A, and two children of B, each
// made at burst 10, with B then narrowed to burst 2 by an operator (in
// recs, not in the records its children carry).
func branch(t *testing.T, n int) (recs *records, a, b *auth.Token, kids []*auth.Token) {
	a = newToken(fmt.Sprintf("tsw_ancestorroot%08d", n), tinyRate, 10)
	b = madeBy(t, a, fmt.Sprintf("tsw_ancestormid0%08d", n))
	kids = []*auth.Token{madeBy(t, b, fmt.Sprintf("tsw_ancestorkid1%08d", n)), madeBy(t, b, fmt.Sprintf("tsw_ancestorkid2%08d", n))}
	narrowed := *b
	narrowed.RateBurst = 2
	return newRecords(a, &narrowed, kids[0], kids[1]), a, &narrowed, kids
}

// TestLocalNarrowedBranchBindsItsDescendants: an operator narrows B, a
// child of root A; B's existing children together get B's new burst, not
// A's, and B itself shares that bucket with them.
func TestLocalNarrowedBranchBindsItsDescendants(t *testing.T) {
	recs, _, b, kids := branch(t, 1)
	l := limiter.NewLocal(limiter.Options{Lookup: recs.lookup})
	now := time.Now()
	admitted := 0
	for range 5 {
		for _, k := range kids {
			if l.Allow(context.Background(), k, now).Allowed {
				admitted++
			}
		}
	}
	if admitted != 2 {
		t.Fatalf("2 children of a branch narrowed to burst 2 admitted %d, want 2", admitted)
	}
	st := l.Allow(context.Background(), kids[0], now)
	if st.Allowed || !st.Lineage.Over || st.Lineage.Limit != 2 || st.RetryAfter <= 0 {
		t.Fatalf("a child over its narrowed parent: %+v, want refused by the lineage (limit 2)", st)
	}
	if st := l.Allow(context.Background(), b, now); st.Allowed {
		t.Fatalf("the narrowed parent after its children spent its burst: %+v, want refused", st)
	}
}

// TestLocalAncestorGoneOrUnreadable: an ancestor whose record is gone
// binds at the limit recorded when the token was made; one that cannot be
// read (store down, not cached) makes the request store_unavailable.
func TestLocalAncestorGoneOrUnreadable(t *testing.T) {
	recs, _, b, kids := branch(t, 2)
	delete(recs.m, b.ID)
	l := limiter.NewLocal(limiter.Options{Lookup: recs.lookup})
	now := time.Now()
	admitted := 0
	for range 15 {
		if l.Allow(context.Background(), kids[0], now).Allowed {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("with the parent's record gone admitted %d, want its recorded burst of 10", admitted)
	}
	recs.down = true
	if st := l.Allow(context.Background(), kids[1], now); st.Allowed || !st.Unavailable {
		t.Fatalf("an ancestor that cannot be read: %+v, want Unavailable", st)
	}
}

// TestLocalDeepLineageChecksEveryAncestor: at the deepest level, each
// ancestor's limit binds; the narrowest one (a middle one) refuses.
func TestLocalDeepLineageChecksEveryAncestor(t *testing.T) {
	maker := newToken("tsw_deeplineage000000000", tinyRate, 50)
	recs := newRecords(maker)
	for i := 1; i < auth.MaxLineageDepth; i++ {
		maker = madeBy(t, maker, fmt.Sprintf("tsw_deeplineage%09d", i))
		if i == 4 {
			maker.RateBurst = 3
		}
		recs.put(maker)
	}
	deepest := madeBy(t, maker, "tsw_deeplineage999999999")
	if d := deepest.Lineage.Depth(); d != auth.MaxLineageDepth {
		t.Fatalf("depth %d, want %d", d, auth.MaxLineageDepth)
	}
	if _, err := auth.DescendLineage(deepest, tinyRate, 1, false, false); !errors.Is(err, auth.ErrLineageTooDeep) {
		t.Fatalf("a token below the deepest: %v, want ErrLineageTooDeep", err)
	}
	l := limiter.NewLocal(limiter.Options{Lookup: recs.lookup})
	now := time.Now()
	admitted := 0
	for range 10 {
		if l.Allow(context.Background(), deepest, now).Allowed {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("admitted %d, want the narrowest ancestor's burst of 3", admitted)
	}
}

// TestLocalLineageShadowIsReported: a request over an ancestor's limit
// in shadow mode is admitted and reported as a shadow-mode decision,
// whether or not the token has an (enforced) limit of its own.
func TestLocalLineageShadowIsReported(t *testing.T) {
	root := newToken("tsw_shadowroot0000000001", tinyRate, 1)
	root.RateShadow = true
	l := limiter.NewLocal(limiter.Options{Lookup: newRecords(root).lookup})
	own := madeBy(t, root, "tsw_shadowkid00000000001")
	own.RateShadow, own.RateBurst = false, 5
	bare := madeBy(t, root, "tsw_shadowkid00000000002")
	bare.RateLimit, bare.RateBurst, bare.RateShadow = 0, 0, false
	now := time.Now()
	l.Allow(context.Background(), root, now)
	for _, tok := range []*auth.Token{own, bare} {
		st := l.Allow(context.Background(), tok, now)
		if !st.Allowed || !st.Enabled || !st.ShadowOver() || st.Lineage.Over {
			t.Errorf("%s over a lineage in shadow mode: %+v, want admitted and reported", tok.ID, st)
		}
	}
}

// TestClusterNarrowedBranchAcrossReplicas: on the shared budget, the
// children of a narrowed branch on two replicas together get the
// branch's new burst.
func TestClusterNarrowedBranchAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	budget := newBudget(t, srv.Client(t), newPrefix())
	recs, _, _, kids := branch(t, 3)
	opts := limiter.ClusterOptions{Options: limiter.Options{Lookup: recs.lookup}, Budget: budget, Timeout: takeTimeout}
	replicas := []*limiter.Cluster{limiter.NewCluster(opts), limiter.NewCluster(opts)}
	admitted := 0
	for _, k := range kids {
		admitted += hammer(replicas, k, 2, 5)
	}
	if admitted != 2 {
		t.Fatalf("2 children of a branch narrowed to burst 2 on 2 replicas admitted %d, want 2", admitted)
	}
}

// TestLocalRotationKeepsTheBucket: a token in a lineage that rotates
// itself (again and again) gives its successors no fresh burst: each
// successor draws on the bucket of the first token of the rotations.
func TestLocalRotationKeepsTheBucket(t *testing.T) {
	root := newToken("tsw_rotationroot00000001", tinyRate, 10)
	kid := madeBy(t, root, "tsw_rotationkid000000001")
	kid.RateBurst = 2 // narrowed by an operator
	recs := newRecords(root, kid)
	l := limiter.NewLocal(limiter.Options{Lookup: recs.lookup})
	now := time.Now()
	admitted := 0
	cur := kid
	for i := range 4 {
		for range 3 {
			if l.Allow(context.Background(), cur, now).Allowed {
				admitted++
			}
		}
		next := newToken(fmt.Sprintf("tsw_rotationkid%09d", i+2), cur.RateLimit, cur.RateBurst)
		lin, err := auth.DescendLineage(cur, cur.RateLimit, cur.RateBurst, false, true)
		if err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		next.Lineage = lin
		recs.put(next)
		cur = next
	}
	if admitted != 2 {
		t.Fatalf("a token of burst 2 and its 3 successors admitted %d, want 2", admitted)
	}
}

// TestRedisBudgetExtremeLimits: a valid limit however extreme (a tiny
// rate, a huge burst) is leased like any other: a Take that failed would
// make the replica decide alone for every token.
func TestRedisBudgetExtremeLimits(t *testing.T) {
	srv := redistest.Start(t)
	b, err := limiter.NewRedisBudget(srv.Client(t), newPrefix())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), takeTimeout)
	defer cancel()
	for _, lim := range []limiter.Limit{{Rate: 1e-300, Burst: 1}, {Rate: 5e-324, Burst: 1 << 31}, {Rate: 1e300, Burst: 1 << 62}} {
		for want := range []int{1, 2} {
			l, err := b.Take(ctx, "tsw_extremelimits0000001", lim, want+1, 1)
			if err != nil {
				t.Fatalf("Take under %+v: %v", lim, err)
			}
			if l.Granted < 0 || l.Wait < 0 {
				t.Fatalf("Take under %+v: %+v", lim, l)
			}
		}
	}
}
