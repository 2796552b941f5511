package tokenapi

// Who may call the API, on which project, and the audit trail of what they
// did or were refused.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TokenAuthenticator verifies an API token credential the way the gateway
// does (*auth.Authenticator): it returns the record the credential names
// when there is one, and OK only for a verified, live, active, unexpired
// token.
type TokenAuthenticator interface {
	Authenticate(ctx context.Context, header string, now time.Time) (*auth.Token, auth.Code, error)
}

// principal is who a request acts as: an admin key (any project) or an
// Owner token (its own project only).
type principal struct {
	kind  string // auth.ActorAdminKey or auth.ActorToken
	actor string // the admin key's fingerprint, or the token id
	token *auth.Token
}

type principalKey struct{}

func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// fingerprint names an admin key in the audit trail without revealing it:
// the first 8 hex digits of its SHA-256.
func fingerprint(sum [32]byte) string { return hex.EncodeToString(sum[:4]) }

// guard authenticates a request to the endpoint doing action and, if it
// is admitted, runs h with its principal in the context. Admin keys are
// accepted when Options.AdminKeys has any; API tokens when Options.Tokens
// is set: Owner tokens, and any token for its own record
// (selfAction). Refusals of a known admin key or token are audited. An
// admitted request whose query is malformed, gives a parameter twice or
// empty, or names one the endpoint does not read (params; any off the
// API's endpoints, action ""), or that carries a body its method does not
// take, is answered 400 (checkQuery, checkNoBody).
func (a *api) guard(action string, params []string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		header := strings.Join(r.Header.Values("Authorization"), ", ")
		var p *principal
		if a.Tokens != nil && (len(a.keys) == 0 || looksLikeToken(header)) {
			p = a.tokenPrincipal(w, r, action, header)
		} else {
			p = a.keyPrincipal(w, r, action, header)
		}
		if p == nil || !checkQuery(w, r, endpointParams(r, action, params)) || !checkNoBody(w, r) {
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// endpointParams returns the query parameters the endpoint doing action
// reads: params, or every one r names off the API's endpoints (action
// ""), which are answered 404 whatever their query.
func endpointParams(r *http.Request, action string, params []string) []string {
	if action != "" {
		return params
	}
	all, _ := url.ParseQuery(r.URL.RawQuery)
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	return names
}

// looksLikeToken reports whether an Authorization header carries an API
// token (tsw_…) rather than an admin key.
func looksLikeToken(header string) bool {
	const scheme = "bearer "
	return len(header) > len(scheme) && strings.EqualFold(header[:len(scheme)], scheme) &&
		strings.HasPrefix(strings.TrimLeft(header[len(scheme):], " \t"), auth.IDPrefix)
}

func (a *api) keyPrincipal(w http.ResponseWriter, r *http.Request, action, header string) *principal {
	const scheme = "bearer "
	if header == "" && a.ClientCertAdmin && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return &principal{kind: auth.ActorClientCert, actor: certName(r.TLS.VerifiedChains[0][0])}
	}
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate-admin"`)
		msg := "Send the admin key as Authorization: Bearer <key> (TSWGATE_ADMIN_KEY)"
		if a.Tokens != nil {
			msg += ", or an Owner token as Authorization: Bearer <tokenId>:<secret>"
		}
		writeError(w, http.StatusUnauthorized, "missing_admin_key", msg+".")
		return nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(header[len(scheme):])))
	matched := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i][:]) == 1 {
			matched = i
		}
	}
	if matched < 0 {
		a.refused(r, action, &principal{kind: auth.ActorAdminKey}, requestedProject(r), "invalid_admin_key", "")
		w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate-admin", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid_admin_key", "The admin key is not valid.")
		return nil
	}
	return &principal{kind: auth.ActorAdminKey, actor: fingerprint(a.keys[matched])}
}

