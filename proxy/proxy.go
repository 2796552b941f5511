// Package proxy is tswgate's HTTP side: it turns requests into auth
// decisions, answers refusals in the TeraSwitch API's envelope, and proxies
// allowed requests upstream with the caller's identity attached.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/identity"
)

// Decider makes the per-request decision; *auth.Gate implements it.
type Decider interface {
	Decide(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict
}

var _ Decider = (*auth.Gate)(nil)

// Options configure a Handler.
type Options struct {
	// Decider decides each request. Required.
	Decider Decider
	// Upstream is the API's base URL. Required.
	Upstream *url.URL
	// Transport carries requests upstream; nil means NewTransport's.
	Transport http.RoundTripper
	// PassAuthorization sends the client's Authorization header upstream.
	// By default it is dropped: the upstream learns the caller from the
	// identity headers.
	PassAuthorization bool
	// MaxBodyScan bounds the body prefix read for the project check.
	// Default 1 MiB.
	MaxBodyScan int64
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
	// AccessLog, when set, gets one entry per request (see AccessEntry):
	// request id, method, path (never the query), status, token id,
	// project, role, permission, code ("ok" or the refusal code), gateway
	// and upstream time, the rate-limit decision (for limited tokens) and
	// the client address. It is called on every
	// request: use NewJSONAccessLog on a BufferedWriter.
	AccessLog AccessLogger
	// AuthGuard limits failed authentications (malformed_token,
	// invalid_token) per client address: an address past its limit is
	// refused with auth_rate_limited, with no store read, unless its
	// credential is one the gateway recognises (auth.Request's
	// FailuresBlockedFor). Nil means no limit.
	AuthGuard AuthGuard
	// TrustedProxies are the ranges whose X-Forwarded-For names the client
	// address (see ClientAddr); empty means the peer is the client.
	TrustedProxies []netip.Prefix
	// Usage, when set, is told the outcome of every answered request whose
	// credential named a stored token (Verdict.TokenID), wrong secret
	// included. It is called on every request: it must be cheap and must
	// not allocate.
	Usage UsageRecorder
	// Asserter, when set, signs the identity assertion sent upstream in
	// HeaderAssertion with every forwarded request.
	Asserter Asserter
	// Traced says requests come with OpenTelemetry spans in their context
	// (a tracing handler in front): the access log then names the trace.
	// Off, the log does not look for one.
	Traced bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Asserter makes the signed identity assertion of a verified token (see
// package identity), or "" when it has no key yet. It is called on every
// forwarded request: it must be cheap (reuse assertions) and safe for
// concurrent use.
type Asserter interface {
	Assertion(sub identity.Subject, now time.Time) (string, error)
}

// AuthGuard limits failed authentications per client address;
// *limiter.AuthGuard implements it.
type AuthGuard interface {
	// Blocked reports whether addr may not try now, and for how long.
	Blocked(addr netip.Addr, now time.Time) (retryAfter time.Duration, blocked bool)
	// Failed records a failed authentication from addr (failures made in
	// parallel all count, possibly past the limit: the address then stays
	// blocked until they are paid back).
	Failed(addr netip.Addr, now time.Time)
}

// NoGuard is the AuthGuard of a gateway without a limit on failed
// authentications: it never blocks and forgets every failure.
type NoGuard struct{}

// Blocked never blocks.
func (NoGuard) Blocked(netip.Addr, time.Time) (time.Duration, bool) { return 0, false }

// Failed does nothing.
func (NoGuard) Failed(netip.Addr, time.Time) {}

// UsageRecorder counts requests per token and outcome; *usage.Recorder
// implements it.
type UsageRecorder interface {
	Record(tokenID string, code auth.Code, at time.Time)
}

// Handler is the gateway's public http.Handler.
type Handler struct {
	decider   Decider
	transport http.RoundTripper
	upstream  *url.URL
	passAuth  bool
	maxScan   int64
	metrics   *Metrics
	log       *slog.Logger
	access    AccessLogger
	guard     AuthGuard
	trusted   []netip.Prefix
	usage     UsageRecorder
	asserter  Asserter
	traced    bool
	now       func() time.Time
	idPrefix  string
	idCounter atomic.Uint64
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Decider == nil {
		return nil, errors.New("proxy: Options.Decider is required")
	}
	if opts.Upstream == nil || opts.Upstream.Host == "" {
		return nil, errors.New("proxy: Options.Upstream must be an absolute URL")
	}
	h := &Handler{
		decider:  opts.Decider,
		passAuth: opts.PassAuthorization,
		maxScan:  opts.MaxBodyScan,
		metrics:  opts.Metrics,
		log:      opts.Logger,
		access:   opts.AccessLog,
		guard:    opts.AuthGuard,
		trusted:  opts.TrustedProxies,
		usage:    opts.Usage,
		asserter: opts.Asserter,
		traced:   opts.Traced,
		now:      opts.Now,
	}
	if h.maxScan <= 0 {
		h.maxScan = 1 << 20
	}
	if h.guard == nil {
		h.guard = NoGuard{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	var seed [6]byte
	_, _ = rand.Read(seed[:])
	h.idPrefix = hex.EncodeToString(seed[:]) + "-"
	h.transport = opts.Transport
	if h.transport == nil {
		h.transport = NewClient(TransportOptions{})
	}
	h.upstream = opts.Upstream
	return h, nil
}

// assert sets the identity assertion of t. Should signing fail, the request
// goes without one, which an API that requires it refuses.
func (h *Handler) assert(out http.Header, t *auth.Token, st *reqState) {
	sub := identity.Subject{TokenID: t.ID, ProjectID: t.ProjectID, Role: t.Role.String(), NotAfter: t.ExpiresAt}
	if t.Scopes != 0 {
		sub.Scope = t.Scopes.Claim()
	}
	jwt, err := h.asserter.Assertion(sub, h.now())
	if err != nil {
		h.log.Error("signing the identity assertion", "request_id", st.reqID, "err", err)
		return
	}
	if jwt != "" { // "": no key yet
		out[HeaderAssertion] = []string{jwt}
	}
}

// joinQuery appends the client's raw query to the upstream URL's own.
func joinQuery(base, client string) string {
	if base == "" || client == "" {
		return base + client
	}
	return base + "&" + client
}

// authorization returns the Authorization header. Several are joined as one
// comma-separated value (RFC 9110 §5.3), which is no valid credential, so a
// request cannot have one checked and another passed on.
func authorization(h http.Header) string {
	vs := h["Authorization"]
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	return strings.Join(vs, ", ")
}

// droppedHeader reports whether a client's header must not reach the
// upstream, under any spelling an upstream might normalise (letter case,
// "_" for "-"):
//
//   - the gateway's own X-Tsw-* namespace (identity headers);
//   - X-Forwarded-* (the gateway sets For, Host and Proto itself; Prefix and
//     the others would be the client's say);
//   - headers that make a framework take another method or URL than the
//     one the decision read: X-HTTP-Method-Override, X-HTTP-Method,
//     X-Method-Override, X-Original-Method, X-Original-URL, X-Rewrite-URL;
//   - headers that name a client address other than the one the decision
//     checked (X-Real-IP, True-Client-IP, CF-Connecting-IP, ...): the
//     gateway's X-Forwarded-For says who the client is;
//   - headers that carry a TLS client certificate forwarded by a front
//     end (X-Client-Cert, ASP.NET Core's certificate forwarding default,
//     X-ARR-ClientCert, ...): the API may take one for the certificate
//     the gateway authenticates with (mutual TLS), and the client's is
//     nobody's word;
//   - MS-ASPNETCORE-* (IIS's ASP.NET Core Module passes the pairing token,
//     the Windows identity and the client certificate to the app in
//     these; a client's copy is nobody's word).
func droppedHeader(k string) bool {
	if len(k) < 6 {
		return false
	}
	if foldsTo(k[:6], "x-tsw-") {
		return true
	}
	for _, prefix := range droppedPrefixes {
		if len(k) > len(prefix) && foldsTo(k[:len(prefix)], prefix) {
			return true
		}
	}
	for _, name := range overrideHeaders {
		if foldsTo(k, name) {
			return true
		}
	}
	for _, name := range addressHeaders {
		if foldsTo(k, name) {
			return true
		}
	}
	for _, name := range certHeaders {
		if foldsTo(k, name) {
			return true
		}
	}
	return false
}

// droppedPrefixes start the names of whole families of dropped headers,
// lower case.
var droppedPrefixes = [...]string{"x-forwarded-", "ms-aspnetcore-"}

// certHeaders are headers that front ends and frameworks read as the TLS
// client certificate of the connection, lower case (X-Forwarded-Client-Cert
// and its like are dropped as X-Forwarded-*).
var certHeaders = [...]string{
	"x-client-cert", "x-arr-clientcert", "ms-aspnetcore-clientcert", "x-ssl-client-cert",
	"ssl-client-cert", "x-client-certificate",
}

// addressHeaders are headers that proxies, CDNs and frameworks read as the
// client's address, lower case.
var addressHeaders = [...]string{
	"x-real-ip", "true-client-ip", "x-client-ip", "client-ip", "cf-connecting-ip",
	"fastly-client-ip", "x-cluster-client-ip", "x-original-forwarded-for", "x-envoy-external-address",
	// ASP.NET Core's forwarded-headers middleware keeps what it replaced
	// in these, and applications read them as the original request's.
	"x-original-for", "x-original-host", "x-original-proto", "x-original-prefix",
}

// overrideHeaders are headers that frameworks read as the request's "real"
// method or URL, lower case.
var overrideHeaders = [...]string{
	"x-http-method-override", "x-http-method", "x-method-override",
	"x-original-method", "x-original-url", "x-rewrite-url",
}

// foldsTo reports whether the header name k equals name (lower case, with
// "-") under ASCII case folding, taking "_" for "-".
func foldsTo(k, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' {
			c = '-'
		}
		if lowerASCII(c) != name[i] {
			return false
		}
	}
	return true
}

// ServeHTTP decides r and either refuses it or proxies it upstream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	st := states.Get().(*reqState)
	defer st.release()
	st.reqID = h.requestID(r)
	v := h.decide(r, st, start)
	if v.Code != auth.OK {
		h.refuse(w, r, &v, st, start)
		return
	}
	setRateLimitHeaders(w.Header(), &v.Limit)
	st.token = v.Token
	if st.req.Body != nil && !st.body.complete {
		// The upstream may answer before it has read the whole body; let
		// the response start while the rest of the body is still being
		// relayed (otherwise net/http closes it, golang/go#40747). Not
		// for refusals: those must leave the unread body to be drained.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	st.rec = statusRecorder{ResponseWriter: w, status: http.StatusOK}
	err := h.forward(&st.rec, r, st)
	h.finish(r, &v, st, st.rec.status, start)
	if err != nil {
		panic(http.ErrAbortHandler) // break the client's response off too
	}
}

// decide fills st's auth.Request from r and decides it, charging the
// client's address for a failed authentication.
func (h *Handler) decide(r *http.Request, st *reqState, start time.Time) auth.Verdict {
	st.req = auth.Request{
		Method:        r.Method,
		Path:          sentPath(r.URL),
		RawQuery:      r.URL.RawQuery,
		Authorization: authorization(r.Header),
		// Several fields are joined, like Authorization's, so that they
		// are refused as a list rather than one being picked.
		ContentType:     strings.Join(r.Header["Content-Type"], ", "),
		ContentEncoding: strings.Join(r.Header["Content-Encoding"], ", "),
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.body = bodyPrefix{r: r, limit: h.maxScan}
		st.req.Body = &st.body
	}
	if faultyFraming(r) {
		return auth.Verdict{Code: auth.CodeInvalidFraming}
	}
	if code, named := checkFields(r, st.req.Path); code != auth.OK {
		st.named = named
		return auth.Verdict{Code: code}
	}
	st.client = ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], h.trusted)
	st.req.ClientAddr = st.client
	st.req.FailuresBlockedFor, _ = h.guard.Blocked(st.client, start)
	v := h.decider.Decide(r.Context(), &st.req, start)
	switch v.Code {
	case auth.CodeInvalidToken, auth.CodeMalformedToken, auth.CodeAuthRateLimited:
		h.guard.Failed(st.client, start)
	}
	if v.Code == auth.OK && st.body.complete && len(r.Trailer) > 0 {
		// Undeclared trailers, read with the body: not forwarded, so refused.
		v.Code = auth.CodeInvalidHeader
	}
	if v.Code != auth.OK && r.Context().Err() != nil {
		v.Code = auth.CodeClientClosed // whatever failed, the client is gone
	}
	return v
}

// sentPath returns u's path as the client sent it. net/http keeps it in
// RawPath when it is not the plain escaping of Path, but EscapedPath
// re-escapes it when it is no valid escaping ("|", "{", a quote, "#", a
// byte above 0x7E): deciding on that form would check, and forward,
// another path than the client's. The decision reads the path sent, and
// refuses such bytes (auth.CodeInvalidPath); a path it accepts is one
// EscapedPath, and so the upstream request, keeps byte for byte.
func sentPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath() // the path sent: it needed no RawPath
}

