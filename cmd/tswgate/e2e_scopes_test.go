package main

// End-to-end tests of least privilege: scoped tokens and tokens bound to
// client address ranges, through the public listener, the token API
// (admin and self-service), the CLI, restarts and replicas.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

// mustCreate creates a token with the admin key.
func (g *testGateway) mustCreate(t testing.TB, req tokenapi.CreateRequest) tokenapi.Token {
	t.Helper()
	if req.ProjectID == 0 {
		req.ProjectID = testProject
	}
	tok, err := g.Admin.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("creating %+v: %v", req, err)
	}
	rememberSecret(tok.Token)
	return tok
}

// mustLackScope checks a permission_denied refusal naming perm.
func mustLackScope(t testing.TB, r *response, perm string) {
	t.Helper()
	MustBeRefused(t, r, auth.CodePermissionDenied)
	if wa := r.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="`+perm+`"`) {
		t.Errorf("WWW-Authenticate %q, want insufficient_scope with scope=%q", wa, perm)
	}
	if msg, _ := MustEnvelope(t, r); !strings.Contains(msg, perm) {
		t.Errorf("message %q does not name %s", msg, perm)
	}
}

func TestE2EScopesAndAddressRanges(t *testing.T) {
	up := MustStartUpstream(t, nil)
	dataDir := t.TempDir()
	env := []string{"TSWGATE_DATA_DIR=" + dataDir, "TSWGATE_TRUSTED_PROXIES=127.0.0.0/8"}
	g := MustStartGateway(t, up.URL, env...)
	body := []byte(`{"displayName":"web-1","projectId":42}`)
	from := func(g *testGateway, method, path, cred, client string, body []byte) *response {
		req := MustNewRequest(t, method, g.URL+path, cred, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if client != "" {
			req.Header.Set("X-Forwarded-For", client)
		}
		return MustDo(t, g.HTTP, req)
	}

	reader := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "ci-read", Scopes: []string{"compute.read"}, ExpiresIn: "2160h"})
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", reader.Token, nil))
	before := up.Hits()
	mustLackScope(t, from(g, "POST", "/v2/Instance", reader.Token, "", body), "compute.write")
	mustLackScope(t, g.MustCall(t, "GET", "/v2/Invoice", reader.Token, nil), "billing.read")
	if up.Hits() != before {
		t.Error("the upstream received a request the token's scopes lack")
	}

	bound := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "runner", AllowedIPs: []string{"198.51.100.0/24", "2001:db8::/32"}})
	MustBeProxied(t, from(g, "GET", "/v2/Instance", bound.Token, "198.51.100.7", nil))
	MustBeProxied(t, from(g, "GET", "/v2/Instance", bound.Token, "2001:db8::7", nil))
	before = up.Hits()
	MustBeRefused(t, from(g, "GET", "/v2/Instance", bound.Token, "203.0.113.9", nil), auth.CodeIPNotAllowed)
	MustBeRefused(t, from(g, "GET", "/v2/Instance", bound.Token, "", nil), auth.CodeIPNotAllowed) // the proxy itself
	if up.Hits() != before {
		t.Error("the upstream received a request from outside the token's ranges")
	}

	// Self-service: without tokens.read and tokens.write the scoped token
	// manages nothing (tokens, trail, webhooks) but may show and revoke
	// itself.
	ctx := context.Background()
	narrow := g.selfService(reader.Token)
	_, err := narrow.List(ctx, 0)
	mustAPIError(t, err, http.StatusForbidden, "permission_denied", "a compute.read token listing tokens")
	_, err = narrow.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "copy", ExpiresIn: "24h"})
	mustAPIError(t, err, http.StatusForbidden, "permission_denied", "a compute.read token copying itself")
	_, err = narrow.Rotate(ctx, reader.ID, tokenapi.RotateRequest{})
	mustAPIError(t, err, http.StatusForbidden, "permission_denied", "a compute.read token rotating itself")
	err = narrow.Do(ctx, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/x"}, nil)
	mustAPIError(t, err, http.StatusForbidden, "permission_denied", "a compute.read token creating a webhook")
	if own, err := narrow.Get(ctx, reader.ID); err != nil || own.ID != reader.ID {
		t.Errorf("a token showing its own record: %+v, %v", own, err)
	}

	// With tokens.write, the scoped token gives no more than it has.
	maker := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "ci-maker", Scopes: []string{"compute.read", "tokens.write"}, ExpiresIn: "2160h"})
	self := g.selfService(maker.Token)
	_, err = self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "wider", Scopes: []string{"compute.write"}, ExpiresIn: "24h"})
	mustAPIError(t, err, http.StatusForbidden, "scope_forbidden", "a scoped token creating a wider token")
	_, err = self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "reader", Scopes: []string{"tokens.read"}, ExpiresIn: "24h"})
	mustAPIError(t, err, http.StatusForbidden, "scope_forbidden", "a token without tokens.read giving it")
	child, err := self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "child", ExpiresIn: "24h"})
	if err != nil {
		t.Fatalf("self-service create: %v", err)
	}
	rememberSecret(child.Token)
	if !slices.Equal(child.Scopes, []string{"compute.read", "tokens.write"}) {
		t.Errorf("child scopes %v, want its maker's [compute.read tokens.write]", child.Scopes)
	}
	_, err = self.Update(context.Background(), child.ID, tokenapi.UpdateRequest{Scopes: &[]string{}})
	mustAPIError(t, err, http.StatusForbidden, "scope_forbidden", "a scoped token removing a child's scopes")
	if _, err := g.selfService(child.Token).Revoke(ctx, child.ID); err != nil {
		t.Errorf("a token revoking itself: %v", err)
	}

	// Both restrictions survive a restart of the embedded store.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ShutdownOnce(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	g2 := MustStartGateway(t, up.URL, env...)
	shown, err := g2.Admin.Get(context.Background(), bound.ID)
	if err != nil || !slices.Equal(shown.AllowedIPs, []string{"198.51.100.0/24", "2001:db8::/32"}) {
		t.Fatalf("after a restart: %+v, %v", shown, err)
	}
	mustLackScope(t, from(g2, "POST", "/v2/Instance", reader.Token, "", body), "compute.write")
	MustBeRefused(t, from(g2, "GET", "/v2/Instance", bound.Token, "203.0.113.9", nil), auth.CodeIPNotAllowed)
	MustBeProxied(t, from(g2, "GET", "/v2/Instance", bound.Token, "198.51.100.7", nil))
}

// TestE2ERedisScopesAcrossReplicas changes a token's scopes and ranges
// through gateway A while gateway B has it cached: B applies each change
// within 5 s (the announcement, not its cache TTL), and a gateway started
// afterwards reads them from Redis.
func TestE2ERedisScopesAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, redisEnv(srv)...)
	b := MustStartGateway(t, up.URL, redisEnv(srv)...)
	status := func(code int) func(*response) bool { return func(r *response) bool { return r.Status == code } }
	tok := a.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "replicated"})
	announced := 1.0

	step := func(name string, warm func(*response) bool, edit tokenapi.UpdateRequest, done func(*response) bool) *response {
		t.Helper()
		MustAwaitInvalidations(t, b, announced)
		MustAwaitCachedAs(t, b, tok.Token, "B answering before "+name, warm)
		a.mustUpdate(t, tok.ID, edit)
		announced++
		var last *response
		MustPoll(t, 5*time.Second, "B applying "+name, func() (bool, string) {
			last = b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
			return done(last), last.String()
		})
		return last
	}
	last := step("scopes billing.read", status(http.StatusOK), tokenapi.UpdateRequest{Scopes: &[]string{"billing.read"}}, status(http.StatusForbidden))
	mustLackScope(t, last, "compute.read")
	last = step("ranges elsewhere", status(http.StatusForbidden), tokenapi.UpdateRequest{Scopes: &[]string{}, AllowedIPs: &[]string{"10.0.0.0/8"}},
		func(r *response) bool { return r.Header.Get("X-Tsw-Error-Code") == "ip_not_allowed" })
	MustBeRefused(t, last, auth.CodeIPNotAllowed)

	c := MustStartGateway(t, up.URL, redisEnv(srv)...)
	shown, err := c.Admin.Get(context.Background(), tok.ID)
	if err != nil || shown.Scopes != nil || !slices.Equal(shown.AllowedIPs, []string{"10.0.0.0/8"}) {
		t.Fatalf("a new replica shows %+v, %v", shown, err)
	}
	MustBeRefused(t, c.MustCall(t, "GET", "/v2/Instance", tok.Token, nil), auth.CodeIPNotAllowed)
}

// TestCLITokenScopes runs token create, show and update with --scopes and
// --allow-ip.
func TestCLITokenScopes(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	env := []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=" + g.AdminKey()}
	res := MustRun(t, env, "token", "create", "--project", "42", "--role", "owner", "--name", "ci",
		"--scopes", "compute.read", "--allow-ip", "127.0.0.0/8", "--allow-ip", "::1", "--expires-in", "2160h", "-o", "json")
	if res.code != 0 {
		t.Fatalf("token create: %v", res)
	}
	var created tokenapi.Token
	if err := jsonUnmarshal(res.stdout, &created); err != nil {
		t.Fatal(err)
	}
	rememberSecret(created.Token)
	if !slices.Equal(created.Scopes, []string{"compute.read"}) || !slices.Equal(created.AllowedIPs, []string{"127.0.0.0/8", "::1/128"}) {
		t.Fatalf("created %v %v", created.Scopes, created.AllowedIPs)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", created.Token, nil))

	res = MustRun(t, env, "token", "show", created.ID)
	if res.code != 0 || !strings.Contains(res.stdout, "compute.read") || !strings.Contains(res.stdout, "127.0.0.0/8, ::1/128") {
		t.Fatalf("token show: %v", res)
	}
	res = MustRun(t, env, "token", "update", created.ID, "--scopes", "compute.read,billing.read", "--allow-ip", "")
	if res.code != 0 || !strings.Contains(res.stdout, "billing.read, compute.read") || !strings.Contains(res.stdout, "any address") {
		t.Fatalf("token update: %v", res)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Invoice", created.Token, nil))

	for _, args := range [][]string{
		{"token", "create", "--project", "42", "--role", "owner", "--name", "x", "--scopes", "compute.admin"},
		{"token", "create", "--project", "42", "--role", "owner", "--name", "x", "--allow-ip", "10.0.0.0/33"},
		{"token", "update", created.ID},
	} {
		res := MustRun(t, env, args...)
		if res.code == 0 {
			t.Errorf("%s: succeeded: %v", strings.Join(args, " "), res)
		}
	}
	if res := MustRun(t, env, "token", "create", "--project", "42", "--role", "owner", "--name", "x", "--scopes", "compute.admin"); !strings.Contains(res.stderr, "compute.admin") {
		t.Errorf("an unknown permission is not named: %v", res)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