func (a *api) tokenPrincipal(w http.ResponseWriter, r *http.Request, action, header string) *principal {
	rec, code, err := a.Tokens.Authenticate(r.Context(), header, a.Now())
	switch {
	case code == auth.CodeStoreUnavailable:
		a.storeError(w, r, "authenticate", fmt.Errorf("authenticating an API token: %w: %w", auth.ErrUnavailable, err))
		return nil
	case code != auth.OK:
		a.unauthorized(w, r, action, rec, code)
		return nil
	}
	// A call over the rate limit as cached is refused before the store
	// is read, so that a flood of calls costs no store reads. Then every
	// call is checked against the token's record as stored now, not as
	// cached: a revocation, a rotation, narrower scopes, ranges or rate
	// limit or a shorter life made a moment ago on another replica apply
	// already, to reads as to changes; a limit changed there is charged
	// too.
	p := &principal{kind: auth.ActorToken, actor: rec.ID, token: rec}
	if !a.allowAddr(w, r, action, p) || !a.charge(w, r, action, p) { // ranges before the limit, as on the API
		return nil
	}
	fresh := a.freshRecord(w, r, action, rec)
	if fresh == nil {
		return nil
	}
	p.token = fresh
	if !a.allowAddr(w, r, action, p) {
		return nil
	}
	if !sameLimits(rec, fresh) && !a.charge(w, r, action, p) {
		return nil
	}
	if !a.allowRole(w, r, action, p) {
		return nil
	}
	if !a.allowManage(w, r, action, p) { // its scopes as stored now
		return nil
	}
	if mutating(action) && p.token.Rotated() {
		a.refuse(w, r, action, p, p.token.ProjectID, pathID(r), rotatedRefusal(p.token))
		return nil
	}
	return p
}

// allowRole checks that p's token may use the API: Owner tokens may, and
// any token may show its own record and revoke itself (selfAction). On
// refusal it answers 403 role_forbidden and audits.
func (a *api) allowRole(w http.ResponseWriter, r *http.Request, action string, p *principal) bool {
	if p.token.Role == auth.RoleOwner || selfAction(r, action, p.token) {
		return true
	}
	a.refused(r, action, p, p.token.ProjectID, "role_forbidden", "role "+p.token.Role.String())
	writeError(w, http.StatusForbidden, "role_forbidden", fmt.Sprintf(
		"%s tokens may not manage tokens or read the audit trail, only show and revoke themselves: "+
			"use an Owner token of project %d, or an admin key on the admin listener.",
		p.token.Role.Title(), p.token.ProjectID))
	return false
}

// allowAddr checks the client's address against the ranges of p's
// token; on refusal it answers 403 ip_not_allowed and audits.
func (a *api) allowAddr(w http.ResponseWriter, r *http.Request, action string, p *principal) bool {
	if p.token.AllowsAddr(a.clientAddr(r)) {
		return true
	}
	a.refused(r, action, p, p.token.ProjectID, auth.CodeIPNotAllowed.String(), "client address outside the token's ranges")
	writeError(w, http.StatusForbidden, auth.CodeIPNotAllowed.String(), auth.CodeIPNotAllowed.Message())
	return false
}

