package tokenapi

// Token management is a permission: tokens.read and tokens.write.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

// A token whose scopes name neither tokens.read nor tokens.write manages
// nothing: not the project's tokens, not the trail, not webhooks; but it
// may read its own record and revoke itself.
func TestManagementNeedsTokenPermissions(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	narrow := f.mint(t, CreateRequest{Name: "ci-read", Scopes: []string{"compute.read"}})
	reader := f.mint(t, CreateRequest{Name: "auditor", Scopes: []string{"tokens.read"}})
	writer := f.mint(t, CreateRequest{Name: "rotator", Scopes: []string{"compute.read", "tokens.write"}})
	wide := f.mint(t, CreateRequest{Name: "wide"})
	victim := f.mint(t, CreateRequest{Name: "victim"})

	for _, c := range []struct {
		method, path, body, perm string
	}{
		{"GET", "/v1/tokens", "", "tokens.read"},
		{"GET", "/v1/tokens/" + victim.ID, "", "tokens.read"},
		{"GET", "/v1/audit", "", "tokens.read"},
		{"GET", "/v1/policy", "", "tokens.read"},
		{"POST", "/v1/tokens", `{"role":"owner","name":"copy"}`, "tokens.write"},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"status":"inactive"}`, "tokens.write"},
		{"PATCH", "/v1/tokens/" + narrow.ID, `{"expires_in":"1h"}`, "tokens.write"},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate", "", "tokens.write"},
		{"POST", "/v1/tokens/" + narrow.ID + "/rotate", "", "tokens.write"},
		{"DELETE", "/v1/tokens/" + victim.ID, "", "tokens.write"},
	} {
		a := f.call(t, c.method, c.path, narrow.Token, c.body)
		mustRefuse(t, a, http.StatusForbidden, "permission_denied")
		if !strings.Contains(a.err.Message, c.perm) || !strings.Contains(a.err.Message, "scopes") {
			t.Errorf("%s %s: message %q does not name %s and how to get it", c.method, c.path, a.err.Message, c.perm)
		}
		if ch := a.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="`+c.perm+`"`) {
			t.Errorf("%s %s: WWW-Authenticate %q", c.method, c.path, ch)
		}
		f.nextMinute() // past the trail's sampling
	}
	if got := f.stored(t, victim.ID); got.Status != auth.StatusActive || got.Revoked() || got.Rotated() {
		t.Errorf("victim changed by a token without tokens.write: %+v", got)
	}
	if l, err := f.store.List(context.Background(), 42); err != nil || len(l) != 5 {
		t.Errorf("%d live tokens (%v), want the 5 minted", len(l), err)
	}
	if n := f.refusals(t, 42)["token.create permission_denied"]; n != 1 {
		t.Errorf("token.create permission_denied refusals in the trail: %d, want 1", n)
	}
	for _, ev := range f.trail(t, 42) {
		if ev.Reason == "permission_denied" && (ev.Actor != narrow.ID || !strings.Contains(ev.Detail, "tokens.")) {
			t.Errorf("refusal event %+v: want the actor and the missing permission", ev)
		}
	}

	// tokens.read reads, and only reads.
	mustOK(t, f.call(t, "GET", "/v1/tokens", reader.Token, ""))
	mustOK(t, f.call(t, "GET", "/v1/tokens/"+victim.ID, reader.Token, ""))
	mustOK(t, f.call(t, "GET", "/v1/audit", reader.Token, ""))
	mustRefuse(t, f.call(t, "POST", "/v1/tokens", reader.Token, `{"role":"owner","name":"x"}`), 403, "permission_denied")

	// tokens.write writes, and gives at most what it has.
	mustRefuse(t, f.call(t, "GET", "/v1/tokens", writer.Token, ""), 403, "permission_denied")
	child, err := f.self(writer.Token).Create(context.Background(), CreateRequest{Role: "owner", Name: "child"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"compute.read", "tokens.write"}; !slices.Equal(child.Scopes, want) {
		t.Errorf("child's scopes %v, want the maker's %v", child.Scopes, want)
	}
	_, err = f.self(writer.Token).Create(context.Background(), CreateRequest{Role: "owner", Name: "x", Scopes: []string{"tokens.read"}})
	apiError(t, err, 403, "scope_forbidden")
	// Narrowing a token is within the writer's rights; widening it to
	// token management is not.
	if _, err := f.self(writer.Token).Update(context.Background(), child.ID, UpdateRequest{Scopes: &[]string{"compute.read"}}); err != nil {
		t.Errorf("narrowing the child: %v", err)
	}
	_, err = f.self(writer.Token).Update(context.Background(), narrow.ID, UpdateRequest{Scopes: &[]string{"compute.read", "tokens.read"}})
	apiError(t, err, 403, "scope_forbidden")

	// An unscoped Owner token manages everything, as ever.
	mustOK(t, f.call(t, "GET", "/v1/tokens", wide.Token, ""))
	mustOK(t, f.call(t, "GET", "/v1/audit", wide.Token, ""))
	if _, err := f.self(wide.Token).Create(context.Background(), CreateRequest{Role: "owner", Name: "w", Scopes: []string{"tokens.read", "tokens.write"}}); err != nil {
		t.Errorf("an unscoped Owner token giving token management: %v", err)
	}

	// Its own record, and revoking itself, need no permission.
	mustOK(t, f.call(t, "GET", "/v1/tokens/"+narrow.ID, narrow.Token, ""))
	mustOK(t, f.call(t, "DELETE", "/v1/tokens/"+narrow.ID, narrow.Token, ""))
	if !f.stored(t, narrow.ID).Revoked() {
		t.Error("a token could not revoke itself")
	}
}

