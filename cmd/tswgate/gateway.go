package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/logs"
	"github.com/tswgate/tswgate/limiter"
	"github.com/tswgate/tswgate/proxy"
	usagecount "github.com/tswgate/tswgate/usage"
)

// Files the embedded default keeps in the data dir.
const (
	storeFile    = "tokens.json"
	pepperFile   = "pepper"
	adminKeyFile = "admin.key"
)

// Gateway is a running tswgate: the public proxy, the admin API and the
// metrics listener, with the store, cache and change watcher behind them.
type Gateway struct {
	cfg     config.Config
	log     *slog.Logger
	store   auth.ActivityStore
	rdb     redis.UniversalClient
	hasher  *auth.Hasher
	valid   *auth.Validator
	health  *proxy.Health
	limiter sweeper
	// budget is the shared rate-limit budget (nil with replica scope).
	budget  *limiter.RedisBudget
	guard   *limiter.AuthGuard
	metrics *proxy.Metrics
	usage   *usagecount.Recorder
	// access buffers the access log; nil when it is off.
	access   *proxy.BufferedWriter
	adminKey string
	// AdminKeyPath is where a generated admin key was stored ("" when the
	// key came from configuration).
	AdminKeyPath string

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
}

// Start builds and starts a Gateway. It listens on every configured address
// before returning, so a caller may use the addresses at once.
func Start(ctx context.Context, cfg config.Config, opts StartOptions) (_ *Gateway, err error) {
	// Every line the gateway logs goes through the redacting handler, also
	// when the caller's logger does not.
	logger := slog.New(logs.Redacting(opts.Logger.Handler()))
	g := &Gateway{cfg: cfg, log: logger, listeners: map[string]net.Listener{}, errc: make(chan error, 4)}
	defer func() {
		if err != nil {
			g.closeAll() // whatever was opened before the failure
		}
	}()
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := proxy.NewMetrics(reg, proxy.MetricsOptions{
		Projects: cfg.MetricsProjectIDs(),
		Tokens:   cfg.MetricsTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	g.metrics = metrics
	var accessLog proxy.AccessLogger
	if cfg.AccessLog {
		w := opts.AccessLog
		if w == nil {
			w = os.Stderr
		}
		g.access = proxy.NewBufferedWriter(w, 64<<10, 100*time.Millisecond)
		accessLog = newAccessLogger(cfg, g.access)
	}
	g.valid, err = auth.NewValidator(auth.ValidatorOptions{
		Store:        g.store,
		TTL:          cfg.CacheTTL,
		NegativeTTL:  cfg.NegativeCacheTTL,
		StaleIfError: cfg.StaleIfError,
		MaxEntries:   cfg.CacheMaxEntries,
		StoreTimeout: cfg.StoreTimeout,
		Logger:       g.log,
		Observer:     metrics,
	})
	if err != nil {
		return nil, err
	}
	lim, err := g.newLimiter()
	if err != nil {
		return nil, err
	}
	gate, err := auth.NewGate(auth.GateOptions{Validator: g.valid, Hasher: g.hasher, Limiter: lim})
	if err != nil {
		return nil, err
	}
	var guard proxy.AuthGuard
	if g.guard = limiter.NewAuthGuard(cfg.AuthFailureRate, cfg.AuthFailureBurst); g.guard != nil {
		guard = g.guard
	}
	trusted := make([]netip.Prefix, 0, len(cfg.TrustedProxies))
	for _, s := range cfg.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_TRUSTED_PROXIES: %w", err) // Validate checked it
		}
		trusted = append(trusted, p.Masked())
	}
	g.usage, err = usagecount.New(usagecount.Options{Sink: g.store, Interval: cfg.UsageFlushInterval, Logger: g.log})
	if err != nil {
		return nil, err
	}
	handler, err := proxy.New(proxy.Options{
		Decider:           gate,
		Upstream:          upstream,
		Transport:         proxy.NewTransport(proxy.TransportOptions{ResponseHeaderTimeout: cfg.UpstreamTimeout}),
		PassAuthorization: cfg.PassAuthorization,
		MaxBodyScan:       cfg.MaxBodyScan,
		Metrics:           metrics,
		Logger:            g.log,
		AccessLog:         accessLog,
		AuthGuard:         guard,
		TrustedProxies:    trusted,
		Usage:             g.usage,
	})
	if err != nil {
		return nil, err
	}
	var pinger proxy.Pinger
	if p, ok := g.store.(proxy.Pinger); ok {
		pinger = p
	}
	g.health = proxy.NewHealth(pinger, cfg.StoreTimeout)

	// The token API: on the admin listener for admin keys and Owner
	// tokens; on the public one, under /tswgate/, for Owner tokens.
	authn := &auth.Authenticator{Validator: g.valid, Hasher: g.hasher}
	apiOpts := tokenapi.Options{
		Store:      tokenapi.ObservedStore(g.store, metrics),
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
		MaxTokensPerProject: cfg.MaxTokensPerProject,
		Logger:              g.log.With(slog.String("component", "token-api")),
	}
	public := http.Handler(handler)
	if cfg.SelfService {
		selfOpts := apiOpts
		selfOpts.Prefix = selfServicePrefix
		self, err := tokenapi.New(selfOpts)
		if err != nil {
			return nil, err
		}
		public = withSelfService(withConsole(cfg.Console, publicConsolePrefix, proxy.GuardAPI(self, guard, trusted, authn.Recognized)), handler)
	}
	if err := g.listen("public", cfg.ListenAddr, public); err != nil {
		return nil, err
	}
	if cfg.AdminAddr != "" {
		adminOpts := apiOpts
		adminOpts.AdminKeys = []string{g.adminKey}
		api, err := tokenapi.New(adminOpts)
		if err != nil {
			return nil, err
		}
		if err := g.listen("admin", cfg.AdminAddr, withConsole(cfg.Console, consolePrefix, api)); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("GET /healthz", g.health.LiveHandler())
		mux.Handle("GET /readyz", g.health.ReadyHandler())
		if err := g.listen("metrics", cfg.MetricsAddr, mux); err != nil {
			return nil, err
		}
	}

	bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	subscribed := make(chan struct{})
	var once sync.Once
	g.bg.Go(func() {
		_ = g.store.Watch(bgctx, func(ev auth.Event) {
			g.valid.HandleEvent(ev)
			g.health.HandleEvent(ev)
			if ev.Kind == auth.EventResync {
				once.Do(func() { close(subscribed) })
			}
		})
	})
	g.bg.Go(func() { g.sweep(bgctx) })
	if g.guard != nil {
		// Often: an address spraying failures fills the guard quickly.
		g.bg.Go(func() { repeat(bgctx, 10*time.Second, func(now time.Time) { g.guard.Sweep(now) }) })
	}
	if g.budget != nil {
		g.bg.Go(func() {
			g.budget.RunHeartbeat(bgctx, replicaTTL, cfg.StoreTimeout, g.log.With(slog.String("component", "ratelimit")))
		})
	}
	g.bg.Go(func() { g.usage.Run(bgctx) }) // flushes once more when stopped
	g.bg.Go(func() { g.sweepExpiries(bgctx, cfg.ExpirySweepInterval) })
	every := opts.TokenCountEvery
	if every <= 0 {
		every = time.Minute
	}
	g.bg.Go(func() { g.countTokens(bgctx, every) })
	// Health endpoints answer at once (not ready until subscribed); the
	// others serve only once changes are heard, so a revocation made
	// before this replica listened to them cannot be missed.
	g.serve("metrics")
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		g.log.Warn("not yet subscribed to token changes; serving with the cache TTL as the staleness bound")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.serve("public")
	g.serve("admin")
	g.log.Info("tswgate started",
		slog.String("public", g.Addr("public")), slog.String("admin", g.Addr("admin")),
		slog.String("metrics", g.Addr("metrics")), slog.String("upstream", upstream.Redacted()),
		slog.String("store", g.storeKind()), slog.String("pepper_id", g.hasher.CurrentID()))
	return g, nil
}

