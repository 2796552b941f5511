package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	iss = "https://gw.example"
	aud = "https://api.tsw.io"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSigner(t testing.TB, ks *KeySet) *Signer {
	t.Helper()
	s, err := NewSigner(Options{Keys: ks, Issuer: iss, Audience: aud, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKeySet(t testing.TB, signing *ecdsa.PrivateKey, others ...*ecdsa.PublicKey) *KeySet {
	t.Helper()
	ks, err := NewKeySet(signing, others...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var owner = Subject{TokenID: "tsw_abc", ProjectID: 42, Role: "owner"}

func TestAssertionVerifiesThroughTheJWKS(t *testing.T) {
	ks := mustKeySet(t, mustKey(t))
	s := mustSigner(t, ks)
	jwt, err := s.Assertion(Subject{TokenID: "tsw_abc", ProjectID: 42, Role: "owner", Scope: "compute.read"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseJWKS(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(jwt, keys, iss, aud, t0.Add(30*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Issuer: iss, Subject: "tsw_abc", Audience: aud, IssuedAt: t0.Unix(),
		Expires: t0.Add(time.Minute).Unix(), ProjectID: 42, Role: "owner", Scope: "compute.read"}
	if *c != want {
		t.Fatalf("claims %+v, want %+v", *c, want)
	}
}

func TestVerifyRefuses(t *testing.T) {
	key := mustKey(t)
	ks := mustKeySet(t, key)
	keys, _ := ParseJWKS(ks.JWKS())
	jwt, err := mustSigner(t, ks).Sign(owner, t0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := mustSigner(t, mustKeySet(t, mustKey(t))).Sign(owner, t0)
	parts := strings.Split(jwt, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+ks.SigningKeyID()+`"}`)) + "." + parts[1] + "."
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"tsw_abc","project_id":43}`)) + "." + parts[2]
	for name, c := range map[string]struct {
		jwt      string
		iss, aud string
		at       time.Time
	}{
		"expired":          {jwt, iss, aud, t0.Add(time.Minute)},
		"before issue":     {jwt, iss, aud, t0.Add(-2 * time.Second)},
		"other audience":   {jwt, iss, "https://other", t0},
		"other issuer":     {jwt, "https://other", aud, t0},
		"unknown key":      {other, iss, aud, t0},
		"alg none":         {none, iss, aud, t0},
		"tampered claims":  {tampered, iss, aud, t0},
		"not a JWS":        {"a.b", iss, aud, t0},
		"signature length": {parts[0] + "." + parts[1] + ".AAAA", iss, aud, t0},
	} {
		if _, err := Verify(c.jwt, keys, c.iss, c.aud, c.at, 0); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestAssertionReusedForHalfItsLife(t *testing.T) {
	s := mustSigner(t, mustKeySet(t, mustKey(t)))
	first, _ := s.Assertion(owner, t0)
	if again, _ := s.Assertion(owner, t0.Add(29*time.Second)); again != first {
		t.Error("not reused within half the TTL")
	}
	if later, _ := s.Assertion(owner, t0.Add(30*time.Second)); later == first {
		t.Error("reused past half the TTL")
	}
	if back, _ := s.Assertion(owner, t0.Add(-time.Second)); back == first {
		t.Error("reused before it was issued (clock went back)")
	}
	changed := owner
	changed.Role = "accounting"
	if got, _ := s.Assertion(changed, t0.Add(31*time.Second)); got == first {
		t.Error("reused for another role")
	}
	s.Forget(owner.TokenID)
	if s.size.Load() != 0 {
		t.Errorf("%d entries after Forget", s.size.Load())
	}
}

func TestAssertionCacheIsBounded(t *testing.T) {
	ks := mustKeySet(t, mustKey(t))
	s, _ := NewSigner(Options{Keys: ks, Issuer: iss, Audience: aud, MaxEntries: 10})
	for i := range 50 {
		sub := owner
		sub.TokenID = "tsw_" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := s.Assertion(sub, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.size.Load(); n > 10 {
		t.Fatalf("%d entries kept, want at most 10", n)
	}
}

func TestRotationPublishesBothKeys(t *testing.T) {
	old, next := mustKey(t), mustKey(t)
	before := mustKeySet(t, old, &next.PublicKey) // step 1: publish next
	after := mustKeySet(t, next, &old.PublicKey)  // step 2: sign with next
	jwtOld, _ := mustSigner(t, before).Sign(owner, t0)
	jwtNew, _ := mustSigner(t, after).Sign(owner, t0)
	// A verifier that fetched the JWKS in step 1 accepts both.
	keys, err := ParseJWKS(before.JWKS())
	if err != nil || len(keys) != 2 {
		t.Fatalf("JWKS keys %d, %v", len(keys), err)
	}
	for _, jwt := range []string{jwtOld, jwtNew} {
		if _, err := Verify(jwt, keys, iss, aud, t0, 0); err != nil {
			t.Error(err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "assertion.pem")
	ks, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || again.SigningKeyID() != ks.SigningKeyID() {
		t.Fatalf("reloaded: created %v, kid %q vs %q, %v", created, again.SigningKeyID(), ks.SigningKeyID(), err)
	}
	pub := filepath.Join(dir, "pub.pem")
	os.WriteFile(pub, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	if _, err := LoadKeyFiles([]string{path, pub}); err == nil {
		t.Error("a malformed public key was accepted")
	}
	if _, err := LoadKeyFiles([]string{filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestJWKSHandler(t *testing.T) {
	ks := mustKeySet(t, mustKey(t))
	rec := httptest.NewRecorder()
	ks.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/jwk-set+json" || rec.Body.String() != string(ks.JWKS()) {
		t.Fatalf("%d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = httptest.NewRecorder()
	ks.ServeHTTP(rec, httptest.NewRequest("POST", "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func BenchmarkAssertionReused(b *testing.B) {
	s := mustSigner(b, mustKeySet(b, mustKey(b)))
	s.Assertion(owner, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Assertion(owner, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := mustSigner(b, mustKeySet(b, mustKey(b)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(owner, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVerify: Verify never panics, and nothing but the signed assertion
// itself verifies.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks, _ := NewKeySet(key)
	s, _ := NewSigner(Options{Keys: ks, Issuer: iss, Audience: aud})
	jwt, _ := s.Sign(owner, t0)
	keys, _ := ParseJWKS(ks.JWKS())
	f.Add(jwt)
	f.Add(jwt[:len(jwt)-2])
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := Verify(token, keys, iss, aud, t0, 0); err == nil && token != jwt {
			parts := strings.Split(token, ".")
			orig := strings.Split(jwt, ".")
			// Base64 has spellings that decode alike only in the last
			// character's unused bits; any other difference must fail.
			if parts[0] != orig[0] || parts[1] != orig[1] {
				t.Fatalf("a different assertion verified: %q", token)
			}
		}
	})
}

// An assertion never outlives its token: a token expiring before the TTL
// is over gets an assertion that expires with it, and one reused until
// then only.
func TestAssertionNeverOutlivesItsToken(t *testing.T) {
	ks := mustKeySet(t, mustKey(t))
	keys, _ := ParseJWKS(ks.JWKS())
	s := mustSigner(t, ks)
	sub := owner
	sub.NotAfter = t0.Add(10*time.Second + 500*time.Millisecond)
	jwt, err := s.Assertion(sub, t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(jwt, keys, iss, aud, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(11 * time.Second).Unix(); c.Expires != want {
		t.Fatalf("exp %d, want the token's expiry rounded up to the second, %d", c.Expires, want)
	}
	if _, err := Verify(jwt, keys, iss, aud, t0.Add(11*time.Second), 0); err == nil {
		t.Fatal("the assertion verifies after its token expired")
	}
	if again, _ := s.Assertion(sub, t0.Add(10*time.Second)); again != jwt {
		t.Fatal("not reused while the token lives")
	}
	if later, _ := s.Assertion(sub, t0.Add(11*time.Second)); later == jwt {
		t.Fatal("reused after its token expired")
	}
	// A token in its last second: the assertion the gateway passes on
	// with its request verifies then.
	last := owner
	last.TokenID = "tsw_lastsecond0000000000"
	now := t0.Add(300 * time.Millisecond)
	last.NotAfter = now.Add(800 * time.Millisecond)
	jwt3, err := s.Assertion(last, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(jwt3, keys, iss, aud, last.NotAfter.Add(-time.Millisecond), 0); err != nil {
		t.Fatalf("the assertion of a token with 800 ms left does not verify in its last millisecond: %v", err)
	}
	// A longer-lived token keeps the whole TTL; a changed expiry re-signs.
	long := sub
	long.NotAfter = t0.Add(time.Hour)
	jwt2, _ := s.Assertion(long, t0.Add(12*time.Second))
	if c, _ := Verify(jwt2, keys, iss, aud, t0.Add(12*time.Second), 0); c == nil || c.Expires != t0.Add(72*time.Second).Unix() {
		t.Fatalf("claims %+v, want exp at the TTL", c)
	}
	// The same instant in another location is the same subject.
	local := long
	local.NotAfter = long.NotAfter.In(time.FixedZone("x", 3600))
	if got, _ := s.Assertion(local, t0.Add(13*time.Second)); got != jwt2 {
		t.Fatal("re-signed for the same expiry in another location")
	}
}

// "exp" counts whole seconds: an assertion signed within a second must
// not be reused as long as one signed on the second, or the API is handed
// one with less than half the TTL left, as the Signer promises it never is.
func TestAssertionReusedKeepsHalfItsLifeLeft(t *testing.T) {
	ks := mustKeySet(t, mustKey(t))
	keys, _ := ParseJWKS(ks.JWKS())
	s := mustSigner(t, ks)
	start := t0.Add(999 * time.Millisecond)
	for at := start; at.Before(start.Add(2 * time.Minute)); at = at.Add(100 * time.Millisecond) {
		jwt, err := s.Assertion(owner, at)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Verify(jwt, keys, iss, aud, at, 0)
		if err != nil {
			t.Fatalf("at %v: %v", at.Sub(start), err)
		}
		if left := time.Unix(c.Expires, 0).Sub(at); left < 30*time.Second {
			t.Fatalf("at %v after the first: an assertion with %v left, want at least half the TTL (30s)", at.Sub(start), left)
		}
	}
}
