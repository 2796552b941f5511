package identity

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
)

// KeySet holds the key that signs and the public keys that are published,
// the signing key's among them. Rotating without downtime takes three
// steps: publish a new key next to the signing one (so verifiers learn
// it), make it the signing key, then drop the old one once the assertions
// it signed have expired.
type KeySet struct {
	signing *privateKey
	public  []publicKey
	jwks    []byte
}

type privateKey struct {
	private *ecdsa.PrivateKey
	kid     string
}

type publicKey struct {
	key *ecdsa.PublicKey
	kid string
}

// NewKeySet returns a key set that signs with signing (P-256) and also
// publishes others.
func NewKeySet(signing *ecdsa.PrivateKey, others ...*ecdsa.PublicKey) (*KeySet, error) {
	if signing == nil {
		return nil, errors.New("identity: no signing key")
	}
	ks := &KeySet{}
	for i, pub := range append([]*ecdsa.PublicKey{&signing.PublicKey}, others...) {
		if pub.Curve != elliptic.P256() {
			return nil, errors.New("identity: keys must be ECDSA P-256 (ES256)")
		}
		kid, err := thumbprint(pub)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			ks.signing = &privateKey{private: signing, kid: kid}
		}
		ks.public = append(ks.public, publicKey{key: pub, kid: kid})
	}
	jwks, err := ks.marshalJWKS()
	if err != nil {
		return nil, err
	}
	ks.jwks = jwks
	return ks, nil
}

// SigningKeyID returns the kid of the signing key.
func (ks *KeySet) SigningKeyID() string { return ks.signing.kid }

// LoadKeyFiles reads PEM files: the first holds the signing key (an EC
// PRIVATE KEY or a PKCS #8 PRIVATE KEY), the others keys to publish only
// (private or PUBLIC KEY).
func LoadKeyFiles(paths []string) (*KeySet, error) {
	if len(paths) == 0 {
		return nil, errors.New("identity: no key file")
	}
	var signing *ecdsa.PrivateKey
	var others []*ecdsa.PublicKey
	for i, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("identity: reading key file: %w", err)
		}
		priv, pub, err := parsePEM(data)
		if err != nil {
			return nil, fmt.Errorf("identity: key file %s: %w", path, err)
		}
		switch {
		case i == 0 && priv == nil:
			return nil, fmt.Errorf("identity: key file %s: the first key signs, so it must be a private key", path)
		case i == 0:
			signing = priv
		default:
			others = append(others, pub)
		}
	}
	return NewKeySet(signing, others...)
}

// LoadOrCreateKeyFile reads the signing key at path, or creates one there
// (mode 0600) if there is no file yet.
func LoadOrCreateKeyFile(path string) (ks *KeySet, created bool, err error) {
	ks, err = LoadKeyFiles([]string{path})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return ks, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("identity: generating a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("identity: encoding the key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("identity: creating the key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("identity: writing the key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("identity: writing the key file: %w", err)
	}
	ks, err = NewKeySet(key)
	return ks, true, err
}

// GenerateKeyPEM returns a new P-256 signing key as PKCS #8 PEM.
func GenerateKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: encoding the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// KeySetFromPEM returns the key set that signs with the private key in
// data (and publishes its public key).
func KeySetFromPEM(data []byte) (*KeySet, error) {
	priv, _, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if priv == nil {
		return nil, errors.New("identity: not a private key")
	}
	return NewKeySet(priv)
}

// parsePEM reads one P-256 key, private or public.
func parsePEM(data []byte) (*ecdsa.PrivateKey, *ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("PEM block %q: want EC PRIVATE KEY, PRIVATE KEY or PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, &k.PublicKey, nil
	case *ecdsa.PublicKey:
		return nil, k, nil
	}
	return nil, nil, fmt.Errorf("a %T: want an ECDSA P-256 key", key)
}

// jwk is a public key as RFC 7517/7518 write it.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

func toJWK(pub *ecdsa.PublicKey) (jwk, error) {
	k, err := pub.ECDH() // validates the point
	if err != nil {
		return jwk{}, fmt.Errorf("identity: %w", err)
	}
	raw := k.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding
	return jwk{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(raw[1:33]), Y: enc.EncodeToString(raw[33:])}, nil
}

// thumbprint is the key's RFC 7638 thumbprint, its kid.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	k, err := toJWK(pub)
	if err != nil {
		return "", err
	}
	// The required members in lexicographic order, no white space.
	canonical := `{"crv":"P-256","kty":"EC","x":"` + k.X + `","y":"` + k.Y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

func (ks *KeySet) marshalJWKS() ([]byte, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for _, p := range ks.public {
		k, err := toJWK(p.key)
		if err != nil {
			return nil, err
		}
		k.Kid, k.Use, k.Alg = p.kid, "sig", "ES256"
		set.Keys = append(set.Keys, k)
	}
	return json.Marshal(set)
}

// JWKS returns the published keys as a JSON Web Key Set.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// ServeHTTP serves the JWKS (GET or HEAD), cacheable for five minutes.
func (ks *KeySet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if r.Method == http.MethodGet {
		_, _ = w.Write(ks.jwks)
	}
}

// ParseJWKS reads a JSON Web Key Set's EC P-256 keys by kid (other keys
// are skipped).
func ParseJWKS(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("identity: JWKS: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey)
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Kid == "" {
			continue
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("identity: JWKS key %q: bad coordinates", k.Kid)
		}
		pub, err := ecdhToECDSA(append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("identity: JWKS key %q: %w", k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	return keys, nil
}

// ecdhToECDSA parses an uncompressed P-256 point.
func ecdhToECDSA(raw []byte) (*ecdsa.PublicKey, error) {
	if _, err := ecdh.P256().NewPublicKey(raw); err != nil {
		return nil, err // not on the curve
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
}
