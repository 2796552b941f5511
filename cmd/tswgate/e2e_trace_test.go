package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tswgate/tswgate/internal/redistest"
)

// otlpReceiver is a real OTLP/HTTP trace receiver: it decodes what the
// gateway exports.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// trace returns the spans of one trace by name.
func (rc *otlpReceiver) trace(traceID string) map[string]*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, s := range rc.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			byName[s.Name] = s
		}
	}
	return byName
}

// TestE2ETracing: with a collector configured, a request from a trusted
// proxy continues its trace: a server span, child spans for the decision, the store
// read and the limiter's lease beneath it, and the upstream call, whose
// traceparent the API receives; the access log names the trace.
func TestE2ETracing(t *testing.T) {
	rc := startOTLPReceiver(t)
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv, "TSWGATE_OTLP_ENDPOINT="+rc.URL, "TSWGATE_TRACE_SAMPLE_RATIO=0", "TSWGATE_TRUSTED_PROXIES=127.0.0.0/8,::1/128",
		"TSWGATE_RATE_OWNER=1000")...)
	owner := g.MustCreateToken(t, testProject, "owner", "traced")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := MustNewRequest(t, "GET", g.URL+"/v2/Instance?ProjectId=42", owner.Token, nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	MustBeProxied(t, MustDo(t, g.HTTP, req))
	upTP := up.MustLast(t).Header.Get("Traceparent")
	// An unsampled request (ratio 0, no traceparent) is not traced.
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ShutdownOnce(ctx); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	spans := rc.trace(traceID)
	for _, name := range []string{"GET", "decide", "store.get", "limiter.lease", "upstream GET"} {
		if spans[name] == nil {
			t.Fatalf("no %q span in the trace; got %v", name, keys(spans))
		}
	}
	parent := func(child, of string) {
		if string(spans[child].ParentSpanId) != string(spans[of].SpanId) {
			t.Errorf("%q is not a child of %q", child, of)
		}
	}
	parent("decide", "GET")
	parent("store.get", "decide")
	parent("limiter.lease", "decide")
	parent("upstream GET", "GET")
	if hex.EncodeToString(spans["GET"].ParentSpanId) != "00f067aa0ba902b7" {
		t.Errorf("the server span does not continue the client's span")
	}
	want := "00-" + traceID + "-" + hex.EncodeToString(spans["upstream GET"].SpanId) + "-01"
	if upTP != want {
		t.Errorf("upstream traceparent %q, want %q", upTP, want)
	}
	if !strings.Contains(g.Logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("the access log does not name the trace")
	}
	rc.mu.Lock()
	n := len(rc.spans)
	rc.mu.Unlock()
	if n != len(spans) {
		t.Errorf("%d spans exported, %d of them in the sampled trace: the unsampled request was traced", n, len(spans))
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
