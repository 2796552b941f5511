// Package gateway assembles a running tswgate from its configuration, one
// phase per file: the store and secrets (store.go); the decision: the
// token validator, the rate limiter and the gate (decision.go); the
// handlers: the proxy, the token APIs, the web console and the metrics
// endpoints (handlers.go); the background loops (background.go); and the
// listeners (serve.go). The tswgate command parses flags and configuration
// and calls Start.
package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/logs"
	"github.com/tswgate/tswgate/internal/tracing"
	"github.com/tswgate/tswgate/proxy"
	usagecount "github.com/tswgate/tswgate/usage"
)

// Gateway is a running tswgate: the public proxy, the admin API and the
// metrics listener, with the store, cache and change watcher behind them.
type Gateway struct {
	cfg    config.Config
	log    *slog.Logger
	store  auth.ActivityStore
	rdb    redis.UniversalClient // nil with the embedded store
	hasher *auth.Hasher
	// AdminKeyPath is where a generated admin key was stored ("" when the
	// key came from configuration).
	AdminKeyPath string
	adminKey     string

	// The decision (decision.go).
	valid   *auth.Validator
	limiter sweeper
	// heartbeat keeps this replica counted among those sharing a
	// cluster-wide budget; it does nothing with replica scope.
	heartbeat func(ctx context.Context)
	guard     authGuard

	// The handlers (handlers.go).
	metrics gatewayMetrics
	health  *proxy.Health
	usage   *usagecount.Recorder
	access  *proxy.BufferedWriter // nil when the access log is off
	apiConn *proxy.Client         // the upstream client; nil before the handler is built
	events  events                // webhooks and leak reports (events.go)
	tracing *tracing.Tracing      // nil when TSWGATE_OTLP_ENDPOINT is empty (edge.go)
	// assertionLoader keeps reading the shared assertion key from Redis
	// when it could not be read at start (sharedkey.go); nil otherwise.
	assertionLoader func(ctx context.Context)
	// Project rate limits (policies.go): the reloads announcements ask
	// for, and the lock ordering the loads.
	policyReloads *policyReloads
	policyMu      sync.Mutex

	// The listeners (serve.go) and the background loops (background.go).
	servers   []server
	listeners map[string]net.Listener // by role: public, admin, metrics
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	errc      chan error
}

// StartOptions are the parts of a Gateway that are not configuration.
type StartOptions struct {
	// Logger is the process's logger. Required.
	Logger *slog.Logger
	// Upstream overrides cfg.UpstreamURL (quickstart's stand-in).
	Upstream *url.URL
	// AccessLog is where the access log (TSWGATE_ACCESS_LOG) goes, through
	// a buffer flushed every 100ms and on Shutdown; nil means os.Stderr,
	// the process log's destination.
	AccessLog io.Writer
	// TokenCountEvery is how often tswgate_tokens is recounted; 0 means
	// every minute.
	TokenCountEvery time.Duration
	// PolicyReloadEvery is how often every project policy is reloaded
	// for its rate limit, besides the reloads of the projects whose
	// change is announced; 0 means tokenapi.PolicyRefresh.
	PolicyReloadEvery time.Duration
}

// Start builds and starts a Gateway. It listens on every configured address
// before returning, so a caller may use the addresses at once.
func Start(ctx context.Context, cfg config.Config, opts StartOptions) (_ *Gateway, err error) {
	// Every line the gateway logs goes through the redacting handler, also
	// when the caller's logger does not.
	logger := slog.New(logs.Redacting(opts.Logger.Handler()))
	g := &Gateway{cfg: cfg, log: logger, listeners: map[string]net.Listener{}, errc: make(chan error, 4),
		policyReloads: newPolicyReloads()}
	defer func() {
		if err != nil {
			g.closeAll() // whatever was opened before the failure
		}
	}()
	if err := CheckFiles(cfg); err != nil {
		return nil, err
	}
	upstream := opts.Upstream
	if upstream == nil {
		if upstream, err = cfg.Upstream(); err != nil {
			return nil, err
		}
	}
	if err := g.openStore(); err != nil {
		return nil, err
	}
	if err := g.loadSecrets(); err != nil {
		return nil, err
	}
	if err := g.newTracing(ctx); err != nil {
		return nil, err
	}
	reg, err := g.newMetrics()
	if err != nil {
		return nil, err
	}
	gate, err := g.newDecision()
	if err != nil {
		return nil, err
	}
	if err := g.openListeners(upstream, gate, reg, opts.AccessLog); err != nil {
		return nil, err
	}
	subscribed := g.startBackground(ctx, opts)
	if err := g.serveAll(ctx, subscribed); err != nil {
		return nil, err
	}
	g.log.Info("tswgate started",
		slog.String("public", g.Addr("public")), slog.String("admin", g.Addr("admin")),
		slog.String("metrics", g.Addr("metrics")), slog.String("upstream", upstream.Redacted()),
		slog.String("store", g.storeKind()), slog.String("pepper_id", g.hasher.CurrentID()))
	return g, nil
}

// Config returns the configuration the gateway runs with.
func (g *Gateway) Config() config.Config { return g.cfg }

// AdminKey returns the admin key the admin API accepts. It is a secret:
// never log it.
func (g *Gateway) AdminKey() string { return g.adminKey }

// Store returns the token store the gateway uses.
func (g *Gateway) Store() auth.ActivityStore { return g.store }

// Hasher returns the hasher of the gateway's secrets (its pepper).
func (g *Gateway) Hasher() *auth.Hasher { return g.hasher }
