// Package tokenapi is tswgate's token-management HTTP API: create a token
// (its secret is returned once), list a project's tokens, show, update
// (activate, deactivate, expiry, rate limit, scopes, address ranges),
// rotate and revoke one; read a project's audit trail. It is served on the
// admin listener, authenticated by admin keys or Owner tokens, and on the
// public listener under /tswgate/ for Owner tokens only (Options.Prefix); a
// token acts on its own project only, checked against its record as stored
// now. Any token, whatever its role, may show its own record and revoke
// itself.
//
// Requests are read strictly (strict.go): a query parameter the endpoint
// does not read, and every problem of a body, are refused 400 and listed.
//
// Every change, and every refused attempt by a known admin key or token, is
// recorded in the project's audit trail (Store.AppendAudit) besides the
// log. Lists and shows carry each token's last use and its requests of the
// last 24 hours (Store.UsageOf).
//
// Every change goes through one store operation (Create, Update, Revoke),
// which announces it to every replica; the replica that made it drops its
// own cached copy (Options.Invalidate) before answering.
//
// No token widens itself (lifecycle.go): a request authenticated by an API
// token counts against its rate limit, may not make or keep alive a token
// that outlives it or is less limited than it, may not lengthen a life,
// and once the token is rotated with a grace period it may only read and
// revoke; nor does it grant permissions or address ranges it lacks
// (restrict.go). Admin keys are not bound by these rules.
package tokenapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Options configure the API handler.
type Options struct {
	// Store holds the tokens. Required.
	Store auth.ActivityStore
	// Hasher hashes new secrets. Required.
	Hasher *auth.Hasher
	// AdminKeys are the keys accepted in "Authorization: Bearer <key>".
	// At least one is required unless Tokens is set; leave it empty on a
	// public listener.
	AdminKeys []string
	// Tokens, when set, admits Owner API tokens
	// ("Authorization: Bearer <tokenId>:<secret>"), each acting on its own
	// project only; other roles' tokens (Accounting) may only show their
	// own record and revoke themselves (role_forbidden otherwise).
	Tokens TokenAuthenticator
	// Prefix is where the API is mounted: "" for /v1/…, "/tswgate" for
	// /tswgate/v1/….
	Prefix string
	// Invalidate drops a token from this replica's cache before a change
	// is acknowledged, so that this replica never serves a token's former
	// record (active, unexpired, unrevoked, its former rate limit) after
	// the change returns. Other replicas hear of it from the store.
	Invalidate func(id string)
	// Limiter, when set, charges every request authenticated by an API
	// token to the token's rate limit, as the gateway does for the API's
	// requests (the same limiter): over it the request is refused with 429
	// rate_limited, and with 503 store_unavailable when the limiter cannot
	// decide. Admin keys are not limited.
	Limiter auth.Limiter
	// EffectiveLimit returns the rate limit the gateway applies to a token
	// (its own, else its role's; Rate 0 when none): a token created or
	// rotated by a token gets no wider limit than its maker's. Nil means a
	// token's own limit only (role limits unknown).
	EffectiveLimit func(t *auth.Token) Limit
	// MaxTokensPerProject bounds a project's live tokens: a create, or a
	// rotation that keeps the old token for a grace period, is refused
	// (409 project_token_limit) when the project has that many. 0 means
	// no bound.
	MaxTokensPerProject int
	// ClientAddr returns the address of a request's client, for tokens
	// bound to address ranges (auth.Token.AllowedIPs): the gateway's own
	// (proxy.ClientAddr with its trusted proxies). Nil means the
	// connection's peer (http.Request.RemoteAddr).
	ClientAddr func(r *http.Request) netip.Addr
	// PolicyChanged, when set, is called after a project's policy is set
	// or cleared, so that this replica applies it at once (the store
	// announces the change to the others).
	PolicyChanged func(ctx context.Context, project int64)
	// ClientCertAdmin admits a request without an Authorization header as
	// the admin when it came over TLS with a client certificate that the
	// listener verified (mTLS instead of the admin key). The listener must
	// verify client certificates (tls.RequireAndVerifyClientCert).
	ClientCertAdmin bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives an audit line per change; nil discards them.
	Logger *slog.Logger
}

type api struct {
	Options
	keys [][32]byte
	// unverified samples the audit events of refused, unverified token
	// credentials (see sampler).
	unverified sampler
}