// refuse answers a refused request.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, v *auth.Verdict, st *reqState, start time.Time) {
	if v.Err != nil && v.Code != auth.CodeClientClosed {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "request refused",
			slog.String("request_id", st.reqID), slog.String("code", v.Code.String()),
			slog.String("err", v.Err.Error()))
	}
	if st.named == "" && v.Code != auth.CodeInvalidFraming && !v.Limit.Enabled {
		// The common refusals (a flood's): the answer rendered ahead.
		var ok bool
		ref, retryAfter := verdictRefusal(v)
		if st.answer, ok = writeRendered(w, ref, st.reqID, retryAfter, st.answer); ok {
			h.finish(r, v, st, Status(v.Code), start)
			return
		}
	}
	if v.Code == auth.CodeInvalidFraming {
		// RFC 9112 §6.1: close the connection after a faulty framing.
		w.Header()["Connection"] = []string{"close"}
	}
	w.Header()[HeaderRequestID] = []string{st.reqID}
	setRateLimitHeaders(w.Header(), &v.Limit)
	if st.named != "" {
		fieldRefusal(w, v.Code, st.named)
	} else {
		refuseVerdict(w, v)
	}
	h.finish(r, v, st, Status(v.Code), start)
}

// finish records an answered request in the metrics, the usage counts and
// the access log.
func (h *Handler) finish(r *http.Request, v *auth.Verdict, st *reqState, status int, start time.Time) {
	s := &st.sample
	end := h.now()
	s.method, s.status, s.total = r.Method, status, end.Sub(start)
	h.metrics.observe(v, s)
	if h.usage != nil && v.TokenID != "" && v.Code != auth.CodeClientClosed {
		h.usage.Record(v.TokenID, v.Code, start)
	}
	if h.access != nil {
		h.logAccess(r, v, st, end)
	}
}

