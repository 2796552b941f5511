package gateway

// Phase 3: the handlers — the proxy on the public listener, the token API
// (admin listener; self-service beside the proxy), the web console, and
// the metrics and health endpoints.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/console"
	"github.com/tswgate/tswgate/internal/edge"
	"github.com/tswgate/tswgate/internal/logs"
	"github.com/tswgate/tswgate/internal/metrics"
	"github.com/tswgate/tswgate/limiter"
	"github.com/tswgate/tswgate/proxy"
	"github.com/tswgate/tswgate/secretscan"
	usagecount "github.com/tswgate/tswgate/usage"
	"github.com/tswgate/tswgate/webhook"
)

// Where the token API and the web console are mounted. TeraSwitch's routes
// are all under /v1/ and /v2/, so the public listener has the self-service
// API under /tswgate/; the console's page calls the API at its prefix's
// parent.
const (
	SelfServicePrefix   = "/tswgate"
	ConsolePrefix       = "/console"
	PublicConsolePrefix = SelfServicePrefix + ConsolePrefix
)

// gatewayMetrics are the gateway's metrics, each area's registering what
// it observes.
type gatewayMetrics struct {
	proxy  *proxy.Metrics       // requests, refusals, durations, rate-limit decisions
	cache  *metrics.Cache       // the token cache, store reads, change announcements
	writes *metrics.StoreWrites // the token API's store calls
	budget *metrics.Budget      // the shared rate-limit budget
	tokens *metrics.Tokens      // live tokens, counted periodically
	hooks  *webhook.Metrics     // events published, delivery attempts
	leaks  *secretscan.Metrics  // leak reports
	conns  *metrics.Connections // the public listener's connections
}

// newMetrics makes the registry that /metrics serves, with the Go and
// process collectors and the gateway's own metrics.
func (g *Gateway) newMetrics() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var m gatewayMetrics
	var err error
	if m.proxy, err = proxy.NewMetrics(reg, proxy.MetricsOptions{
		Projects: g.cfg.MetricsProjectIDs(),
		Tokens:   g.cfg.MetricsTokens,
	}); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if m.cache, err = metrics.NewCache(reg); err != nil {
		return nil, err
	}
	if m.writes, err = metrics.NewStoreWrites(reg); err != nil {
		return nil, err
	}
	if m.budget, err = metrics.NewBudget(reg); err != nil {
		return nil, err
	}
	if m.tokens, err = metrics.NewTokens(reg); err != nil {
		return nil, err
	}
	if m.hooks, err = webhook.NewMetrics(reg); err != nil {
		return nil, err
	}
	if m.leaks, err = secretscan.NewMetrics(reg); err != nil {
		return nil, err
	}
	if m.conns, err = metrics.NewConnections(reg); err != nil {
		return nil, err
	}
	if err := metrics.RegisterBuild(reg, "", ""); err != nil {
		return nil, err
	}
	g.metrics = m
	return reg, nil
}

// openListeners builds the handlers and opens the listeners that serve
// them: public (the proxy, and the self-service API and console), admin
// (the token API and console) and metrics (/metrics, /healthz, /readyz).
func (g *Gateway) openListeners(upstream *url.URL, gate *auth.Gate, reg *prometheus.Registry, accessLog io.Writer) error {
	trusted, err := trustedProxies(g.cfg.TrustedProxies)
	if err != nil {
		return err
	}
	g.usage, err = usagecount.New(usagecount.Options{Sink: g.store, Interval: g.cfg.UsageFlushInterval, Logger: g.log})
	if err != nil {
		return err
	}
	if err := g.newEvents(); err != nil {
		return err
	}
	asserter, jwks, err := g.newAssertion(upstream)
	if err != nil {
		return err
	}
	handler, err := g.newProxy(upstream, gate, trusted, accessLog, asserter)
	if err != nil {
		return err
	}
	g.health = proxy.NewHealth(pingerOf(g.store), g.cfg.StoreTimeout)
	authn := &auth.Authenticator{Validator: g.valid, Hasher: g.hasher}
	apiOpts := g.tokenAPIOptions(authn)
	// Tokens bound to address ranges are checked on the token API against
	// the same client address as on the proxy (TSWGATE_TRUSTED_PROXIES).
	apiOpts.ClientAddr = func(r *http.Request) netip.Addr {
		return proxy.ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], trusted)
	}
	public, err := g.publicHandler(handler, trusted, authn, apiOpts, jwks)
	if err != nil {
		return err
	}
	if err := g.listen("public", g.cfg.ListenAddr, public); err != nil {
		return err
	}
	if g.cfg.AdminAddr != "" {
		admin, err := g.adminHandler(apiOpts)
		if err != nil {
			return err
		}
		if err := g.listen("admin", g.cfg.AdminAddr, admin); err != nil {
			return err
		}
	}
	if g.cfg.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", g.health.LiveHandler())
	mux.Handle("GET /readyz", g.health.ReadyHandler())
	return g.listen("metrics", g.cfg.MetricsAddr, mux)
}

