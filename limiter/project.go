package limiter

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tswgate/tswgate/auth"
)

// projectLimits holds the project-wide limits, each shared by all of a
// project's tokens besides their own limits. It is replaced whole
// (SetProjectLimits), or one project at a time (SetProjectLimit) by a
// copy, and read without a lock: a project without a limit costs one map
// lookup, and nothing at all while no project has one.
type projectLimits struct {
	m atomic.Pointer[map[int64]projectLimit]
	// mu orders the writers.
	mu sync.Mutex
}

// projectLimit is one project's limit and the key of its bucket (made
// once, so that the hot path builds no string).
type projectLimit struct {
	lim Limit
	key string
}

// set replaces the limits; a Rate of 0 means none, a Burst of 0
// ceil(Rate).
func (p *projectLimits) set(limits map[int64]Limit) {
	m := make(map[int64]projectLimit, len(limits))
	for id, lim := range limits {
		putLimit(m, id, lim)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.store(m)
}

// setOne replaces the limit of project alone, as set would.
func (p *projectLimits) setOne(project int64, lim Limit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[int64]projectLimit{}
	if cur := p.m.Load(); cur != nil {
		m = maps.Clone(*cur)
	}
	delete(m, project)
	putLimit(m, project, lim)
	p.store(m)
}

// putLimit adds project's limit to m, unless its Rate is 0 (none).
func putLimit(m map[int64]projectLimit, project int64, lim Limit) {
	if lim.Rate <= 0 {
		return
	}
	if lim.Burst <= 0 {
		lim.Burst = defaultBurst(lim.Rate)
	}
	m[project] = projectLimit{lim: lim, key: "project:" + strconv.FormatInt(project, 10)}
}

// store publishes m, nil when it is empty. p.mu must be held.
func (p *projectLimits) store(m map[int64]projectLimit) {
	if len(m) == 0 {
		p.m.Store(nil)
		return
	}
	p.m.Store(&m)
}

// of returns the limit of project.
func (p *projectLimits) of(project int64) (projectLimit, bool) {
	m := p.m.Load()
	if m == nil {
		return projectLimit{}, false
	}
	pl, ok := (*m)[project]
	return pl, ok
}

// withProject adds the status of the project's limit (ps) to a token's
// (st): the request passes only if both let it.
func withProject(st, ps auth.LimitStatus) auth.LimitStatus {
	st, st.Project = combine(st, ps)
	return st
}

// combine adds the status of a limit the token shares (o: its lineage's
// or its project's) to the token's own (st): the request passes only if
// both let it, and a refusal by o is the answer's (Over, RetryAfter).
// It returns st so combined and o's view for st.Project or st.Lineage.
func combine(st, o auth.LimitStatus) (auth.LimitStatus, auth.ProjectLimitStatus) {
	view := auth.ProjectLimitStatus{
		Enabled: true, Over: o.Over && !o.Shadow,
		Rate: o.Rate, Limit: o.Limit, Remaining: o.Remaining, Reset: o.Reset,
	}
	st.Enabled = true
	st.Fallback = st.Fallback || o.Fallback
	st.Unavailable = st.Unavailable || o.Unavailable
	if st.Rate == 0 {
		// Only the shared limit limits this token.
		st.Allowed = o.Allowed
	} else {
		st.Allowed = st.Allowed && o.Allowed
	}
	if view.Over {
		st.Over, st.Shadow = true, false
		st.RetryAfter = max(st.RetryAfter, o.RetryAfter)
	}
	return st, view
}
