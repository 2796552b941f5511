package gateway

// Phase 2: the decision — the token validator (cache in front of the
// store), the rate limiter, the gate that combines them, and the limit on
// failed authentications.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
	"github.com/tswgate/tswgate/proxy"
)

// replicaTTL is how long a replica counts as live after its last
// heartbeat (for the share of a limit each replica holds while Redis is
// unreachable); heartbeats go every third of it.
const replicaTTL = 3 * time.Second

// sweeper is a limiter whose idle state is dropped periodically.
type sweeper interface {
	auth.Limiter
	Sweep(now time.Time) int
}

// authGuard is the limit on failed authentications per client address,
// whose idle addresses are dropped periodically.
type authGuard interface {
	proxy.AuthGuard
	Sweep(now time.Time) int
}

// noGuard is the authGuard of a gateway without a limit on failed
// authentications (TSWGATE_AUTH_FAILURE_RATE 0).
type noGuard struct{ proxy.NoGuard }

// Sweep has nothing to drop.
func (noGuard) Sweep(time.Time) int { return 0 }

// newDecision builds the validator, the limiter and the failed-auth
// guard, and returns the gate that decides each request with them. It
// needs the store, the hasher and the metrics.
func (g *Gateway) newDecision() (*auth.Gate, error) {
	cfg := &g.cfg
	var err error
	g.valid, err = auth.NewValidator(auth.ValidatorOptions{
		Store:        g.tracedStore(g.store),
		TTL:          cfg.CacheTTL,
		NegativeTTL:  cfg.NegativeCacheTTL,
		StaleIfError: cfg.StaleIfError,
		MaxEntries:   cfg.CacheMaxEntries,
		StoreTimeout: cfg.StoreTimeout,
		Logger:       g.log,
		Observer:     g.metrics.cache,
	})
	if err != nil {
		return nil, err
	}
	if err := g.newLimiter(); err != nil {
		return nil, err
	}
	g.guard = noGuard{}
	if ag := limiter.NewAuthGuard(cfg.AuthFailureRate, cfg.AuthFailureBurst); ag != nil {
		g.guard = ag
	}
	return auth.NewGate(auth.GateOptions{Validator: g.valid, Hasher: g.hasher, Limiter: g.limiter})
}

// newLimiter builds the rate limiter the configuration asks for: leases of
// a budget shared through Redis (cluster scope with the Redis store), else
// buckets of this replica. The limiter always runs: a token may carry its
// own limit (set through the admin API) even when its role has none; a
// token without any limit costs it nothing.
func (g *Gateway) newLimiter() error {
	cfg := &g.cfg
	opts := limiter.Options{ByRole: map[auth.Role]limiter.Limit{
		auth.RoleOwner:      {Rate: cfg.RateOwner, Burst: cfg.BurstOwner},
		auth.RoleAccounting: {Rate: cfg.RateAccounting, Burst: cfg.BurstAccounting},
	}, Lookup: g.lookupAncestor}
	for _, s := range cfg.RateLimitShadowRoles {
		r, err := auth.ParseRole(s)
		if err != nil {
			return fmt.Errorf("TSWGATE_RATELIMIT_SHADOW_ROLES: %w", err)
		}
		opts.ShadowRoles = append(opts.ShadowRoles, r)
	}
	g.heartbeat = func(context.Context) {}
	if g.rdb == nil || cfg.RateLimitScope != "cluster" {
		g.limiter = limiter.NewLocal(opts)
		return nil
	}
	b, err := limiter.NewRedisBudget(g.rdb, cfg.RedisPrefix)
	if err != nil {
		return err
	}
	outage := limiter.OutageShare
	if cfg.RateLimitOnOutage == "refuse" {
		outage = limiter.OutageRefuse
	}
	log := g.log.With(slog.String("component", "ratelimit"))
	var budget limiter.Budget = b
	if g.tracing != nil {
		budget = g.tracing.Budget(b)
	}
	g.limiter = limiter.NewCluster(limiter.ClusterOptions{
		Options:     opts,
		Budget:      budget,
		LeaseTime:   cfg.RateLimitLease,
		Timeout:     cfg.StoreTimeout,
		Outage:      outage,
		Replicas:    b.Live,
		Logger:      log,
		ObserveTake: g.metrics.budget.ObserveBudget,
	})
	g.heartbeat = func(ctx context.Context) { b.RunHeartbeat(ctx, replicaTTL, cfg.StoreTimeout, log) }
	g.metrics.budget.SetReplicas(b.Live)
	return nil
}

// lookupAncestor reads the record of a token's ancestor through the
// validator's cache, for the limiter: an ancestor's limit binds its
// lineage as it is now.
func (g *Gateway) lookupAncestor(ctx context.Context, id string) (*auth.Token, error) {
	tok, _, err := g.valid.Lookup(ctx, id, time.Now())
	return tok, err
}