// New returns the API's http.Handler.
func New(opts Options) (http.Handler, error) {
	if opts.Store == nil || opts.Hasher == nil {
		return nil, errors.New("tokenapi: Options.Store and Hasher are required")
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
	if a.Invalidate == nil {
		a.Invalidate = func(string) {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", a.guard("token.create", nil, a.create))
	mux.HandleFunc("GET /v1/tokens", a.guard("token.list", listParams, a.list))
	mux.HandleFunc("GET /v1/tokens/{id}", a.guard("token.show", nil, a.show))
	mux.HandleFunc("PATCH /v1/tokens/{id}", a.guard("token.update", nil, a.update))
	mux.HandleFunc("POST /v1/tokens/{id}/rotate", a.guard("token.rotate", nil, a.rotate))
	mux.HandleFunc("DELETE /v1/tokens/{id}", a.guard("token.revoke", nil, a.revoke))
	mux.HandleFunc("GET /v1/audit", a.guard("audit.read", auditParams, a.readAudit))
	a.routePolicies(mux)
	for path, allow := range endpointMethods {
		mux.HandleFunc(path, a.guard("", nil, methodNotAllowed(allow)))
	}
	mux.HandleFunc("/", a.guard("", nil, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No such endpoint: see the README's token API table.")
	}))
	if opts.Prefix != "" {
		return http.StripPrefix(opts.Prefix, mux), nil
	}
	return mux, nil
}

// endpointMethods are the methods each path of the API serves; another
// method is answered 405 method_not_allowed, naming them (not 404: the
// path exists).
var endpointMethods = map[string]string{
	"/v1/tokens":                    "GET, HEAD, POST",
	"/v1/tokens/{id}":               "GET, HEAD, PATCH, DELETE",
	"/v1/tokens/{id}/rotate":        "POST",
	"/v1/audit":                     "GET, HEAD",
	"/v1/policy":                    "GET, HEAD",
	"/v1/projects/{project}/policy": "GET, HEAD, PUT, DELETE",
	"/v1/projects/{project}/policy/violations": "GET, HEAD",
}

// methodNotAllowed answers a request whose method its path does not
// serve: 405 method_not_allowed, with the methods it serves (allow) in
// Allow and the message.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		MethodNotAllowed(w, r, allow)
	}
}

// MethodNotAllowed answers 405 method_not_allowed, in the API's envelope,
// to a request whose method its path does not serve; allow lists the
// methods it does ("GET, HEAD, POST"), also in Allow.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("This endpoint serves %s, not %s.", allow, truncate(r.Method)))
}

