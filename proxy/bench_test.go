package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// cannedTransport answers every round trip in memory, so the benchmarks
// below measure the proxy's own work, not the network.
type cannedTransport struct{}

const cannedBody = `{"success":true,"message":"","result":[{"id":1,"displayName":"web-1","regionId":"ewr1","status":"Active"}]}`

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(cannedBody)),
		ContentLength: int64(len(cannedBody)),
		Request:       r,
	}, nil
}

// BenchmarkProxyOverhead compares a bare httputil.ReverseProxy (Rewrite,
// BufferPool) with the gateway's handler around the same transport, the
// decision stubbed out: what the HTTP side adds per request.
func BenchmarkProxyOverhead(b *testing.B) {
	up, _ := url.Parse("http://upstream.invalid")
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up) },
		Transport:  cannedTransport{},
		BufferPool: bufferPool{},
	}
	gw, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: cannedTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	// The same with the metrics, and with the access log as the gateway
	// writes it (JSON through a BufferedWriter), here to io.Discard.
	m, err := NewMetrics(prometheus.NewRegistry(), MetricsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	gwMetrics, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: cannedTransport{}, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	bw := NewBufferedWriter(io.Discard, 0, 0)
	defer bw.Close()
	gwLog, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: cannedTransport{},
		AccessLog: NewJSONAccessLog(bw)})
	if err != nil {
		b.Fatal(err)
	}
	gwBoth, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: cannedTransport{}, Metrics: m,
		AccessLog: NewJSONAccessLog(bw)})
	if err != nil {
		b.Fatal(err)
	}
	gwAssert, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: cannedTransport{}, Asserter: benchSigner(b)})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"tswgate", gw}, {"tswgate+metrics", gwMetrics}, {"tswgate+accesslog", gwLog},
		{"tswgate+metrics+accesslog", gwBoth}, {"tswgate+assertion", gwAssert}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v2/Instance?ProjectId=42", nil)
				req.Header.Set("Authorization", "Bearer x")
				rec := httptest.NewRecorder()
				c.h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
