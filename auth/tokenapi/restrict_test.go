package tokenapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth"
)

func TestCreateWithScopesAndRanges(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	tok := f.mint(t, CreateRequest{Name: "ci", Scopes: []string{"compute.read", "billing.read"}, AllowedIPs: []string{"10.1.2.3/16", "2001:db8::/32"}})
	if want := []string{"billing.read", "compute.read"}; !slices.Equal(tok.Scopes, want) {
		t.Errorf("scopes %v, want %v", tok.Scopes, want)
	}
	if want := []string{"10.1.0.0/16", "2001:db8::/32"}; !slices.Equal(tok.AllowedIPs, want) {
		t.Errorf("allowed_ips %v, want %v", tok.AllowedIPs, want)
	}
	shown, err := f.admin.Get(context.Background(), tok.ID)
	if err != nil || !slices.Equal(shown.Scopes, tok.Scopes) || !slices.Equal(shown.AllowedIPs, tok.AllowedIPs) {
		t.Errorf("show: %+v, %v", shown, err)
	}
	for _, tc := range []struct {
		req  CreateRequest
		want string
	}{
		{CreateRequest{Scopes: []string{"compute.read", "compute.admin"}}, `"compute.admin"`},
		{CreateRequest{Role: "accounting", Scopes: []string{"compute.read"}}, "the accounting role does not grant compute.read"},
		{CreateRequest{AllowedIPs: []string{"10.0.0.0/8", "10.0.0.300/32"}}, `"10.0.0.300/32"`},
		{CreateRequest{AllowedIPs: []string{"office"}}, `"office"`},
	} {
		tc.req.ProjectID, tc.req.Name = 42, "bad"
		if tc.req.Role == "" {
			tc.req.Role = "owner"
		}
		_, err := f.admin.Create(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "invalid_request") {
			t.Errorf("create %+v: %v, want 400 naming %s", tc.req, err, tc.want)
		}
	}
}

func TestUpdateScopesAuditsBeforeAfter(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	tok := f.mint(t, CreateRequest{Name: "ci"})
	got, err := f.admin.Update(context.Background(), tok.ID, UpdateRequest{
		Scopes: &[]string{"compute.read"}, AllowedIPs: &[]string{"192.0.2.0/24"},
	})
	if err != nil || !slices.Equal(got.Scopes, []string{"compute.read"}) || !slices.Equal(got.AllowedIPs, []string{"192.0.2.0/24"}) {
		t.Fatalf("update: %+v, %v", got, err)
	}
	ev := f.trail(t, 42)[0]
	if ev.Action != "token.update" || !strings.Contains(ev.Detail, "scopes (role owner)→compute.read") ||
		!strings.Contains(ev.Detail, "allowed_ips (any)→192.0.2.0/24") {
		t.Errorf("audit event %s %q, want the change before→after", ev.Action, ev.Detail)
	}
	if got, err = f.admin.Update(context.Background(), tok.ID, UpdateRequest{Scopes: &[]string{}, AllowedIPs: &[]string{}}); err != nil || got.Scopes != nil || got.AllowedIPs != nil {
		t.Fatalf("clearing: %+v, %v", got, err)
	}
	if ev := f.trail(t, 42)[0]; !strings.Contains(ev.Detail, "scopes compute.read→(role owner)") {
		t.Errorf("audit detail %q after clearing", ev.Detail)
	}
	if _, err := f.admin.Update(context.Background(), tok.ID, UpdateRequest{Scopes: &[]string{"compute.execute"}}); err == nil ||
		!strings.Contains(err.Error(), `"compute.execute"`) {
		t.Errorf("update with an unknown permission: %v", err)
	}
	acct := f.mint(t, CreateRequest{Role: "accounting"})
	if _, err := f.admin.Update(context.Background(), acct.ID, UpdateRequest{Scopes: &[]string{"compute.read"}}); err == nil ||
		!strings.Contains(err.Error(), "accounting role does not grant compute.read") {
		t.Errorf("update of an accounting token to compute.read: %v", err)
	}
}

