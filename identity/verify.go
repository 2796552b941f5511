package identity

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Claims are what a verified assertion says.
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	Expires   int64  `json:"exp"`
	ProjectID int64  `json:"project_id"`
	Role      string `json:"role"`
	Scope     string `json:"scope,omitempty"`
}

// Verify checks an assertion as an API would: ES256 only, signed by a key
// of keys (by kid), issued by issuer for audience, and valid at now (with
// leeway for clock skew). It is the reference for docs/edge.md.
func Verify(token string, keys map[string]*ecdsa.PublicKey, issuer, audience string, now time.Time, leeway time.Duration) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("identity: not a JWS compact serialisation")
	}
	enc := base64.RawURLEncoding
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodePart(parts[0], &header); err != nil {
		return nil, fmt.Errorf("identity: header: %w", err)
	}
	if header.Alg != "ES256" {
		return nil, fmt.Errorf("identity: alg %q, want ES256", header.Alg)
	}
	key := keys[header.Kid]
	if key == nil {
		return nil, fmt.Errorf("identity: unknown kid %q", header.Kid)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errors.New("identity: bad signature encoding")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key, digest[:], r, s) {
		return nil, errors.New("identity: bad signature")
	}
	var c Claims
	if err := decodePart(parts[1], &c); err != nil {
		return nil, fmt.Errorf("identity: claims: %w", err)
	}
	switch {
	case c.Issuer != issuer:
		return nil, fmt.Errorf("identity: iss %q, want %q", c.Issuer, issuer)
	case c.Audience != audience:
		return nil, fmt.Errorf("identity: aud %q, want %q", c.Audience, audience)
	case now.Add(leeway).Unix() < c.IssuedAt:
		return nil, errors.New("identity: issued in the future")
	case now.Add(-leeway).Unix() >= c.Expires:
		return nil, errors.New("identity: expired")
	case c.Subject == "":
		return nil, errors.New("identity: no subject")
	}
	return &c, nil
}

func decodePart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
