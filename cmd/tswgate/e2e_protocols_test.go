package main

// HTTP/1.1 and HTTP/2 alike end to end: the same requests, sent over
// either protocol (HTTP/2 by ALPN behind TLS, or h2c in clear), get the
// same status, refusal code and rate-limit headers, and the same access
// log line.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/proxy"
)

// protoClient is a client that speaks one protocol, as resp.Proto names it.
type protoClient struct {
	proto string
	c     *http.Client
}

// parityCase is a request sent over each protocol. cred picks the
// credential for the i-th protocol.
type parityCase struct {
	name, method, path, ctype string
	body                      []byte
	cred                      func(i int) string
	status                    int
	code                      auth.Code // auth.OK when proxied
}

// parityAnswer is what must not depend on the protocol: of the answer and
// of its access log line.
type parityAnswer struct {
	Status int
	Code   string            // the envelope's; "" when proxied
	Limits map[string]string // rate-limit headers, see limitHeaders
	Log    map[string]any    // access log fields, see logFields
}

// rateLimitHeaders are the headers of a limited token's answers. The ones
// that count seconds until a refill (RateLimit-Reset, Retry-After, t= in
// RateLimit) are compared by presence: the clock moves between requests.
var rateLimitHeaders = []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "RateLimit", "Retry-After"}

// limitHeaders returns the rate-limit headers of h that are set, with the
// time-dependent parts replaced by "set".
func limitHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, name := range rateLimitHeaders {
		vs := h.Values(name)
		switch {
		case len(vs) == 0:
			continue
		case name == "RateLimit-Reset" || name == "Retry-After":
			out[name] = "set"
		case name == "RateLimit":
			items := strings.Split(strings.Join(vs, ", "), ", ")
			for i, item := range items {
				if at := strings.Index(item, ";t="); at >= 0 {
					items[i] = item[:at] + ";t=set"
				}
			}
			out[name] = strings.Join(items, ", ")
		default:
			out[name] = strings.Join(vs, ", ")
		}
	}
	return out
}

// TestE2EH1H2Parity: HTTP/1.1 and HTTP/2 (over TLS, and h2c) answer and
// log the same requests alike: allowed, refused for the credential, for
// the project, and for the rate limit.
func TestE2EH1H2Parity(t *testing.T) {
	up := MustStartUpstream(t, nil)
	t.Run("tls", func(t *testing.T) {
		certPath, keyPath, pool := writeCert(t)
		access := newSyncBuffer()
		g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: io.MultiWriter(access, hygieneSink{}),
			Env: []string{"TSWGATE_TLS_CERT_FILE=" + certPath, "TSWGATE_TLS_KEY_FILE=" + keyPath}})
		h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
		h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
		checkParity(t, g, access, "https://"+g.Addr("public"), [2]protoClient{{"HTTP/1.1", h1}, {"HTTP/2.0", h2}})
	})
	t.Run("h2c", func(t *testing.T) {
		access := newSyncBuffer()
		g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: io.MultiWriter(access, hygieneSink{}),
			Env: []string{"TSWGATE_H2C=true"}})
		h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		h2 := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		checkParity(t, g, access, g.URL, [2]protoClient{{"HTTP/1.1", h1}, {"HTTP/2.0", h2}})
	})
}

