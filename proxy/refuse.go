package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// Header names the gateway sets.
const (
	// HeaderErrorCode carries a refusal's stable code, e.g. "token_revoked".
	HeaderErrorCode = "X-Tsw-Error-Code"
	// HeaderRequestID identifies a request in logs, here and upstream.
	HeaderRequestID = "X-Request-Id"
	// HeaderProjectID, HeaderTokenID and HeaderTokenRole tell the upstream
	// who is calling. Copies sent by clients are dropped.
	HeaderProjectID = "X-Tsw-Project-Id"
	HeaderTokenID   = "X-Tsw-Token-Id"
	HeaderTokenRole = "X-Tsw-Token-Role"
	// HeaderAssertion carries the signed identity assertion (a JWT, see
	// package identity) when the gateway has a signing key.
	HeaderAssertion = "X-Tsw-Assertion"
)

// StatusClientClosed is the status recorded (in logs and metrics, never
// sent) for a request whose client went away before it was answered: nginx's
// 499, so that it is counted neither as a refusal nor as an outage.
const StatusClientClosed = 499

// Gateway-side failures that are not decisions of auth, in the same
// envelope.
const (
	codeUpstreamError   = "upstream_error"
	codeUpstreamTimeout = "upstream_timeout"
)

// refusal is the precomputed response of one refusal code.
type refusal struct {
	status    int
	body      []byte
	code      []string
	challenge []string // WWW-Authenticate, or nil
	// fields are the field lines write sets, rendered (see rendered).
	fields []byte
}

// rendered returns r with its fields rendered.
func (r refusal) rendered() *refusal {
	f := appendFieldLine(nil, "Content-Type", jsonContentType[0])
	f = appendFieldLine(f, "X-Content-Type-Options", noSniff[0])
	f = appendFieldLine(f, "Cache-Control", noStore[0])
	f = appendFieldLine(f, HeaderErrorCode, r.code[0])
	if r.challenge != nil {
		f = appendFieldLine(f, "Www-Authenticate", r.challenge[0])
	}
	r.fields = f
	return &r
}

// appendFieldLine appends the field line "k: v\r\n"; v must hold no CR,
// LF or surrounding space.
func appendFieldLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// answerWriter is a ResponseWriter that writes a whole answer rendered
// ahead, without a header map (the fast path's, h1.response.WriteAnswer).
type answerWriter interface {
	WriteAnswer(status int, fields, body []byte) bool
}

// writeRendered writes the refusal r as write would, with the request id
// and Retry-After, through an answerWriter: no header map, no
// allocation. It reports false, writing nothing, when w is no
// answerWriter or has fields set already; buf is scratch space, returned
// for reuse.
func writeRendered(w http.ResponseWriter, r *refusal, reqID string, retryAfter time.Duration, buf []byte) ([]byte, bool) {
	aw, ok := w.(answerWriter)
	if !ok {
		return buf, false
	}
	b := append(buf[:0], r.fields...)
	b = appendFieldLine(b, HeaderRequestID, reqID)
	if retryAfter > 0 {
		b = append(b, "Retry-After: "...)
		b = appendRetryAfter(b, retryAfter)
		b = append(b, "\r\n"...)
	}
	return b, aw.WriteAnswer(r.status, b, r.body)
}

var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	noSniff         = []string{"nosniff"}
	noStore         = []string{"no-store"}
	refusals        = buildRefusals()
	// denials holds permission_denied answers that name the permission
	// the route needs, by denialKey.
	denials = buildDenials()
	// lineageLimited is rate_limited by the token's lineage
	// (auth.LimitStatus.Lineage), with a message that says so.
	lineageLimited = func() *refusal {
		r := *refusals[auth.CodeRateLimited]
		r.body = envelopeBody(auth.CodeRateLimited.String(), auth.LineageLimitedMessage)
		return r.rendered()
	}()
)

// denialKey indexes denials: the token's role, the permission the route
// needs, and whether the token's scopes list (not its role) lacks it.
type denialKey struct {
	role   auth.Role
	perm   auth.Permission
	scoped bool
}

// buildDenials precomputes every permission_denied answer, so that a
// refusal allocates nothing. Each names the missing permission in its
// message and in WWW-Authenticate (RFC 6750 insufficient_scope, with the
// scope the route needs).
func buildDenials() map[denialKey]*refusal {
	m := make(map[denialKey]*refusal)
	base := refusals[auth.CodePermissionDenied]
	for _, role := range []auth.Role{auth.RoleOwner, auth.RoleAccounting} {
		for _, p := range auth.Permissions() {
			for _, scoped := range []bool{false, true} {
				if scoped && !role.Allows(p) {
					continue // the role refuses it first
				}
				var msg string
				switch {
				case scoped:
					msg = fmt.Sprintf("The API token lacks the %s permission: its scopes do not include it. "+
						"Use a token whose scopes include %s.", p, p)
				case role == auth.RoleAccounting:
					msg = fmt.Sprintf("A token with the %s role may not call %s routes (it lacks the %s permission). "+
						"Accounting tokens may only read billing and usage data (GET /v2/Invoice, /v2/Usage).", role.Title(), p, p)
				default:
					msg = fmt.Sprintf("A token with the %s role may not call %s routes (it lacks the %s permission).", role.Title(), p, p)
				}
				r := *base
				r.body = envelopeBody(auth.CodePermissionDenied.String(), msg)
				r.challenge = []string{`Bearer realm="tswgate", error="insufficient_scope", scope="` + p.String() +
					`", error_description="permission_denied: the token lacks the ` + p.String() + ` permission"`}
				m[denialKey{role, p, scoped}] = r.rendered()
			}
		}
	}
	return m
}

