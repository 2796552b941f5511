package limiter_test

// The limiter inside the decision (auth.Gate), as the gateway wires it: the
// gateway always creates a Local, so a token without any limit must cost
// the decision nothing — no bucket, no allocation.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
)

// mapStore is an auth.Getter over fixed records.
type mapStore struct {
	mu   sync.Mutex
	toks map[string]*auth.Token
}

func (s *mapStore) Get(_ context.Context, id string) (*auth.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.toks[id]; ok {
		return t, nil
	}
	return nil, auth.ErrNotFound
}

type gateFixture struct {
	gate  *auth.Gate
	valid *auth.Validator
	store *mapStore
	hash  *auth.Hasher
}

func newGate(tb testing.TB, lim auth.Limiter) *gateFixture {
	tb.Helper()
	h, err := auth.NewHasher([]byte("limiter test pepper: for tests only, never in production"))
	if err != nil {
		tb.Fatal(err)
	}
	store := &mapStore{toks: map[string]*auth.Token{}}
	v, err := auth.NewValidator(auth.ValidatorOptions{Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	g, err := auth.NewGate(auth.GateOptions{Validator: v, Hasher: h, Limiter: lim})
	if err != nil {
		tb.Fatal(err)
	}
	return &gateFixture{gate: g, valid: v, store: store, hash: h}
}

// token stores an Owner token of project 42 and returns its request.
func (f *gateFixture) token(tb testing.TB, edit func(*auth.Token)) *auth.Request {
	tb.Helper()
	id, cred, err := auth.NewCredential()
	if err != nil {
		tb.Fatal(err)
	}
	tok := &auth.Token{ID: id, ProjectID: 42, Role: auth.RoleOwner, Status: auth.StatusActive, CreatedAt: time.Now()}
	tok.SecretHash, tok.PepperID = f.hash.Hash(cred)
	if edit != nil {
		edit(tok)
	}
	f.store.mu.Lock()
	f.store.toks[id] = tok
	f.store.mu.Unlock()
	return &auth.Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Limit=10", Authorization: "Bearer " + cred}
}

// warm decides req once and waits until its token is cached.
func (f *gateFixture) warm(tb testing.TB, req *auth.Request, now time.Time) {
	tb.Helper()
	if v := f.gate.Decide(context.Background(), req, now); v.Code != auth.OK {
		tb.Fatalf("warm-up: %v", v.Code)
	}
	f.valid.Wait()
}

func TestGateUnlimitedTokenCostsNoBucket(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{ByRole: map[auth.Role]limiter.Limit{auth.RoleAccounting: {Rate: 1}}})
	f := newGate(t, l)
	free := f.token(t, nil)
	own := f.token(t, func(t *auth.Token) { t.RateLimit, t.RateBurst = 1, 1 })
	now := time.Now()
	f.warm(t, free, now)
	for range 10 {
		v := f.gate.Decide(context.Background(), free, now)
		if v.Code != auth.OK || v.Limit.Enabled {
			t.Fatalf("unlimited owner token: %v, limit %+v", v.Code, v.Limit)
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("an unlimited token holds %d buckets", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { f.gate.Decide(context.Background(), free, now) }); allocs != 0 {
		t.Errorf("deciding for a cached unlimited token allocates %v times", allocs)
	}
	// The same role with its own limit is limited.
	if v := f.gate.Decide(context.Background(), own, now); v.Code != auth.OK || !v.Limit.Enabled || v.Limit.Limit != 1 {
		t.Fatalf("owner token with a 1/s override, first request: %v, limit %+v", v.Code, v.Limit)
	}
	if v := f.gate.Decide(context.Background(), own, now); v.Code != auth.CodeRateLimited {
		t.Fatalf("owner token with a 1/s override, second request: %v, want rate_limited", v.Code)
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets, want the limited token's only", n)
	}
}

// BenchmarkGateDecide compares the cached-token decision without a limiter
// (what the gateway did when no role had a rate) and with the Local the
// gateway now always has, for a token without a limit and one with.
func BenchmarkGateDecide(b *testing.B) {
	for _, c := range []struct {
		name    string
		lim     func() auth.Limiter
		limited bool
	}{
		{"no-limiter", func() auth.Limiter { return nil }, false},
		{"unlimited-token", func() auth.Limiter { return limiter.NewLocal(limiter.Options{}) }, false},
		{"limited-token", func() auth.Limiter { return limiter.NewLocal(limiter.Options{}) }, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newGate(b, c.lim())
			req := f.token(b, func(t *auth.Token) {
				if c.limited {
					t.RateLimit, t.RateBurst = 1e9, 1e9
				}
			})
			now := time.Now()
			f.warm(b, req, now)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if v := f.gate.Decide(ctx, req, now); v.Code != auth.OK {
					b.Fatalf("verdict %v", v.Code)
				}
			}
		})
	}
}
