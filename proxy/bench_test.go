package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
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
		BufferPool: benchBufferPool{},
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

// BenchmarkProxyLoopback serves the gateway's handler (decision stubbed
// out) with net/http over loopback in front of a real upstream server,
// through its Client and through NewTransport's http.Transport, next to a
// bare ReverseProxy on that transport: the whole hop as a client sees it, for profiling the server
// and the transport (`go test -run '^$' -bench ProxyLoopback
// -cpuprofile cpu.out ./proxy/`). The client's own work is in the profile
// too; its share is the same for both.
func BenchmarkProxyLoopback(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(cannedBody))}
		_, _ = io.WriteString(w, cannedBody)
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	gw, err := New(Options{Decider: deciderFunc(allow), Upstream: up})
	if err != nil {
		b.Fatal(err)
	}
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up) },
		Transport:  NewTransport(TransportOptions{}),
		BufferPool: benchBufferPool{},
	}
	gwStd, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Transport: NewTransport(TransportOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"tswgate", gw}, {"tswgate-http.Transport", gwStd}} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", srv.URL+"/v2/Instance?ProjectId=42", nil)
				req.Header.Set("Authorization", "Bearer x")
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRefusal is the gateway's side of an invalid-token flood: the
// decision (stubbed out) refuses, and the handler answers the 401 with
// the metrics and the access log on.
func BenchmarkRefusal(b *testing.B) {
	up, _ := url.Parse("http://upstream.invalid")
	m, err := NewMetrics(prometheus.NewRegistry(), MetricsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bw := NewBufferedWriter(io.Discard, 0, 0)
	defer bw.Close()
	refuseAll := func(context.Context, *auth.Request, time.Time) auth.Verdict {
		return auth.Verdict{Code: auth.CodeInvalidToken, TokenID: "tsw_00000000000000000000"}
	}
	gw, err := New(Options{Decider: deciderFunc(refuseAll), Upstream: up, Transport: cannedTransport{}, Metrics: m,
		AccessLog: NewJSONAccessLog(bw)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/v2/Instance?ProjectId=42", nil)
		req.Header.Set("Authorization", "Bearer x")
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// benchBufferPool lends ReverseProxy the gateway's copy buffers.
type benchBufferPool struct{}

func (benchBufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (benchBufferPool) Put(b []byte) { copyBuffers.Put(&b) }
