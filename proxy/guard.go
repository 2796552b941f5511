package proxy

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// GuardAPI puts guard's limit on failed authentications per client address
// in front of next, a handler beside the proxy that authenticates API
// tokens itself (the self-service token API), as Handler does for the
// proxy: an address past its limit is refused auth_rate_limited before next
// reads its credential, unless recognized reports that the credential is
// one the gateway knows (auth.Authenticator.Recognized); an attempt that
// next answers 401, or that is refused here, is a failure.
func GuardAPI(next http.Handler, guard AuthGuard, trusted []netip.Prefix, recognized func(authorization string) bool) http.Handler {
	if guard == nil {
		guard = NoGuard{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		client := ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], trusted)
		if retryAfter, blocked := guard.Blocked(client, now); blocked && !recognized(authorization(r.Header)) {
			guard.Failed(client, now)
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
