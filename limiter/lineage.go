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
	st.Enabled = true
	st.Lineage = auth.ProjectLimitStatus{
		Enabled: true, Over: ls.Over,
		Rate: ls.Rate, Limit: ls.Limit, Remaining: ls.Remaining, Reset: ls.Reset,
	}
	st.Fallback = st.Fallback || ls.Fallback
	st.Unavailable = st.Unavailable || ls.Unavailable
	if st.Rate == 0 {
		// Only the lineage limits this token.
		st.Allowed = ls.Allowed
	} else {
		st.Allowed = st.Allowed && ls.Allowed
	}
	if st.Lineage.Over {
		st.Over, st.Shadow = true, false
		st.RetryAfter = max(st.RetryAfter, ls.RetryAfter)
	}
	return st
}
