package auth

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrLimitUnavailable is the Verdict.Err of a request refused because the
// shared rate-limit budget could not be reached (and the limiter is set to
// refuse rather than fall back to its share).
var ErrLimitUnavailable = errors.New("rate-limit budget store unavailable")

// Request is what the decision needs of an HTTP request, free of any HTTP
// library's types so that any front end can fill it.
type Request struct {
	Method string
	// Path is the raw (still escaped) request path.
	Path string
	// RawQuery is the raw query string, without '?'.
	RawQuery      string
	Authorization string
	// ContentType and ContentEncoding are the values of those header
	// fields, "" when absent. A front end must join several fields of one
	// name with ", " (so that they are refused as a list), never pick one.
	ContentType     string
	ContentEncoding string
	// Body gives the body's prefix, read only when the decision reaches the
	// body check. Nil means the request has no body; so does a body that
	// reads as zero bytes.
	Body BodyPrefixer
	// FailuresBlockedFor, when above zero, says that the client's address
	// has spent its failed authentications for that long: the request is
	// refused CodeAuthRateLimited, with no store read, unless its
	// credential is Recognized (a token the client has been using).
	FailuresBlockedFor time.Duration
	// ClientAddr is the client's address (as the failed-authentication
	// guard derives it, through trusted proxies): a token bound to address
	// ranges (Token.AllowedIPs) is refused CodeIPNotAllowed from any other.
	// The zero Addr (unknown) is in no range.
	ClientAddr netip.Addr
}

// BodyPrefixer reads a bounded prefix of a request body.
type BodyPrefixer interface {
	// BodyPrefix returns up to the front end's limit of the body; complete
	// reports whether that is the whole body. The front end must still send
	// the whole body upstream.
	BodyPrefix() (prefix []byte, complete bool, err error)
}

// Limiter is the rate-limit step of the decision.
type Limiter interface {
	// Allow takes one request of t's budget at now. ctx bounds any call to
	// a shared budget store.
	Allow(ctx context.Context, t *Token, now time.Time) LimitStatus
}

// LimitStatus is a Limiter's answer.
type LimitStatus struct {
	// Enabled is false when no limit applies to the token.
	Enabled bool
	// Allowed is false when the request is refused (over the limit, or
	// Unavailable).
	Allowed bool
	// Shadow is set when the limit is in shadow mode: it only reports, and
	// Allowed is true even when Over is.
	Shadow bool
	// Over is set when the request was over the limit.
	Over bool
	// Fallback is set when the shared budget could not be reached and the
	// request was decided against this replica's share of the limit.
	Fallback bool
	// Unavailable is set when the shared budget could not be reached and
	// the configuration says to refuse rather than fall back; the decision
	// is then store_unavailable, not rate_limited.
	Unavailable bool
	// Rate is the limit's average rate (requests per second); Limit is its
	// quota (the burst), Remaining what is left of it after this request,
	// Reset the time until it is whole again.
	Rate             float64
	Limit, Remaining int
	Reset            time.Duration
	// RetryAfter is, when refused, the time until a request would be
	// admitted.
	RetryAfter time.Duration
	// Project is the status of the limit shared by all the token's
	// project's tokens, when the project has one (Project.Enabled); the
	// fields above are then the token's own limit (Rate 0: it has none).
	// It is checked only when the token's own limit let the request pass.
	Project ProjectLimitStatus
	// Lineage is the status of the limits a token made by a token shares
	// with its ancestors (Token.Lineage), when one of them has an enforced
	// limit (Lineage.Enabled): the one that refused, else the one with the
	// least left. They are checked after the token's own limit, before the
	// project's; a refusal by one is rate_limited, like the token's own.
	Lineage ProjectLimitStatus
}

// ProjectLimitStatus is the status of a limit shared by several tokens:
// a project-wide limit (LimitStatus.Project) or a lineage's
// (LimitStatus.Lineage).
type ProjectLimitStatus struct {
	// Enabled is set when the limit applies: the token's project (or
	// lineage) has one.
	Enabled bool
	// Over is set when the request was refused by it.
	Over bool
	// Rate, Limit, Remaining and Reset are as in LimitStatus, for the
	// project's bucket.
	Rate             float64
	Limit, Remaining int
	Reset            time.Duration
	// ShadowOver is set when the request was over a shared limit in
	// shadow mode (an ancestor's, for Lineage): it was admitted, and is
	// reported like any request over a limit in shadow mode.
	ShadowOver bool
}

// ShadowOver reports whether the request was over a limit in shadow mode
// (the token's own, or an ancestor's) and no enforced limit refused it.
func (s *LimitStatus) ShadowOver() bool {
	return s.Shadow && s.Over || s.Lineage.ShadowOver && !s.Over
}

