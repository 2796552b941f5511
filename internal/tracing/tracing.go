// Package tracing traces requests through the gateway with OpenTelemetry,
// exported over OTLP/HTTP: a server span per request, with child spans for
// the decision, the store reads behind it, the cluster limiter's leases
// and the upstream call, and the W3C traceparent sent upstream. Off (no
// endpoint), nothing is wrapped and requests pay nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/limiter"
	"github.com/tswgate/tswgate/proxy"
)

// Options configure New.
type Options struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://otel-collector:4318 (traces go to its /v1/traces).
	Endpoint string
	// SampleRatio is the share of new traces recorded (0 to 1); a request
	// that carries a sampled traceparent is recorded too.
	SampleRatio float64
	// Version is the service.version resource attribute.
	Version string
	// TrustedProxies are the peers whose traceparent is continued (as
	// their X-Forwarded-For is believed). Another peer's request starts a
	// trace of its own, sampled by SampleRatio, with a link to the
	// client's span.
	TrustedProxies []netip.Prefix
}

// Tracing is a tracer provider exporting to a collector, and the wrappers
// that trace the gateway's parts.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	trusted  []netip.Prefix
}

// New starts exporting to opts.Endpoint. Shutdown flushes and stops it.
func New(ctx context.Context, opts Options) (*Tracing, error) {
	if opts.Endpoint == "" {
		return nil, errors.New("tracing: no endpoint")
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL(opts.Endpoint)))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return newTracing(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(time.Second)), opts), nil
}

// tracesURL is the collector's traces endpoint for its base URL: base
// plus /v1/traces, without doubling a trailing slash or a /v1/traces
// already given.
func tracesURL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/v1/traces") {
		return base
	}
	return base + "/v1/traces"
}

// newTracing returns a Tracing whose spans go to sp.
func newTracing(sp sdktrace.SpanProcessor, opts Options) *Tracing {
	res := resource.NewSchemaless(semconv.ServiceName("tswgate"), semconv.ServiceVersion(opts.Version))
	p := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
	)
	return &Tracing{provider: p, tracer: p.Tracer("github.com/tswgate/tswgate"), prop: propagation.TraceContext{},
		trusted: opts.TrustedProxies}
}

// Shutdown exports what is buffered and stops.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// Handler starts the server span of each request around next: a child
// of the traceparent of a trusted proxy, else the root of a trace of its
// own that links the client's span (a client on the internet decides
// neither the trace the gateway's spans join nor whether they are
// recorded).
func (t *Tracing) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trusted := t.trustedPeer(r)
		ctx, span := t.tracer.Start(t.parent(r, trusted), spanName(r.Method), t.serverSpan(r, trusted)...)
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status))
		if code := w.Header().Get("X-Tsw-Error-Code"); code != "" {
			span.SetAttributes(attribute.String("tswgate.code", code))
		}
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// parent returns r's context with the client's span as parent when the
// peer is a trusted proxy.
func (t *Tracing) parent(r *http.Request, trusted bool) context.Context {
	if trusted {
		return t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	}
	return r.Context()
}

// serverSpan returns the options of r's server span: its kind and
// attributes, and for an untrusted peer a new root linking the client's
// span, if it sent a valid one.
func (t *Tracing) serverSpan(r *http.Request, trusted bool) []trace.SpanStartOption {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(knownMethod(r.Method)), semconv.URLPath(auth.RedactSecrets(r.URL.EscapedPath())))}
	if trusted {
		return opts
	}
	opts = append(opts, trace.WithNewRoot())
	remote := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
	if remote.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
	}
	return opts
}

// trustedPeer reports whether r's connection comes from a trusted proxy.
func (t *Tracing) trustedPeer(r *http.Request) bool {
	if len(t.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range t.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// knownMethod returns method if it is one of HTTP's (RFC 9110, PATCH),
// else "_OTHER": a client's method is not to become an unbounded set of
// attribute values (OpenTelemetry's HTTP conventions).
func knownMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

// spanName is the name of a request's span: its method if known, else
// "HTTP".
func spanName(method string) string {
	if m := knownMethod(method); m != "_OTHER" {
		return m
	}
	return "HTTP"
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Transport traces each upstream call as a client span and sends its
// traceparent (replacing the client's, whose trace it continues).
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	return roundTripper{t: t, base: base}
}

type roundTripper struct {
	t    *Tracing
	base http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := rt.t.tracer.Start(r.Context(), "upstream "+spanName(r.Method), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.ServerAddress(r.URL.Host)))
	defer span.End()
	r.Header.Del("Tracestate") // the client's, for another trace's vendors
	rt.t.prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
	resp, err := rt.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	return resp, nil
}

// Decider traces each decision as a span with its outcome.
func (t *Tracing) Decider(d proxy.Decider) proxy.Decider { return decider{t: t, d: d} }

type decider struct {
	t *Tracing
	d proxy.Decider
}

func (d decider) Decide(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
	ctx, span := d.t.tracer.Start(ctx, "decide")
	defer span.End()
	v := d.d.Decide(ctx, req, now)
	span.SetAttributes(attribute.String("tswgate.code", v.Code.String()),
		attribute.String("tswgate.permission", v.Permission.String()),
		attribute.String("tswgate.cache", v.Cache.String()))
	if v.TokenID != "" {
		span.SetAttributes(attribute.String("tswgate.token_id", v.TokenID))
	}
	return v
}

// Getter traces each store read (a cache miss).
func (t *Tracing) Getter(g auth.Getter) auth.Getter { return getter{t: t, g: g} }

type getter struct {
	t *Tracing
	g auth.Getter
}

func (g getter) Get(ctx context.Context, id string) (*auth.Token, error) {
	ctx, span := g.t.tracer.Start(ctx, "store.get", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	tok, err := g.g.Get(ctx, id)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		span.SetStatus(codes.Error, err.Error())
	}
	return tok, err
}

// Budget traces each lease the cluster limiter takes from Redis.
func (t *Tracing) Budget(b limiter.Budget) limiter.Budget { return budget{t: t, b: b} }

type budget struct {
	t *Tracing
	b limiter.Budget
}

func (b budget) Take(ctx context.Context, id string, lim limiter.Limit, want, debt int) (limiter.Lease, error) {
	ctx, span := b.t.tracer.Start(ctx, "limiter.lease", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int("tswgate.want", want)))
	defer span.End()
	l, err := b.b.Take(ctx, id, lim, want, debt)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attribute.Int("tswgate.granted", l.Granted))
	return l, err
}
