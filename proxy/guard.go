package proxy

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// GuardAPI puts guard's limit on failed authentications per client address
// in front of next, a handler beside the proxy that authenticates API
// tokens itself (the self-service token API): an address past its limit
// is refused auth_rate_limited before next reads its credential, and an
// attempt next answers 401 is a failure, as in Handler. With guard nil it
// returns next.
func GuardAPI(next http.Handler, guard AuthGuard, trusted []netip.Prefix) http.Handler {
	if guard == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		client := ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], trusted)
		if retryAfter, blocked := guard.Blocked(client, now); blocked {
			refuse(w, auth.CodeAuthRateLimited, retryAfter)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			guard.Failed(client, now)
		}
	})
}
