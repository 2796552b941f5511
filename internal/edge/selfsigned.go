package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSignedMargin is how long a self-signed pair left in the data
// directory must still be valid to be kept.
const selfSignedMargin = 7 * 24 * time.Hour

// SelfSigned returns the paths of a self-signed certificate for localhost
// (and 127.0.0.1, ::1) and its key in dir: for trying HTTPS locally
// (tswgate quickstart --tls), never for production. It keeps the pair made
// by an earlier run while it loads and stays valid for selfSignedMargin,
// and otherwise (none yet, expired or expiring, a key that is not the
// certificate's) makes a new one valid for 90 days.
func SelfSigned(dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, "localhost-cert.pem"), filepath.Join(dir, "localhost-key.pem")
	if keep, err := usablePair(certPath, keyPath, time.Now()); err != nil || keep {
		return certPath, keyPath, err
	}
	if err := makeSelfSigned(dir, certPath, keyPath); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// usablePair reports whether the pair at certPath and keyPath loads and is
// valid from now for selfSignedMargin. Missing files or an unusable pair
// are not errors (a new pair replaces them); a file that cannot be looked
// at is.
func usablePair(certPath, keyPath string, now time.Time) (bool, error) {
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("edge: %w", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return false, nil
	}
	leaf := pair.Leaf
	return !now.Before(leaf.NotBefore) && now.Add(selfSignedMargin).Before(leaf.NotAfter), nil
}

// makeSelfSigned writes a new self-signed pair for localhost.
func makeSelfSigned(dir, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("edge: generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost (tswgate quickstart)"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("edge: making the certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("edge: writing the key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("edge: writing the certificate: %w", err)
	}
	return nil
}
