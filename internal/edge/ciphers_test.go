package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a certificate for gw.test with key.
func selfSigned(t *testing.T, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.test"}, DNSNames: []string{"gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake reports whether a TLS 1.2 client offering only suite
// completes a handshake with ServerConfig serving cert.
func handshake(t *testing.T, cert tls.Certificate, suite uint16) bool {
	t.Helper()
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	srv := tls.Server(sc, ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, false))
	done := make(chan error, 1)
	go func() { done <- srv.Handshake(); sc.Close() }()
	cl := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
	err := cl.Handshake()
	cc.Close()
	<-done
	return err == nil
}

// TestServerConfigOnlyAEADWithForwardSecrecy: over TLS 1.2, whatever the
// certificate's key, only ECDHE key exchange with an AEAD (AES-GCM,
// ChaCha20-Poly1305) is negotiated, as docs/edge.md says; CBC suites,
// static RSA key exchange and the rest are refused even when a client
// offers nothing else. (TLS 1.3's suites are all AEAD with ECDHE.)
func TestServerConfigOnlyAEADWithForwardSecrecy(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]tls.Certificate{"ECDSA": selfSigned(t, ecKey), "RSA": selfSigned(t, rsaKey)}
	var accepted int
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		tls12 := false
		for _, v := range s.SupportedVersions {
			tls12 = tls12 || v == tls.VersionTLS12
		}
		if !tls12 {
			continue
		}
		good := strings.HasPrefix(s.Name, "TLS_ECDHE_") &&
			(strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20_POLY1305"))
		for kind, cert := range certs {
			if handshake(t, cert, s.ID) {
				accepted++
				if !good {
					t.Errorf("%s certificate: TLS 1.2 with %s accepted", kind, s.Name)
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no TLS 1.2 suite accepted at all")
	}
}