// replicaTTL is how long a replica counts as live after its last
// heartbeat (for the share of a limit each replica holds while Redis is
// unreachable); heartbeats go every third of it.
const replicaTTL = 3 * time.Second

// sweeper is a limiter whose idle state is dropped periodically.
type sweeper interface {
	auth.Limiter
	Sweep(now time.Time) int
}

// newLimiter builds the rate limiter the configuration asks for: leases of
// a budget shared through Redis (cluster scope with the Redis store), else
// buckets of this replica. The limiter always runs: a token may carry its
// own limit (set through the admin API) even when its role has none; a
// token without any limit costs it nothing.
func (g *Gateway) newLimiter() (sweeper, error) {
	cfg := &g.cfg
	opts := limiter.Options{ByRole: map[auth.Role]limiter.Limit{
		auth.RoleOwner:      {Rate: cfg.RateOwner, Burst: cfg.BurstOwner},
		auth.RoleAccounting: {Rate: cfg.RateAccounting, Burst: cfg.BurstAccounting},
	}}
	for _, s := range cfg.RateLimitShadowRoles {
		r, err := auth.ParseRole(s)
		if err != nil {
			return nil, fmt.Errorf("TSWGATE_RATELIMIT_SHADOW_ROLES: %w", err)
		}
		opts.ShadowRoles = append(opts.ShadowRoles, r)
	}
	if g.rdb == nil || cfg.RateLimitScope != "cluster" {
		g.limiter = limiter.NewLocal(opts)
		return g.limiter, nil
	}
	b, err := limiter.NewRedisBudget(g.rdb, cfg.RedisPrefix)
	if err != nil {
		return nil, err
	}
	outage := limiter.OutageShare
	if cfg.RateLimitOnOutage == "refuse" {
		outage = limiter.OutageRefuse
	}
	g.budget = b
	g.limiter = limiter.NewCluster(limiter.ClusterOptions{
		Options:     opts,
		Budget:      b,
		LeaseTime:   cfg.RateLimitLease,
		Timeout:     cfg.StoreTimeout,
		Outage:      outage,
		Replicas:    b.Live,
		Logger:      g.log.With(slog.String("component", "ratelimit")),
		ObserveTake: g.metrics.ObserveBudget,
	})
	g.metrics.SetReplicas(b.Live)
	return g.limiter, nil
}