// A token never grants what it lacks: what it creates, edits or rotates
// is within its permissions and address ranges.
func TestSelfServiceNeverWidens(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	maker := f.mint(t, CreateRequest{Name: "maker", Scopes: []string{"compute.read", "compute.write", "tokens.write"}, AllowedIPs: []string{"127.0.0.0/8", "10.0.0.0/8"}})
	self := f.self(maker.Token)
	ctx := context.Background()

	// Inherited when not named.
	child, err := self.Create(ctx, CreateRequest{Role: "owner", Name: "child"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(child.Scopes, []string{"compute.read", "compute.write", "tokens.write"}) || !slices.Equal(child.AllowedIPs, []string{"10.0.0.0/8", "127.0.0.0/8"}) {
		t.Errorf("child %v %v, want the maker's scopes and ranges", child.Scopes, child.AllowedIPs)
	}
	// Narrower is fine.
	if _, err := self.Create(ctx, CreateRequest{Role: "owner", Name: "narrow", Scopes: []string{"compute.read"}, AllowedIPs: []string{"10.1.0.0/16"}}); err != nil {
		t.Errorf("a narrower child: %v", err)
	}
	// Wider is refused.
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/v1/tokens", `{"role":"owner","name":"w","scopes":["billing.read"]}`, codeScope},
		{"POST", "/v1/tokens", `{"role":"owner","name":"w","allowed_ips":["0.0.0.0/0"]}`, codeRanges},
		{"POST", "/v1/tokens", `{"role":"accounting","name":"w"}`, codeScope},
		{"PATCH", "/v1/tokens/" + child.ID, `{"scopes":["network.write"]}`, codeScope},
		{"PATCH", "/v1/tokens/" + child.ID, `{"scopes":[]}`, codeScope},
		{"PATCH", "/v1/tokens/" + child.ID, `{"allowed_ips":[]}`, codeRanges},
		{"PATCH", "/v1/tokens/" + maker.ID, `{"allowed_ips":["192.0.2.0/24"]}`, codeRanges},
	} {
		a := f.call(t, tc.method, tc.path, maker.Token, tc.body)
		mustRefuse(t, a, http.StatusForbidden, tc.code)
		if !strings.Contains(a.err.Message, "may not grant what it lacks") {
			t.Errorf("%s %s: message %q", tc.method, tc.path, a.err.Message)
		}
	}
	if n := f.refusals(t, 42)["token.create "+codeScope]; n == 0 {
		t.Error("no token.create scope_forbidden event in the audit trail")
	}
	// An unrestricted sibling rotated by the maker: its successor is narrowed.
	wide := f.mint(t, CreateRequest{Name: "wide"})
	rot, err := self.Rotate(ctx, wide.ID, RotateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rot.Token.Scopes, maker.Scopes) || !slices.Equal(rot.Token.AllowedIPs, maker.AllowedIPs) {
		t.Errorf("successor %v %v, want narrowed to %v %v", rot.Token.Scopes, rot.Token.AllowedIPs, maker.Scopes, maker.AllowedIPs)
	}
	// Nothing in common: refused, nothing changed.
	billing := f.mint(t, CreateRequest{Name: "billing", Role: "accounting"})
	mustRefuse(t, f.call(t, "POST", "/v1/tokens/"+billing.ID+"/rotate", maker.Token, ""), http.StatusForbidden, codeScope)
	if got := f.stored(t, billing.ID); got.Revoked() || got.Rotated() {
		t.Errorf("a refused rotation changed the old token: %+v", got)
	}
}

func TestTokenAPIRefusesOutsideRanges(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{limiter: true})
	far := f.mint(t, CreateRequest{Name: "far", AllowedIPs: []string{"10.0.0.0/8"}})
	a := f.call(t, "GET", "/v1/tokens", far.Token, "")
	mustRefuse(t, a, http.StatusForbidden, "ip_not_allowed")
	if n := f.lim.callsOf(far.ID); n != 0 {
		t.Errorf("%d rate-limit charges for a request from outside the ranges, want 0", n)
	}
	near := f.mint(t, CreateRequest{Name: "near", AllowedIPs: []string{"127.0.0.1", "::1"}})
	if a := f.call(t, "GET", "/v1/tokens", near.Token, ""); a.status != http.StatusOK {
		t.Errorf("from inside the ranges: HTTP %d %s", a.status, a.body)
	}
}

