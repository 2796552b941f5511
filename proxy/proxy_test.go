package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tswgate/tswgate/auth"
)

// deciderFunc adapts a function to Decider, so the HTTP side is tested
// apart from the decision (which auth tests on its own).
type deciderFunc func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict

func (f deciderFunc) Decide(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
	return f(ctx, req, now)
}

var testToken = &auth.Token{ID: "tsw_AbCdEfGhIjKlMnOpQrSt", ProjectID: 42, Role: auth.RoleAccounting, Status: auth.StatusActive}

func allow(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
	if req.Body != nil {
		if _, _, err := req.Body.BodyPrefix(); err != nil {
			return auth.Verdict{Code: auth.CodeInvalidBody, Err: err}
		}
	}
	return auth.Verdict{Token: testToken, Permission: auth.PermBillingRead}
}

type seen struct {
	header http.Header
	body   []byte
}

func newUpstream(t *testing.T) (*httptest.Server, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Header.Clone(), b}
		w.Header().Set(HeaderRequestID, "upstream-made-this-up")
		w.Write([]byte(`{"success":true,"message":""}`))
	}))
	t.Cleanup(up.Close)
	return up, ch
}

func newHandler(t *testing.T, d Decider, upstream string, opts Options) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	opts.Decider, opts.Upstream = d, u
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestIdentityHeadersCannotBeSpoofedOrStripped(t *testing.T) {
	up, got := newUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
	req.Header.Set("Authorization", "Bearer secret-stuff")
	req.Header.Set(HeaderProjectID, "7")
	req.Header.Set(HeaderTokenRole, "owner")
	req.Header.Set(HeaderRequestID, "client-req-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-got
	want := map[string]string{HeaderProjectID: "42", HeaderTokenID: testToken.ID, HeaderTokenRole: "accounting", HeaderRequestID: "client-req-1"}
	for k, v := range want {
		if vs := s.header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("upstream got %s = %q, want %q", k, vs, v)
		}
	}
	if s.header.Get("Authorization") != "" {
		t.Error("the client's Authorization header reached the upstream")
	}
	for k := range s.header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), HeaderTokenID) && k != HeaderTokenID {
			t.Errorf("spoofed header %s reached the upstream", k)
		}
	}
	if s.header.Get("X-Forwarded-For") == "" {
		t.Error("no X-Forwarded-For")
	}
	if vs := resp.Header.Values(HeaderRequestID); len(vs) != 1 || vs[0] != "client-req-1" {
		t.Errorf("response X-Request-Id = %q", vs)
	}
}

// TestConnectionCannotStripCheckedHeaders: a Connection option naming an
// end-to-end header (which the proxy would drop after the decision), or
// declared trailers, are refused; hop-by-hop options pass.
func TestConnectionCannotStripCheckedHeaders(t *testing.T) {
	up, got := newUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	for _, c := range []struct {
		connection, trailer string
		want                int
	}{
		{"X-Tsw-Project-Id, X-Tsw-Token-Id", "", http.StatusBadRequest},
		{"content-type", "", http.StatusBadRequest},
		{"keep-alive , ,x-request-id", "", http.StatusBadRequest},
		{"", "X-Tsw-Project-Id", http.StatusBadRequest},
		{"Keep-Alive, TE, Upgrade", "", http.StatusOK},
		{"", "", http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
		if c.connection != "" {
			req.Header.Set("Connection", c.connection)
		}
		if c.trailer != "" {
			req.Body = io.NopCloser(strings.NewReader("{}"))
			req.ContentLength = -1 // chunked, so that trailers may follow
			req.Trailer = http.Header{c.trailer: nil}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Connection %q, trailer %q: %d, want %d", c.connection, c.trailer, resp.StatusCode, c.want)
		}
		if code := resp.Header.Get(HeaderErrorCode); c.want != http.StatusOK && code != "invalid_header" {
			t.Errorf("Connection %q, trailer %q: code %q, want invalid_header", c.connection, c.trailer, code)
		}
		if c.want == http.StatusOK {
			<-got
		}
	}
}

func TestPassAuthorization(t *testing.T) {
	up, got := newUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{PassAuthorization: true})
	req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
	req.Header.Set("Authorization", "Bearer abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; s.header.Get("Authorization") != "Bearer abc" {
		t.Fatalf("Authorization = %q", s.header.Get("Authorization"))
	}
}

