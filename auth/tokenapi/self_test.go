package tokenapi

// Any token may show its own record and revoke itself, whatever its role
// and scopes; and every call is checked against the caller's record as
// stored now.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
)

func TestEveryTokenShowsAndRevokesItself(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	sibling := f.mint(t, CreateRequest{Name: "sibling", Role: "accounting"})
	for _, tc := range []struct {
		name string
		req  CreateRequest
	}{
		{"accounting", CreateRequest{Role: "accounting"}},
		{"accounting with scopes", CreateRequest{Role: "accounting", Scopes: []string{"billing.read"}}},
		{"owner without token permissions", CreateRequest{Scopes: []string{"compute.read"}}},
	} {
		for _, listener := range []string{"self-service", "admin"} {
			tok := f.mint(t, tc.req)
			call := func(method, path, body string) answer {
				if listener == "admin" {
					return rawCall(t, f.public.Client(), f.admin.BaseURL, method, path, tok.Token, body)
				}
				return f.call(t, method, path, tok.Token, body)
			}
			what := tc.name + " on " + listener
			if a := call("GET", "/v1/tokens/"+tok.ID, ""); a.status != http.StatusOK {
				t.Errorf("%s: showing itself: HTTP %d\n%s", what, a.status, a.body)
			}
			// Nothing else: the role or the permission is refused.
			code := "role_forbidden"
			if tc.req.Role == "" {
				code = "permission_denied"
			}
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/v1/tokens", ""},
				{"GET", "/v1/tokens/" + sibling.ID, ""},
				{"DELETE", "/v1/tokens/" + sibling.ID, ""},
				{"PATCH", "/v1/tokens/" + tok.ID, `{"status":"inactive"}`},
				{"POST", "/v1/tokens/" + tok.ID + "/rotate", ""},
				{"POST", "/v1/tokens", `{"role":"accounting","name":"x"}`},
				{"GET", "/v1/audit", ""},
				{"GET", "/v1/policy", ""},
			} {
				if a := call(c.method, c.path, c.body); a.status != http.StatusForbidden || a.err.Code != code {
					t.Errorf("%s: %s %s: HTTP %d %s, want 403 %s", what, c.method, c.path, a.status, a.err.Code, code)
				}
			}
			a := call("DELETE", "/v1/tokens/"+tok.ID, "")
			if a.status != http.StatusOK {
				t.Errorf("%s: revoking itself: HTTP %d\n%s", what, a.status, a.body)
			}
			if !f.stored(t, tok.ID).Revoked() {
				t.Errorf("%s: not revoked", what)
			}
			if a := call("GET", "/v1/tokens/"+tok.ID, ""); a.status != http.StatusUnauthorized || a.err.Code != "token_revoked" {
				t.Errorf("%s: after revoking itself: HTTP %d %s, want 401 token_revoked", what, a.status, a.err.Code)
			}
			f.nextMinute() // past the trail's sampling
		}
	}
	if got := f.stored(t, sibling.ID); got.Revoked() {
		t.Error("the sibling was revoked")
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 1 {
		t.Errorf("%d live tokens, want the sibling alone", len(l))
	}
}

// A token in its rotation grace period may show and revoke itself, its
// role notwithstanding; an inactive or expired token may not (401, as on
// the API: a token that cannot be used cannot act).
func TestSelfActionsOfUnusualTokens(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	acct := f.mint(t, CreateRequest{Role: "accounting"})
	if _, err := f.admin.Rotate(context.Background(), acct.ID, RotateRequest{Grace: "1h"}); err != nil {
		t.Fatal(err)
	}
	if a := f.call(t, "GET", "/v1/tokens/"+acct.ID, acct.Token, ""); a.status != http.StatusOK {
		t.Errorf("rotated accounting token showing itself: HTTP %d\n%s", a.status, a.body)
	}
	if a := f.call(t, "DELETE", "/v1/tokens/"+acct.ID, acct.Token, ""); a.status != http.StatusOK {
		t.Errorf("rotated accounting token revoking itself: HTTP %d\n%s", a.status, a.body)
	}

	inactive := f.mint(t, CreateRequest{Role: "accounting"})
	if _, err := f.admin.Update(context.Background(), inactive.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
		t.Fatal(err)
	}
	expired := f.mint(t, CreateRequest{ExpiresIn: "1h"})
	f.mu.Lock()
	f.skew += 2 * time.Hour
	f.mu.Unlock()
	for _, c := range []struct {
		tok  Token
		code string
	}{{inactive, "token_inactive"}, {expired, "token_expired"}} {
		for _, method := range []string{"GET", "DELETE"} {
			if a := f.call(t, method, "/v1/tokens/"+c.tok.ID, c.tok.Token, ""); a.status != http.StatusUnauthorized || a.err.Code != c.code {
				t.Errorf("%s on itself by a token %s: HTTP %d %s, want 401", method, c.code, a.status, a.err.Code)
			}
		}
		if f.stored(t, c.tok.ID).Revoked() {
			t.Errorf("%s: revoked", c.code)
		}
	}
}