func TestRotateSetsScopesAndRanges(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	old := f.mint(t, CreateRequest{Name: "ci", Scopes: []string{"compute.read"}, AllowedIPs: []string{"10.0.0.0/8"}})
	rot, err := f.admin.Rotate(ctx, old.ID, RotateRequest{})
	if err != nil || !slices.Equal(rot.Token.Scopes, old.Scopes) || !slices.Equal(rot.Token.AllowedIPs, old.AllowedIPs) {
		t.Fatalf("plain rotation: %+v, %v; want the old token's scopes and ranges", rot.Token, err)
	}
	rot, err = f.admin.Rotate(ctx, rot.Token.ID, RotateRequest{Scopes: &[]string{"compute.read", "billing.read", "tokens.write"}, AllowedIPs: &[]string{}})
	if err != nil || !slices.Equal(rot.Token.Scopes, []string{"billing.read", "compute.read", "tokens.write"}) || rot.Token.AllowedIPs != nil {
		t.Fatalf("rotation with new lists: %+v, %v", rot.Token, err)
	}
	next := rot.Token
	a := f.call(t, "POST", "/v1/tokens/"+next.ID+"/rotate", next.Token, `{"scopes":["compute.admin"]}`)
	mustRefuse(t, a, http.StatusBadRequest, "invalid_request")
	if !strings.Contains(a.body, "compute.admin") {
		t.Errorf("the 400 does not name the bad permission: %s", a.body)
	}
	if got := f.stored(t, next.ID); got.Revoked() {
		t.Fatal("a refused rotation revoked the token")
	}
	// Through self-service a rotation narrows, never widens.
	maker := f.mint(t, CreateRequest{Name: "maker", Scopes: []string{"compute.read", "tokens.write"}})
	mustRefuse(t, f.call(t, "POST", "/v1/tokens/"+next.ID+"/rotate", maker.Token, `{"scopes":["billing.read"]}`), http.StatusForbidden, codeScope)
	rot, err = f.self(maker.Token).Rotate(ctx, next.ID, RotateRequest{})
	if err != nil || !slices.Equal(rot.Token.Scopes, []string{"compute.read", "tokens.write"}) {
		t.Fatalf("self-service rotation: %+v, %v; want narrowed to compute.read, tokens.write", rot.Token, err)
	}
}

// A rotation that gives the successor other scopes, ranges or a lifetime
// than the old token's says so in the trail, before→after, as an update
// does: removing a successor's ranges is a widening the trail must show.
func TestRotateAuditsRestrictionChanges(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	old := f.mint(t, CreateRequest{Name: "ci", Scopes: []string{"compute.read"}, AllowedIPs: []string{"10.0.0.0/8"}, ExpiresIn: "24h"})
	rot, err := f.admin.Rotate(ctx, old.ID, RotateRequest{Scopes: &[]string{}, AllowedIPs: &[]string{}, ExpiresIn: "48h"})
	if err != nil {
		t.Fatal(err)
	}
	ev := f.trail(t, 42)[0]
	if ev.Action != "token.rotate" {
		t.Fatalf("latest event %s, want token.rotate", ev.Action)
	}
	for _, want := range []string{"new token " + rot.Token.ID, "scopes compute.read→(role owner)", "allowed_ips 10.0.0.0/8→(any)",
		"expires " + stamp(*rot.Token.ExpiresAt)} {
		if !strings.Contains(ev.Detail, want) {
			t.Errorf("token.rotate detail %q lacks %q", ev.Detail, want)
		}
	}
	if logs := f.log.String(); !strings.Contains(logs, "allowed_ips 10.0.0.0/8→(any)") {
		t.Errorf("the token.rotate log line does not name the changed ranges:\n%s", logs)
	}
	// A plain rotation names no change.
	if _, err := f.admin.Rotate(ctx, rot.Token.ID, RotateRequest{}); err != nil {
		t.Fatal(err)
	}
	if ev := f.trail(t, 42)[0]; strings.Contains(ev.Detail, "scopes") || strings.Contains(ev.Detail, "allowed_ips") {
		t.Errorf("plain rotation detail %q names a restriction change", ev.Detail)
	}
}

