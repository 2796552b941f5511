package auth

import (
	"context"
	"errors"
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

// countedBody counts its reads.
type countedBody struct {
	body  []byte
	reads int
	err   error
}

func (b *countedBody) BodyPrefix() ([]byte, bool, error) {
	b.reads++
	return b.body, b.err == nil, b.err
}

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

		// The query: "&" only, escapes checked.
		{"semicolon is data", Request{Method: "GET", Path: "/v2/Instance", RawQuery: "Tag=a;b&ProjectId=42", Authorization: "Bearer " + owner}, OK},
		{"bad escape", Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Tag=%zz", Authorization: "Bearer " + owner}, CodeInvalidQuery},
		{"IIS escape", Request{Method: "GET", Path: "/v2/Instance", RawQuery: "Project%u0049d=43", Authorization: "Bearer " + owner}, CodeInvalidQuery},

		// Bodies: presence, media type, coding, nesting.
		{"nested other project", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(`{"projectId":42,"service":{"projectId":43}}`), Authorization: "Bearer " + owner}, CodeProjectMismatch},
		{"GET with a body", Request{Method: "GET", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(`{"projectId":42}`), Authorization: "Bearer " + owner}, CodeBodyNotAllowed},
		{"GET with an empty body", Request{Method: "GET", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(""), Authorization: "Bearer " + owner}, OK},
		{"PowerCommand with a body", Request{Method: "POST", Path: "/v2/Metal/7/PowerCommand", RawQuery: "command=PowerOn", ContentType: "application/json",
			Body: bodyBytes(`{}`), Authorization: "Bearer " + owner}, CodeBodyNotAllowed},
		{"PowerCommand without a body", Request{Method: "POST", Path: "/v2/Metal/7/PowerCommand", RawQuery: "command=PowerOn", Authorization: "Bearer " + owner}, OK},
		{"PowerCommand with an empty body", Request{Method: "POST", Path: "/v2/Metal/7/PowerCommand", RawQuery: "command=PowerOn", ContentType: "application/json",
			Body: bodyBytes(""), Authorization: "Bearer " + owner}, OK},
		{"accounting GET with a form body", Request{Method: "GET", Path: "/v2/Usage", RawQuery: "projectId=42", ContentType: "application /x-www-form-urlencoded",
			Body: bodyBytes("projectId=43"), Authorization: "Bearer " + acct}, CodeBodyNotAllowed},
		{"form body", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/x-www-form-urlencoded",
			Body: bodyBytes("projectId=42"), Authorization: "Bearer " + owner}, CodeUnsupportedMediaType},
		{"no content type", Request{Method: "POST", Path: "/v2/Instance",
			Body: bodyBytes(`{"projectId":42}`), Authorization: "Bearer " + owner}, CodeUnsupportedMediaType},
		{"content type list", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json, text/plain",
			Body: bodyBytes(`/**/{"projectId":43}`), Authorization: "Bearer " + owner}, CodeUnsupportedMediaType},
		{"gzip", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json", ContentEncoding: "gzip",
			Body: bodyBytes(`{"projectId":42}`), Authorization: "Bearer " + owner}, CodeUnsupportedMediaType},
		{"utf-16", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json; charset=utf-16",
			Body: bodyBytes("{\x00}\x00"), Authorization: "Bearer " + owner}, CodeUnsupportedMediaType},
		{"comment", Request{Method: "POST", Path: "/v2/Instance", ContentType: "application/json",
			Body: bodyBytes(`/**/{"projectId":42}`), Authorization: "Bearer " + owner}, CodeInvalidBody},
		{"JSON patch", Request{Method: "PUT", Path: "/v2/Volume/extend", RawQuery: "projectId=42", ContentType: "application/json-patch+json",
			Body: bodyBytes(`[{"op":"replace","path":"/projectId","value":43}]`), Authorization: "Bearer " + owner}, CodeProjectMismatch},
		{"SDK rename", Request{Method: "POST", Path: "/v2/Metal/7/rename", ContentType: "application/json",
			Body: bodyBytes("{\"projectId\":42,\"displayName\":\"x\"}\n"), Authorization: "Bearer " + owner}, OK},
		{"SDK ssh key", Request{Method: "POST", Path: "/v2/SshKey", ContentType: "application/json",
			Body: bodyBytes("{\"projectId\":42,\"displayName\":\"k\",\"key\":\"ssh-ed25519 AAAA\"}\n"), Authorization: "Bearer " + owner}, OK},
		{"SDK create metal", Request{Method: "POST", Path: "/v2/Metal", RawQuery: "projectId=42", ContentType: "application/json",
			Body: bodyBytes("{\"displayName\":\"m\",\"regionId\":\"PIT1\",\"sshKeyIds\":[1]}\n"), Authorization: "Bearer " + owner}, OK},
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