func (g *Gateway) sweep(ctx context.Context) {
	repeat(ctx, time.Minute, func(now time.Time) { g.limiter.Sweep(now) })
}

// selfServicePrefix is where the token API is mounted on the public
// listener. TeraSwitch's routes are all under /v1/ and /v2/.
const selfServicePrefix = "/tswgate"

// withSelfService sends requests under /tswgate/ to the token API and
// everything else to the proxy, unchanged.
func withSelfService(api, proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, selfServicePrefix+"/") {
			api.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// sweepExpiries records token.expire events every interval.
func (g *Gateway) sweepExpiries(ctx context.Context, every time.Duration) {
	repeat(ctx, every, func(time.Time) {
		if err := g.recordExpiries(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("recording token expiries failed; retrying at the next sweep", slog.String("err", err.Error()))
		}
	})
}

// repeat calls fn every interval until ctx is done.
func repeat(ctx context.Context, every time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// recordExpiries records a token.expire audit event for each token whose
// expiry (its own, or the end of a rotation's grace period) has passed
// since the last sweep of any replica: the store hands each expiry to one
// claimant only. An event that cannot be recorded is unclaimed, for the
// next sweep. Refusing an expired token needs none of this: the gate
// checks the expiry on every request.
func (g *Gateway) recordExpiries(ctx context.Context) error {
	now := time.Now()
	claimed, err := g.store.ClaimExpired(ctx, now)
	if err != nil {
		return fmt.Errorf("claiming expired tokens: %w", err)
	}
	var errs []error
	for _, t := range claimed {
		ev := auth.AuditEvent{
			Time: now.UTC().Truncate(time.Millisecond), Action: "token.expire", ActorKind: auth.ActorSystem,
			ProjectID: t.ProjectID, TokenID: t.ID, Outcome: auth.OutcomeOK,
			Detail: "expired at " + t.ExpiresAt.UTC().Format(time.RFC3339Nano),
		}
		if err := g.store.AppendAudit(ctx, &ev); err != nil {
			errs = append(errs, fmt.Errorf("recording the expiry of %s: %w", t.ID, err))
			if err := g.store.UnclaimExpired(context.WithoutCancel(ctx), t); err != nil {
				errs = append(errs, fmt.Errorf("unclaiming %s: %w", t.ID, err))
			}
			continue
		}
		g.log.LogAttrs(ctx, slog.LevelInfo, "token.expire", slog.String("token_id", t.ID),
			slog.Int64("project_id", t.ProjectID), slog.String("role", t.Role.String()),
			slog.Time("expires_at", t.ExpiresAt))
	}
	return errors.Join(errs...)
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

// countTokens sets tswgate_tokens at once and then every interval. A count
// is O(tokens) (a SCAN of every record with Redis); on error the gauge
// keeps its last value.
func (g *Gateway) countTokens(ctx context.Context, every time.Duration) {
	count := func() {
		cctx, cancel := context.WithTimeout(ctx, max(every/2, time.Second))
		defer cancel()
		counts, err := g.store.CountTokens(cctx)
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("counting tokens for tswgate_tokens failed; keeping the last count", slog.String("err", err.Error()))
			}
			return
		}
		g.metrics.SetTokens(counts)
	}
	count()
	repeat(ctx, every, func(time.Time) { count() })
}

func (g *Gateway) storeKind() string {
	if g.rdb != nil {
		return "redis"
	}
	return "embedded"
}

// serve starts serving the listener of role, if it is configured.
func (g *Gateway) serve(role string) {
	for _, s := range g.servers {
		if s.role != role {
			continue
		}
		go func() {
			if err := s.srv.Serve(g.listeners[role]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.errc <- fmt.Errorf("%s listener: %w", role, err)
			}
		}()
	}
}

type server struct {
	role string
	srv  *http.Server
}

// listen opens addr for one of the gateway's servers.
func (g *Gateway) listen(role, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		env := map[string]string{"public": "TSWGATE_LISTEN_ADDR", "admin": "TSWGATE_ADMIN_ADDR", "metrics": "TSWGATE_METRICS_ADDR"}[role]
		return fmt.Errorf("%s: cannot listen on %q: %w (is another process using it? set %s to another address)", env, addr, err, env)
	}
	var connContext func(context.Context, net.Conn) context.Context
	if role == "public" {
		// Clients' HTTP/1.0 requests with Transfer-Encoding are refused.
		ln, connContext = proxy.WatchFraming(ln), proxy.ConnContext
	}
	g.listeners[role] = ln
	c := g.cfg
	g.servers = append(g.servers, server{role: role, srv: &http.Server{
		ConnContext:       connContext,
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}})
	return nil
}

