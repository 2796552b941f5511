package gateway

// Phase 4: the background loops — the change watcher, the reloads of
// project rate limits (policies.go), the limiter's and the failed-auth
// guard's sweeps, the budget heartbeat, the usage flush, token.expire
// events and the token counts.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
)

// startBackground starts the background loops, stopped by closeAll, at
// the intervals of opts. The channel it returns is closed once the
// store's changes are heard.
func (g *Gateway) startBackground(ctx context.Context, opts StartOptions) <-chan struct{} {
	bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	subscribed := make(chan struct{})
	var once sync.Once
	g.bg.Go(func() {
		_ = g.store.Watch(bgctx, func(ev auth.Event) {
			g.valid.HandleEvent(ev)
			g.health.HandleEvent(ev)
			g.policyReloads.handleEvent(ev)
			if ev.Kind == auth.EventResync {
				once.Do(func() { close(subscribed) })
			}
		})
	})
	reloadEvery := cmp.Or(opts.PolicyReloadEvery, tokenapi.PolicyRefresh)
	if err := g.loadProjectLimits(bgctx); err != nil {
		g.log.Warn("project rate limits not loaded; retrying every "+reloadEvery.String(), slog.String("err", err.Error()))
	}
	g.bg.Go(func() { g.reloadProjectLimits(bgctx, reloadEvery) })
	g.bg.Go(func() { repeat(bgctx, time.Minute, func(now time.Time) { g.limiter.Sweep(now) }) })
	// Often: an address spraying failures fills the guard quickly.
	g.bg.Go(func() { repeat(bgctx, 10*time.Second, func(now time.Time) { g.guard.Sweep(now) }) })
	g.bg.Go(func() { g.heartbeat(bgctx) })
	g.bg.Go(func() { g.usage.Run(bgctx) }) // flushes once more when stopped
	g.bg.Go(func() { g.sweepExpiries(bgctx, g.cfg.ExpirySweepInterval) })
	countEvery := opts.TokenCountEvery
	if countEvery <= 0 {
		countEvery = time.Minute
	}
	g.bg.Go(func() { g.countTokens(bgctx, countEvery) })
	g.events.start(bgctx, &g.bg)
	if g.assertionLoader != nil {
		g.bg.Go(func() { g.assertionLoader(bgctx) })
	}
	return subscribed
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

// FlushUsage writes the usage counted so far to the store, as the
// periodic flush (TSWGATE_USAGE_FLUSH_INTERVAL) does.
func (g *Gateway) FlushUsage(ctx context.Context) error { return g.usage.Flush(ctx) }

// sweepExpiries records token.expire events every interval.
func (g *Gateway) sweepExpiries(ctx context.Context, every time.Duration) {
	repeat(ctx, every, func(time.Time) {
		if err := g.RecordExpiries(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("recording token expiries failed; retrying at the next sweep", slog.String("err", err.Error()))
		}
	})
}

// RecordExpiries records a token.expire audit event for each token whose
// expiry (its own, or the end of a rotation's grace period) has passed
// since the last sweep of any replica: the store hands each expiry to one
// claimant only. An event that cannot be recorded is unclaimed, for the
// next sweep. Refusing an expired token needs none of this: the gate
// checks the expiry on every request. The gateway calls it every
// TSWGATE_EXPIRY_SWEEP_INTERVAL.
func (g *Gateway) RecordExpiries(ctx context.Context) error {
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
		if err := g.events.audit.AppendAudit(ctx, &ev); err != nil {
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

// countTokens sets tswgate_tokens at once and then every interval, from
// the counts the store keeps on every change (one HGETALL with Redis); on
// error the gauge keeps its last value.
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
		g.metrics.tokens.Set(counts)
	}
	count()
	repeat(ctx, every, func(time.Time) { count() })
}
