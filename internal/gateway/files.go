package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/identity"
)

// CheckFiles reads the files cfg names (the public listener's certificate
// and key, the upstream client certificate and key, the CA bundles and
// the assertion keys) and reports every one the gateway could not use,
// each naming its setting and the fix. config.Load checks the values;
// this checks what they point at, for Start and for serve --check.
func CheckFiles(cfg config.Config) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.TLSCertFile != "" && cfg.TLSKeyFile != "" {
		add(checkKeyPair("TSWGATE_TLS_CERT_FILE", cfg.TLSCertFile, "TSWGATE_TLS_KEY_FILE", cfg.TLSKeyFile))
	}
	if cfg.UpstreamClientCertFile != "" && cfg.UpstreamClientKeyFile != "" {
		add(checkKeyPair("TSWGATE_UPSTREAM_CLIENT_CERT_FILE", cfg.UpstreamClientCertFile,
			"TSWGATE_UPSTREAM_CLIENT_KEY_FILE", cfg.UpstreamClientKeyFile))
	}
	if cfg.UpstreamCAFile != "" {
		add(checkCABundle("TSWGATE_UPSTREAM_CA_FILE", cfg.UpstreamCAFile))
	}
	if mode := strings.ToLower(cfg.AdminMTLS); mode != "" && mode != "off" && cfg.AdminClientCA != "" {
		add(checkCABundle("TSWGATE_ADMIN_CLIENT_CA", cfg.AdminClientCA))
	}
	if cfg.Assertion && len(cfg.AssertionKeyFiles) > 0 {
		if _, err := identity.LoadKeyFiles(cfg.AssertionKeyFiles); err != nil {
			add(fmt.Errorf("TSWGATE_ASSERTION_KEY_FILES: %w (list PEM files of P-256 keys, the signing one first)", err))
		}
	}
	return errors.Join(errs...)
}

// checkKeyPair checks that certPath holds a certificate chain and keyPath
// its private key.
func checkKeyPair(certEnv, certPath, keyEnv, keyPath string) error {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("%s: %w (set it to a readable PEM file: the certificate, then its chain)", certEnv, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("%s: %w (set it to a readable PEM file of the private key of %s)", keyEnv, err, certEnv)
	}
	if !hasCertificate(certPEM) {
		return fmt.Errorf("%s: %s holds no PEM certificate (want the certificate, then its chain)", certEnv, certPath)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// The certificate parses: what is wrong is the key, or the pair.
		return fmt.Errorf("%s: %s is not the private key of the certificate in %s (%s): %w "+
			"(set it to the key the certificate was issued for; %s must start with that certificate)",
			keyEnv, keyPath, certPath, certEnv, err, certEnv)
	}
	return nil
}

// checkCABundle checks that path holds at least one PEM certificate.
func checkCABundle(env, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w (set it to a readable PEM bundle of CA certificates)", env, err)
	}
	if !hasCertificate(data) {
		return fmt.Errorf("%s: %s holds no PEM certificate (want a bundle of CA certificates)", env, path)
	}
	return nil
}

// hasCertificate reports whether data holds a PEM CERTIFICATE block that
// parses, the first one being the leaf of a chain.
func hasCertificate(data []byte) bool {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return false
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err == nil
		}
	}
}
