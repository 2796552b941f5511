package proxy

import (
	"math"
	"net/http"
	"strconv"

	"github.com/tswgate/tswgate/auth"
)

// setRateLimitHeaders sets the rate-limit fields of a limited token's
// response, in both generations of draft-ietf-httpapi-ratelimit-headers:
//
//	RateLimit-Limit: 50            quota (the burst)
//	RateLimit-Remaining: 49        what is left of it
//	RateLimit-Reset: 1             seconds until it is whole again
//	RateLimit-Policy: "token";q=50;w=1
//	RateLimit: "token";r=49;t=1
//
// The policy states the token bucket as a quota q per window w seconds:
// the burst, and the time the bucket takes to refill from empty
// (burst/rate, rounded up).
//
// Nothing is set for a token without a limit, or whose limit is in shadow
// mode (a limit that is not enforced is not advertised).
func setRateLimitHeaders(h http.Header, s *auth.LimitStatus) {
	if !s.Enabled || s.Shadow {
		return
	}
	reset := "0"
	if s.Reset > 0 {
		reset = retryAfterSeconds(s.Reset)
	}
	limit := strconv.Itoa(s.Limit)
	remaining := strconv.Itoa(s.Remaining)
	window := 1
	if s.Rate > 0 {
		window = max(1, int(math.Min(math.Ceil(float64(s.Limit)/s.Rate), math.MaxInt32)))
	}
	h["Ratelimit-Limit"] = []string{limit}
	h["Ratelimit-Remaining"] = []string{remaining}
	h["Ratelimit-Reset"] = []string{reset}
	h["Ratelimit-Policy"] = []string{`"token";q=` + limit + `;w=` + strconv.Itoa(window)}
	h["Ratelimit"] = []string{`"token";r=` + remaining + `;t=` + reset}
}