// logAccess writes the access log line of a request answered at end.
func (h *Handler) logAccess(r *http.Request, v *auth.Verdict, st *reqState, end time.Time) {
	s := &st.sample
	e := &st.entry
	*e = AccessEntry{
		Time:       end,
		RequestID:  st.reqID,
		Method:     r.Method,
		Path:       auth.RedactSecrets(st.req.Path),
		Status:     s.status,
		Role:       "none",
		Permission: v.Permission.String(),
		Code:       v.Code.String(),
		Gateway:    s.total,
		Upstream:   s.upstream,
		Client:     st.client,
	}
	if t := v.Token; t != nil {
		e.TokenID, e.ProjectID, e.Role = t.ID, t.ProjectID, t.Role.String()
	}
	if s.called {
		e.Gateway = max(s.total-s.upstream, 0)
	}
	if s.status == StatusClientClosed {
		e.Code = auth.CodeClientClosed.String() // also when it left during the upstream call
	}
	if v.Limit.Enabled {
		e.RateLimit = decisionNames[decision(&v.Limit)]
	}
	if h.traced {
		if sc := trace.SpanContextFromContext(r.Context()); sc.IsSampled() {
			e.TraceID = sc.TraceID()
		}
	}
	h.access.LogAccess(e)
}

// reqState is the per-request scratch space of ServeHTTP, pooled so that a
// request costs no allocation for it. Nothing in it may outlive ServeHTTP:
// in particular, header maps never point into it, since net/http writes
// response headers after the handler returns.
type reqState struct {
	req    auth.Request
	body   bodyPrefix
	rec    statusRecorder
	outURL url.URL
	// out is the upstream request (outbound), under the same rule as
	// outHeader.
	out http.Request
	// outHeader and outVals hold the upstream request's fields; a
	// RoundTripper may not use a request once its answer's body is
	// closed, which is before release.
	outHeader http.Header
	outVals   [7]string
	token     *auth.Token
	reqID     string
	named     string // the part of the request a refusal names (checkFields)
	client    netip.Addr
	sample    sample
	entry     AccessEntry
	answer    []byte // a rendered refusal's fields (writeRendered)
}

