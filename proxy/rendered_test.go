package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/internal/h1"
)

// mapOnly hides the fast path's WriteAnswer: refusals go through the
// header map, as they do on net/http.
type mapOnly struct{ http.ResponseWriter }

// serveH1 serves h on loopback with the fast path and returns its address.
func serveH1(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &h1.Server{Fallback: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// rawAnswer sends req on a new connection and returns the answer's
// status line, its field lines sorted (Date's value blanked) and its body.
func rawAnswer(t *testing.T, addr, req string) (status string, fields []string, body string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, _ = br.ReadString('\n')
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the head: %v", err)
		}
		if line == "\r\n" {
			break
		}
		if strings.HasPrefix(line, "Date: ") {
			line = "Date: -"
		}
		fields = append(fields, line)
	}
	slices.Sort(fields)
	if strings.HasPrefix(req, "HEAD") {
		return status, fields, ""
	}
	var n int
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, "Content-Length: "); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(br, rest); err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return status, fields, string(rest)
}

// TestRenderedRefusalsMatchTheHeaderMap: every refusal answered through
// the fast path's WriteAnswer (no header map) is byte for byte the
// answer the header map gives, but for the order of the fields, which a
// map does not keep: the same status, fields and body, Content-Length,
// Retry-After and "Connection: close" included.
func TestRenderedRefusalsMatchTheHeaderMap(t *testing.T) {
	owner := &auth.Token{ID: "tsw_00000000000000000000", ProjectID: 42, Role: auth.RoleOwner}
	accounting := &auth.Token{ID: "tsw_00000000000000000001", ProjectID: 7, Role: auth.RoleAccounting}
	var verdicts []auth.Verdict
	for _, c := range auth.Codes() {
		if c != auth.OK {
			verdicts = append(verdicts, auth.Verdict{Code: c})
		}
	}
	verdicts = append(verdicts,
		auth.Verdict{Code: auth.CodeAuthRateLimited, RetryAfter: 1500 * time.Millisecond},
		auth.Verdict{Code: auth.CodePermissionDenied, Token: accounting, Permission: auth.PermNone},
		auth.Verdict{Code: auth.CodeProjectMismatch, Token: owner},
		auth.Verdict{Code: auth.CodeRateLimited, Token: owner, RetryAfter: time.Second,
			Limit: auth.LimitStatus{Lineage: auth.ProjectLimitStatus{Over: true}}},
	)
	for _, p := range auth.Permissions() {
		verdicts = append(verdicts, auth.Verdict{Code: auth.CodePermissionDenied, Token: accounting, Permission: p})
	}
	up, _ := url.Parse("http://upstream.invalid")
	for _, v := range verdicts {
		gw, err := New(Options{Decider: deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict { return v }),
			Upstream: up, Transport: cannedTransport{}})
		if err != nil {
			t.Fatal(err)
		}
		fast := serveH1(t, gw)
		slow := serveH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(mapOnly{w}, r) }))
		for _, req := range []string{
			"GET /v2/Instance HTTP/1.1\r\nHost: api\r\nX-Request-Id: r1\r\nAuthorization: Bearer x\r\n\r\n",
			"HEAD /v2/Instance HTTP/1.1\r\nHost: api\r\nX-Request-Id: r1\r\nConnection: close\r\n\r\n",
		} {
			fs, ff, fb := rawAnswer(t, fast, req)
			ss, sf, sb := rawAnswer(t, slow, req)
			if fs != ss || !slices.Equal(ff, sf) || fb != sb {
				t.Errorf("%s, %q:\nrendered: %q %q %q\nheader map: %q %q %q", v.Code, req, fs, ff, fb, ss, sf, sb)
			}
		}
	}
}

// BenchmarkRefusalServe is an invalid-token flood's request on loopback
// through the fast path, as the client sees it: a refused decision
// (stubbed out) answered 429 auth_rate_limited with Retry-After, the
// metrics and the access log on; rendered (WriteAnswer) and through the
// header map. allocs/op counts the server and the client.
func BenchmarkRefusalServe(b *testing.B) {
	up, _ := url.Parse("http://upstream.invalid")
	m, err := NewMetrics(prometheus.NewRegistry(), MetricsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bw := NewBufferedWriter(io.Discard, 0, 0)
	defer bw.Close()
	refuseAll := func(context.Context, *auth.Request, time.Time) auth.Verdict {
		return auth.Verdict{Code: auth.CodeAuthRateLimited, RetryAfter: time.Second}
	}
	gw, err := New(Options{Decider: deciderFunc(refuseAll), Upstream: up, Transport: cannedTransport{}, Metrics: m,
		AccessLog: NewJSONAccessLog(bw)})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"rendered", gw}, {"header map", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(mapOnly{w}, r) })}} {
		b.Run(c.name, func(b *testing.B) {
			conn, err := net.Dial("tcp", serveH1(b, c.h))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req := []byte("GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: api\r\n" +
				"Authorization: Bearer tsw_HQbdxOHc6emkMohZNtY2:tswsk_sxeEyUmVv9wO1XR29zwhxXayA8FcoN4ODTd5\r\n" +
				"User-Agent: bench\r\nAccept: application/json\r\n\r\n")
			br := bufio.NewReaderSize(conn, 64<<10)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := skipAnswer(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// skipAnswer reads past one answer with a Content-Length, allocating
// nothing.
func skipAnswer(br *bufio.Reader) error {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			for _, c := range bytes.TrimSpace(v) {
				n = 10*n + int(c-'0')
			}
		}
	}
	_, err := br.Discard(n)
	return err
}