// Ranges narrowed on another replica (this one's cache not told yet) bind
// the token at once for what changes tokens, like a rotation does: the
// record read afresh is checked against the client's address too.
func TestTokenAPIFreshRanges(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	tok := f.mint(t, CreateRequest{Name: "moved"})
	if a := f.call(t, "GET", "/v1/tokens", tok.Token, ""); a.status != http.StatusOK { // cached now
		t.Fatalf("list: HTTP %d", a.status)
	}
	ranges, err := auth.ParsePrefixes([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Update(context.Background(), tok.ID, func(u *auth.Token) error {
		u.AllowedIPs = ranges
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.call(t, "POST", "/v1/tokens", tok.Token, `{"role":"owner","name":"x"}`), http.StatusForbidden, "ip_not_allowed")
	if l, _ := f.store.List(context.Background(), 42); len(l) != 1 {
		t.Errorf("%d live tokens, want 1: a token was made from outside its maker's ranges", len(l))
	}
	if n := f.refusals(t, 42)["token.create ip_not_allowed"]; n != 1 {
		t.Errorf("%d token.create ip_not_allowed events, want 1", n)
	}
}

// A revocation is a change like any other: a token revoked or narrowed on
// another replica (this one's cache not told yet) cannot revoke tokens.
func TestRevokeByStaleToken(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{Name: "caller"})
	victim := f.mint(t, CreateRequest{Name: "victim"})
	if a := f.call(t, "GET", "/v1/tokens", caller.Token, ""); a.status != http.StatusOK { // cached now
		t.Fatalf("list: HTTP %d", a.status)
	}
	if _, err := f.store.Revoke(context.Background(), caller.ID, f.now()); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.call(t, "DELETE", "/v1/tokens/"+victim.ID, caller.Token, ""), http.StatusUnauthorized, "token_revoked")
	if f.stored(t, victim.ID).Revoked() {
		t.Error("a revoked token revoked another")
	}
}

// A token bound to address ranges may not clear a token's ranges, through
// an update or a rotation alike: both are refused allowed_ips_forbidden,
// and neither leaves the token changed nor narrows a successor silently.
func TestClearRangesRefusedOnEveryPath(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	maker := f.mint(t, CreateRequest{Name: "maker", AllowedIPs: []string{"127.0.0.0/8"}})
	wide := f.mint(t, CreateRequest{Name: "wide"})
	bound := f.mint(t, CreateRequest{Name: "bound", AllowedIPs: []string{"127.0.0.0/16"}})
	for _, tc := range []struct{ method, path string }{
		{"PATCH", "/v1/tokens/" + wide.ID},
		{"POST", "/v1/tokens/" + wide.ID + "/rotate"},
		{"PATCH", "/v1/tokens/" + bound.ID},
		{"POST", "/v1/tokens/" + bound.ID + "/rotate"},
		{"POST", "/v1/tokens/" + maker.ID + "/rotate"},
	} {
		a := f.call(t, tc.method, tc.path, maker.Token, `{"allowed_ips":[]}`)
		mustRefuse(t, a, http.StatusForbidden, codeRanges)
	}
	for _, id := range []string{wide.ID, bound.ID, maker.ID} {
		if got := f.stored(t, id); got.Revoked() || got.Rotated() {
			t.Errorf("a refused change changed %s: %+v", id, got)
		}
	}
	if n := f.refusals(t, 42)["token.rotate "+codeRanges]; n == 0 {
		t.Error("no token.rotate allowed_ips_forbidden event in the audit trail")
	}
}
