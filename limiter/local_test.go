package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

var (
	ctx   = context.Background()
	t0    = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	owner = &auth.Token{ID: "tsw_owner00000000000000", Role: auth.RoleOwner}
	acct  = &auth.Token{ID: "tsw_acct000000000000000", Role: auth.RoleAccounting}
)

func TestLocalBucket(t *testing.T) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 2, Burst: 3}}})
	steps := []struct {
		at         time.Duration
		allowed    bool
		remaining  int
		retryAfter time.Duration
	}{
		{0, true, 2, 0},
		{0, true, 1, 0},
		{0, true, 0, 0},
		{0, false, 0, 500 * time.Millisecond}, // one token takes 1/2 s
		{250 * time.Millisecond, false, 0, 250 * time.Millisecond},
		{500 * time.Millisecond, true, 0, 0},
		{2 * time.Second, true, 2, 0}, // refilled to the burst, minus this one
	}
	for i, s := range steps {
		st := l.Allow(ctx, owner, t0.Add(s.at))
		if !st.Enabled || st.Allowed != s.allowed || st.Remaining != s.remaining || st.RetryAfter != s.retryAfter || st.Limit != 3 {
			t.Fatalf("step %d at %v: %+v, want allowed %v remaining %d retry %v", i, s.at, st, s.allowed, s.remaining, s.retryAfter)
		}
	}
}

func TestLocalUnlimitedRole(t *testing.T) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 1}}})
	for range 100 {
		if st := l.Allow(ctx, acct, t0); st.Enabled || !st.Allowed && st.Enabled {
			t.Fatalf("accounting limited: %+v", st)
		}
	}
	if l.Len() != 0 {
		t.Fatalf("unlimited tokens hold %d buckets", l.Len())
	}
	// Burst defaults to ceil(rate).
	if st := l.Allow(ctx, owner, t0); st.Limit != 1 {
		t.Fatalf("burst %d, want 1", st.Limit)
	}
}

func TestSweepDropsOnlyRefilledBuckets(t *testing.T) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 1, Burst: 10}}})
	busy := &auth.Token{ID: "tsw_busy000000000000000", Role: auth.RoleOwner}
	for range 10 {
		l.Allow(ctx, owner, t0)
	}
	l.Allow(ctx, busy, t0.Add(9*time.Second))
	// owner drained 10 tokens at t0 and is full again at t0+10s; busy took
	// one at 9s and is full at 10s too. At 9.5s neither may go.
	if n := l.Sweep(t0.Add(9500 * time.Millisecond)); n != 0 {
		t.Fatalf("swept %d buckets that were not full", n)
	}
	if n := l.Sweep(t0.Add(10 * time.Second)); n != 2 || l.Len() != 0 {
		t.Fatalf("swept %d, %d left", n, l.Len())
	}
	// A swept token starts with a full bucket, as it would have had.
	if st := l.Allow(ctx, owner, t0.Add(10*time.Second)); st.Remaining != 9 {
		t.Fatalf("after sweep: %+v", st)
	}
}

// A token's own limit overrides its role's, also when the role is
// unlimited; its burst defaults to ceil(rate).
func TestLocalOverride(t *testing.T) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 100, Burst: 100}}})
	own := &auth.Token{ID: "tsw_own00000000000000000", Role: auth.RoleOwner, RateLimit: 1, RateBurst: 2}
	for i, want := range []bool{true, true, false} {
		st := l.Allow(ctx, own, t0)
		if !st.Enabled || st.Allowed != want || st.Limit != 2 {
			t.Fatalf("owner with override 1/s burst 2, request %d: %+v, want allowed %v", i, st, want)
		}
	}
	// An override on an unlimited role's token.
	acctOwn := &auth.Token{ID: "tsw_acctown000000000000", Role: auth.RoleAccounting, RateLimit: 0.5}
	if st := l.Allow(ctx, acctOwn, t0); !st.Enabled || !st.Allowed || st.Limit != 1 {
		t.Fatalf("accounting with override 0.5/s: %+v, want limited with burst ceil(0.5) = 1", st)
	}
	if st := l.Allow(ctx, acctOwn, t0); st.Allowed || st.RetryAfter != 2*time.Second {
		t.Fatalf("accounting with override 0.5/s, second request: %+v, want refused for 2s", st)
	}
	// Without the override, the role's limit (or none) applies again.
	if st := l.Allow(ctx, acct, t0); st.Enabled {
		t.Fatalf("accounting without override: %+v, want unlimited", st)
	}
}

// When a token's limit changes (its record was updated), it starts a new
// bucket at the new limit; back at the old one, it finds the old bucket as
// it left it: going back and forth refills nothing (a root's own limit and
// the one its lineage carries may differ, and must not reset each other).
func TestLocalLimitChange(t *testing.T) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 1, Burst: 1}}})
	tok := *owner
	if st := l.Allow(ctx, &tok, t0); !st.Allowed {
		t.Fatalf("first request: %+v", st)
	}
	if st := l.Allow(ctx, &tok, t0); st.Allowed {
		t.Fatalf("second request at the role's 1/s: %+v, want refused", st)
	}
	raised := tok
	raised.RateLimit, raised.RateBurst = 10, 5
	for i := range 5 {
		if st := l.Allow(ctx, &raised, t0); !st.Allowed || st.Limit != 5 || st.Remaining != 4-i {
			t.Fatalf("request %d after raising the limit: %+v", i, st)
		}
	}
	if st := l.Allow(ctx, &raised, t0); st.Allowed {
		t.Fatalf("sixth request at burst 5: %+v, want refused", st)
	}
	// Cleared: the role's limit, whose bucket is still empty.
	if st := l.Allow(ctx, &tok, t0); st.Allowed || st.Limit != 1 {
		t.Fatalf("after clearing the override: %+v, want the role's bucket, still empty", st)
	}
	if st := l.Allow(ctx, &tok, t0.Add(time.Second)); !st.Allowed || st.Limit != 1 {
		t.Fatalf("a second later: %+v, want refilled", st)
	}
	if l.Len() != 2 {
		t.Fatalf("one token at two limits holds %d buckets, want 2", l.Len())
	}
	if n := l.Sweep(t0.Add(time.Hour)); n != 2 || l.Len() != 0 {
		t.Fatalf("Sweep dropped %d (%d left), want both", n, l.Len())
	}
}

// An unlimited token costs nothing: no bucket, no allocation.
func TestLocalUnlimitedCostsNothing(t *testing.T) {
	l := NewLocal(Options{})
	for _, tok := range []*auth.Token{owner, acct, {ID: "tsw_invalid000000000000", Role: auth.Role(200)}} {
		if st := l.Allow(ctx, tok, t0); st != (auth.LimitStatus{}) {
			t.Fatalf("%s with no limits configured: %+v, want the zero status", tok.ID, st)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { l.Allow(ctx, owner, t0) }); allocs != 0 {
		t.Errorf("Allow of an unlimited token allocates %v times", allocs)
	}
	if l.Len() != 0 {
		t.Fatalf("unlimited tokens hold %d buckets", l.Len())
	}
}

func BenchmarkLocalAllowUnlimited(b *testing.B) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleAccounting: {Rate: 1}}})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(ctx, owner, now)
	}
}

func BenchmarkLocalAllow(b *testing.B) {
	l := NewLocal(Options{ByRole: map[auth.Role]Limit{auth.RoleOwner: {Rate: 1e9, Burst: 1e9}}})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(ctx, owner, now)
	}
}