// publicHandler is the public listener's handler: the proxy, with the
// self-service token and webhook APIs and the console under /tswgate/,
// the leak report endpoints and the JWKS at their exact paths.
func (g *Gateway) publicHandler(handler http.Handler, trusted []netip.Prefix, authn *auth.Authenticator,
	apiOpts tokenapi.Options, jwks http.Handler) (http.Handler, error) {
	public := handler
	if g.cfg.SelfService {
		selfOpts := apiOpts
		selfOpts.Prefix = SelfServicePrefix
		self, err := tokenapi.New(selfOpts)
		if err != nil {
			return nil, err
		}
		z, err := tokenapi.NewAuthorizer(selfOpts)
		if err != nil {
			return nil, err
		}
		api, err := g.webhookAPI(z, SelfServicePrefix, self)
		if err != nil {
			return nil, err
		}
		guarded := proxy.GuardAPI(api, g.guard, trusted, authn.Recognized)
		// The proxy refuses requests on a connection with faulty framing
		// itself; the routes beside it are wrapped to refuse them too.
		beside := proxy.RefuseFaultyFraming(withConsole(g.cfg.Console, PublicConsolePrefix, guarded))
		public = withSelfService(beside, handler)
	}
	routes, err := g.leakRoutes(trusted)
	if err != nil {
		return nil, err
	}
	if jwks != nil {
		routes[JWKSPath] = exactRoute{http.MethodGet, jwks}
	}
	public = edge.HSTS(exactRoutes(routes, public, proxy.RefuseFaultyFraming), g.cfg.HSTSMaxAge, false)
	if g.tracing != nil {
		public = g.tracing.Handler(public)
	}
	return public, nil
}

// adminHandler is the admin listener's handler: the token and webhook
// APIs, and the console.
func (g *Gateway) adminHandler(apiOpts tokenapi.Options) (http.Handler, error) {
	adminOpts := apiOpts
	adminOpts.AdminKeys = []string{g.adminKey}
	_, adminOpts.ClientCertAdmin = g.adminMTLS()
	api, err := tokenapi.New(adminOpts)
	if err != nil {
		return nil, err
	}
	z, err := tokenapi.NewAuthorizer(adminOpts)
	if err != nil {
		return nil, err
	}
	withHooks, err := g.webhookAPI(z, "", api)
	if err != nil {
		return nil, err
	}
	return withConsole(g.cfg.Console, ConsolePrefix, withHooks), nil
}

// newProxy builds the proxy.
func (g *Gateway) newProxy(upstream *url.URL, gate *auth.Gate, trusted []netip.Prefix, accessLog io.Writer,
	asserter proxy.Asserter) (*proxy.Handler, error) {
	cfg := &g.cfg
	var al proxy.AccessLogger
	if cfg.AccessLog {
		if accessLog == nil {
			accessLog = os.Stderr
		}
		g.access = proxy.NewBufferedWriter(accessLog, 64<<10, 100*time.Millisecond)
		al = newAccessLogger(*cfg, g.access)
	}
	upTLS, err := g.upstreamTLS()
	if err != nil {
		return nil, err
	}
	var decider proxy.Decider = gate
	g.apiConn = proxy.NewClient(proxy.TransportOptions{ResponseHeaderTimeout: cfg.UpstreamTimeout, TLS: upTLS})
	var transport http.RoundTripper = g.apiConn
	if g.tracing != nil {
		decider, transport = g.tracing.Decider(gate), g.tracing.Transport(transport)
	}
	return proxy.New(proxy.Options{
		Decider:           decider,
		Upstream:          upstream,
		Transport:         transport,
		PassAuthorization: cfg.PassAuthorization,
		MaxBodyScan:       cfg.MaxBodyScan,
		Metrics:           g.metrics.proxy,
		Logger:            g.log,
		AccessLog:         al,
		AuthGuard:         g.guard,
		TrustedProxies:    trusted,
		Usage:             g.events.record,
		Asserter:          asserter,
		Traced:            g.tracing != nil,
	})
}

