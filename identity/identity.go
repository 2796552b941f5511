// Package identity signs the assertion of who sent a request: a short-lived
// JWT (ES256, RFC 7519) that the gateway attaches to every request it
// forwards, and that the API verifies with the gateway's public keys (a JWKS,
// RFC 7517) instead of trusting plain X-Tsw-* headers from whoever reaches
// it — as Google IAP's x-goog-iap-jwt-assertion and Cloudflare Access's
// Cf-Access-Jwt-Assertion do.
//
// Signing costs an ECDSA signature (tens of microseconds), so a Signer
// reuses one assertion per token for a part of its lifetime: a forwarded
// request pays a map lookup.
package identity

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Subject is who a request is sent for: the verified token.
type Subject struct {
	// TokenID is the token's id (the "sub" claim).
	TokenID string
	// ProjectID is the token's project ("project_id").
	ProjectID int64
	// Role is the token's role ("role": owner, accounting).
	Role string
	// Scope lists the token's permissions, space-separated ("scope", as in
	// RFC 8693); empty for a token that has its role's.
	Scope string
	// NotAfter is when the token expires (zero: never). An assertion ends
	// with its token: its "exp" is at the latest NotAfter rounded up to the
	// whole second ("exp" counts whole seconds), so that every request
	// the gateway passes while the token lives carries an assertion that
	// verifies; the gateway stops using it at NotAfter itself.
	NotAfter time.Time
}

// same reports whether s and o are the same subject (NotAfter compared as
// an instant, whatever its location).
func (s Subject) same(o Subject) bool {
	return s.TokenID == o.TokenID && s.ProjectID == o.ProjectID && s.Role == o.Role &&
		s.Scope == o.Scope && s.NotAfter.Equal(o.NotAfter)
}

// Options configure a Signer.
type Options struct {
	// Keys sign (the first) and are published (all). Required.
	Keys *KeySet
	// Issuer is the "iss" claim, e.g. the gateway's public URL. Required.
	Issuer string
	// Audience is the "aud" claim: the upstream API. Required.
	Audience string
	// TTL is how long an assertion is valid; default 60s.
	TTL time.Duration
	// MaxEntries bounds the assertions kept for reuse; default 100,000.
	MaxEntries int
}

// Signer makes assertions and reuses each for the first half of its life,
// so a verifier sees at least TTL/2 of validity on every request.
type Signer struct {
	keys     *KeySet
	iss, aud string
	ttl      time.Duration
	max      int64

	cache sync.Map // token id -> *entry
	size  atomic.Int64
	sweep sync.Mutex
}

type entry struct {
	sub   Subject
	jwt   string
	iat   time.Time // signed at
	until time.Time // reused until
}

// NewSigner returns a Signer.
func NewSigner(opts Options) (*Signer, error) {
	switch {
	case opts.Keys == nil || opts.Keys.signing == nil:
		return nil, errors.New("identity: no signing key")
	case opts.Issuer == "":
		return nil, errors.New("identity: no issuer")
	case opts.Audience == "":
		return nil, errors.New("identity: no audience")
	case opts.TTL < 0:
		return nil, fmt.Errorf("identity: TTL %v is negative", opts.TTL)
	}
	s := &Signer{keys: opts.Keys, iss: opts.Issuer, aud: opts.Audience, ttl: opts.TTL, max: int64(opts.MaxEntries)}
	if s.ttl == 0 {
		s.ttl = time.Minute
	}
	if s.max <= 0 {
		s.max = 100_000
	}
	return s, nil
}

// Assertion returns a valid assertion for sub at now: a cached one while it
// has at least half its life left, else a newly signed one. It does not
// allocate when it reuses one.
func (s *Signer) Assertion(sub Subject, now time.Time) (string, error) {
	if v, ok := s.cache.Load(sub.TokenID); ok {
		if e := v.(*entry); e.sub.same(sub) && now.Before(e.until) && !now.Before(e.iat) {
			return e.jwt, nil
		}
	}
	exp, capped := s.expiry(sub, now)
	jwt, err := s.sign(sub, now, exp)
	if err != nil {
		return "", err
	}
	// Reused while half the TTL is left of its "exp" (which is whole
	// seconds, so up to a second short of now+TTL), or while its token
	// lives when the token ends it sooner.
	until := time.Unix(exp, 0).Add(-s.ttl / 2)
	if capped {
		until = sub.NotAfter
	}
	e := &entry{sub: sub, jwt: jwt, iat: now, until: until}
	if _, loaded := s.cache.Swap(sub.TokenID, e); !loaded && s.size.Add(1) > s.max {
		s.evict(now)
	}
	return jwt, nil
}

// evict drops the entries that may no longer be reused, and if that is not
// enough, all of them: a bound, not a policy (entries are cheap to remake).
func (s *Signer) evict(now time.Time) {
	if !s.sweep.TryLock() {
		return
	}
	defer s.sweep.Unlock()
	s.cache.Range(func(k, v any) bool {
		if !now.Before(v.(*entry).until) {
			if s.cache.CompareAndDelete(k, v) {
				s.size.Add(-1)
			}
		}
		return true
	})
	if s.size.Load() > s.max {
		s.cache.Clear()
		s.size.Store(0)
	}
}

// Forget drops the cached assertion of a token (on revocation or change;
// Assertion also re-signs when the subject differs).
func (s *Signer) Forget(tokenID string) {
	if _, ok := s.cache.LoadAndDelete(tokenID); ok {
		s.size.Add(-1)
	}
}

// Sign signs a new assertion for sub, valid from now for the Signer's TTL,
// or until sub.NotAfter if the token expires sooner.
func (s *Signer) Sign(sub Subject, now time.Time) (string, error) {
	exp, _ := s.expiry(sub, now)
	return s.sign(sub, now, exp)
}

// expiry returns the "exp" of an assertion for sub signed at now: the
// TTL's end, or the token's (rounded up), and whether it is the token's.
func (s *Signer) expiry(sub Subject, now time.Time) (exp int64, capped bool) {
	end := now.Add(s.ttl)
	if !sub.NotAfter.IsZero() && sub.NotAfter.Before(end) {
		return ceilUnix(sub.NotAfter), true
	}
	return end.Unix(), false
}

// sign signs the assertion for sub issued at now and expiring at exp.
func (s *Signer) sign(sub Subject, now time.Time, exp int64) (string, error) {
	k := s.keys.signing
	header := `{"alg":"ES256","typ":"JWT","kid":"` + k.kid + `"}`
	claims := Claims{
		Issuer: s.iss, Subject: sub.TokenID, Audience: s.aud,
		IssuedAt: now.Unix(), Expires: exp,
		ProjectID: sub.ProjectID, Role: sub.Role, Scope: sub.Scope,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("identity: encoding claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signed))
	r, sv, err := ecdsa.Sign(rand.Reader, k.private, digest[:])
	if err != nil {
		return "", fmt.Errorf("identity: signing: %w", err)
	}
	var sig [64]byte // JWS ES256: R and S, 32 bytes each (RFC 7518 §3.4)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig[:]), nil
}

// ceilUnix returns t in Unix seconds, rounded up: a token that expires
// within a second still gets an assertion whose "exp" is after its "iat".
func ceilUnix(t time.Time) int64 {
	if t.Truncate(time.Second).Equal(t) {
		return t.Unix()
	}
	return t.Unix() + 1
}