// CreateRequest is the body of POST /v1/tokens.
type CreateRequest struct {
	ProjectID int64  `json:"project_id"`
	Role      string `json:"role"`
	Name      string `json:"name"`
	// ExpiresAt (RFC 3339) or ExpiresIn (days such as "30d", or a Go duration such as "720h")
	// sets an expiry; neither means the token never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn string     `json:"expires_in,omitempty"`
	// RateLimit (requests per second) and Burst give the token a rate
	// limit of its own, overriding its role's (admin keys only); 0 or
	// absent means the role's.
	RateLimit float64 `json:"rate_limit,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	// Scopes limits the token to these permissions ("compute.read", …;
	// within its role's); absent or empty means what its role allows. A
	// token asking gives at most its own, and without a list passes its
	// own on.
	Scopes []string `json:"scopes,omitempty"`
	// AllowedIPs binds the token to client address ranges ("10.0.0.0/8",
	// "2001:db8::/32"); absent or empty means any address. A token asking
	// gives ranges within its own, and without a list passes its own on.
	AllowedIPs []string `json:"allowed_ips,omitempty"`
}

// A token's own rate limit is 0 (none) or within these bounds, in
// requests per second: below minRate a wait would not fit a time.Duration
// (one request in 11 days is the slowest), above maxRate it is no limit
// (TSWGATE_RATE_* have the same ceiling).
const (
	minRate = 1e-6
	maxRate = 1e6
)

func validRate(r float64) bool { return r == 0 || r >= minRate && r <= maxRate }

// UpdateRequest is the body of PATCH /v1/tokens/{id}. Only the fields given
// change; at least one is required.
type UpdateRequest struct {
	// Status is "active" or "inactive" (deactivated tokens are refused
	// with token_inactive until activated again).
	Status *string `json:"status,omitempty"`
	// RateLimit is the token's own rate limit in requests per second,
	// overriding its role's; 0 removes the override (and its burst).
	RateLimit *float64 `json:"rate_limit,omitempty"`
	// Burst is the override's burst; 0 means ceil(rate_limit). It needs a
	// rate limit, given here or already set.
	Burst *int `json:"burst,omitempty"`
	// RateShadow true puts the token's rate limit (its own or its role's)
	// in shadow mode: requests over it are counted and logged, not refused;
	// false enforces it again.
	RateShadow *bool `json:"rate_shadow,omitempty"`
	// ExpiresAt (RFC 3339) or ExpiresIn (days or a Go duration from now, such as
	// "720h") sets a new expiry, which must be in the future.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn *string    `json:"expires_in,omitempty"`
	// Scopes replaces the token's scopes list; [] removes it (the role
	// decides again).
	Scopes *[]string `json:"scopes,omitempty"`
	// AllowedIPs replaces the token's address ranges; [] removes them (any
	// address).
	AllowedIPs *[]string `json:"allowed_ips,omitempty"`
}

// RotateRequest is the body of POST /v1/tokens/{id}/rotate; the body may be
// empty.
type RotateRequest struct {
	// Grace is how long the old token keeps working, as a Go duration
	// ("1h"); empty or "0s" revokes it at once.
	Grace string `json:"grace,omitempty"`
	// Scopes and AllowedIPs, when given, replace the old token's on the
	// new one ([] removes a list); absent, the new token keeps the old
	// one's.
	Scopes     *[]string `json:"scopes,omitempty"`
	AllowedIPs *[]string `json:"allowed_ips,omitempty"`
	// ExpiresIn, when given (days such as "30d" or a Go duration), is the new
	// token's lifetime; absent, it gets the old one's lifetime from now.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// Token is a token as the API shows it. Secret-bearing Token is set only in
// the response to a create or a rotation.
type Token struct {
	ID        string     `json:"id"`
	DisplayID string     `json:"display_id"`
	Token     string     `json:"token,omitempty"`
	ProjectID int64      `json:"project_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// RateLimit and Burst are the token's own rate limit, when it has one
	// (absent: its role's limit applies).
	RateLimit float64 `json:"rate_limit,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	// RateShadow says the token's rate limit is in shadow mode.
	RateShadow bool `json:"rate_shadow,omitempty"`
	// RotatedTo is the successor of a token rotated with a grace period:
	// until its expiry the token may only read and revoke.
	RotatedTo string `json:"rotated_to,omitempty"`
	// Scopes is the token's scopes list (absent: its role decides), and
	// AllowedIPs its client address ranges (absent: any address).
	Scopes     []string `json:"scopes,omitempty"`
	AllowedIPs []string `json:"allowed_ips,omitempty"`
	// Lineage is the rate limit a token made by a token shares (absent:
	// the token has its own only).
	Lineage *LineageView `json:"lineage,omitempty"`
	// LastUsed is the token's latest request (absent: never used), and
	// Usage24h its requests of the last 24 hours (absent: none); both as
	// of the gateways' last usage flush. Set in lists and shows.
	LastUsed *time.Time `json:"last_used,omitempty"`
	Usage24h *Usage     `json:"usage_24h,omitempty"`
}

// Usage counts a token's requests by outcome.
type Usage struct {
	// Allowed requests were passed to the API.
	Allowed int64 `json:"allowed"`
	// RateLimited requests were refused with rate_limited.
	RateLimited int64 `json:"rate_limited"`
	// Refused counts the other refusals by code (invalid_token for a wrong
	// secret, token_inactive, permission_denied, project_mismatch, …).
	Refused map[string]int64 `json:"refused"`
}

// View converts a record for display.
func View(t *auth.Token) Token {
	v := Token{
		ID:         t.ID,
		DisplayID:  auth.DisplayID(t.ID),
		ProjectID:  t.ProjectID,
		Name:       t.Name,
		Role:       t.Role.String(),
		Status:     t.Status.String(),
		CreatedAt:  t.CreatedAt.UTC(),
		RateLimit:  t.RateLimit,
		Burst:      t.RateBurst,
		RateShadow: t.RateShadow,
		RotatedTo:  t.RotatedTo,
		Scopes:     t.Scopes.Names(),
		AllowedIPs: auth.FormatPrefixes(t.AllowedIPs),
		Lineage:    lineageView(t),
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC()
		v.ExpiresAt = &e
	}
	if t.Revoked() {
		r := t.RevokedAt.UTC()
		v.RevokedAt = &r
	}
	if t.Ended() {
		v.Status = "revoked"
	}
	return v
}

// Response bodies, each in the API's envelope.
type (
	// TokenResponse answers create, show, update and revoke.
	TokenResponse struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
		Token   Token  `json:"token"`
	}
	// RotateResponse answers rotate: Token is the new token, with its
	// secret (shown once); Previous is the old one as it is now (expiring
	// at the end of the grace period, or revoked). Warning, also at the
	// end of Message, is set when the rotation stands but something is
	// not as asked: the store did not confirm the old token's end (it may
	// still work), or other replicas were not told of the change.
	RotateResponse struct {
		Success  bool   `json:"success"`
		Message  string `json:"message"`
		Token    Token  `json:"token"`
		Previous Token  `json:"previous"`
		Warning  string `json:"warning,omitempty"`
	}
	// ListResponse answers list. NextCursor, absent on the last page, is
	// the cursor of the next one.
	ListResponse struct {
		Success    bool    `json:"success"`
		Message    string  `json:"message"`
		ProjectID  int64   `json:"project_id"`
		Tokens     []Token `json:"tokens"`
		NextCursor string  `json:"next_cursor,omitempty"`
	}
	// AuditResponse answers GET /v1/audit: the project's events, newest
	// first. NextCursor, absent on the last page, is the cursor of the
	// next one.
	AuditResponse struct {
		Success    bool              `json:"success"`
		Message    string            `json:"message"`
		ProjectID  int64             `json:"project_id"`
		Events     []auth.AuditEvent `json:"events"`
		NextCursor string            `json:"next_cursor,omitempty"`
	}
	// ErrorResponse answers any failure.
	ErrorResponse struct {
		Success bool     `json:"success"`
		Message string   `json:"message"`
		Code    string   `json:"code"`
		Errors  []string `json:"errors,omitempty"`
	}
)

const maxRequestBody = 64 << 10

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	p := principalOf(r)
	if req.ProjectID == 0 {
		req.ProjectID = p.defaultProject()
	}
	if req.ProjectID > 0 && !a.allowProject(w, r, "token.create", p, req.ProjectID, "") {
		return
	}
	if (req.RateLimit != 0 || req.Burst != 0) && !a.allowLimits(w, r, "token.create", p, req.ProjectID) {
		return
	}
	tok, problems := newRecord(&req, a.Now())
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token request is invalid.", problems...)
		return
	}
	pol, ok := a.policyOf(w, r, tok.ProjectID)
	if !ok {
		return
	}
	if ref := lifetimeRefusal(tok.ProjectID, pol, tok.CreatedAt, tok.ExpiresAt); ref != nil {
		a.refuse(w, r, "token.create", p, tok.ProjectID, "", ref)
		return
	}
	detail := fmt.Sprintf("%s token %q", tok.Role, tok.Name)
	if p.token != nil {
		if ref := createLifetime(p.token, tok); ref != nil {
			a.refuse(w, r, "token.create", p, tok.ProjectID, "", ref)
			return
		}
		if inheritLimit(tok, a.effective(p.token), a.effective) {
			detail += fmt.Sprintf(", rate limit %g/s (burst %d) from its creator", tok.RateLimit, burstOf(tok.RateLimit, tok.RateBurst))
		}
		if ref := joinLineage(tok, p.token, a.effective(p.token), false); ref != nil {
			a.refuse(w, r, "token.create", p, tok.ProjectID, "", ref)
			return
		}
		detail += ", lineage " + tok.Lineage.Root
		inherited, ref := restrictCreate(p.token, tok, len(req.Scopes) > 0, len(req.AllowedIPs) > 0)
		if ref != nil {
			a.refuse(w, r, "token.create", p, tok.ProjectID, "", ref)
			return
		}
		if len(inherited) > 0 {
			detail += ", " + strings.Join(inherited, ", ") + " from its creator"
		}
	}
	if tok.Scopes != 0 {
		detail += ", scopes " + tok.Scopes.String()
	}
	if len(tok.AllowedIPs) > 0 {
		detail += ", allowed_ips " + describeRanges(tok)
	}
	cred, ok := a.store(w, r, tok)
	if !ok {
		return
	}
	a.done(r, "token.create", tok, detail)
	view := View(tok)
	view.Token = cred
	msg := "Token created. Copy the token now: its secret cannot be retrieved again."
	if p.token != nil && tok.RateLimit != req.RateLimit {
		msg += fmt.Sprintf(" It is limited to %g requests per second, like the token that created it.", tok.RateLimit)
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Success: true, Message: msg, Token: view})
}

// store gives tok a fresh credential and stores it within the project's
// token limit, answering failures; it returns the credential.
func (a *api) store(w http.ResponseWriter, r *http.Request, tok *auth.Token) (string, bool) {
	id, cred, err := a.Hasher.NewCredential()
	if err != nil {
		a.internalError(w, r, "create token", err)
		return "", false
	}
	tok.ID = id
	tok.SecretHash, tok.PepperID = a.Hasher.Hash(cred)
	if err := a.Store.CreateWithin(r.Context(), tok, a.MaxTokensPerProject); err != nil {
		if !a.overLimit(w, r, "token.create", principalOf(r), err) {
			a.storeError(w, r, "create token", err)
		}
		return "", false
	}
	a.Invalidate(id) // drop a negative cache entry for the id, if any
	return cred, true
}

func newRecord(req *CreateRequest, now time.Time) (*auth.Token, []string) {
	var problems []string
	tok := &auth.Token{
		ProjectID: req.ProjectID,
		Name:      strings.TrimSpace(req.Name),
		Status:    auth.StatusActive,
		CreatedAt: now.UTC().Truncate(time.Millisecond),
	}
	if req.ProjectID <= 0 {
		problems = append(problems, "project_id: required, a positive integer")
	}
	switch {
	case !validRate(req.RateLimit):
		problems = append(problems, fmt.Sprintf("rate_limit: requests per second, 0 (the role's limit) or from %g to %g", minRate, maxRate))
	case req.Burst < 0:
		problems = append(problems, "burst: 0 or more (0 means ceil(rate_limit))")
	case req.Burst > 0 && req.RateLimit == 0:
		problems = append(problems, "burst: needs a rate_limit above 0")
	}
	tok.RateLimit, tok.RateBurst = req.RateLimit, req.Burst
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		problems = append(problems, "role: "+err.Error())
	}
	tok.Role = role
	tok.Scopes = parseScopes(req.Scopes, role, &problems)
	tok.AllowedIPs = parseRanges(req.AllowedIPs, &problems)
	if tok.Name == "" {
		problems = append(problems, "name: required")
	} else if len(tok.Name) > auth.MaxNameLen {
		problems = append(problems, fmt.Sprintf("name: at most %d bytes", auth.MaxNameLen))
	}
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != "":
		problems = append(problems, "expires_at, expires_in: give one, not both")
	case req.ExpiresAt != nil:
		tok.ExpiresAt = req.ExpiresAt.UTC().Truncate(time.Millisecond)
		if !tok.ExpiresAt.After(now) {
			problems = append(problems, "expires_at: must be in the future")
		}
	case req.ExpiresIn != "":
		d, p := readLifetime(req.ExpiresIn)
		if p != "" {
			problems = append(problems, p)
			break
		}
		if tok.ExpiresAt = tok.CreatedAt.Add(d); !tok.ExpiresAt.After(now) {
			problems = append(problems, fmt.Sprintf("expires_in: %q is too short: the token would be expired at once", req.ExpiresIn))
		}
	}
	return tok, problems
}

func (a *api) show(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	tok, ok := a.loadScoped(w, r, "token.show", id)
	if !ok {
		return
	}
	views, err := a.views(r.Context(), []*auth.Token{tok})
	if err != nil {
		a.storeError(w, r, "get token usage", err)
		return
	}
	writeJSON(w, http.StatusOK, TokenResponse{Success: true, Token: views[0]})
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	if principalOf(r).token != nil {
		if _, ok := a.loadScoped(w, r, "token.revoke", id); !ok {
			return
		}
	}
	tok, err := a.Store.Revoke(r.Context(), id, a.Now())
	if err != nil {
		a.storeError(w, r, "revoke token", err)
		return
	}
	a.Invalidate(id)
	a.done(r, "token.revoke", tok, "")
	writeJSON(w, http.StatusOK, TokenResponse{
		Success: true,
		Message: "Token revoked: it is refused from now on.",
		Token:   View(tok),
	})
}

// invalidChange is an update refused for the stored record's sake (e.g. a
// burst without a rate limit): the request is at fault, not the store.
type invalidChange struct{ problems []string }

func (e *invalidChange) Error() string { return strings.Join(e.problems, "; ") }

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	id, ok := tokenID(w, r)
	if !ok {
		return
	}
	var req UpdateRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	edit, problems := req.edit(a.Now())
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The update is invalid.", problems...)
		return
	}
	action := req.action()
	project := int64(0)
	if p := principalOf(r); p.token != nil {
		tok, ok := a.loadScoped(w, r, action, id)
		if !ok {
			return
		}
		if (req.RateLimit != nil || req.Burst != nil || req.RateShadow != nil) && !a.allowLimits(w, r, action, p, tok.ProjectID) {
			return
		}
		project = tok.ProjectID
		edit = guardedEdit(p.token, req.ExpiresAt != nil || req.ExpiresIn != nil, edit)
		edit = restrictedEdit(p.token, req.Scopes != nil || req.AllowedIPs != nil, a.effective(p.token), a.effective, edit)
	}
	if expirySet := req.ExpiresAt != nil || req.ExpiresIn != nil; expirySet || req.activates() {
		if edit, project, ok = a.lifetimePolicy(w, r, id, project, expirySet, edit); !ok {
			return
		}
	}
	var before auth.Token // the record the applied edit changed
	tok, err := a.Store.Update(r.Context(), id, func(t *auth.Token) error {
		before = *t
		return edit(t)
	})
	if err != nil {
		a.updateFailed(w, r, action, id, project, err)
		return
	}
	a.Invalidate(id)
	detail, attrs := req.detail(), req.auditAttrs()
	if changes := restrictionChanges(&before, tok); len(changes) > 0 {
		detail = strings.TrimPrefix(detail+"; "+strings.Join(changes, "; "), "; ")
		attrs = append(attrs, slog.String("restrictions", strings.Join(changes, "; ")))
	}
	a.done(r, action, tok, detail, attrs...)
	writeJSON(w, http.StatusOK, TokenResponse{
		Success: true,
		Message: "Token updated: the change applies from now on, on every replica.",
		Token:   View(tok),
	})
}

// updateFailed answers an update the store did not make: refused by the
// edit (a rule, or a problem with the stored record) or failed.
func (a *api) updateFailed(w http.ResponseWriter, r *http.Request, action, id string, project int64, err error) {
	var bad *invalidChange
	var ref *refusal
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, "invalid_request", "The update is invalid.", bad.problems...)
	case errors.As(err, &ref):
		a.refuse(w, r, action, principalOf(r), project, id, ref)
	default:
		a.storeError(w, r, "update token", err)
	}
}

// edit checks req and returns the change it makes to a record, with every
// problem found in the request; problems that depend on the record are
// found by the change itself, as an *invalidChange.
func (req *UpdateRequest) edit(now time.Time) (func(*auth.Token) error, []string) {
	var problems []string
	if req.Status == nil && !req.changesMoreThanStatus() {
		problems = append(problems, "nothing to change: give status, rate_limit, burst, rate_shadow, expires_at, expires_in, scopes or allowed_ips")
	}
	var status auth.Status
	if req.Status != nil {
		var err error
		if status, err = auth.ParseStatus(*req.Status); err != nil {
			problems = append(problems, "status: "+err.Error())
		}
	}
	if req.RateLimit != nil && !validRate(*req.RateLimit) {
		problems = append(problems, fmt.Sprintf("rate_limit: requests per second, 0 (removes the token's own limit) or from %g to %g", minRate, maxRate))
	}
	if req.Burst != nil && *req.Burst < 0 {
		problems = append(problems, "burst: 0 or more (0 means ceil(rate_limit))")
	}
	if req.RateLimit != nil && *req.RateLimit == 0 && req.Burst != nil && *req.Burst > 0 {
		problems = append(problems, "burst: needs a rate_limit above 0")
	}
	expires := req.expiry(now, &problems)
	var scopes auth.PermSet
	if req.Scopes != nil {
		scopes = parseScopes(*req.Scopes, auth.RoleInvalid, &problems) // the role is the record's: checked below
	}
	var ranges []netip.Prefix
	if req.AllowedIPs != nil {
		ranges = parseRanges(*req.AllowedIPs, &problems)
	}
	return func(t *auth.Token) error {
		if t.Replaced { // ended by a rotation: revoked, its tombstone still to come
			return fmt.Errorf("token %s was replaced by a rotation: %w", t.ID, auth.ErrRevoked)
		}
		if req.Scopes != nil {
			if extra := scopes.Missing(auth.RolePermissions(t.Role)); extra != 0 {
				return &invalidChange{[]string{fmt.Sprintf("scopes: the %s role does not grant %s", t.Role, extra)}}
			}
			t.Scopes = scopes
		}
		if req.AllowedIPs != nil {
			t.AllowedIPs = ranges // never edited in place: records are shared
		}
		if req.Status != nil {
			t.Status = status
		}
		if req.RateLimit != nil {
			t.RateLimit = *req.RateLimit
			if t.RateLimit == 0 {
				t.RateBurst = 0 // the override goes as a whole
			}
		}
		if req.Burst != nil {
			t.RateBurst = *req.Burst
		}
		if req.RateShadow != nil {
			t.RateShadow = *req.RateShadow
		}
		if !expires.IsZero() {
			t.ExpiresAt = expires
		}
		if t.RateBurst > 0 && t.RateLimit == 0 {
			return &invalidChange{[]string{"burst: the token has no rate limit of its own; give rate_limit too"}}
		}
		return nil
	}, problems
}

// expiry is the new expiry req sets (zero: none), adding its problems.
func (req *UpdateRequest) expiry(now time.Time, problems *[]string) time.Time {
	var expires time.Time
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != nil:
		*problems = append(*problems, "expires_at, expires_in: give one, not both")
	case req.ExpiresAt != nil:
		expires = req.ExpiresAt.UTC().Truncate(time.Millisecond)
		if !expires.After(now) {
			*problems = append(*problems, "expires_at: must be in the future")
		}
	case req.ExpiresIn != nil:
		d, p := readLifetime(*req.ExpiresIn)
		if p != "" {
			*problems = append(*problems, p)
		}
		expires = now.UTC().Truncate(time.Millisecond).Add(d)
	}
	return expires
}

// action names an update in the audit trail: token.activate or
// token.deactivate when it changes the status alone, token.update
// otherwise.
func (req *UpdateRequest) action() string {
	if req.Status != nil && !req.changesMoreThanStatus() {
		switch st, _ := auth.ParseStatus(*req.Status); st {
		case auth.StatusActive:
			return "token.activate"
		case auth.StatusInactive:
			return "token.deactivate"
		}
	}
	return "token.update"
}

// activates reports whether req sets the status active: it activates the
// token unless the token is active already.
func (req *UpdateRequest) activates() bool {
	if req.Status == nil {
		return false
	}
	st, err := auth.ParseStatus(*req.Status)
	return err == nil && st == auth.StatusActive
}

// changesMoreThanStatus reports whether req changes anything besides the
// status.
func (req *UpdateRequest) changesMoreThanStatus() bool {
	return req.RateLimit != nil || req.Burst != nil || req.RateShadow != nil || req.ExpiresAt != nil ||
		req.ExpiresIn != nil || req.Scopes != nil || req.AllowedIPs != nil
}

// detail says what an update changes, for the audit trail.
func (req *UpdateRequest) detail() string {
	var parts []string
	for _, a := range req.auditAttrs() {
		parts = append(parts, a.Key+"="+a.Value.String())
	}
	return strings.Join(parts, " ")
}

// auditAttrs names what an update changes, for the audit log.
func (req *UpdateRequest) auditAttrs() []slog.Attr {
	var attrs []slog.Attr
	if req.Status != nil {
		attrs = append(attrs, slog.String("status", strings.ToLower(strings.TrimSpace(*req.Status))))
	}
	if req.RateLimit != nil {
		attrs = append(attrs, slog.Float64("rate_limit", *req.RateLimit))
	}
	if req.Burst != nil {
		attrs = append(attrs, slog.Int("burst", *req.Burst))
	}
	if req.RateShadow != nil {
		attrs = append(attrs, slog.Bool("rate_shadow", *req.RateShadow))
	}
	if req.ExpiresAt != nil || req.ExpiresIn != nil {
		attrs = append(attrs, slog.Bool("expiry_changed", true))
	}
	return attrs
}

// decodeBody decodes a JSON request body into v, answering 400
// invalid_request, with every problem found in errors, when it cannot; an
// empty body is accepted when optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	problems := readBody(w, r, v, optional)
	if len(problems) == 0 {
		return true
	}
	writeError(w, http.StatusBadRequest, "invalid_request", "The body is not a valid request: "+strings.Join(problems, "; ")+".", problems...)
	return false
}

// tokenID returns the token id of the request's path, answering 400 when
// it is not one. The path value is not echoed: it may be a whole
// credential pasted by mistake.
func tokenID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := pathID(r)
	if id == "" {
		const problem = "id: not a token id (tsw_ followed by 20 letters and digits): give the id alone, never the secret"
		writeError(w, http.StatusBadRequest, "invalid_request", "The path does not end in a token id: "+problem+".", problem)
		return "", false
	}
	return id, true
}

// pathID is the token id of the request's path, or "" when the path value
// is not one. Only a validated id is ever logged or recorded: the value
// may be anything, a whole credential included.
func pathID(r *http.Request) string {
	if id := r.PathValue("id"); auth.ValidID(id) {
		return id
	}
	return ""
}

func (a *api) audit(r *http.Request, action string, t *auth.Token, extra ...slog.Attr) {
	attrs := append([]slog.Attr{
		slog.String("token_id", t.ID), slog.Int64("project_id", t.ProjectID),
		slog.String("role", t.Role.String()), slog.String("remote_addr", r.RemoteAddr),
	}, extra...)
	a.Logger.LogAttrs(r.Context(), slog.LevelInfo, action, attrs...)
}

// storeError answers a failed store call (or one answered about the
// token: not found, revoked, exists). A failure because the client went
// away is not an outage: see clientClosed.
func (a *api) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		writeError(w, http.StatusNotFound, "token_not_found", "No token has that id.")
	case errors.Is(err, auth.ErrRevoked):
		writeError(w, http.StatusConflict, "token_revoked", "The token was revoked: it cannot be changed. Create a new one.")
	case errors.Is(err, auth.ErrExists):
		writeError(w, http.StatusConflict, "token_exists", "A token with that id exists already; retry.")
	case r.Context().Err() != nil:
		a.clientClosed(w, r, op, err)
	case errors.Is(err, auth.ErrUnavailable):
		a.Logger.LogAttrs(r.Context(), slog.LevelError, op+" failed", slog.String("err", auth.RedactSecrets(err.Error())))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "The token store is unavailable: retry later.")
	default:
		a.internalError(w, r, op, err)
	}
}

func (a *api) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if r.Context().Err() != nil {
		a.clientClosed(w, r, op, err)
		return
	}
	a.Logger.LogAttrs(r.Context(), slog.LevelError, op+" failed", slog.String("err", auth.RedactSecrets(err.Error())))
	writeError(w, http.StatusInternalServerError, "internal_error", "Internal error: see the gateway's log.")
}

// StatusClientClosed is the status a request is recorded with when its
// client went away before it was answered (nginx's 499): not an outage,
// not a server error. Nobody reads the answer.
const StatusClientClosed = 499

// clientClosed records a request whose client went away: a log line with
// status 499 and code client_closed, and the same answer (unread).
func (a *api) clientClosed(w http.ResponseWriter, r *http.Request, op string, err error) {
	a.Logger.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelInfo, "token API request: client closed",
		slog.String("op", op), slog.String("method", r.Method), slog.String("path", auth.RedactSecrets(r.URL.Path)),
		slog.Int("status", StatusClientClosed), slog.String("code", auth.CodeClientClosed.String()),
		slog.String("remote_addr", r.RemoteAddr), slog.String("err", auth.RedactSecrets(err.Error())))
	writeError(w, StatusClientClosed, auth.CodeClientClosed.String(), auth.CodeClientClosed.Message())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Never read as anything but JSON: a token's name is the caller's text.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string, problems ...string) {
	w.Header().Set("X-Tsw-Error-Code", code)
	writeJSON(w, status, ErrorResponse{Message: message, Code: code, Errors: problems})
}
