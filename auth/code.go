package auth

// Code is the outcome of a decision: OK, or the one reason for a refusal.
// Each refusal code has a stable wire name that clients can match on.
type Code uint8

// Decision outcomes.
const (
	OK Code = iota
	// CodeMissingToken: no Bearer credential.
	CodeMissingToken
	// CodeMalformedToken: not a tswgate credential, or its checksum fails.
	CodeMalformedToken
	// CodeInvalidToken: unknown id, or the secret does not match.
	CodeInvalidToken
	// CodeTokenInactive: the token is deactivated.
	CodeTokenInactive
	// CodeTokenExpired: the token is past its expiry.
	CodeTokenExpired
	// CodeTokenRevoked: the token was revoked.
	CodeTokenRevoked
	// CodePermissionDenied: the token's role, or its scopes list, does not
	// grant the permission the route needs.
	CodePermissionDenied
	// CodeProjectMismatch: the request names another project.
	CodeProjectMismatch
	// CodeStoreUnavailable: the token could not be checked right now.
	CodeStoreUnavailable
	// CodeRateLimited: the token is over its rate limit.
	CodeRateLimited
	// CodeUnknownRoute: the path is not a route of the API.
	CodeUnknownRoute
	// CodeInvalidPath: the path is not in canonical form (dot segments,
	// empty segments, encoded slashes), so it is not matched at all.
	CodeInvalidPath
	// CodeInvalidBody: a body that must be checked for its project could not
	// be parsed.
	CodeInvalidBody
	// CodeBodyTooLarge: the body's project field could not be checked within
	// the bounded prefix the gateway reads.
	CodeBodyTooLarge
	// CodeAuthRateLimited: too many failed authentications came from the
	// client's address; it is refused before its credential is looked at.
	CodeAuthRateLimited
	// CodeUnsupportedMediaType: a body the gateway cannot check as the API
	// would read it: not one of the API's JSON media types, a charset other
	// than UTF-8, a Content-Encoding, or a malformed or repeated
	// Content-Type.
	CodeUnsupportedMediaType
	// CodeBodyNotAllowed: a body on a route whose operation takes none.
	CodeBodyNotAllowed
	// CodeInvalidQuery: a query string that cannot be read one way only
	// (a malformed percent-escape, a control character, a byte outside
	// RFC 3986's query characters sent unescaped), or that names a method
	// override (CheckQueryProject), as does a JSON body's top-level key
	// (CheckBody).
	CodeInvalidQuery
	// CodeInvalidFraming: a request whose framing two HTTP parsers could
	// read differently (Transfer-Encoding on HTTP/1.0, or with
	// Content-Length; HTTP/2's preface after the start of a connection).
	CodeInvalidFraming
	// CodeClientClosed: the client went away before the request was
	// decided or answered. Nobody reads the answer; it is recorded (as
	// 499) so that it is not mistaken for an outage.
	CodeClientClosed
	// CodeInvalidHeader: a header that would make the upstream read
	// another request than the one checked: a Connection field naming an
	// end-to-end field (which proxies drop), declared trailers, or a field
	// that cannot be passed on as sent (a value with white space at either
	// end, which HTTP/2 carries and no HTTP/1.1 field holds), a Host
	// that is no single host and port (passed on as X-Forwarded-Host), or
	// a field name that spells with "_" one the gateway checks, drops or
	// sets (Content_Length, X_Forwarded_For: servers that map "_" to "-",
	// as CGI does, read it as that field).
	CodeInvalidHeader
	// CodeIPNotAllowed: the token may only be used from its address ranges
	// (Token.AllowedIPs), and the client's address is in none of them.
	CodeIPNotAllowed
	// CodeProjectRateLimited: the token's project is over the limit all
	// its tokens share (its project policy's rate limit).
	CodeProjectRateLimited
	// CodeCredentialMisplaced: a token secret outside the Authorization
	// header, in the request's target (path or query) or in a field the
	// gateway would forward (HoldsSecret): it would reach the API.
	CodeCredentialMisplaced

	numCodes
)

