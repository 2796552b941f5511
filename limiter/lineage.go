package limiter

import "github.com/tswgate/tswgate/auth"

// withLineage adds the status of the token's lineage limit (ls) to its
// own (st): the request passes only if both let it. It is the same 429 as
// the token's own limit (rate_limited), with st.Lineage.Over saying which
// bucket refused. A lineage in shadow mode (its root's limit was) admits
// and is not reported, as a limit that is not enforced is not advertised.
func withLineage(st, ls auth.LimitStatus) auth.LimitStatus {
	if ls.Shadow {
		return st
	}
	st, st.Lineage = combine(st, ls)
	return st
}
