package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

type gateFixture struct {
	gate   *Gate
	store  *countingGetter
	hasher *Hasher
}

func newGateFixture(t testing.TB, lim Limiter) *gateFixture {
	t.Helper()
	h, err := NewHasher(testPepper)
	if err != nil {
		t.Fatal(err)
	}
	store := &countingGetter{toks: map[string]*Token{}}
	v, err := NewValidator(ValidatorOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	g, err := NewGate(GateOptions{Validator: v, Hasher: h, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	return &gateFixture{gate: g, store: store, hasher: h}
}

func (f *gateFixture) token(t testing.TB, role Role, edit func(*Token)) string {
	tok, cred := testToken(t, f.hasher, 42, role)
	if edit != nil {
		edit(tok)
	}
	f.store.set(tok)
	return cred
}

type bodyBytes []byte

func (b bodyBytes) BodyPrefix() ([]byte, bool, error) { return b, true, nil }

func TestGateDecides(t *testing.T) {
	f := newGateFixture(t, nil)
	owner := f.token(t, RoleOwner, nil)
	acct := f.token(t, RoleAccounting, nil)
	inactive := f.token(t, RoleOwner, func(t *Token) { t.Status = StatusInactive })
	expired := f.token(t, RoleOwner, func(t *Token) { t.ExpiresAt = time.Now().Add(-time.Second) })
	revoked := f.token(t, RoleOwner, func(t *Token) { t.RevokedAt = time.Now(); t.SecretHash = [32]byte{} })
	unknown := func() string { _, c := mustCredential(t); return c }()
	wrongSecret := owner[:IDLen] + unknown[IDLen:] // valid shape, checksum fails
	// A known id with another secret and a valid checksum.
	var sum [checksumLen]byte
	body := owner[:IDLen] + unknown[IDLen:CredentialLen-checksumLen]
	encodeChecksum(&sum, checksum(body))
	forged := body + string(sum[:])

	tests := []struct {
		name string
		req  Request
		want Code
	}{
		{"owner reads instances", Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42", Authorization: "Bearer " + owner}, OK},
		{"no credential", Request{Method: "GET", Path: "/v2/Instance"}, CodeMissingToken},
		{"malformed", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + wrongSecret}, CodeMalformedToken},
		{"unknown id", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + unknown}, CodeInvalidToken},
		{"wrong secret", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + forged}, CodeInvalidToken},
		{"inactive", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + inactive}, CodeTokenInactive},
		{"expired", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + expired}, CodeTokenExpired},
		{"revoked", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + revoked}, CodeTokenRevoked},
		{"accounting reads invoices", Request{Method: "GET", Path: "/v2/invoice", Authorization: "Bearer " + acct}, OK},
		{"accounting reads instances", Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + acct}, CodePermissionDenied},
		{"other project in query", Request{Method: "GET", Path: "/v2/Instance", RawQuery: "projectid=7", Authorization: "Bearer " + owner}, CodeProjectMismatch},
		{"other project in body", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(`{"projectId":7}`), Authorization: "Bearer " + owner}, CodeProjectMismatch},
		{"own project in body", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(`{"projectId":42}`), Authorization: "Bearer " + owner}, OK},
		{"unknown route", Request{Method: "GET", Path: "/v2/Nope", Authorization: "Bearer " + owner}, CodeUnknownRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.gate.Decide(context.Background(), &tt.req, time.Now())
			if v.Code != tt.want {
				t.Fatalf("code = %v, want %v", v.Code, tt.want)
			}
			if (v.Code == OK) != (v.Token != nil && v.Code == OK) {
				t.Fatalf("verdict OK without a token")
			}
		})
	}
}

func TestGarbageCostsNoStoreCall(t *testing.T) {
	f := newGateFixture(t, nil)
	owner := f.token(t, RoleOwner, nil)
	for _, h := range []string{"", "Bearer", "Bearer x", "Basic Zm9vOmJhcg==", "Bearer " + owner[:len(owner)-1] + "!",
		"Bearer " + strings.ToUpper(owner), "Bearer " + owner + owner} {
		v := f.gate.Decide(context.Background(), &Request{Method: "GET", Path: "/v2/Instance", Authorization: h}, time.Now())
		if v.Code == OK {
			t.Fatalf("%q allowed", h)
		}
	}
	if n := f.store.reads.Load(); n != 0 {
		t.Fatalf("garbage credentials cost %d store reads", n)
	}
}

type denyAll struct{}

func (denyAll) Allow(context.Context, *Token, time.Time) LimitStatus {
	return LimitStatus{Enabled: true, Limit: 1, RetryAfter: 1500 * time.Millisecond}
}

func TestGateRateLimitIsLastStep(t *testing.T) {
	f := newGateFixture(t, denyAll{})
	owner := f.token(t, RoleOwner, nil)
	v := f.gate.Decide(context.Background(), &Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer " + owner}, time.Now())
	if v.Code != CodeRateLimited || v.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("verdict %v retry %v", v.Code, v.RetryAfter)
	}
	// A refusal earlier in the chain does not spend the budget.
	v = f.gate.Decide(context.Background(), &Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=1", Authorization: "Bearer " + owner}, time.Now())
	if v.Code != CodeProjectMismatch {
		t.Fatalf("verdict %v, want project_mismatch first", v.Code)
	}
}

// BenchmarkDecideCacheHit is the hot path: a cached Owner token calling a
// scoped list route.
func BenchmarkDecideCacheHit(b *testing.B) {
	f := newGateFixture(b, nil)
	owner := f.token(b, RoleOwner, nil)
	req := &Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Limit=10", Authorization: "Bearer " + owner}
	now := time.Now()
	if v := f.gate.Decide(context.Background(), req, now); v.Code != OK {
		b.Fatalf("warm-up: %v", v.Code)
	}
	f.gate.validator.Wait()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if v := f.gate.Decide(ctx, req, now); v.Code != OK || v.Cache != CacheHit {
			b.Fatalf("verdict %v, cache %v", v.Code, v.Cache)
		}
	}
}

func BenchmarkDecideCacheHitParallel(b *testing.B) {
	f := newGateFixture(b, nil)
	owner := f.token(b, RoleOwner, nil)
	req := &Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Limit=10", Authorization: "Bearer " + owner}
	now := time.Now()
	f.gate.Decide(context.Background(), req, now)
	f.gate.validator.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v := f.gate.Decide(context.Background(), req, now); v.Code != OK {
				b.Fatalf("verdict %v", v.Code)
			}
		}
	})
}

func BenchmarkDecideMalformed(b *testing.B) {
	f := newGateFixture(b, nil)
	req := &Request{Method: "GET", Path: "/v2/Instance", Authorization: "Bearer tsw_AAAAAAAAAAAAAAAAAAAA:tswsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	b.ReportAllocs()
	for b.Loop() {
		if v := f.gate.Decide(context.Background(), req, time.Now()); v.Code != CodeMalformedToken {
			b.Fatalf("verdict %v", v.Code)
		}
	}
}
