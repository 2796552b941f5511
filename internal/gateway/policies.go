package gateway

// Project rate limits: loaded from the store's project policies at start,
// one project at a time when a change is announced
// (auth.EventPolicyChanged, heard from every replica), and whole every
// tokenapi.PolicyRefresh, the safety net for a lost announcement.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
)

// projectLimiter is a limiter with project-wide limits (*limiter.Local
// and *limiter.Cluster are).
type projectLimiter interface {
	SetProjectLimits(map[int64]limiter.Limit)
	SetProjectLimit(project int64, lim limiter.Limit)
}

// policyReloads are the reloads asked for by announcements and not made
// yet: some projects', or every project's.
type policyReloads struct {
	mu       sync.Mutex
	projects map[int64]struct{}
	all      bool
	// wake holds a token while reloads are pending.
	wake chan struct{}
}

func newPolicyReloads() *policyReloads {
	return &policyReloads{projects: map[int64]struct{}{}, wake: make(chan struct{}, 1)}
}

// handleEvent asks for the reloads an announcement calls for: the
// project's after EventPolicyChanged, every project's after EventResync
// (announcements may have been missed).
func (q *policyReloads) handleEvent(ev auth.Event) {
	q.mu.Lock()
	switch ev.Kind {
	case auth.EventPolicyChanged:
		q.projects[ev.Project] = struct{}{}
	case auth.EventResync:
		q.all = true
	default:
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // already pending
	}
}

// take returns the pending reloads and forgets them.
func (q *policyReloads) take() (projects []int64, all bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for p := range q.projects {
		projects = append(projects, p)
	}
	clear(q.projects)
	all, q.all = q.all, false
	return projects, all
}

// loadLimits runs load with the limiter, when it has project limits,
// under a deadline for the store's read. The loads are serialized from
// the read to the limiter's update, so that none overwrites a later read
// with an earlier one.
func (g *Gateway) loadLimits(ctx context.Context, load func(ctx context.Context, pl projectLimiter) error) error {
	pl, ok := g.limiter.(projectLimiter)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, max(10*g.cfg.StoreTimeout, time.Second))
	defer cancel()
	g.policyMu.Lock()
	defer g.policyMu.Unlock()
	return load(ctx, pl)
}

// loadProjectLimits reads every project's policy from the store and gives
// their rate limits to the limiter.
func (g *Gateway) loadProjectLimits(ctx context.Context) error {
	return g.loadLimits(ctx, func(ctx context.Context, pl projectLimiter) error {
		pols, err := g.store.ProjectPolicies(ctx)
		if err != nil {
			return fmt.Errorf("loading project policies: %w", err)
		}
		limits := make(map[int64]limiter.Limit, len(pols))
		for id, p := range pols {
			if p.RateLimit > 0 {
				limits[id] = limiter.Limit{Rate: p.RateLimit, Burst: p.Burst}
			}
		}
		pl.SetProjectLimits(limits)
		return nil
	})
}

// loadProjectLimit reads one project's policy from the store and gives
// its rate limit (or none) to the limiter.
func (g *Gateway) loadProjectLimit(ctx context.Context, project int64) error {
	return g.loadLimits(ctx, func(ctx context.Context, pl projectLimiter) error {
		p, err := g.store.ProjectPolicy(ctx, project)
		if err != nil {
			return fmt.Errorf("loading the policy of project %d: %w", project, err)
		}
		pl.SetProjectLimit(project, limiter.Limit{Rate: p.RateLimit, Burst: p.Burst})
		return nil
	})
}

// reloadProjectLimits makes the reloads announcements ask for as they
// come, and reloads every project's limit every interval, until ctx is
// done; a failed load keeps the limits last loaded.
func (g *Gateway) reloadProjectLimits(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		all := false
		var projects []int64
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all = true
		case <-g.policyReloads.wake:
			projects, all = g.policyReloads.take()
		}
		g.reloadLimits(ctx, projects, all)
	}
}

// reloadLimits reloads every project's limit, or those of projects.
func (g *Gateway) reloadLimits(ctx context.Context, projects []int64, all bool) {
	if all {
		if err := g.loadProjectLimits(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("project rate limits not reloaded; keeping the last ones", slog.String("err", err.Error()))
		}
		return
	}
	for _, p := range projects {
		if err := g.loadProjectLimit(ctx, p); err != nil && ctx.Err() == nil {
			g.log.Warn("project rate limit not reloaded after its change was announced; keeping the last one until the next reload",
				slog.Int64("project_id", p), slog.String("err", err.Error()))
		}
	}
}
