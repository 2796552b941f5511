package proxy

import (
	"net/http"
	"strconv"

	"github.com/tswgate/tswgate/auth"
)

// setRateLimitHeaders sets the RateLimit-* fields of a limited token's
// response (draft-ietf-httpapi-ratelimit-headers).
func setRateLimitHeaders(h http.Header, s *auth.LimitStatus) {
	reset := retryAfterSeconds(s.Reset)
	if s.Reset <= 0 {
		reset = "0"
	}
	h["Ratelimit-Limit"] = []string{strconv.Itoa(s.Limit)}
	h["Ratelimit-Remaining"] = []string{strconv.Itoa(s.Remaining)}
	h["Ratelimit-Reset"] = []string{reset}
}