// The role grants the token permissions to Owner only, and an admin key
// gives them as any other.
func TestTokenPermissionsByRole(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	_, err := f.admin.Create(context.Background(), CreateRequest{ProjectID: 42, Role: "accounting", Name: "a", Scopes: []string{"tokens.read"}})
	if e := apiError(t, err, 400, "invalid_request"); !strings.Contains(e.Error(), "accounting role does not grant tokens.read") {
		t.Errorf("accounting with tokens.read: %v", e)
	}
	acct := f.mint(t, CreateRequest{Role: "accounting"})
	mustRefuse(t, f.call(t, "GET", "/v1/tokens", acct.Token, ""), 403, "role_forbidden")
	tok := f.mint(t, CreateRequest{Scopes: []string{"tokens.write", "TOKENS.READ"}})
	if want := []string{"tokens.read", "tokens.write"}; !slices.Equal(tok.Scopes, want) {
		t.Errorf("scopes %v, want %v", tok.Scopes, want)
	}
}

// Webhooks are token management: listing needs tokens.read, every change
// tokens.write.
func TestAuthorizerNeedsTokenPermissions(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	z, err := NewAuthorizer(Options{Store: f.store, Tokens: &auth.Authenticator{Validator: f.valid, Hasher: storetest.NewHasher(t)}})
	if err != nil {
		t.Fatal(err)
	}
	narrow := f.mint(t, CreateRequest{Scopes: []string{"compute.read"}})
	reader := f.mint(t, CreateRequest{Scopes: []string{"tokens.read"}})
	wide := f.mint(t, CreateRequest{})
	for _, c := range []struct {
		cred, action string
		status       int
		code         string
	}{
		{narrow.Token, "webhook.list", 403, "permission_denied"},
		{narrow.Token, "webhook.create", 403, "permission_denied"},
		{reader.Token, "webhook.list", 204, ""},
		{reader.Token, "webhook.deliveries", 204, ""},
		{reader.Token, "webhook.create", 403, "permission_denied"},
		{reader.Token, "webhook.replay", 403, "permission_denied"},
		{wide.Token, "webhook.create", 204, ""},
		{wide.Token, "webhook.delete", 204, ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+c.cred)
		if _, ok := z.Authorize(rec, req, c.action); ok {
			rec.WriteHeader(http.StatusNoContent)
		}
		if rec.Code != c.status || rec.Header().Get("X-Tsw-Error-Code") != c.code {
			t.Errorf("%s by %s: %d %s, want %d %s", c.action, c.cred[:8], rec.Code, rec.Header().Get("X-Tsw-Error-Code"), c.status, c.code)
		}
	}
}

// mustOK checks that an answer is a success.
func mustOK(t *testing.T, a answer) {
	t.Helper()
	if a.status/100 != 2 {
		t.Fatalf("HTTP %d %q, want success\n%s", a.status, a.err.Code, a.body)
	}
}
