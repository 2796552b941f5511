package tokenapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Principal is who a request admitted by an Authorizer acts as: an admin
// key (any project) or an Owner API token (its own project only).
type Principal struct {
	// Kind is auth.ActorAdminKey or auth.ActorToken.
	Kind string
	// Actor names it in the audit trail: the admin key's fingerprint, or
	// the token's id.
	Actor string
	// Token is the token's record as stored now; nil for an admin key.
	Token *auth.Token
}

// Admin reports whether p is an admin key.
func (p *Principal) Admin() bool { return p.Token == nil }

// Authorizer admits requests to other management APIs (webhooks) exactly
// as the token API admits its own: admin keys, Owner tokens verified like
// the gateway verifies them and charged to their rate limit, which need
// tokens.read for an action that only reads and tokens.write for any other
// (403 permission_denied; see actionPermission); Accounting tokens
// refused (403 role_forbidden); refusals of known keys and tokens recorded
// in the audit trail. It is safe for concurrent use.
type Authorizer struct {
	a *api
}

// NewAuthorizer returns an Authorizer configured like the token API (Store
// and AdminKeys or Tokens are required; Hasher, Prefix, Invalidate,
// EffectiveLimit and MaxTokensPerProject are not used).
func NewAuthorizer(opts Options) (*Authorizer, error) {
	if opts.Store == nil {
		return nil, errors.New("tokenapi: Options.Store is required")
	}
	if len(opts.AdminKeys) == 0 && opts.Tokens == nil {
		return nil, errors.New("tokenapi: at least one admin key, or a token authenticator, is required")
	}
	a := &api{Options: opts}
	for _, k := range opts.AdminKeys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	return &Authorizer{a: a}, nil
}

// Authorize authenticates r for action (e.g. "webhook.create"), charging
// an API token's rate limit; params are the query parameters the endpoint
// reads. When the request is refused it has answered it (400 for a
// malformed query, a parameter given twice or empty or not one of params,
// or a body on a GET, HEAD or DELETE other than {}; 401, 403, 429 or 503,
// in the API's envelope) and returns false.
func (z *Authorizer) Authorize(w http.ResponseWriter, r *http.Request, action string, params ...string) (*Principal, bool) {
	var got *principal
	z.a.guard(action, params, func(_ http.ResponseWriter, r *http.Request) { got = principalOf(r) })(w, r)
	if got == nil {
		return nil, false
	}
	return &Principal{Kind: got.kind, Actor: got.actor, Token: got.token}, true
}

// Refused records in project's audit trail (and the log) that p's attempt
// at action on target was refused for reason; refusals by tokens are
// sampled as the token API samples its own.
func (z *Authorizer) Refused(r *http.Request, action string, p *Principal, project int64, reason, target, detail string) {
	z.a.refusedTarget(r, action, &principal{kind: p.Kind, actor: p.Actor, token: p.Token}, project, reason, target, detail)
}

// WriteJSON answers with v as indented JSON, not to be cached, as the
// token API answers: for other management APIs.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// WriteError answers a failure in the API's envelope (ErrorResponse) with
// its code, also in X-Tsw-Error-Code.
func WriteError(w http.ResponseWriter, status int, code, message string, problems ...string) {
	writeError(w, status, code, message, problems...)
}

// DecodeBody decodes a JSON request body (at most 64 KiB, exactly one
// JSON value, no unknown fields, no key given twice) into v, answering 400 invalid_request when it cannot; an empty
// body is accepted when optional.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	return decodeBody(w, r, v, optional)
}

// Do calls another management API served beside the token API with c's
// base URL and credential: it sends body (nil: none) as JSON, and decodes
// a 2xx answer into out or returns the refusal as an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, body, out)
}