// Reads are checked against the caller's record as stored now: a
// narrowing made on another replica applies at once, before its
// announcement reaches this one's cache.
func TestReadsCheckTheStoredRecord(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	edit := func(id string, fn func(*auth.Token)) {
		t.Helper()
		if _, err := f.store.Update(ctx, id, func(u *auth.Token) error { fn(u); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(string)
		status int
		code   string
	}{
		{"scopes narrowed", func(id string) {
			edit(id, func(u *auth.Token) { u.Scopes = auth.PermSet(0).With(auth.PermComputeRead) })
		}, 403, "permission_denied"},
		{"ranges narrowed", func(id string) {
			edit(id, func(u *auth.Token) { u.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} })
		}, 403, "ip_not_allowed"},
		{"deactivated", func(id string) { edit(id, func(u *auth.Token) { u.Status = auth.StatusInactive }) }, 401, "token_inactive"},
		{"revoked", func(id string) {
			if _, err := f.store.Revoke(ctx, id, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, 401, "token_revoked"},
	} {
		tok := f.mint(t, CreateRequest{Name: tc.name})
		for _, path := range []string{"/v1/tokens", "/v1/audit", "/v1/policy"} {
			if a := f.call(t, "GET", path, tok.Token, ""); a.status != http.StatusOK { // cached now
				t.Fatalf("%s: GET %s: HTTP %d", tc.name, path, a.status)
			}
		}
		tc.change(tok.ID) // behind this replica's cache
		for _, path := range []string{"/v1/tokens", "/v1/audit", "/v1/policy"} {
			a := f.call(t, "GET", path, tok.Token, "")
			if a.status != tc.status || a.err.Code != tc.code {
				t.Errorf("%s: GET %s: HTTP %d %s, want %d %s", tc.name, path, a.status, a.err.Code, tc.status, tc.code)
			}
		}
		f.nextMinute()
	}
}

// failingGets fails Get of the ids set, as a store outage would, or with
// another error.
type failingGets struct {
	auth.ActivityStore
	mu   sync.Mutex
	fail map[string]error
}

func (s *failingGets) Get(ctx context.Context, id string) (*auth.Token, error) {
	s.mu.Lock()
	err := s.fail[id]
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.ActivityStore.Get(ctx, id)
}

// When the store cannot give the caller's record, every call is answered
// 503 store_unavailable, never 401 or 403 (nor 500).
func TestCallerRecordOutageIs503(t *testing.T) {
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	valid, err := auth.NewValidator(auth.ValidatorOptions{Store: st, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(valid.Close)
	hasher := storetest.NewHasher(t)
	api := &failingGets{ActivityStore: st, fail: map[string]error{}}
	h, err := New(Options{Store: api, Hasher: hasher, Tokens: &auth.Authenticator{Validator: valid, Hasher: hasher},
		Invalidate: valid.Invalidate, Prefix: "/tswgate", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	id, cred, err := hasher.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	tok := &auth.Token{ID: id, ProjectID: 42, Name: "caller", Role: auth.RoleOwner, Status: auth.StatusActive, CreatedAt: time.Now()}
	tok.SecretHash, tok.PepperID = hasher.Hash(cred)
	if err := st.Create(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/tswgate"
	if a := rawCall(t, srv.Client(), base, "GET", "/v1/tokens", cred, ""); a.status != http.StatusOK { // cached now
		t.Fatalf("list: HTTP %d\n%s", a.status, a.body)
	}
	for _, failure := range []error{
		fmt.Errorf("redis: %w: connection refused", auth.ErrUnavailable),
		fmt.Errorf("disk read: input/output error"),
	} {
		api.mu.Lock()
		api.fail[id] = failure
		api.mu.Unlock()
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/tokens"}, {"GET", "/v1/tokens/" + id}, {"GET", "/v1/audit"}, {"GET", "/v1/policy"},
			{"DELETE", "/v1/tokens/" + id},
		} {
			a := rawCall(t, srv.Client(), base, c.method, c.path, cred, "")
			if a.status != http.StatusServiceUnavailable || a.err.Code != "store_unavailable" || a.header.Get("Retry-After") == "" {
				t.Errorf("%v: %s %s: HTTP %d %s, want 503 store_unavailable with Retry-After", failure, c.method, c.path, a.status, a.err.Code)
			}
		}
	}
	if got, err := st.Get(context.Background(), id); err != nil || got.Revoked() {
		t.Errorf("the caller after the outage: %+v, %v", got, err)
	}
}
