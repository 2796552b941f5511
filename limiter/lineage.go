package limiter

import (
	"context"
	"errors"
	"fmt"

	"github.com/tswgate/tswgate/auth"
)

// Lookup returns the record of a token as it is now (a tombstone for a
// revoked one): the limiters read a token's ancestors through it, so that
// an ancestor's limit binds its descendants as it is now. It returns an
// error matching auth.ErrNotFound when there is no record, and one
// matching auth.ErrUnavailable when the store cannot answer. The gateway
// passes its validator's cached Lookup.
type Lookup func(ctx context.Context, id string) (*auth.Token, error)

// errAncestorUnavailable is why an ancestor's limit could not be read.
var errAncestorUnavailable = errors.New("limiter: an ancestor's limit could not be read")

// ancestorLimit returns the limit that binds a descendant through its
// ancestor a: the ancestor's effective limit as its record says now,
// else — without a lookup, or once the record is gone — the one recorded
// on the descendant (a.Rate, a.Burst, a.Shadow). ok is false when it has
// none.
func (p *policy) ancestorLimit(ctx context.Context, a auth.LineageLink) (lim Limit, shadow, ok bool, err error) {
	if p.lookup != nil {
		rec, err := p.lookup(ctx, a.ID)
		switch {
		case err == nil:
			lim, shadow, ok = p.limitOf(rec)
			return lim, shadow, ok, nil
		case !errors.Is(err, auth.ErrNotFound):
			return Limit{}, false, false, fmt.Errorf("%w: %s: %w", errAncestorUnavailable, a.ID, err)
		}
	}
	if a.Rate <= 0 {
		return Limit{}, false, false, nil
	}
	lim = Limit{Rate: a.Rate, Burst: a.Burst}
	if lim.Burst <= 0 {
		lim.Burst = defaultBurst(lim.Rate)
	}
	return lim, a.Shadow, true, nil
}

// withAncestors takes one request from the bucket of each of t's
// ancestors that has a limit (Token.Lineage), by take, stopping at the
// first refusal: a token never uses more than any of its ancestors'
// limits allows it, as the ancestor's limit is now. The nearest ancestor
// goes first and the root last, so that a request refused by a narrowed
// branch spends nothing of the buckets above it, which the branch's
// siblings share. A bucket
// is the ancestor's own (its id and its limit), so an ancestor and
// everything made from it share it. An ancestor whose limit cannot be
// read (the token store is down and the ancestor is not cached) makes
// the request Unavailable: store_unavailable, as any store outage.
func withAncestors(ctx context.Context, p *policy, t *auth.Token, st auth.LimitStatus,
	take func(id string, lim Limit, shadow bool) auth.LimitStatus) auth.LimitStatus {
	l := &t.Lineage
	for i := l.Depth() - 1; i >= 0; i-- {
		a := l.Ancestor(i)
		lim, shadow, ok, err := p.ancestorLimit(ctx, a)
		if err != nil {
			st.Enabled, st.Allowed, st.Unavailable = true, false, true
			return st
		}
		if !ok {
			continue
		}
		st = withLineage(st, take(a.ID, lim, shadow))
		if !st.Allowed {
			return st
		}
	}
	return st
}

// withLineage adds the status of one ancestor's limit (ls) to the
// token's (st): the request passes only if both let it. A refusal is the
// same 429 as the token's own limit (rate_limited), with st.Lineage.Over
// saying that an ancestor's bucket refused. st.Lineage shows the
// ancestor that refused, else the one with the least left. An ancestor's
// limit in shadow mode admits, is not advertised, and a request over it
// is reported (st.Lineage.ShadowOver; for a token with no limit of its
// own, st is then a status in shadow mode).
func withLineage(st, ls auth.LimitStatus) auth.LimitStatus {
	if ls.Shadow {
		if !st.Enabled {
			st.Enabled, st.Allowed, st.Shadow = true, true, true
		}
		st.Lineage.ShadowOver = st.Lineage.ShadowOver || ls.Over
		return st
	}
	prev := st.Lineage
	st, st.Lineage = combine(st, ls)
	st.Lineage.ShadowOver = prev.ShadowOver
	if prev.Enabled && !st.Lineage.Over && prev.Remaining < st.Lineage.Remaining {
		st.Lineage = prev
	}
	return st
}