// tokenAPIOptions are the token API's options shared by the admin listener
// (admin keys and Owner tokens) and self-service (Owner tokens only).
func (g *Gateway) tokenAPIOptions(authn *auth.Authenticator) tokenapi.Options {
	lim := g.limiter
	return tokenapi.Options{
		Store:      tokenapi.ObservedStore(g.events.audit, g.metrics.writes),
		Hasher:     g.hasher,
		Tokens:     authn,
		Invalidate: g.valid.Invalidate,
		// Token API calls count against the calling token's rate limit,
		// and a token made by a token is limited like its maker at most.
		Limiter: lim,
		EffectiveLimit: func(t *auth.Token) tokenapi.Limit {
			l, shadow, _ := limiter.LimitOf(lim, t)
			return tokenapi.Limit{Rate: l.Rate, Burst: l.Burst, Shadow: shadow}
		},
		MaxTokensPerProject: g.cfg.MaxTokensPerProject,
		// A project's new rate limit applies on this replica at once (on
		// the others when they hear the store's announcement).
		PolicyChanged: func(ctx context.Context, project int64) {
			if err := g.loadProjectLimit(ctx, project); err != nil {
				g.log.Warn("project rate limit not reloaded after a change", slog.Int64("project_id", project),
					slog.String("err", err.Error()))
			}
		},
		Logger: g.log.With(slog.String("component", "token-api")),
	}
}

// pingerOf returns the store's Ping for /readyz; the embedded store is
// always reachable and has none.
func pingerOf(st auth.Store) proxy.Pinger {
	if p, ok := st.(proxy.Pinger); ok {
		return p
	}
	return nil
}

// trustedProxies parses TSWGATE_TRUSTED_PROXIES; an IPv4-mapped range
// (::ffff:10.0.0.0/104) is its IPv4 range (10.0.0.0/8).
func trustedProxies(prefixes []string) ([]netip.Prefix, error) {
	trusted := make([]netip.Prefix, 0, len(prefixes))
	for _, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_TRUSTED_PROXIES: %w", err) // Validate checked it
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Peers are compared as IPv4 (proxy.ClientAddr unmaps them):
			// so is an IPv4-mapped range.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		trusted = append(trusted, p.Masked())
	}
	return trusted, nil
}

// newAccessLogger returns the access logger: the process log's format
// (TSWGATE_LOG_FORMAT) on w, at every level (TSWGATE_ACCESS_LOG alone turns
// it off).
func newAccessLogger(cfg config.Config, w io.Writer) proxy.AccessLogger {
	if cfg.LogFormat == "text" {
		return proxy.SlogAccessLog{L: slog.New(logs.Redacting(slog.NewTextHandler(w, nil)))}
	}
	return proxy.NewJSONAccessLog(w)
}

// withSelfService sends requests under /tswgate/ to the token API and
// everything else to the proxy, unchanged.
func withSelfService(api, proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, SelfServicePrefix+"/") {
			api.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// withConsole serves the web console at prefix/ (redirecting prefix to it)
// and passes every other path to next as it is (no ServeMux path cleaning
// in front of it). With enabled false it is next.
func withConsole(enabled bool, prefix string, next http.Handler) http.Handler {
	if !enabled {
		return next
	}
	page := http.StripPrefix(prefix, console.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == prefix || strings.HasPrefix(p, prefix+"/") {
			page.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
