package main

// End-to-end: the management APIs (tokens, audit, policy, webhooks) read
// requests strictly on both listeners, any token may show and revoke
// itself, and every call is checked against the caller's stored record,
// over Redis.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

// mustListProblem checks that r is 400 invalid_request whose errors list
// a problem holding want.
func mustListProblem(t *testing.T, what string, r *response, want string) {
	t.Helper()
	var e tokenapi.ErrorResponse
	if err := json.Unmarshal(r.Body, &e); err != nil || r.Status != http.StatusBadRequest || e.Code != "invalid_request" {
		t.Errorf("%s: %s, want 400 invalid_request", what, r)
		return
	}
	for _, p := range e.Errors {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("%s: errors %q do not list %q", what, e.Errors, want)
}

func TestE2EStrictManagementRequests(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv)...)
	ctx := context.Background()
	owner := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "owner"})
	victim := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "victim"})
	var ep struct {
		Endpoint struct {
			ID string `json:"id"`
		} `json:"endpoint"`
	}
	if err := g.Admin.Do(ctx, "POST", "/v1/projects/42/webhooks", map[string]any{"url": "https://93.184.216.34/hook"}, &ep); err != nil {
		t.Fatalf("creating a webhook endpoint: %v", err)
	}
	hook := ep.Endpoint.ID
	type call struct{ method, path, body, want string }
	calls := func(tokens, hooks, project string) []call {
		return []call{
			{"GET", tokens + "/v1/tokens?" + project + "stauts=active", "", "stauts: unknown parameter"},
			{"GET", tokens + "/v1/tokens?" + project + "status=", "", "status: empty"},
			{"GET", tokens + "/v1/tokens/" + victim.ID + "?limit=5", "", "limit: unknown parameter"},
			{"DELETE", tokens + "/v1/tokens/" + victim.ID + "?grace=1h", "", "grace: unknown parameter"},
			{"POST", tokens + "/v1/tokens/" + victim.ID + "/rotate?grace=1h", "", "grace: unknown parameter"},
			{"GET", tokens + "/v1/audit?" + project + "lmit=5", "", "lmit: unknown parameter"},
			{"GET", tokens + "/v1/policy?projectId=42", "", "projectId: unknown parameter"},
			{"POST", tokens + "/v1/tokens", `{"role":"owner","name":"x","expires_in":"1h","nmae":"y"}`, "nmae: unknown field"},
			{"PATCH", tokens + "/v1/tokens/" + victim.ID, `{"status":"inactive","scopes":null}`, "scopes: null is not a value"},
			{"GET", hooks + "?enabled=true", "", "enabled: unknown parameter"},
			{"GET", hooks + "/" + hook + "/deliveries?lmit=1", "", "lmit: unknown parameter; this endpoint reads limit"},
			{"PATCH", hooks + "/" + hook, `{"enabled":"no"}`, "enabled: true or false is expected, not a string"},
			{"DELETE", hooks + "/" + hook + "?force=1", "", "force: unknown parameter"},
		}
	}
	for _, l := range []struct {
		name, base, cred string
		calls            []call
	}{
		{"self-service", g.URL, owner.Token, calls("/tswgate", "/tswgate/v1/webhooks", "")},
		{"admin, owner token", g.AdminURL, owner.Token, calls("", "/v1/projects/42/webhooks", "")},
		{"admin, admin key", g.AdminURL, testAdminKey, calls("", "/v1/projects/42/webhooks", "project_id=42&")},
	} {
		for _, c := range l.calls {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			r := MustDo(t, g.HTTP, MustNewRequest(t, c.method, l.base+c.path, l.cred, body))
			mustListProblem(t, l.name+": "+c.method+" "+c.path, r, c.want)
		}
	}
	if got, err := g.Admin.Get(ctx, victim.ID); err != nil || got.Status != "active" || got.RotatedTo != "" {
		t.Errorf("victim after the refusals: %+v, %v", got, err)
	}
	if toks, err := g.Admin.List(ctx, testProject); err != nil || len(toks) != 2 {
		t.Errorf("%d tokens (%v), want 2: a refused create made one", len(toks), err)
	}
	var shown json.RawMessage
	if err := g.Admin.Do(ctx, "GET", "/v1/projects/42/webhooks/"+hook, nil, &shown); err != nil || !strings.Contains(string(shown), `"enabled": true`) {
		t.Errorf("endpoint after the refusals: %s, %v", shown, err)
	}
	// The CLI's client sends only what the endpoints read.
	self := &tokenapi.Client{BaseURL: g.URL + "/tswgate", AdminKey: owner.Token, HTTP: g.HTTP}
	if _, err := self.ListPage(ctx, tokenapi.ListOptions{Status: "active", Role: "owner", Limit: 1}); err != nil {
		t.Errorf("self-service list with filters: %v", err)
	}
	if _, err := g.Admin.Audit(ctx, tokenapi.AuditOptions{ProjectID: testProject, Limit: 5}); err != nil {
		t.Errorf("audit: %v", err)
	}
	if _, err := self.Policy(ctx, 0); err != nil {
		t.Errorf("self-service policy: %v", err)
	}
}