var codeNames = [numCodes]string{
	OK:                   "ok",
	CodeMissingToken:     "missing_token",
	CodeMalformedToken:   "malformed_token",
	CodeInvalidToken:     "invalid_token",
	CodeTokenInactive:    "token_inactive",
	CodeTokenExpired:     "token_expired",
	CodeTokenRevoked:     "token_revoked",
	CodePermissionDenied: "permission_denied",
	CodeProjectMismatch:  "project_mismatch",
	CodeStoreUnavailable: "store_unavailable",
	CodeRateLimited:      "rate_limited",
	CodeUnknownRoute:     "unknown_route",
	CodeInvalidPath:      "invalid_path",
	CodeInvalidBody:      "invalid_body",
	CodeBodyTooLarge:     "body_too_large",
	CodeAuthRateLimited:  "auth_rate_limited",

	CodeUnsupportedMediaType: "unsupported_media_type",
	CodeBodyNotAllowed:       "body_not_allowed",
	CodeInvalidQuery:         "invalid_query",
	CodeInvalidFraming:       "invalid_framing",
	CodeClientClosed:         "client_closed",
	CodeInvalidHeader:        "invalid_header",
	CodeIPNotAllowed:         "ip_not_allowed",
	CodeProjectRateLimited:   "project_rate_limited",
	CodeCredentialMisplaced:  "credential_misplaced",
}

var codeMessages = [numCodes]string{
	OK:                   "ok",
	CodeMissingToken:     "No API token: send Authorization: Bearer <tokenId>:<secret>.",
	CodeMalformedToken:   "The API token is malformed: check that it was copied whole (tsw_…:tswsk_…).",
	CodeInvalidToken:     "The API token is not valid: unknown token id or wrong secret.",
	CodeTokenInactive:    "The API token is inactive: activate it under Settings → Project → API Tokens.",
	CodeTokenExpired:     "The API token has expired: generate a new one.",
	CodeTokenRevoked:     "The API token was revoked: generate a new one.",
	CodePermissionDenied: "The API token's role or scopes do not allow this request.",
	CodeProjectMismatch:  "The request names a project other than the API token's project.",
	CodeStoreUnavailable: "The API token cannot be checked right now: retry later.",
	CodeRateLimited:      "Too many requests for this API token: retry after the time in Retry-After.",
	CodeUnknownRoute:     "No such API route.",
	CodeInvalidPath:      "The request path is not in canonical form.",
	CodeInvalidBody:      "The request body could not be read as JSON to check its project.",
	CodeBodyTooLarge:     "The request body is too large to check its project.",
	CodeAuthRateLimited:  "Too many failed authentications from this address: retry after the time in Retry-After with a valid token.",

	CodeUnsupportedMediaType: "The request body must be JSON in UTF-8, without Content-Encoding: Content-Type application/json, text/json, application/*+json or application/json-patch+json.",
	CodeBodyNotAllowed:       "This API route takes no request body.",
	CodeInvalidQuery:         "The query string cannot be read one way only: separate parameters with &, write every % as a %XX escape, escape as %XX every byte outside RFC 3986's query characters (space, #, \", <, >, \\, ^, `, {, |, }, non-ASCII bytes), send no control characters in names (nor %00 anywhere), and name no method override (_method, X-HTTP-Method-Override) in the query or as a top-level key of a JSON body.",
	CodeInvalidFraming:       "The request's framing can be read two ways (Transfer-Encoding on HTTP/1.0, or with Content-Length; HTTP/2's preface after the start of a connection): send HTTP/1.1 with one of them, and HTTP/2 only from a connection's start.",
	CodeClientClosed:         "The client closed the request before it was answered.",
	CodeInvalidHeader:        "A header would change the request on its way to the API: Connection may name only close, keep-alive, upgrade and hop-by-hop fields, requests may not carry trailers, no field value may begin or end with white space, Host must name one host (and port), and no field name may spell with an underscore one the gateway checks, drops or sets (Content_Length, X_Forwarded_For).",
	CodeIPNotAllowed:         "The API token may not be used from this client address: it is bound to other address ranges (allowed_ips).",
	CodeProjectRateLimited:   "Too many requests for this project: its tokens share a project limit; retry after the time in Retry-After.",
	CodeCredentialMisplaced:  "An API token secret (tswsk_…) was sent outside the Authorization header, where it would reach the API: send it only in Authorization: Bearer <tokenId>:<secret>, never in the path, the query, a cookie or another header.",
}

// String returns the code's stable wire name, e.g. "token_revoked".
func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return "unknown"
}

// Message returns a sentence for humans that explains the code.
func (c Code) Message() string {
	if c < numCodes {
		return codeMessages[c]
	}
	return "unknown"
}

// Codes lists every refusal code (all but OK), in declaration order.
func Codes() []Code {
	cs := make([]Code, 0, numCodes-1)
	for c := OK + 1; c < numCodes; c++ {
		cs = append(cs, c)
	}
	return cs
}
