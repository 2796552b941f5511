package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/identity"
	"github.com/tswgate/tswgate/proxy"
)

// TestE2EAssertionEndsWithItsToken: a token that expires before the
// assertion's TTL is over is forwarded with an assertion that expires
// with it (its expiry rounded up to the whole second "exp" counts), so
// the API accepts it at most to the end of the token's last second;
// a token without expiry gets the whole TTL.
func TestE2EAssertionEndsWithItsToken(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_ASSERTION_ISSUER=https://gw.example", "TSWGATE_ASSERTION_TTL=10m")
	resp := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.URL+"/.well-known/jwks.json", "", nil))
	keys, err := identity.ParseJWKS(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	short, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: testProject, Role: "owner",
		Name: "short", ExpiresIn: "2m"})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(short.Token)
	long := g.MustCreateToken(t, testProject, "owner", "long")
	for _, c := range []struct {
		tok     tokenapi.Token
		maxLife time.Duration
	}{{short, 0}, {long, 10 * time.Minute}} {
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", c.tok.Token, nil))
		claims, err := identity.Verify(up.MustLast(t).Header.Get(proxy.HeaderAssertion), keys, "https://gw.example", up.URL, time.Now(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Unix(claims.Expires, 0)
		switch {
		case c.maxLife == 0 && (c.tok.ExpiresAt == nil || exp.Before(*c.tok.ExpiresAt) ||
			!exp.Before(c.tok.ExpiresAt.Add(time.Second))):
			t.Errorf("%s: assertion expires %s, want with the token, rounded up to the second (%v)", c.tok.Name, exp, c.tok.ExpiresAt)
		case c.maxLife > 0 && claims.Expires-claims.IssuedAt != int64(c.maxLife/time.Second):
			t.Errorf("%s: assertion lives %ds, want the TTL", c.tok.Name, claims.Expires-claims.IssuedAt)
		}
	}
}

// TestE2ERevokeByValueReadsOneWay: a revoke request that names a member
// twice (here in another case) is refused whole, and both tokens still
// work; the same credentials sent properly are both revoked.
func TestE2ERevokeByValueReadsOneWay(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	a := g.MustCreateToken(t, testProject, "owner", "leak-a")
	b := g.MustCreateToken(t, testProject, "owner", "leak-b")
	post := func(body string) *response {
		req, _ := http.NewRequest("POST", g.URL+"/tswgate/v1/credentials/revoke", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return MustDo(t, g.HTTP, req)
	}
	resp := post(`{"credentials":["` + a.Token + `"],"Credentials":["` + b.Token + `"]}`)
	if _, code := MustEnvelope(t, resp); resp.Status != http.StatusBadRequest || code != "invalid_request" {
		t.Fatalf("a member given twice: %s", resp)
	}
	for _, tok := range []tokenapi.Token{a, b} {
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
	}
	if resp := post(`{"credentials":["` + a.Token + `"],"credential":"` + b.Token + `"}`); resp.Status != http.StatusAccepted {
		t.Fatalf("revoke: %s", resp)
	}
	for _, tok := range []tokenapi.Token{a, b} {
		MustPoll(t, 10*time.Second, tok.Name+" revoked", func() (bool, string) {
			r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
			return r.Header.Get(proxy.HeaderErrorCode) == auth.CodeTokenRevoked.String(), r.String()
		})
	}
}
