package proxy

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

func TestPermissionDeniedByScopesNamesPermission(t *testing.T) {
	scoped := &auth.Token{ID: testToken.ID, ProjectID: 42, Role: auth.RoleOwner, Status: auth.StatusActive,
		Scopes: auth.PermSet(0).With(auth.PermComputeRead)}
	for _, tc := range []struct {
		tok      *auth.Token
		perm     auth.Permission
		wantBody string
	}{
		{scoped, auth.PermComputeWrite, "lacks the compute.write permission: its scopes do not include it"},
		{testToken, auth.PermComputeWrite, "Accounting role may not call compute.write routes (it lacks the compute.write permission)"},
	} {
		d := deciderFunc(func(context.Context, *auth.Request, time.Time) auth.Verdict {
			return auth.Verdict{Code: auth.CodePermissionDenied, Token: tc.tok, Permission: tc.perm}
		})
		gw := newHandler(t, d, "http://127.0.0.1:1", Options{})
		resp, err := http.Post(gw.URL+"/v2/Instance", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), tc.wantBody) {
			t.Errorf("%s token: %d %s; want 403 with %q", tc.tok.Role, resp.StatusCode, b, tc.wantBody)
		}
		wa := resp.Header.Get("WWW-Authenticate")
		if !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="compute.write"`) {
			t.Errorf("WWW-Authenticate %q, want insufficient_scope naming compute.write", wa)
		}
	}
}

// TestDecisionGetsClientAddr checks that the decision is given the client
// address the failed-authentication guard uses: the peer, or through a
// trusted proxy the address it forwards.
func TestDecisionGetsClientAddr(t *testing.T) {
	got := make(chan netip.Addr, 1)
	d := deciderFunc(func(_ context.Context, req *auth.Request, _ time.Time) auth.Verdict {
		got <- req.ClientAddr
		return auth.Verdict{Code: auth.CodeIPNotAllowed, Token: testToken}
	})
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9"},
	} {
		gw := newHandler(t, d, "http://127.0.0.1:1", Options{TrustedProxies: tc.trusted})
		req, _ := http.NewRequest("GET", gw.URL+"/v2/Instance", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if a := <-got; a.String() != tc.want {
			t.Errorf("%s: decision got client %s, want %s", tc.name, a, tc.want)
		}
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get(HeaderErrorCode) != "ip_not_allowed" {
			t.Errorf("%s: %d %s, want 403 ip_not_allowed", tc.name, resp.StatusCode, resp.Header.Get(HeaderErrorCode))
		}
	}
}

// TestUpstreamLearnsTheCheckedClientAddr: X-Forwarded-For upstream is the
// client address the decision used (through a trusted proxy, the address
// it forwards, not the proxy's), and no client-supplied header naming a
// client address reaches the upstream in any spelling.
func TestUpstreamLearnsTheCheckedClientAddr(t *testing.T) {
	up, got := newUpstream(t)
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9"},
	} {
		gw := newHandler(t, deciderFunc(allow), up.URL, Options{TrustedProxies: tc.trusted})
		req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
		for _, k := range []string{"X-Real-IP", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP",
			"Fastly-Client-IP", "X-Cluster-Client-IP", "Client-IP", "X-Original-Forwarded-For"} {
			req.Header.Set(k, "6.6.6.6")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		s := <-got
		if vs := s.header.Values("X-Forwarded-For"); len(vs) != 1 || vs[0] != tc.want {
			t.Errorf("%s: upstream X-Forwarded-For = %q, want %q", tc.name, vs, tc.want)
		}
		for k, v := range s.header {
			if strings.Contains(strings.Join(v, ","), "6.6.6.6") {
				t.Errorf("%s: client address header %s = %q reached the upstream", tc.name, k, v)
			}
		}
	}
}