// unauthorized answers a token credential that is not usable with 401 and
// its code, audited when the credential names a known token (rec).
func (a *api) unauthorized(w http.ResponseWriter, r *http.Request, action string, rec *auth.Token, code auth.Code) {
	if rec != nil {
		a.refused(r, action, &principal{kind: auth.ActorToken, actor: rec.ID}, rec.ProjectID, code.String(), "")
	}
	msg := code.Message()
	if len(a.keys) == 0 && (code == auth.CodeMissingToken || code == auth.CodeMalformedToken) {
		msg += " This listener accepts Owner API tokens only; admin keys work on the admin listener."
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="tswgate", error="invalid_token", error_description="`+code.String()+`"`)
	writeError(w, http.StatusUnauthorized, code.String(), msg)
}

// sameLimits reports whether t and u are charged alike: the same rate
// limit, project and lineage.
func sameLimits(t, u *auth.Token) bool {
	return t.RateLimit == u.RateLimit && t.RateBurst == u.RateBurst && t.RateShadow == u.RateShadow &&
		t.ProjectID == u.ProjectID && reflect.DeepEqual(t.Lineage, u.Lineage)
}

// freshRecord reads the calling token's record from the store and checks
// that it is still usable, answering failures; nil when it is not.
func (a *api) freshRecord(w http.ResponseWriter, r *http.Request, action string, cached *auth.Token) *auth.Token {
	rec, err := a.Store.Get(r.Context(), cached.ID)
	code := auth.OK
	switch {
	case errors.Is(err, auth.ErrNotFound):
		code = auth.CodeInvalidToken
	case err != nil && !errors.Is(err, auth.ErrUnavailable):
		// Not knowing the caller's record is an outage, never a
		// refusal of the caller (nor an internal error to retry less).
		a.storeError(w, r, "authenticate", fmt.Errorf("reading the calling token's record: %w: %w", auth.ErrUnavailable, err))
		return nil
	case err != nil:
		a.storeError(w, r, "authenticate", fmt.Errorf("reading the calling token's record: %w", err))
		return nil
	case rec.Ended():
		code = auth.CodeTokenRevoked
	case rec.Status != auth.StatusActive:
		code = auth.CodeTokenInactive
	case rec.Expired(a.Now()):
		code = auth.CodeTokenExpired
	case rec.SecretHash != cached.SecretHash || rec.ProjectID != cached.ProjectID || rec.Role != cached.Role:
		code = auth.CodeInvalidToken // not the record the credential was verified against
	}
	if code != auth.OK {
		a.unauthorized(w, r, action, cached, code)
		return nil
	}
	return rec
}

// requestedProject is the project_id a request names in its query, or 0
// (also when it is not spelt as a project id is).
func requestedProject(r *http.Request) int64 {
	n, _ := parseWhole(r.URL.Query().Get("project_id"))
	return n
}

// allowProject checks that p may act on project; a token may act on its
// own project only. On refusal it answers 403 project_forbidden and audits.
func (a *api) allowProject(w http.ResponseWriter, r *http.Request, action string, p *principal, project int64, target string) bool {
	if p.token == nil || p.token.ProjectID == project {
		return true
	}
	a.refusedTarget(r, action, p, p.token.ProjectID, "project_forbidden", target, fmt.Sprintf("asked for project %d", project))
	writeError(w, http.StatusForbidden, "project_forbidden", fmt.Sprintf(
		"This Owner token belongs to project %d: it may manage only that project's tokens and audit trail, not project %d's. "+
			"Use a token of project %d, or an admin key on the admin listener.", p.token.ProjectID, project, project))
	return false
}

// allowLimits checks that p may set rate limits: admin keys only. A
// customer's Owner token manages its project's tokens, but raising their
// limits is the operator's call ("contact support for higher limits"). On
// refusal it answers 403 limit_forbidden and audits.
func (a *api) allowLimits(w http.ResponseWriter, r *http.Request, action string, p *principal, project int64) bool {
	if p.token == nil {
		return true
	}
	a.refused(r, action, p, project, codeLimit, "asked to set a rate limit")
	writeError(w, http.StatusForbidden, codeLimit,
		"Rate limits (rate_limit, burst, rate_shadow) are set by the operator with an admin key: contact support for higher limits.")
	return false
}

// defaultProject is the project a request acts on when it names none: the
// token's own (for tokens), or 0 (for admin keys, which must name one).
func (p *principal) defaultProject() int64 {
	if p.token != nil {
		return p.token.ProjectID
	}
	return 0
}

// loadScoped reads the token of the request's path and checks that p may
// act on its project. It answers every failure itself.
func (a *api) loadScoped(w http.ResponseWriter, r *http.Request, action, id string) (*auth.Token, bool) {
	tok, err := a.Store.Get(r.Context(), id)
	p := principalOf(r)
	switch {
	case p.token != nil && errors.Is(err, auth.ErrNotFound):
		a.hidden(w, r, action, p, id, nil)
		return nil, false
	case err != nil:
		a.storeError(w, r, action, err)
		return nil, false
	case p.token != nil && tok.ProjectID != p.token.ProjectID:
		a.hidden(w, r, action, p, id, tok)
		return nil, false
	}
	return tok, true
}

// hidden answers a token's request for a token it may not see — no such
// id, or one of another project (foreign) — as one and the same: 404
// token_not_found, and the same event in the caller's trail
// (token_not_found, sampled alike), so that neither the answer nor the
// trail tells whether the id exists. Only the log says which. An attempt
// on another project's token is also recorded in that project's trail
// (project_forbidden), in the background, so that the answer takes no
// longer either.
func (a *api) hidden(w http.ResponseWriter, r *http.Request, action string, p *principal, id string, foreign *auth.Token) {
	a.refusedTarget(r, action, p, p.token.ProjectID, "token_not_found", id, "")
	if foreign != nil {
		a.reportForeign(r, action, p, foreign)
	}
	writeError(w, http.StatusNotFound, "token_not_found", "No token has that id.")
}

// reportForeign records p's attempt on tok, a token of another project, in
// that project's trail (sampled like every token refusal), without
// waiting for the store.
func (a *api) reportForeign(r *http.Request, action string, p *principal, tok *auth.Token) {
	sampled := a.unverified.allow("foreign "+p.actor+" "+action, a.Now())
	ev := a.event(r, auth.AuditEvent{
		Action: action, ActorKind: p.kind, Actor: p.actor, ProjectID: tok.ProjectID, TokenID: tok.ID,
		Outcome: auth.OutcomeRefused, Reason: "project_forbidden",
		Detail: fmt.Sprintf("by a token of project %d", p.token.ProjectID),
	})
	ctx := context.WithoutCancel(r.Context())
	go func() {
		a.logRefused(ctx, action, p, ev.ProjectID, ev.Reason, ev.TokenID, ev.Source)
		if sampled {
			a.appendAudit(ctx, ev)
		}
	}()
}

// overLimit answers 409 project_token_limit, and audits, when err is the
// store's refusal of a create within the project's token limit
// (Options.MaxTokensPerProject); it reports whether it answered. The
// store counts and creates in one atomic step, so concurrent requests, of
// any replica, cannot pass the limit together.
func (a *api) overLimit(w http.ResponseWriter, r *http.Request, action string, p *principal, err error) bool {
	var le *auth.TokenLimitError
	if !errors.As(err, &le) {
		return false
	}
	a.refused(r, action, p, le.ProjectID, "project_token_limit", fmt.Sprintf("%d live tokens", le.Live))
	writeError(w, http.StatusConflict, "project_token_limit", fmt.Sprintf(
		"Project %d has %d live tokens, the most allowed (TSWGATE_MAX_TOKENS_PER_PROJECT): revoke the ones no longer used first.",
		le.ProjectID, le.Live))
	return true
}

// refused audits a refused attempt on the token of the request's path
// (when the path holds a valid id).
func (a *api) refused(r *http.Request, action string, p *principal, project int64, reason, detail string) {
	a.refusedTarget(r, action, p, project, reason, pathID(r), detail)
}

// refuse answers a request refused by a rule (ref) and audits it in
// project's trail.
func (a *api) refuse(w http.ResponseWriter, r *http.Request, action string, p *principal, project int64, target string, ref *refusal) {
	a.refusedTarget(r, action, p, project, ref.code, target, ref.detail)
	writeError(w, ref.status, ref.code, ref.message)
}

func (a *api) refusedTarget(r *http.Request, action string, p *principal, project int64, reason, target, detail string) {
	if action == "" {
		return // not an endpoint of the API: no management attempt
	}
	a.logRefused(r.Context(), action, p, project, reason, target, r.RemoteAddr)
	if p.kind == auth.ActorToken && !a.unverified.allow(p.actor+" "+action+" "+reason, a.Now()) {
		return // sampled: the log line above has it
	}
	a.record(r, auth.AuditEvent{
		Action: action, ActorKind: p.kind, Actor: p.actor, ProjectID: project, TokenID: target,
		Outcome: auth.OutcomeRefused, Reason: reason, Detail: detail,
	})
}

// logRefused writes the log line of a refused attempt.
func (a *api) logRefused(ctx context.Context, action string, p *principal, project int64, reason, target, source string) {
	a.Logger.LogAttrs(ctx, slog.LevelWarn, "token API request refused",
		slog.String("action", action), slog.String("reason", reason),
		slog.String("actor_kind", p.kind), slog.String("actor", auth.RedactSecrets(p.actor)),
		slog.Int64("project_id", project), slog.String("token_id", auth.RedactSecrets(target)),
		slog.String("remote_addr", source))
}

// sampler admits one event per key and minute, for at most maxKeys keys a
// minute. Refusals of API tokens — a wrong secret for a known token id,
// which anyone who knows the id can cause, and the refusals of a token's
// own attempts (role_forbidden, project_forbidden, limit_forbidden) — are
// recorded in the trail through it, once per token, action, reason and
// minute, so
// that a flood of them cannot push the trail's other events out (the log
// has every one). Admin keys' refusals are all recorded.
type sampler struct {
	mu     sync.Mutex
	minute int64
	seen   map[string]struct{}
}

const maxSampledKeys = 10000

func (s *sampler) allow(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := auth.UnixMinute(now); m != s.minute || s.seen == nil {
		s.minute, s.seen = m, make(map[string]struct{})
	}
	if _, dup := s.seen[key]; dup || len(s.seen) >= maxSampledKeys {
		return false
	}
	s.seen[key] = struct{}{}
	return true
}

// done writes the audit log line of a change and records it in the trail.
// The log line keeps the names it always had: activations and
// deactivations are token.update there.
func (a *api) done(r *http.Request, action string, t *auth.Token, detail string, extra ...slog.Attr) {
	p := principalOf(r)
	extra = append(extra, slog.String("actor_kind", p.kind), slog.String("actor", p.actor))
	logged := action
	if action == "token.activate" || action == "token.deactivate" {
		logged = "token.update"
	}
	a.audit(r, logged, t, extra...)
	a.record(r, auth.AuditEvent{
		Action: action, ActorKind: p.kind, Actor: p.actor, ProjectID: t.ProjectID, TokenID: t.ID,
		Outcome: auth.OutcomeOK, Detail: detail,
	})
}

// auditTimeout bounds the recording of an audit event, which goes on when
// the client has gone away: the change it records is made.
const auditTimeout = 5 * time.Second

// record appends ev to the audit trail. A failure is logged, not
// answered: the change it records is made.
func (a *api) record(r *http.Request, ev auth.AuditEvent) {
	a.appendAudit(context.WithoutCancel(r.Context()), a.event(r, ev))
}

// event completes ev with the time and the client's address, and runs
// every string field through auth.RedactSecrets: nothing that reaches the
// trail or the log holds a secret, whatever a request carried.
func (a *api) event(r *http.Request, ev auth.AuditEvent) auth.AuditEvent {
	ev.Time = a.Now().UTC().Truncate(time.Millisecond)
	ev.Source = r.RemoteAddr
	for _, f := range []*string{&ev.ID, &ev.Action, &ev.ActorKind, &ev.Actor, &ev.TokenID, &ev.Source, &ev.Outcome, &ev.Reason, &ev.Detail} {
		*f = auth.RedactSecrets(*f)
	}
	return ev
}

// appendAudit stores ev (made by event), logging a failure.
func (a *api) appendAudit(ctx context.Context, ev auth.AuditEvent) {
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	if err := a.Store.AppendAudit(ctx, &ev); err != nil {
		a.Logger.LogAttrs(ctx, slog.LevelError, "recording an audit event failed; the log line above stands for it",
			slog.String("action", ev.Action), slog.String("token_id", ev.TokenID),
			slog.String("err", auth.RedactSecrets(err.Error())))
	}
}

// certName names a client certificate in the audit trail: its subject's
// common name and the first 8 hex digits of its SHA-256.
func certName(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return c.Subject.CommonName + "/" + hex.EncodeToString(sum[:4])
}