var states = sync.Pool{New: func() any { return new(reqState) }}

func (s *reqState) release() {
	h := s.outHeader
	if len(h) > 32 {
		h = nil // a request with many fields: do not keep their room
	}
	clear(h)
	*s = reqState{outHeader: h, answer: s.answer[:0]}
	states.Put(s)
}

// requestID returns the client's X-Request-Id when it is sane, or a new one.
func (h *Handler) requestID(r *http.Request) string {
	if vs := r.Header[HeaderRequestID]; len(vs) == 1 && validRequestID(vs[0]) {
		return vs[0]
	}
	var buf [32]byte
	b := append(buf[:0], h.idPrefix...)
	b = strconv.AppendUint(b, h.idCounter.Add(1), 16)
	return string(b)
}

// validRequestID reports whether the client's X-Request-Id may be used
// (logged, echoed, sent upstream): at most 128 visible ASCII bytes but
// quotes and back slashes, holding no token secret.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 || auth.HoldsSecret(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// upstreamError answers a failed upstream round trip: 504 on a timeout,
// 502 otherwise, nothing when the client went away.
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(StatusClientClosed) // nobody reads this
		return
	}
	var ne net.Error
	status, code, msg := http.StatusBadGateway, codeUpstreamError, "The API could not be reached."
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, code, msg = http.StatusGatewayTimeout, codeUpstreamTimeout, "The API did not answer in time."
	}
	st.sample.failure = upstreamErr
	if status == http.StatusGatewayTimeout {
		st.sample.failure = upstreamTimeout
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream request failed",
		slog.String("request_id", st.reqID),
		slog.String("method", r.Method), slog.String("path", auth.RedactSecrets(r.URL.EscapedPath())),
		slog.String("err", err.Error()))
	w.Header()[HeaderRequestID] = []string{st.reqID}
	writeError(w, status, code, msg)
}