// Addr returns the address a listener ("public", "admin", "metrics") is
// bound to, or "" if it is disabled.
func (g *Gateway) Addr(role string) string {
	if ln := g.listeners[role]; ln != nil {
		return ln.Addr().String()
	}
	return ""
}

// Err delivers a listener's fatal error.
func (g *Gateway) Err() <-chan error { return g.errc }

// Shutdown marks the replica unready, keeps serving for the configured
// shutdown delay (so load balancers polling /readyz stop sending), then
// stops accepting, finishes in-flight requests within ctx, and releases
// everything.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.health.Drain()
	if d := g.cfg.ShutdownDelay; d > 0 {
		g.log.Info("unready; still serving until load balancers notice", slog.Duration("delay", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	var errs []error
	for _, s := range g.servers {
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down the %s listener: %w", s.role, err))
		}
	}
	g.closeAll()
	return errors.Join(errs...)
}

func (g *Gateway) closeAll() {
	if g.cancel != nil {
		g.cancel()
	}
	for _, ln := range g.listeners {
		_ = ln.Close()
	}
	g.bg.Wait()
	if g.access != nil {
		_ = g.access.Close() // after the servers: in-flight requests' lines are in
	}
	if g.valid != nil {
		g.valid.Close()
	}
	if g.store != nil {
		_ = g.store.Close()
	}
	if g.rdb != nil {
		_ = g.rdb.Close()
	}
}

// redisLogger sends go-redis's own log lines to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

func (g *Gateway) openStore() error {
	c := g.cfg
	if c.RedisURL == "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("TSWGATE_DATA_DIR: cannot create %q: %w", c.DataDir, err)
		}
		st, err := filestore.Open(filestore.Options{
			Path:             filepath.Join(c.DataDir, storeFile),
			RevokedRetention: c.RevokedRetention,
			Logger:           g.log,
			AuditMaxEvents:   c.AuditMaxEvents,
		})
		if err != nil {
			return fmt.Errorf("embedded token store: %w", err)
		}
		g.store = st
		return nil
	}
	t, err := config.ParseRedisURL(c.RedisURL)
	if err != nil {
		return fmt.Errorf("TSWGATE_REDIS_URL: %w", err)
	}
	uo := &redis.UniversalOptions{
		Addrs:         t.Addrs,
		Username:      t.Username,
		Password:      t.Password,
		DB:            t.DB,
		MasterName:    t.MasterName,
		IsClusterMode: t.Cluster,
		// Without it go-redis ignores context deadlines on reads, and
		// TSWGATE_STORE_TIMEOUT would not bound a call to a hung Redis.
		ContextTimeoutEnabled: true,
		DialTimeout:           2 * time.Second,
		ReadTimeout:           c.StoreTimeout * 5,
		WriteTimeout:          c.StoreTimeout * 5,
		PoolTimeout:           c.StoreTimeout * 5,
	}
	if t.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// go-redis logs failed dials (every one, during an outage) through its
	// own logger; send them to ours at debug level: the gateway reports
	// outages itself (store_unavailable, /readyz, the limiter's fallback).
	redis.SetLogger(redisLogger{g.log.With(slog.String("component", "go-redis"))})
	g.rdb = redis.NewUniversalClient(uo)
	st, err := redisstore.New(redisstore.Options{
		Client:           g.rdb,
		Prefix:           c.RedisPrefix,
		RevokedRetention: c.RevokedRetention,
		Timeout:          c.StoreTimeout,
		Logger:           g.log,
		AuditMaxEvents:   c.AuditMaxEvents,
	})
	if err != nil {
		return fmt.Errorf("redis token store: %w", err)
	}
	g.store = st
	return nil
}

