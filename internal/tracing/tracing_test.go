package tracing

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// serve sends one request from peer with the traceparent tp (if any)
// through a traced handler and returns the spans exported and the
// traceparent the upstream received.
func serve(t *testing.T, opts Options, peer, tp string) ([]sdktrace.ReadOnlySpan, string) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr := newTracing(sdktrace.NewSimpleSpanProcessor(exp), opts)
	var upstreamTP string
	upstream := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		upstreamTP = r.Header.Get("Traceparent")
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	}))
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://api.test/v2/Instance", nil)
		out.Header = r.Header.Clone()
		if _, err := upstream.RoundTrip(out); err != nil {
			t.Error(err)
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/v2/Instance", nil)
	req.RemoteAddr = peer
	if tp != "" {
		req.Header.Set("Traceparent", tp)
		req.Header.Set("Tracestate", "vendor=secret")
	}
	h.ServeHTTP(httptest.NewRecorder(), req)
	return exp.GetSpans().Snapshots(), upstreamTP
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func server(t *testing.T, spans []sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == http.MethodGet {
			return s
		}
	}
	t.Fatalf("no server span among %d", len(spans))
	return nil
}

// TestClientTraceparentTrust: a traceparent from a peer outside the
// trusted proxies neither decides sampling nor becomes the parent: the
// request starts its own trace (linked to the client's), sampled by the
// ratio. From a trusted proxy, the trace is continued.
func TestClientTraceparentTrust(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	sampled := "00-" + clientTrace + "-" + clientSpan + "-01"
	unsampled := "00-" + clientTrace + "-" + clientSpan + "-00"

	t.Run("an untrusted client cannot force sampling", func(t *testing.T) {
		spans, upTP := serve(t, Options{SampleRatio: 0, TrustedProxies: trusted}, "203.0.113.9:4000", sampled)
		if len(spans) != 0 {
			t.Errorf("%d spans recorded at ratio 0 for an untrusted client's sampled traceparent", len(spans))
		}
		if upTP == sampled || len(upTP) != 55 || upTP[3:35] == clientTrace {
			t.Errorf("upstream traceparent %q continues the untrusted client's trace", upTP)
		}
	})
	t.Run("an untrusted client cannot suppress sampling", func(t *testing.T) {
		spans, upTP := serve(t, Options{SampleRatio: 1, TrustedProxies: trusted}, "203.0.113.9:4000", unsampled)
		s := server(t, spans)
		if got := s.SpanContext().TraceID().String(); got == clientTrace {
			t.Errorf("the server span joined the untrusted client's trace %s", got)
		}
		if s.Parent().IsValid() {
			t.Errorf("the server span has the untrusted client's span %s as parent", s.Parent().SpanID())
		}
		if l := s.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != clientTrace || l[0].SpanContext.SpanID().String() != clientSpan {
			t.Errorf("the server span does not link the client's span: %v", l)
		}
		if upTP[3:35] != s.SpanContext().TraceID().String() {
			t.Errorf("upstream traceparent %q, not of the gateway's trace", upTP)
		}
	})
	t.Run("a trusted proxy's traceparent is continued", func(t *testing.T) {
		spans, upTP := serve(t, Options{SampleRatio: 0, TrustedProxies: trusted}, "10.1.2.3:4000", sampled)
		s := server(t, spans)
		if s.SpanContext().TraceID().String() != clientTrace || s.Parent().SpanID().String() != clientSpan {
			t.Errorf("the server span does not continue the trusted traceparent: trace %s parent %s",
				s.SpanContext().TraceID(), s.Parent().SpanID())
		}
		if upTP[3:35] != clientTrace {
			t.Errorf("upstream traceparent %q, want the client's trace", upTP)
		}
	})
	for _, bad := range []string{
		"00-" + clientTrace + "-" + clientSpan,                      // too short
		"00-00000000000000000000000000000000-" + clientSpan + "-01", // zero trace id
		"ff-" + clientTrace + "-" + clientSpan + "-01",              // forbidden version
		"00-" + clientTrace + "-" + clientSpan + "-01-extra",
		"00-" + clientTrace + "\n-" + clientSpan + "-01",
		"not a traceparent at all",
	} {
		t.Run("malformed from a trusted proxy: "+bad, func(t *testing.T) {
			spans, upTP := serve(t, Options{SampleRatio: 1, TrustedProxies: trusted}, "10.1.2.3:4000", bad)
			s := server(t, spans)
			if s.Parent().IsValid() {
				t.Errorf("parent %v from a malformed traceparent", s.Parent())
			}
			if upTP == bad || len(upTP) != 55 {
				t.Errorf("upstream traceparent %q", upTP)
			}
		})
	}
}

// TestUnknownMethodNotInSpanNames: a client's made-up method becomes
// neither a span name nor an attribute value (an unbounded set in the
// trace backend): it is "_OTHER", as OpenTelemetry's HTTP conventions
// say, and the span is named "HTTP".
func TestUnknownMethodNotInSpanNames(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := newTracing(sdktrace.NewSimpleSpanProcessor(exp), Options{SampleRatio: 1})
	h := tr.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	method := "FROBNICATE" + strings.Repeat("X", 100)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/v2/Instance", nil))
	spans := exp.GetSpans().Snapshots()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if spans[0].Name() != "HTTP" {
		t.Errorf("span name %q, want HTTP", spans[0].Name())
	}
	for _, a := range spans[0].Attributes() {
		if strings.Contains(a.Value.Emit(), "FROBNICATE") {
			t.Errorf("attribute %s = %q", a.Key, a.Value.Emit())
		}
	}
}

// TestSecretNotInSpans: a token secret sent in the path (refused, but
// traced) is redacted from the server span's url.path, however written.
func TestSecretNotInSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := newTracing(sdktrace.NewSimpleSpanProcessor(exp), Options{SampleRatio: 1})
	h := tr.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	const random = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
	for _, path := range []string{"/v2/Instance/tsw_x:tswsk_" + random, "/v2/Instance/tsw_x%3A%74swsk%5F" + random} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	for _, s := range exp.GetSpans().Snapshots() {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), random[:20]) {
				t.Errorf("span %s: attribute %s = %q", s.Name(), a.Key, a.Value.Emit())
			}
		}
	}
}