func TestBodyReachesUpstreamIntact(t *testing.T) {
	up, got := newUpstream(t)
	var prefixes []int
	var size int
	d := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		p, complete, err := req.Body.BodyPrefix()
		if err != nil {
			t.Error(err)
		}
		if complete != (size <= 1024) {
			t.Errorf("%d-byte body: prefix %d bytes, complete %v", size, len(p), complete)
		}
		prefixes = append(prefixes, len(p))
		return allow(ctx, req, now)
	})
	gw := newHandler(t, d, up.URL, Options{MaxBodyScan: 1024})
	for _, n := range []int{10, 1023, 1024, 1025, 200_000} {
		size = n
		body := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
		resp, err := http.Post(gw.URL+"/v2/Instance", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := <-got; !bytes.Equal(s.body, body) {
			t.Fatalf("%d-byte body: upstream got %d bytes, not the same", n, len(s.body))
		}
	}
	if want := []int{10, 1023, 1024, 1024, 1024}; !slices.Equal(prefixes, want) {
		t.Fatalf("prefix lengths %v, want %v", prefixes, want)
	}
}

func TestRefusalResponses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, MetricsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range auth.Codes() {
		t.Run(code.String(), func(t *testing.T) {
			up, got := newUpstream(t)
			d := deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict {
				return auth.Verdict{Code: code, RetryAfter: 1500 * time.Millisecond}
			})
			gw := newHandler(t, d, up.URL, Options{Metrics: m})
			resp, err := http.Get(gw.URL + "/v2/Instance")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env struct {
				Success *bool  `json:"success"`
				Message string `json:"message"`
				Code    string `json:"code"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != Status(code) || env.Success == nil || *env.Success || env.Code != code.String() || env.Message == "" {
				t.Fatalf("status %d, body %+v", resp.StatusCode, env)
			}
			if resp.Header.Get(HeaderErrorCode) != code.String() || resp.Header.Get(HeaderRequestID) == "" {
				t.Fatalf("headers %v", resp.Header)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); (resp.StatusCode == 401) != strings.Contains(wa, `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q on %d", wa, resp.StatusCode)
			}
			if ra := resp.Header.Get("Retry-After"); ra != "2" {
				t.Fatalf("Retry-After %q, want 2 (1.5s rounded up)", ra)
			}
			select {
			case <-got:
				t.Fatal("a refused request reached the upstream")
			default:
			}
			if n := testutil.ToFloat64(m.refusals[code]); n != 1 {
				t.Fatalf("refusals{reason=%s} = %v", code, n)
			}
		})
	}
}

func TestPermissionDeniedNamesRoleAndPermission(t *testing.T) {
	d := deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict {
		return auth.Verdict{Code: auth.CodePermissionDenied, Token: testToken, Permission: auth.PermComputeWrite}
	})
	gw := newHandler(t, d, "http://127.0.0.1:1", Options{})
	resp, err := http.Post(gw.URL+"/v2/Instance", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "Accounting role may not call compute.write") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		up := httptest.NewServer(http.NotFoundHandler())
		up.Close()
		gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
		assertEnvelope(t, gw.URL+"/v2/Invoice", http.StatusBadGateway, codeUpstreamError)
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		t.Cleanup(up.Close)
		t.Cleanup(func() { close(release) })
		gw := newHandler(t, deciderFunc(allow), up.URL, Options{
			Transport: NewTransport(TransportOptions{ResponseHeaderTimeout: 50 * time.Millisecond}),
		})
		assertEnvelope(t, gw.URL+"/v2/Invoice", http.StatusGatewayTimeout, codeUpstreamTimeout)
	})
}

func assertEnvelope(t *testing.T, url string, status int, code string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status || env.Code != code || resp.Header.Get(HeaderErrorCode) != code {
		t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, env, status, code)
	}
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func TestReadiness(t *testing.T) {
	var storeErr error
	h := NewHealth(pingFunc(func(context.Context) error { return storeErr }), time.Second)
	check := func(wantStatus int, wantState string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ReadyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var rep Report
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if rec.Code != wantStatus || rep.Status != wantState {
			t.Fatalf("readyz = %d %s, want %d %s (%s)", rec.Code, rep.Status, wantStatus, wantState, rec.Body)
		}
	}
	check(503, "not_ready") // not yet subscribed
	h.HandleEvent(auth.Event{Kind: auth.EventResync})
	check(200, "ok")
	storeErr = errors.New("connection refused")
	h.HandleEvent(auth.Event{Kind: auth.EventDisconnected, Err: storeErr})
	check(200, "degraded") // a shared-store outage does not unready every replica
	storeErr = nil
	h.HandleEvent(auth.Event{Kind: auth.EventResync})
	check(200, "ok")
	h.Drain()
	check(503, "not_ready")
}