// loadSecrets sets up the pepper and the admin key: from configuration, or
// (embedded store only) from files in the data dir, created on first start.
func (g *Gateway) loadSecrets() error {
	c := g.cfg
	pepper := c.Pepper
	if pepper == "" {
		var err error
		if pepper, _, err = readOrCreateSecret(filepath.Join(c.DataDir, pepperFile)); err != nil {
			return fmt.Errorf("TSWGATE_PEPPER: %w", err)
		}
	}
	old := make([][]byte, 0, len(c.OldPeppers))
	for _, p := range c.OldPeppers {
		old = append(old, []byte(p))
	}
	h, err := auth.NewHasher([]byte(pepper), old...)
	if err != nil {
		return fmt.Errorf("TSWGATE_PEPPER: %w", err)
	}
	g.hasher = h
	g.adminKey = c.AdminKey
	if g.adminKey == "" {
		path := filepath.Join(c.DataDir, adminKeyFile)
		key, created, err := readOrCreateSecret(path)
		if err != nil {
			return fmt.Errorf("TSWGATE_ADMIN_KEY: %w", err)
		}
		g.adminKey, g.AdminKeyPath = key, path
		verb := "using the"
		if created {
			verb = "generated a new"
		}
		g.log.Info(verb+" admin key, kept in a file readable only by this user", slog.String("path", path))
	}
	return nil
}

// readOrCreateSecret reads a secret file, or creates it (mode 0600) with
// 32 random bytes in hex.
func readOrCreateSecret(path string) (secret string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", false, fmt.Errorf("%s holds %d characters, want at least 32; delete it to have a new one made", path, len(s))
		}
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("generating %s: %w", path, err)
	}
	s := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := io.WriteString(f, s+"\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("writing %s: %w", path, err)
	}
	return s, true, nil
}