// verdictRefusal returns the answer to a refused decision, with a
// message naming the token's role or project where that helps the
// caller, and its Retry-After.
func verdictRefusal(v *auth.Verdict) (*refusal, time.Duration) {
	if v.Token != nil {
		switch v.Code {
		case auth.CodePermissionDenied:
			key := denialKey{v.Token.Role, v.Permission, v.Token.Role.Allows(v.Permission)}
			if r, ok := denials[key]; ok {
				return r, 0
			}
		case auth.CodeRateLimited:
			if v.Limit.Lineage.Over {
				return lineageLimited, v.RetryAfter
			}
		case auth.CodeProjectMismatch:
			r := *refusals[v.Code]
			r.body = envelopeBody(v.Code.String(), fmt.Sprintf(
				"The request names a project other than the API token's project (%d).", v.Token.ProjectID))
			return &r, 0
		}
	}
	return refusals[v.Code], v.RetryAfter
}

// refuseVerdict answers a refused decision (verdictRefusal's answer).
func refuseVerdict(w http.ResponseWriter, v *auth.Verdict) {
	r, retryAfter := verdictRefusal(v)
	write(w, r, retryAfter)
}

// Status returns the HTTP status the gateway answers a refusal code with.
func Status(c auth.Code) int {
	switch c {
	case auth.OK:
		return http.StatusOK
	case auth.CodeMissingToken, auth.CodeMalformedToken, auth.CodeInvalidToken,
		auth.CodeTokenInactive, auth.CodeTokenExpired, auth.CodeTokenRevoked:
		return http.StatusUnauthorized
	case auth.CodePermissionDenied, auth.CodeProjectMismatch, auth.CodeIPNotAllowed:
		return http.StatusForbidden
	case auth.CodeStoreUnavailable:
		return http.StatusServiceUnavailable
	case auth.CodeRateLimited, auth.CodeAuthRateLimited, auth.CodeProjectRateLimited:
		return http.StatusTooManyRequests
	case auth.CodeUnknownRoute:
		return http.StatusNotFound
	case auth.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case auth.CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case auth.CodeClientClosed:
		return StatusClientClosed
	default: // invalid path, query, body or framing; a body not allowed
		return http.StatusBadRequest
	}
}

// envelope is the TeraSwitch API's response shape, plus a machine-readable
// code.
type envelope struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

func envelopeBody(code, message string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep "<tokenId>" readable
	if err := enc.Encode(envelope{Message: message, Code: code}); err != nil {
		panic(err) // strings always marshal
	}
	return b.Bytes()
}

func buildRefusals() map[auth.Code]*refusal {
	m := make(map[auth.Code]*refusal)
	for _, c := range auth.Codes() {
		r := &refusal{
			status: Status(c),
			body:   envelopeBody(c.String(), c.Message()),
			code:   []string{c.String()},
		}
		switch r.status {
		case http.StatusUnauthorized:
			r.challenge = []string{`Bearer realm="tswgate", error="invalid_token", error_description="` +
				c.String() + `: ` + c.Message() + `"`}
		case http.StatusForbidden:
			if c == auth.CodePermissionDenied {
				r.challenge = []string{`Bearer realm="tswgate", error="insufficient_scope", error_description="` +
					c.String() + `: ` + c.Message() + `"`}
			}
		}
		m[c] = r.rendered()
	}
	return m
}

// refuse writes the response for a refusal.
func refuse(w http.ResponseWriter, c auth.Code, retryAfter time.Duration) {
	write(w, refusals[c], retryAfter)
}

func write(w http.ResponseWriter, r *refusal, retryAfter time.Duration) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	h["Cache-Control"] = noStore
	h[HeaderErrorCode] = r.code
	if r.challenge != nil {
		h["Www-Authenticate"] = r.challenge
	}
	if retryAfter > 0 {
		h["Retry-After"] = []string{retryAfterSeconds(retryAfter)}
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	var b [20]byte
	return string(appendRetryAfter(b[:0], d))
}

// appendRetryAfter appends retryAfterSeconds(d).
func appendRetryAfter(b []byte, d time.Duration) []byte {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.AppendInt(b, max(s, 1), 10)
}

// writeError writes a gateway failure that is not an auth decision.
func writeError(w http.ResponseWriter, status int, code, message string) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	h["Cache-Control"] = noStore
	h[HeaderErrorCode] = []string{code}
	w.WriteHeader(status)
	_, _ = w.Write(envelopeBody(code, message))
}
