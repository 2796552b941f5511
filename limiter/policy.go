package limiter

import (
	"math"

	"github.com/tswgate/tswgate/auth"
)

// Limit is a token-bucket limit: Rate requests per second on average, up to
// Burst at once. A zero Rate means unlimited.
type Limit struct {
	Rate  float64
	Burst int
}

// Options configure the limits that apply to tokens.
type Options struct {
	// ByRole gives the limit of each role; roles without an entry are
	// unlimited. A token's own limit (Token.RateLimit) overrides its
	// role's.
	ByRole map[auth.Role]Limit
	// ShadowRoles puts the limits of these roles in shadow mode: a request
	// over the limit is reported (LimitStatus.Shadow) but admitted. A token
	// is also in shadow mode when its record says so (Token.RateShadow).
	ShadowRoles []auth.Role
	// Lookup reads the records of a token's ancestors (Token.Lineage), so
	// that each ancestor's limit binds the token as it is now. Nil: the
	// limits recorded on the token when it was made bind instead.
	Lookup Lookup
}

// policy resolves the limit of a token. Roles index small slices (not
// maps), so that an unlimited token's lookup touches no map.
type policy struct {
	byRole []Limit
	shadow []bool
	lookup Lookup
}

func newPolicy(opts Options) policy {
	p := policy{lookup: opts.Lookup}
	grow := func(r auth.Role) {
		if n := int(r) + 1; n > len(p.byRole) {
			p.byRole = append(p.byRole, make([]Limit, n-len(p.byRole))...)
			p.shadow = append(p.shadow, make([]bool, n-len(p.shadow))...)
		}
	}
	for r, lim := range opts.ByRole {
		if lim.Rate > 0 {
			if lim.Burst <= 0 {
				lim.Burst = defaultBurst(lim.Rate)
			}
			grow(r)
			p.byRole[r] = lim
		}
	}
	for _, r := range opts.ShadowRoles {
		grow(r)
		p.shadow[r] = true
	}
	return p
}

// limitOf returns the limit that applies to t: its own, else its role's.
// ok is false when t is not limited; shadow when its limit only reports.
func (p *policy) limitOf(t *auth.Token) (lim Limit, shadow, ok bool) {
	r := int(t.Role)
	shadow = t.RateShadow || (r < len(p.shadow) && p.shadow[r])
	if t.RateLimit > 0 {
		lim = Limit{Rate: t.RateLimit, Burst: t.RateBurst}
		if lim.Burst <= 0 {
			lim.Burst = defaultBurst(lim.Rate)
		}
		return lim, shadow, true
	}
	if r < len(p.byRole) && p.byRole[r].Rate > 0 {
		return p.byRole[r], shadow, true
	}
	return Limit{}, false, false
}

// share is this replica's part of lim when n replicas split it: rate/n and
// ceil(burst/n), at least 1.
func (lim Limit) share(n int) Limit {
	if n <= 1 {
		return lim
	}
	return Limit{Rate: lim.Rate / float64(n), Burst: max(1, (lim.Burst+n-1)/n)}
}

// defaultBurst is the burst of a limit given without one: ceil(rate),
// bounded so that it fits an int on every platform.
func defaultBurst(rate float64) int {
	return int(min(math.Ceil(rate), math.MaxInt32))
}

// LimitOf returns the limit l applies to t — t's own, else its role's,
// with the burst filled in — and whether it is in shadow mode; ok is false
// when t is not limited. l must be a *Local or a *Cluster; for any other
// limiter ok is false. It lets other parts of the gateway (the token API,
// which gives a token made by a token no wider limit than its maker's)
// read the limits exactly as they are enforced.
func LimitOf(l auth.Limiter, t *auth.Token) (lim Limit, shadow, ok bool) {
	switch l := l.(type) {
	case *Local:
		return l.policy.limitOf(t)
	case *Cluster:
		return l.policy.limitOf(t)
	}
	return Limit{}, false, false
}
