package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writePair writes a new self-signed certificate for name and its key.
func writePair(t *testing.T, dir, name string) (certPath, keyPath string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	cert, _ = x509.ParseCertificate(der)
	return certPath, keyPath, cert
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// serve starts a TLS server with cf's certificates and HSTS, and returns
// a client that trusts pool.
func serve(t *testing.T, cf *CertFiles) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(HSTS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}), 365*24*time.Hour, false))
	srv.TLS = ServerConfig(cf.GetCertificate, false)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func client(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "gw.test"}, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr}
}

func TestCertificateReloadedOnChange(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, first := writePair(t, dir, "gw.test")
	clk := &clock{now: time.Now()}
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath, Interval: time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, cf)

	get := func(c *http.Client) (*http.Response, error) {
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(client(first))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("proto %s, want HTTP/2.0 by ALPN", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security %q", got)
	}

	// A renewal: new files. Served once the interval has passed.
	_, _, second := writePair(t, dir, "gw.test")
	clk.Add(2 * time.Second)
	if _, err := get(client(second)); err != nil {
		t.Fatalf("the renewed certificate is not served: %v", err)
	}

	// A half-written renewal keeps the last good certificate.
	writeFile(t, certPath, []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	clk.Add(2 * time.Second)
	if _, err := get(client(second)); err != nil {
		t.Fatalf("a broken file replaced the certificate: %v", err)
	}
}

func TestCertFilesRefusesUnusableFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, _, _ := writePair(t, dir, "gw.test")
	if _, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("a missing key was accepted")
	}
	_, otherKey, _ := writePair(t, t.TempDir(), "other.test")
	if _, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: otherKey}); err == nil {
		t.Fatal("a key of another certificate was accepted")
	}
}

func TestServerConfigRefusesOldTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, cert := writePair(t, dir, "gw.test")
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, cf)
	c := client(cert)
	c.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 was accepted")
	}
}

func TestHSTSNotOverPlainHTTP(t *testing.T) {
	h := HSTS(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), time.Hour, true)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Header().Get("Strict-Transport-Security"); got != "" {
		t.Fatalf("Strict-Transport-Security %q over plain HTTP", got)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.TLS = &tls.ConnectionState{}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("Strict-Transport-Security"); got != "max-age=3600; includeSubDomains" {
		t.Fatalf("Strict-Transport-Security %q", got)
	}
}

func TestSelfSignedServesLocalhost(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := SelfSigned(dir)
	if err != nil || again != certPath {
		t.Fatalf("second call: %q, %v", again, err)
	}
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, cf)
	pemData, _ := os.ReadFile(certPath)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	// (SNI, or the test server would answer with its own certificate.)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// A certificate that is not valid now is served (the files are the
// operator's) but logged as a warning, at start and on a reload.
func TestCertificateNotValidNowWarned(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := writePair(t, dir, "gw.test")
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clk := &clock{now: time.Now()}
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath, Interval: time.Second, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "not valid now") {
		t.Fatalf("a valid certificate was warned about:\n%s", logs.String())
	}
	clk.Add(2 * time.Hour) // past the pair's NotAfter
	writePair(t, dir, "gw.test")
	cf.Reload()
	if !strings.Contains(logs.String(), "TLS certificate is not valid now") {
		t.Fatalf("no warning for a reloaded certificate past its NotAfter:\n%s", logs.String())
	}
	logs.Reset()
	if _, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath, Now: clk.Now, Logger: log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "TSWGATE_TLS_CERT_FILE") {
		t.Fatalf("no warning at start for an expired certificate:\n%s", logs.String())
	}
}

// writeLocalhostPair writes a self-signed pair where SelfSigned keeps
// its own, valid from notBefore to notAfter; with otherKey the key file
// holds a key that is not the certificate's.
func writeLocalhostPair(t *testing.T, dir string, notBefore, notAfter time.Time, otherKey bool) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if otherKey {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	writeFile(t, filepath.Join(dir, "localhost-cert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "localhost-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certPEM
}

// The quickstart's certificate outlives no quickstart: a pair left in the
// data directory that has expired, expires within days, or does not load
// (a key that is not the certificate's) is made again, and a good one is
// kept as it is (clients were told to trust it).
func TestSelfSignedRemadeUnlessUsable(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name                string
		notBefore, notAfter time.Time
		otherKey, kept      bool
	}{
		{"good", now.Add(-time.Hour), now.Add(60 * 24 * time.Hour), false, true},
		{"expired", now.Add(-100 * 24 * time.Hour), now.Add(-10 * 24 * time.Hour), false, false},
		{"expiring", now.Add(-89 * 24 * time.Hour), now.Add(24 * time.Hour), false, false},
		{"not yet valid", now.Add(time.Hour), now.Add(90 * 24 * time.Hour), false, false},
		{"key of another certificate", now.Add(-time.Hour), now.Add(60 * 24 * time.Hour), true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			before := writeLocalhostPair(t, dir, tt.notBefore, tt.notAfter, tt.otherKey)
			certPath, keyPath, err := SelfSigned(dir)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(certPath)
			if kept := string(after) == string(before); kept != tt.kept {
				t.Fatalf("pair kept: %v, want %v", kept, tt.kept)
			}
			pair, err := tls.LoadX509KeyPair(certPath, keyPath)
			if err != nil {
				t.Fatalf("the pair SelfSigned returned does not load: %v", err)
			}
			if leaf := pair.Leaf; now.Before(leaf.NotBefore) || now.Add(7*24*time.Hour).After(leaf.NotAfter) {
				t.Fatalf("certificate valid %v to %v: not usable for the next week", leaf.NotBefore, leaf.NotAfter)
			}
		})
	}
}

// A certificate that runs out while it is served (its renewal broken, the
// files unchanged) is warned about once it has, at the next check, and
// once only for that certificate.
func TestCertificateExpiringWhileServedWarned(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := writePair(t, dir, "gw.test") // valid for an hour
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clk := &clock{now: time.Now()}
	cf, err := NewCertFiles(CertFilesOptions{CertPath: certPath, KeyPath: keyPath, Interval: time.Second, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	if _, err := cf.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "TLS certificate is not valid now"); n != 1 {
		t.Fatalf("%d warnings for a served certificate past its NotAfter, want 1:\n%s", n, logs.String())
	}
	clk.Add(2 * time.Second)
	if _, err := cf.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "TLS certificate is not valid now"); n != 1 {
		t.Fatalf("warned %d times for the same certificate, want once:\n%s", n, logs.String())
	}
}