// checkParity sends every case over both clients and compares what came
// back and what was logged.
func checkParity(t *testing.T, g *testGateway, access *syncBuffer, base string, clients [2]protoClient) {
	cases, labels := parityCases(t, g)
	answers := make([][2]parityAnswer, len(cases))
	reqIDs := make([][2]string, len(cases))
	for n, c := range cases {
		for i, pc := range clients {
			req := MustNewRequest(t, c.method, base+c.path, c.cred(i), c.body)
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			r := MustDo(t, pc.c, req)
			proto := r.Proto
			if proto != pc.proto {
				t.Fatalf("%s: spoke %s, want %s", c.name, proto, pc.proto)
			}
			if c.code == auth.OK {
				MustBeProxied(t, r)
			} else {
				MustBeRefused(t, r, c.code)
				_, answers[n][i].Code = MustEnvelope(t, r)
			}
			answers[n][i].Status = r.Status
			answers[n][i].Limits = limitHeaders(r.Header)
			reqIDs[n][i] = r.Header.Get(proxy.HeaderRequestID)
		}
	}
	// Shutdown flushes the access log.
	if err := g.ShutdownOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := accessLines(t, access.String())
	for n, c := range cases {
		for i, pc := range clients {
			l, ok := lines[reqIDs[n][i]]
			if !ok {
				t.Fatalf("%s over %s: no access log line for request %q", c.name, pc.proto, reqIDs[n][i])
			}
			answers[n][i].Log = logFields(l, labels)
		}
		if a, b := answers[n][0], answers[n][1]; !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %s and %s differ:\n%s: %+v\n%s: %+v", c.name, clients[0].proto, clients[1].proto,
				clients[0].proto, a, clients[1].proto, b)
		}
		checkParityAnswer(t, c, answers[n][0])
	}
}

// parityCases creates the tokens and lists the requests. labels names
// each token by its part, for comparing the token_id of log lines: each
// protocol has a limited token of its own, so that both see the same
// counts.
func parityCases(t *testing.T, g *testGateway) ([]parityCase, map[string]string) {
	owner := g.MustCreateToken(t, testProject, "owner", "parity-owner")
	var limited [2]string
	labels := map[string]string{owner.ID: "owner"}
	for i := range limited {
		tok := g.MustCreateToken(t, testProject, "owner", fmt.Sprintf("parity-limited-%d", i))
		mustLimit(t, g, tok.ID, tinyRate, 2, nil)
		limited[i], labels[tok.ID] = tok.Token, "limited"
	}
	same := func(cred string) func(int) string { return func(int) string { return cred } }
	forged, malformed := MustForgeCredential(t, owner.ID), MustChangeSecretChar(t, owner.Token)
	mine := func(i int) string { return limited[i] }
	return []parityCase{
		{name: "allowed", method: "GET", path: "/v2/Instance?ProjectId=42", cred: same(owner.Token), status: 200, code: auth.OK},
		{name: "allowed POST", method: "POST", path: "/v2/SshKey", ctype: "application/json", body: []byte(`{"projectId":42}`),
			cred: same(owner.Token), status: 200, code: auth.OK},
		{name: "missing token", method: "GET", path: "/v2/Instance", cred: same(""), status: 401, code: auth.CodeMissingToken},
		{name: "invalid token", method: "GET", path: "/v2/Instance", cred: same(forged), status: 401, code: auth.CodeInvalidToken},
		{name: "malformed token", method: "GET", path: "/v2/Instance", cred: same(malformed), status: 401, code: auth.CodeMalformedToken},
		{name: "wrong project", method: "GET", path: "/v2/Instance?ProjectId=43", cred: same(owner.Token), status: 403, code: auth.CodeProjectMismatch},
		{name: "wrong project in body", method: "POST", path: "/v2/SshKey", ctype: "application/json", body: []byte(`{"projectId":43}`),
			cred: same(owner.Token), status: 403, code: auth.CodeProjectMismatch},
		{name: "limited 1 of 2", method: "GET", path: "/v2/Instance", cred: mine, status: 200, code: auth.OK},
		{name: "limited 2 of 2", method: "GET", path: "/v2/Instance", cred: mine, status: 200, code: auth.OK},
		{name: "rate limited", method: "GET", path: "/v2/Instance", cred: mine, status: 429, code: auth.CodeRateLimited},
		{name: "still rate limited", method: "GET", path: "/v2/Instance", cred: mine, status: 429, code: auth.CodeRateLimited},
	}, labels
}

