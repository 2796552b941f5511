package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/tswgate/tswgate/auth"
)

// A proxied request is counted by method and status, its upstream round
// trip timed by permission, and an upstream failure counted as a refusal
// reason; opt-in series exist only for the allow-listed ids.
func TestMetricsObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, MetricsOptions{Projects: []int64{42, 7}, Tokens: []string{testToken.ID}})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := newUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{Metrics: m})
	req, _ := http.NewRequest("PATCH", gw.URL+"/v2/Invoice?secret=x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	gwDown := newHandler(t, deciderFunc(allow), down.URL, Options{Metrics: m})
	assertEnvelope(t, gwDown.URL+"/v2/Invoice", http.StatusBadGateway, codeUpstreamError)
	limited := newHandler(t, deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict {
		return auth.Verdict{Code: auth.CodeRateLimited, Token: testToken, Permission: auth.PermBillingRead,
			Limit: auth.LimitStatus{Enabled: true, Over: true}}
	}), up.URL, Options{Metrics: m})
	req, _ = http.NewRequest("PROPFIND", limited.URL+"/v2/Invoice", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.requests.WithLabelValues("accounting", "billing.read", "PATCH", "200"), 1},
		{m.requests.WithLabelValues("accounting", "billing.read", "GET", "502"), 1},
		{m.requests.WithLabelValues("accounting", "billing.read", "OTHER", "429"), 1},
		{m.upstreamFail[upstreamErr], 1},
		{m.upstreamFail[upstreamTimeout], 0},
		{m.decisions[decisionLimited], 1},
		{m.decisions[decisionAllowed], 0},
		{m.projects[42][outcomeAllowed], 2},
		{m.projects[42][outcomeRateLimited], 1},
		{m.projects[7][outcomeAllowed], 0},
		{m.tokenVec.WithLabelValues(testToken.ID, "42", "allowed"), 2},
		{m.tokenVec.WithLabelValues(testToken.ID, "42", "rate_limited"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			desc := make(chan *prometheus.Desc, 1)
			c.c.Describe(desc)
			t.Errorf("%v = %v, want %v", <-desc, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "tswgate_upstream_duration_seconds"); n != len(auth.Permissions())+1 {
		t.Errorf("%d upstream duration series, want one per permission", n)
	}
	if n := testutil.CollectAndCount(reg, "tswgate_project_requests_total"); n != 6 {
		t.Errorf("%d project series, want 3 outcomes × 2 projects", n)
	}
	out, _ := testutil.CollectAndFormat(reg, expfmt.TypeTextPlain, "tswgate_upstream_duration_seconds", "tswgate_gateway_duration_seconds")
	if !bytes.Contains(out, []byte(`tswgate_upstream_duration_seconds_count{permission="billing.read"} 2`)) ||
		!bytes.Contains(out, []byte(`tswgate_gateway_duration_seconds_count{outcome="proxied"} 2`)) ||
		!bytes.Contains(out, []byte(`tswgate_gateway_duration_seconds_count{outcome="refused"} 1`)) {
		t.Errorf("durations:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	bw := NewBufferedWriter(&buf, 0, 10*time.Millisecond)
	defer bw.Close()
	up, _ := newUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{AccessLog: NewJSONAccessLog(bw)})
	req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice?ProjectId=42&secret=hunter2", nil)
	req.Header.Set("Authorization", "Bearer tsw_AbCdEfGhIjKlMnOpQrSt:tswsk_doNotLogMe")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("the access log line was not flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	line := buf.String()
	if strings.Contains(line, "hunter2") || strings.Contains(line, "doNotLogMe") || strings.Contains(line, "ProjectId") {
		t.Fatalf("the access log holds the query or the secret: %s", line)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "request", "method": "GET", "path": "/v2/Invoice", "status": 200.0,
		"token_id": testToken.ID, "project_id": 42.0, "role": "accounting", "permission": "billing.read", "code": "ok",
		"request_id": resp.Header.Get(HeaderRequestID)} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	for _, k := range []string{"gateway_ms", "upstream_ms"} {
		if v, ok := rec[k].(float64); !ok || v < 0 {
			t.Errorf("%s = %v, want a duration in ms", k, rec[k])
		}
	}
}

func TestBufferedWriter(t *testing.T) {
	var buf syncBuffer
	bw := NewBufferedWriter(&buf, 16, time.Hour)
	bw.Write([]byte("0123456789\n"))
	if buf.String() != "" {
		t.Fatal("written through before a flush")
	}
	bw.Write([]byte("abcdefghij\n")) // does not fit: the first line goes out whole
	if buf.String() != "0123456789\n" {
		t.Fatalf("after overflow: %q", buf.String())
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "0123456789\nabcdefghij\n" {
		t.Fatalf("after Close: %q", buf.String())
	}
	bw.Write([]byte("late\n"))
	if !strings.HasSuffix(buf.String(), "late\n") || bw.Close() != nil {
		t.Fatal("a write after Close was not written through")
	}
}
