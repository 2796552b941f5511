package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/tswgate/tswgate/identity"
)

// TestIdentityAssertion: with an Asserter, every forwarded request carries
// an assertion of the verified token that the JWKS verifies, and a client's
// own X-Tsw-Assertion never reaches the upstream.
func TestIdentityAssertion(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := identity.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	up, got := newUpstream(t)
	signer, err := identity.NewSigner(identity.Options{Keys: ks, Issuer: "tswgate", Audience: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{Asserter: signer})
	req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
	req.Header.Set(HeaderAssertion, "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-got
	vs := s.header.Values(HeaderAssertion)
	if len(vs) != 1 {
		t.Fatalf("upstream got %s = %q, want one assertion", HeaderAssertion, vs)
	}
	keys, err := identity.ParseJWKS(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.Verify(vs[0], keys, "tswgate", up.URL, time.Now(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != testToken.ID || c.ProjectID != testToken.ProjectID || c.Role != "accounting" {
		t.Fatalf("claims %+v", c)
	}
}

// benchSigner is a Signer with a new key, for benchmarks.
func benchSigner(b *testing.B) *identity.Signer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ks, err := identity.NewKeySet(key)
	if err != nil {
		b.Fatal(err)
	}
	s, err := identity.NewSigner(identity.Options{Keys: ks, Issuer: "tswgate", Audience: "https://api.tsw.io"})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