// checkParityAnswer checks one protocol's answer against what the case
// calls for (the other's is equal).
func checkParityAnswer(t *testing.T, c parityCase, a parityAnswer) {
	t.Helper()
	wantCode := c.code.String()
	if c.code == auth.OK {
		wantCode = ""
	}
	if a.Status != c.status || a.Code != wantCode {
		t.Errorf("%s: %d %q, want %d %q", c.name, a.Status, a.Code, c.status, wantCode)
	}
	if a.Log["status"] != float64(c.status) || a.Log["code"] != c.code.String() {
		t.Errorf("%s: logged %v %v, want %d %s", c.name, a.Log["status"], a.Log["code"], c.status, c.code)
	}
	var want map[string]string
	switch c.name {
	case "limited 1 of 2", "limited 2 of 2":
		left := map[string]string{"limited 1 of 2": "1", "limited 2 of 2": "0"}[c.name]
		want = map[string]string{"RateLimit-Limit": "2", "RateLimit-Remaining": left, "RateLimit-Reset": "set",
			"RateLimit-Policy": `"token";q=2;w=2000`, "RateLimit": `"token";r=` + left + ";t=set"}
	case "rate limited", "still rate limited":
		want = map[string]string{"RateLimit-Limit": "2", "RateLimit-Remaining": "0", "RateLimit-Reset": "set",
			"RateLimit-Policy": `"token";q=2;w=2000`, "RateLimit": `"token";r=0;t=set`, "Retry-After": "set"}
	default:
		want = map[string]string{} // a token without a limit: none advertised
	}
	if !reflect.DeepEqual(a.Limits, want) {
		t.Errorf("%s: rate-limit headers %v, want %v", c.name, a.Limits, want)
	}
}

// accessLines parses the access log's request lines by request id.
func accessLines(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	lines := map[string]map[string]any{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if id, _ := m["request_id"].(string); m["msg"] == "request" && id != "" {
			lines[id] = m
		}
	}
	return lines
}

// logFields keeps the fields of an access log line that must not depend on
// the protocol, token ids replaced by their labels; it drops the time,
// request id and durations.
func logFields(l map[string]any, labels map[string]string) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"method", "path", "status", "code", "token_id", "project_id", "role", "permission", "ratelimit"} {
		if v, ok := l[k]; ok {
			out[k] = v
		}
	}
	if id, _ := out["token_id"].(string); id != "" {
		out["token_id"] = labels[id]
		if labels[id] == "" {
			out["token_id"] = "unknown:" + id
		}
	}
	return out
}

// TestE2EH2TargetBytes: HTTP/2 carries bytes in :path that no HTTP/1.1
// request line can (a space), or only as the start of a fragment ("#"),
// and field values no HTTP/1.1 field can (white space at either end).
// Written into the upstream's request, they would have the API read
// another request than the one checked: such a request is refused with
// its code, never passed on.
func TestE2EH2TargetBytes(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_H2C=true")
	owner := g.MustCreateToken(t, 42, "owner", "owner")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	for _, tc := range []struct {
		path, query string
		code        auth.Code
	}{
		{"/v2/Instance", "ProjectId=42&x=a b", auth.CodeInvalidQuery},
		{"/v2/Instance", "ProjectId=42 HTTP/1.1", auth.CodeInvalidQuery},
		{"/v2/Instance", "ProjectId=42&x=#y", auth.CodeInvalidQuery},
		{"/v2/Instance/1 2", "", auth.CodeInvalidPath},
	} {
		req := MustNewRequest(t, "GET", g.URL+"/", owner.Token, nil)
		req.URL.Opaque, req.URL.RawQuery = tc.path, tc.query // sent as they are
		before := up.Hits()
		r := MustDo(t, h2, req)
		MustBeRefused(t, r, tc.code)
		if n := up.Hits() - before; n != 0 {
			t.Errorf("%s?%s: the upstream received %d request(s)", tc.path, tc.query, n)
		}
	}
	// A field value with white space at either end, which no HTTP/1.1
	// field can hold: refused, not answered upstream_error.
	req := MustNewRequest(t, "GET", g.URL+"/v2/Instance?ProjectId=42", owner.Token, nil)
	req.Header["X-Client"] = []string{" padded "}
	before := up.Hits()
	MustBeRefused(t, MustDo(t, h2, req), auth.CodeInvalidHeader)
	if n := up.Hits() - before; n != 0 {
		t.Errorf("padded field: the upstream received %d request(s)", n)
	}
}