// An Accounting token may show its own record and revoke itself on
// either listener, and do nothing else there.
func TestE2EAccountingTokenRevokesItself(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv)...)
	sibling := g.mustCreate(t, tokenapi.CreateRequest{Role: "accounting", Name: "sibling"})
	for _, l := range []struct{ name, base string }{{"self-service", g.URL + "/tswgate"}, {"admin", g.AdminURL}} {
		acct := g.mustCreate(t, tokenapi.CreateRequest{Role: "accounting", Name: "billing-export"})
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Invoice?ProjectId=42", acct.Token, nil))
		do := func(method, path string) *response {
			return MustDo(t, g.HTTP, MustNewRequest(t, method, l.base+path, acct.Token, nil))
		}
		if r := do("GET", "/v1/tokens/"+acct.ID); r.Status != http.StatusOK {
			t.Errorf("%s: showing itself: %s", l.name, r)
		}
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/tokens"}, {"GET", "/v1/tokens/" + sibling.ID}, {"DELETE", "/v1/tokens/" + sibling.ID},
			{"POST", "/v1/tokens/" + acct.ID + "/rotate"}, {"GET", "/v1/audit"},
		} {
			if r := do(c.method, c.path); r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "role_forbidden") {
				t.Errorf("%s: %s %s: %s, want 403 role_forbidden", l.name, c.method, c.path, r)
			}
		}
		if r := do("DELETE", "/v1/tokens/"+acct.ID); r.Status != http.StatusOK {
			t.Fatalf("%s: revoking itself: %s", l.name, r)
		}
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Invoice?ProjectId=42", acct.Token, nil), auth.CodeTokenRevoked)
	}
	if got, err := g.Admin.Get(context.Background(), sibling.ID); err != nil || got.Status != "active" {
		t.Errorf("sibling: %+v, %v", got, err)
	}
}

// A narrowing that has not reached this replica's cache (written to
// Redis without an announcement, as if lost) applies to every call of the
// management APIs at once, reads included.
func TestE2EManagementReadsSeeStoredRecord(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv)...)
	tok := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "reader"})
	paths := []string{"/tswgate/v1/tokens", "/tswgate/v1/tokens/" + tok.ID, "/tswgate/v1/audit", "/tswgate/v1/policy", "/tswgate/v1/webhooks"}
	for _, p := range paths {
		if r := g.MustCall(t, "GET", p, tok.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %s", p, r)
		}
	}
	MustAwaitCached(t, g, tok.Token)
	key := g.Config().RedisPrefix + "tok:" + tok.ID
	if err := srv.Client(t).HSet(context.Background(), key, "scopes", "compute.read").Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		r := g.MustCall(t, "GET", p, tok.Token, nil)
		if p == "/tswgate/v1/tokens/"+tok.ID {
			if r.Status != http.StatusOK {
				t.Errorf("GET %s (its own record): %s", p, r)
			}
			continue
		}
		if r.Status != http.StatusForbidden || !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="tokens.read"`) {
			t.Errorf("GET %s after the narrowing: %s, want 403 permission_denied for tokens.read", p, r)
		}
	}
}