// TestGateReadsBodyLast checks that the body is read only when every step
// before it passed, and that the steps come in order: route, role, query,
// body.
func TestGateReadsBodyLast(t *testing.T) {
	f := newGateFixture(t, nil)
	owner := f.token(t, RoleOwner, nil)
	acct := f.token(t, RoleAccounting, nil)
	for _, tc := range []struct {
		name      string
		method    string
		path      string
		query     string
		cred      string
		ct        string
		want      Code
		wantReads int
	}{
		{"unknown route", "POST", "/v2/Nope", "", owner, "text/plain", CodeUnknownRoute, 0},
		{"invalid path", "POST", "/v2/Instance/..", "", owner, "text/plain", CodeInvalidPath, 0},
		{"role", "POST", "/v2/Instance", "", acct, "text/plain", CodePermissionDenied, 0},
		{"query mismatch", "POST", "/v2/Instance", "ProjectId=43", owner, "text/plain", CodeProjectMismatch, 0},
		{"invalid query", "POST", "/v2/Instance", "a=%", owner, "text/plain", CodeInvalidQuery, 0},
		{"bad credential", "POST", "/v2/Instance", "", "tsw_x", "text/plain", CodeMalformedToken, 0},
		{"media type", "POST", "/v2/Instance", "", owner, "text/plain", CodeUnsupportedMediaType, 1},
		{"body not allowed", "GET", "/v2/Instance", "", owner, "text/plain", CodeBodyNotAllowed, 1},
		{"ok", "POST", "/v2/Instance", "ProjectId=42", owner, "application/json", OK, 1},
	} {
		b := &countedBody{body: []byte(`{"projectId":42}`)}
		req := Request{Method: tc.method, Path: tc.path, RawQuery: tc.query, Authorization: "Bearer " + tc.cred, ContentType: tc.ct, Body: b}
		if v := f.gate.Decide(context.Background(), &req, time.Now()); v.Code != tc.want || b.reads != tc.wantReads {
			t.Errorf("%s: %v after %d body reads, want %v after %d", tc.name, v.Code, b.reads, tc.want, tc.wantReads)
		}
	}
	b := &countedBody{err: errors.New("connection reset")}
	req := Request{Method: "POST", Path: "/v2/Instance", Authorization: "Bearer " + owner, ContentType: "application/json", Body: b}
	if v := f.gate.Decide(context.Background(), &req, time.Now()); v.Code != CodeInvalidBody || v.Err == nil {
		t.Errorf("a body that fails to read: %v, %v", v.Code, v.Err)
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
	for _, req := range []Request{
		{Method: "GET", Path: "/v2/Instance", Body: bodyBytes("x"), Authorization: "Bearer " + owner},
		{Method: "POST", Path: "/v2/Instance", ContentType: "text/plain", Body: bodyBytes("x"), Authorization: "Bearer " + owner},
		{Method: "POST", Path: "/v2/Instance", ContentType: "application/json", Body: bodyBytes(`{"a":{"projectId":1}}`), Authorization: "Bearer " + owner},
	} {
		if v = f.gate.Decide(context.Background(), &req, time.Now()); v.Code == CodeRateLimited || v.Code == OK {
			t.Fatalf("%s %s with body %q: verdict %v, want the body refused first", req.Method, req.Path, req.Body, v.Code)
		}
	}
}

// BenchmarkDecideBody is a cached Owner token creating a resource with a
// JSON body.
func BenchmarkDecideBody(b *testing.B) {
	f := newGateFixture(b, nil)
	owner := f.token(b, RoleOwner, nil)
	req := &Request{Method: "POST", Path: "/v2/Metal", RawQuery: "projectId=42", Authorization: "Bearer " + owner,
		ContentType: "application/json", Body: bodyBytes(`{"displayName":"web-1","projectId":42,"regionId":"PIT1","tierId":"c1.small","imageId":"ubuntu-24.04","sshKeyIds":[1,2],"tags":["prod","web"]}`)}
	now := time.Now()
	if v := f.gate.Decide(context.Background(), req, now); v.Code != OK {
		b.Fatalf("warm-up: %v", v.Code)
	}
	f.gate.validator.Wait()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if v := f.gate.Decide(ctx, req, now); v.Code != OK {
			b.Fatalf("verdict %v", v.Code)
		}
	}
}

// BenchmarkDecideCacheHit is the hot path: a cached Owner token calling a
// scoped list route.
func BenchmarkDecideCacheHit(b *testing.B) {
	f := newGateFixture(b, nil)
	owner := f.token(b, RoleOwner, nil)
	req := &Request{Method: "GET", Path: "/v2/Instance", RawQuery: "ProjectId=42&Limit=10", Authorization: "Bearer " + owner}
	benchCacheHit(b, f, req)
}

// benchCacheHit measures deciding req, an allowed request of a cached
// token.
func benchCacheHit(b *testing.B, f *gateFixture, req *Request) {
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
