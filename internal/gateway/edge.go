package gateway

// Phase 3c: the edge — the identity assertion sent upstream and its JWKS,
// TLS toward clients and toward the upstream.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/identity"
	"github.com/tswgate/tswgate/internal/edge"
	"github.com/tswgate/tswgate/internal/tracing"
	"github.com/tswgate/tswgate/proxy"
)

// JWKSPath is where the public listener publishes the assertion keys.
const JWKSPath = "/.well-known/jwks.json"

// newAssertion loads or makes the assertion keys and returns the signer
// (nil when assertions are off) and the JWKS handler (nil likewise).
func (g *Gateway) newAssertion(upstream *url.URL) (proxy.Asserter, http.Handler, error) {
	cfg := &g.cfg
	if !cfg.Assertion {
		return nil, nil, nil
	}
	var keys *identity.KeySet
	var err error
	switch {
	case len(cfg.AssertionKeyFiles) > 0:
		if keys, err = identity.LoadKeyFiles(cfg.AssertionKeyFiles); err != nil {
			return nil, nil, fmt.Errorf("TSWGATE_ASSERTION_KEY_FILES: %w", err)
		}
	case g.rdb == nil:
		path := filepath.Join(cfg.DataDir, "assertion-key.pem")
		var created bool
		if keys, created, err = identity.LoadOrCreateKeyFile(path); err != nil {
			return nil, nil, fmt.Errorf("TSWGATE_DATA_DIR: assertion key: %w", err)
		}
		if created {
			g.log.Info("generated the identity assertion key", slog.String("path", path))
		}
	default:
		return g.sharedAsserter(upstream)
	}
	signer, err := g.newSigner(keys, upstream)
	if err != nil {
		return nil, nil, err
	}
	return signer, keys, nil
}

func (g *Gateway) newSigner(keys *identity.KeySet, upstream *url.URL) (*identity.Signer, error) {
	return identity.NewSigner(identity.Options{Keys: keys, Issuer: g.cfg.AssertionIssuer,
		Audience: upstream.String(), TTL: g.cfg.AssertionTTL})
}

// newTracing starts exporting traces when TSWGATE_OTLP_ENDPOINT is set.
func (g *Gateway) newTracing(ctx context.Context) error {
	if g.cfg.OTLPEndpoint == "" {
		return nil
	}
	trusted, err := trustedProxies(g.cfg.TrustedProxies)
	if err != nil {
		return err
	}
	t, err := tracing.New(ctx, tracing.Options{Endpoint: g.cfg.OTLPEndpoint, SampleRatio: g.cfg.TraceSampleRatio,
		TrustedProxies: trusted})
	if err != nil {
		return fmt.Errorf("TSWGATE_OTLP_ENDPOINT: %w", err)
	}
	g.tracing = t
	return nil
}

// tracedStore returns the store reads of the validator, traced when
// tracing is on.
func (g *Gateway) tracedStore(s auth.Getter) auth.Getter {
	if g.tracing == nil {
		return s
	}
	return g.tracing.Getter(s)
}

// serverTLS returns the public listener's TLS configuration, or nil for
// plain HTTP.
func (g *Gateway) serverTLS() (*tls.Config, error) {
	if g.cfg.TLSCertFile == "" {
		return nil, nil
	}
	cf, err := edge.NewCertFiles(edge.CertFilesOptions{CertPath: g.cfg.TLSCertFile, KeyPath: g.cfg.TLSKeyFile,
		Logger: g.log.With(slog.String("component", "tls"))})
	if err != nil {
		return nil, fmt.Errorf("TSWGATE_TLS_CERT_FILE, TSWGATE_TLS_KEY_FILE: %w", err)
	}
	return edge.ServerConfig(cf.GetCertificate, false), nil
}

// adminMTLS reports whether the admin listener requires client
// certificates, and whether one stands in for the admin key.
func (g *Gateway) adminMTLS() (on, insteadOfKey bool) {
	mode := strings.ToLower(g.cfg.AdminMTLS)
	return mode != "" && mode != "off", mode == "instead_of_key"
}

// adminTLS returns the admin listener's TLS configuration with client
// certificates required (TSWGATE_ADMIN_MTLS), or nil for plain HTTP.
func (g *Gateway) adminTLS() (*tls.Config, error) {
	if on, _ := g.adminMTLS(); !on {
		return nil, nil
	}
	c, err := g.serverTLS()
	if err != nil {
		return nil, err
	}
	pool, err := edge.ClientCAs(g.cfg.AdminClientCA)
	if err != nil {
		return nil, fmt.Errorf("TSWGATE_ADMIN_CLIENT_CA: %w", err)
	}
	c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	c.NextProtos = []string{"http/1.1"}
	return c, nil
}

// upstreamTLS returns the TLS configuration toward the upstream (nil: the
// system's roots, no client certificate).
func (g *Gateway) upstreamTLS() (*tls.Config, error) {
	cfg := &g.cfg
	if cfg.UpstreamCAFile == "" && cfg.UpstreamClientCertFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.UpstreamCAFile != "" {
		pool, err := edge.ClientCAs(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_UPSTREAM_CA_FILE: %w", err)
		}
		c.RootCAs = pool
	}
	if cfg.UpstreamClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.UpstreamClientCertFile, cfg.UpstreamClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_UPSTREAM_CLIENT_CERT_FILE, TSWGATE_UPSTREAM_CLIENT_KEY_FILE: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
