package proxy

import (
	"math"
	"net/http"
	"strconv"
	"time"

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
// With shared limits — the lineage's of a token made by a token
// (s.Lineage), the project's (s.Project) — RateLimit-Policy and RateLimit
// list each, "token", "lineage" and "project", and RateLimit-Limit,
// -Remaining and -Reset give the one with the least left.
//
// Nothing is set for a token without a limit, or whose limit is in shadow
// mode (a limit that is not enforced is not advertised).
func setRateLimitHeaders(h http.Header, s *auth.LimitStatus) {
	shared := s.Project.Enabled || s.Lineage.Enabled
	if !s.Enabled || s.Shadow && !shared {
		return
	}
	if shared {
		setSharedLimitHeaders(h, s)
		return
	}
	limit, remaining, reset, policy, state := limitFields("token", s.Rate, s.Limit, s.Remaining, s.Reset)
	h["Ratelimit-Limit"] = []string{limit}
	h["Ratelimit-Remaining"] = []string{remaining}
	h["Ratelimit-Reset"] = []string{reset}
	h["Ratelimit-Policy"] = []string{policy}
	h["Ratelimit"] = []string{state}
}

// setSharedLimitHeaders sets the fields of a token held to a shared
// limit (its lineage's, its project's, or both), besides its own (when it
// has one, not in shadow mode).
func setSharedLimitHeaders(h http.Header, s *auth.LimitStatus) {
	var limit, remaining, reset, policy, state string
	least := math.MaxInt
	add := func(name string, rate float64, quota, left int, until time.Duration) {
		l, r, z, p, st := limitFields(name, rate, quota, left, until)
		if policy != "" {
			policy, state = policy+", ", state+", "
		}
		policy, state = policy+p, state+st
		if left <= least { // ties: the shared limit, listed later
			least, limit, remaining, reset = left, l, r, z
		}
	}
	if s.Rate > 0 && !s.Shadow {
		add("token", s.Rate, s.Limit, s.Remaining, s.Reset)
	}
	if l := &s.Lineage; l.Enabled {
		add("lineage", l.Rate, l.Limit, l.Remaining, l.Reset)
	}
	if p := &s.Project; p.Enabled {
		add("project", p.Rate, p.Limit, p.Remaining, p.Reset)
	}
	h["Ratelimit-Limit"] = []string{limit}
	h["Ratelimit-Remaining"] = []string{remaining}
	h["Ratelimit-Reset"] = []string{reset}
	h["Ratelimit-Policy"] = []string{policy}
	h["Ratelimit"] = []string{state}
}

// limitFields writes one limit's fields: its quota (the burst), what is
// left, the seconds until whole, and its RateLimit-Policy and RateLimit
// items named name.
func limitFields(name string, rate float64, quota, left int, until time.Duration) (limit, remaining, reset, policy, state string) {
	reset = "0"
	if until > 0 {
		reset = retryAfterSeconds(until)
	}
	limit = strconv.Itoa(quota)
	remaining = strconv.Itoa(left)
	window := 1
	if rate > 0 {
		window = max(1, int(math.Min(math.Ceil(float64(quota)/rate), math.MaxInt32)))
	}
	policy = `"` + name + `";q=` + limit + `;w=` + strconv.Itoa(window)
	state = `"` + name + `";r=` + remaining + `;t=` + reset
	return limit, remaining, reset, policy, state
}
