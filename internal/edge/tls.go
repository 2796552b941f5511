// Package edge holds what the public listener needs to face the internet
// alone: TLS with certificates reloaded on change, HTTP/2 by ALPN, and
// Strict-Transport-Security.
package edge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertFiles serves a certificate and key from files, reading them again
// when either file changes (checked at most once per Interval, on a
// handshake), so a renewed certificate is served without a restart and
// without dropping a connection. A file that cannot be read or parsed
// keeps the previous certificate in service, and the error is logged.
type CertFiles struct {
	certPath, keyPath string
	interval          time.Duration
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
	warned  *tls.Certificate // the last certificate warned about as not valid
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// CertFilesOptions configure CertFiles.
type CertFilesOptions struct {
	CertPath, KeyPath string
	// Interval between checks for changed files; default 10s.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// NewCertFiles loads the certificate and key, failing if they cannot be
// used.
func NewCertFiles(opts CertFilesOptions) (*CertFiles, error) {
	c := &CertFiles{certPath: opts.CertPath, keyPath: opts.KeyPath, interval: opts.Interval, log: opts.Logger, now: opts.Now}
	if c.interval <= 0 {
		c.interval = 10 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	cert, stamp, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp, c.checked = cert, stamp, c.now()
	c.warnIfNotValid(cert)
	return c, nil
}

// GetCertificate is tls.Config's GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= c.interval {
		c.checked = now
		c.reloadLocked()
		c.warnIfNotValid(c.cert) // one that ran out while served, unchanged
	}
	return c.cert, nil
}

// Reload reads the files again now if they changed.
func (c *CertFiles) Reload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reloadLocked()
}

func (c *CertFiles) reloadLocked() {
	stamp, err := c.stamps()
	if err != nil {
		c.log.Warn("TLS certificate files unreadable; serving the previous certificate", "err", err)
		return
	}
	if stamp == c.stamp {
		return
	}
	cert, stamp, err := c.load()
	if err != nil {
		// A half-written pair (a renewal in progress) is tried again at the next check.
		c.log.Warn("TLS certificate not reloaded; serving the previous one", "err", err)
		return
	}
	c.cert, c.stamp = cert, stamp
	c.log.Info("TLS certificate reloaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	c.warnIfNotValid(cert)
}

// warnIfNotValid logs a warning when cert is not valid now (expired, or
// not yet valid): clients will refuse it, so the files need renewing. A
// certificate is warned about once.
func (c *CertFiles) warnIfNotValid(cert *tls.Certificate) {
	now := c.now()
	if leaf := cert.Leaf; cert != c.warned && (now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)) {
		c.warned = cert
		c.log.Warn("TLS certificate is not valid now: clients will refuse it; renew the files of TSWGATE_TLS_CERT_FILE and TSWGATE_TLS_KEY_FILE",
			"subject", leaf.Subject.String(), "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	}
}

func (c *CertFiles) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return s, nil
}

func (c *CertFiles) load() (*tls.Certificate, [2]fileStamp, error) {
	stamp, err := c.stamps()
	if err != nil {
		return nil, stamp, fmt.Errorf("edge: TLS files: %w", err)
	}
	certPEM, err := os.ReadFile(c.certPath)
	if err != nil {
		return nil, stamp, fmt.Errorf("edge: TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyPath)
	if err != nil {
		return nil, stamp, fmt.Errorf("edge: TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, stamp, fmt.Errorf("edge: TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, stamp, fmt.Errorf("edge: TLS certificate %s: %w", c.certPath, err)
		}
	}
	return &cert, stamp, nil
}

// aeadSuites are the TLS 1.2 cipher suites the public listener accepts:
// ECDHE key exchange (forward secrecy) with an AEAD. Go's defaults also
// have ECDHE with AES-CBC and SHA-1, which are neither AEAD nor needed by
// any client that speaks TLS 1.2. (TLS 1.3's suites are not configurable
// and are all AEAD with ECDHE.)
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig returns the public listener's TLS configuration: TLS 1.2
// and up, over TLS 1.2 only ECDHE with an AEAD (aeadSuites), HTTP/2 and
// HTTP/1.1 offered by ALPN (h2 first, unless noH2).
func ServerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), noH2 bool) *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if noH2 {
		protos = protos[1:]
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   aeadSuites,
		GetCertificate: getCert,
		NextProtos:     protos,
	}
}

// ClientCAs reads a PEM bundle of CA certificates, to verify client
// certificates (mTLS) or an upstream's certificate.
func ClientCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("edge: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("edge: CA bundle %s: no PEM certificate", path)
	}
	return pool, nil
}