// Verdict is the outcome of a decision.
type Verdict struct {
	// Code is OK or the reason for refusing.
	Code Code
	// Token is the verified token (nil when the credential was not
	// verified).
	Token *Token
	// TokenID is the id of the record the credential named, set as soon as
	// the store has one (also when the secret is wrong): for usage counts.
	TokenID string
	// Permission and Pattern name the matched route (when one matched).
	Permission Permission
	Pattern    string
	// Cache says how the token was found.
	Cache CacheResult
	// Limit is the rate-limit status (when the decision got that far).
	Limit LimitStatus
	// RetryAfter is set for store_unavailable and rate_limited.
	RetryAfter time.Duration
	// Err is the internal cause of store_unavailable or invalid_body, for
	// logs only: it is never shown to clients.
	Err error
}

// GateOptions configure a Gate.
type GateOptions struct {
	// Validator finds tokens. Required.
	Validator *Validator
	// Hasher verifies secrets. Required.
	Hasher *Hasher
	// Routes is the route table; nil means DefaultRoutes().
	Routes *RouteTable
	// Limiter applies rate limits; nil means no limits.
	Limiter Limiter
	// StoreRetryAfter is the Retry-After of store_unavailable. Default 1s.
	StoreRetryAfter time.Duration
}

// Gate makes the per-request decision: credential, token, client address,
// role, scopes and route,
// query, body, rate limit — in that order, stopping at the first refusal.
// The query and body checks are CheckQueryProject and CheckBody (see
// scope.go for their rules).
// It is safe for concurrent use.
type Gate struct {
	validator  *Validator
	hasher     *Hasher
	routes     *RouteTable
	limiter    Limiter
	retryAfter time.Duration
}

// NewGate returns a Gate.
func NewGate(opts GateOptions) (*Gate, error) {
	if opts.Validator == nil || opts.Hasher == nil {
		return nil, errors.New("auth: GateOptions.Validator and Hasher are required")
	}
	g := &Gate{
		validator:  opts.Validator,
		hasher:     opts.Hasher,
		routes:     opts.Routes,
		limiter:    opts.Limiter,
		retryAfter: orDefault(opts.StoreRetryAfter, time.Second),
	}
	if g.routes == nil {
		g.routes = DefaultRoutes()
	}
	return g, nil
}

// Decide decides req at now. ctx bounds the store read on a cache miss.
//
// The steps, stopping at the first refusal: the credential and the token;
// the client's address against the token's ranges (AllowsAddr); the route
// (Match) and the token's role and scopes (Permits); the query
// (CheckQueryProject: its project keys and method overrides);
// the body (CheckBody: the route's TakesBody, the media type and coding,
// the JSON project check); the rate limit. The body is read (req.Body's
// BodyPrefix) only when every step before it passed, and a request spends
// its rate limit only when every other step passed.
func (g *Gate) Decide(ctx context.Context, req *Request, now time.Time) Verdict {
	var v Verdict
	if req.FailuresBlockedFor > 0 && !recognized(g.validator, g.hasher, req.Authorization) {
		v.Code, v.RetryAfter = CodeAuthRateLimited, req.FailuresBlockedFor
		return v
	}
	tok, verified, cache, code, err := checkCredential(ctx, g.validator, g.hasher, req.Authorization, now)
	v.Cache = cache
	if tok != nil {
		v.TokenID = tok.ID
	}
	if verified {
		v.Token = tok
	}
	if code != OK {
		v.Code = code
		if code == CodeStoreUnavailable {
			v.Err, v.RetryAfter = err, g.retryAfter
		}
		return v
	}
	if !tok.AllowsAddr(req.ClientAddr) {
		v.Code = CodeIPNotAllowed
		return v
	}
	perm, pattern, takesBody, code := g.routes.Match(req.Method, req.Path)
	v.Permission, v.Pattern = perm, pattern
	if code != OK {
		v.Code = code
		return v
	}
	if !tok.Permits(perm) {
		v.Code = CodePermissionDenied
		return v
	}
	if code := CheckQueryProject(req.RawQuery, tok.ProjectID); code != OK {
		v.Code = code
		return v
	}
	if req.Body != nil {
		prefix, complete, err := req.Body.BodyPrefix()
		if err != nil {
			v.Code, v.Err = CodeInvalidBody, err
			if ctx.Err() != nil {
				v.Code = CodeClientClosed
			}
			return v
		}
		if code := CheckBody(takesBody, req.ContentType, req.ContentEncoding, prefix, complete, tok.ProjectID); code != OK {
			v.Code = code
			return v
		}
	}
	if g.limiter != nil {
		v.Limit = g.limiter.Allow(ctx, tok, now)
		switch {
		case v.Limit.Unavailable:
			v.Code, v.Err, v.RetryAfter = CodeStoreUnavailable, ErrLimitUnavailable, g.retryAfter
			return v
		case v.Limit.Enabled && !v.Limit.Allowed:
			v.Code, v.RetryAfter = CodeRateLimited, v.Limit.RetryAfter
			if v.Limit.Project.Over {
				v.Code = CodeProjectRateLimited
			}
			return v
		}
	}
	return v
}