// statusRecorder remembers the status written, for metrics. It forwards
// Flush and Unwrap so streaming and http.ResponseController keep working.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// bodyPrefix reads the bounded prefix of a request body for the project
// check, then puts it back in front of the rest so the upstream gets the
// body intact.
type bodyPrefix struct {
	r        *http.Request
	limit    int64
	done     bool
	prefix   []byte
	complete bool
	err      error
}

func (b *bodyPrefix) BodyPrefix() ([]byte, bool, error) {
	if b.done {
		return b.prefix, b.complete, b.err
	}
	b.done = true
	prefix, err := io.ReadAll(io.LimitReader(b.r.Body, b.limit+1))
	if err != nil {
		b.err = fmt.Errorf("reading request body: %w", err)
		return nil, false, b.err
	}
	b.complete = int64(len(prefix)) <= b.limit
	b.prefix = prefix[:min(int64(len(prefix)), b.limit)]
	if b.complete {
		// The whole body is in memory: send that, and never touch the
		// client's body again (net/http closes it once the response
		// starts; a late read would fail the upstream exchange).
		b.r.Body = io.NopCloser(bytes.NewReader(prefix))
	} else {
		b.r.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(prefix), b.r.Body), closer: b.r.Body}
	}
	return b.prefix, b.complete, nil
}

type prefixedBody struct {
	io.Reader
	closer io.Closer
}

func (p *prefixedBody) Close() error { return p.closer.Close() }

// copyBuffers lends relayBody its 32 KiB copy buffers.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
