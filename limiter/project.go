package limiter

import (
	"strconv"
	"sync/atomic"

	"github.com/tswgate/tswgate/auth"
)

// projectLimits holds the project-wide limits, each shared by all of a
// project's tokens besides their own limits. It is replaced whole
// (SetProjectLimits) and read without a lock: a project without a limit
// costs one map lookup, and nothing at all while no project has one.
type projectLimits struct {
	m atomic.Pointer[map[int64]projectLimit]
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
		if lim.Rate <= 0 {
			continue
		}
		if lim.Burst <= 0 {
			lim.Burst = defaultBurst(lim.Rate)
		}
		m[id] = projectLimit{lim: lim, key: "project:" + strconv.FormatInt(id, 10)}
	}
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
	st.Enabled = true
	st.Project = auth.ProjectLimitStatus{
		Enabled: true, Over: ps.Over && !ps.Shadow,
		Rate: ps.Rate, Limit: ps.Limit, Remaining: ps.Remaining, Reset: ps.Reset,
	}
	st.Fallback = st.Fallback || ps.Fallback
	st.Unavailable = st.Unavailable || ps.Unavailable
	if st.Rate == 0 {
		// Only the project limits this token.
		st.Allowed = ps.Allowed
	} else {
		st.Allowed = st.Allowed && ps.Allowed
	}
	if st.Project.Over {
		st.Over, st.Shadow = true, false
		st.RetryAfter = max(st.RetryAfter, ps.RetryAfter)
	}
	return st
}
