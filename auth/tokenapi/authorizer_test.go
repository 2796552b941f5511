package tokenapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

func TestAuthorizer(t *testing.T) {
	f := newFixture(t, nil)
	owner := f.create(t, CreateRequest{ProjectID: 42, Role: "owner"}).Token
	acct := f.create(t, CreateRequest{ProjectID: 42, Role: "accounting"}).Token
	valid, err := auth.NewValidator(auth.ValidatorOptions{Store: f.store, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(valid.Close)
	// storetest.NewHasher gives the same pepper each time: the
	// credentials the fixture issued verify.
	authn := &auth.Authenticator{Validator: valid, Hasher: storetest.NewHasher(t)}
	z, err := NewAuthorizer(Options{Store: f.store, AdminKeys: []string{testAdminKey}, Tokens: authn})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthorizer(Options{Store: f.store}); err == nil {
		t.Error("NewAuthorizer accepted no admin key and no authenticator")
	}
	var got *Principal
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := z.Authorize(w, r, "webhook.list")
		if !ok {
			return
		}
		got = p
		z.Refused(r, "webhook.list", p, 42, "probe", "", "a test refusal")
		w.WriteHeader(http.StatusNoContent)
	})
	for _, c := range []struct {
		name, key  string
		status     int
		code, kind string
	}{
		{"admin key", testAdminKey, 204, "", auth.ActorAdminKey},
		{"owner token", owner, 204, "", auth.ActorToken},
		{"accounting token", acct, 403, "role_forbidden", ""},
		{"wrong admin key", "not-the-key", 401, "invalid_admin_key", ""},
		{"none", "", 401, "missing_admin_key", ""},
	} {
		got = nil
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/webhooks", nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || rec.Header().Get("X-Tsw-Error-Code") != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, rec.Code, rec.Header().Get("X-Tsw-Error-Code"), c.status, c.code)
		}
		if c.kind != "" && (got == nil || got.Kind != c.kind || got.Admin() != (c.kind == auth.ActorAdminKey)) {
			t.Errorf("%s: principal %+v", c.name, got)
		}
		if c.kind == auth.ActorToken && got != nil && (got.Token == nil || got.Token.ProjectID != 42) {
			t.Errorf("%s: token %+v", c.name, got.Token)
		}
	}
	page, err := f.store.ReadAudit(context.Background(), auth.AuditQuery{ProjectID: 42, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, ev := range page.Events {
		if ev.Action == "webhook.list" {
			reasons[ev.Reason] = true
		}
	}
	if !reasons["probe"] || !reasons["role_forbidden"] {
		t.Errorf("audited webhook.list refusals: %v, want probe and role_forbidden", reasons)
	}
}
