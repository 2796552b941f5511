package main

// End-to-end tests: the real Gateway, started by Start with a configuration
// from config.Load, in front of an httptest upstream, over real HTTP.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/proxy"
	"github.com/tswgate/tswgate/teraswitch"
)

// TestE2ECredentialFormat checks that the documented format (written out
// in helpers_test.go without the auth package) is what the gateway issues
// and accepts: a secret scanner can validate credentials offline.
func TestE2ECredentialFormat(t *testing.T) {
	re := regexp.MustCompile(`^` + strings.TrimSuffix(strings.TrimPrefix(auth.CredentialPattern, `\b`), `\b`) + `$`)
	for range 50 {
		_, cred, err := auth.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(cred) {
			t.Fatalf("CredentialPattern does not match %q", cred)
		}
		body, sum := cred[:len(cred)-6], cred[len(cred)-6:]
		if got := formatChecksum(body); got != sum {
			t.Fatalf("documented checksum of %q = %s, the credential has %s", body, got, sum)
		}
	}
	forged := MustForgeCredential(t, "tsw_"+MustRandomBase62(t, 20))
	if !auth.ValidCredential(forged) {
		t.Fatalf("a credential built from the documented format is refused by auth.ValidCredential: %q", forged)
	}
}

// TestE2ERefusals covers every refusal code but store_unavailable (see
// e2e_redis_test.go), and checks the upstream receives nothing refused.
func TestE2ERefusals(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_MAX_BODY_SCAN=1024")
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")

	covered := map[auth.Code]bool{}
	// refused sends req and checks the refusal and that the upstream got
	// nothing.
	refused := func(t *testing.T, req *http.Request, code auth.Code) *response {
		t.Helper()
		before := up.Hits()
		r := MustDo(t, g.HTTP, req)
		MustBeRefused(t, r, code)
		if n := up.Hits() - before; n != 0 {
			t.Errorf("the upstream received %d request(s) for a refused %s", n, code)
		}
		covered[code] = true
		return r
	}
	get := func(t *testing.T, path, authz string) *http.Request {
		req := MustNewRequest(t, http.MethodGet, g.URL+path, "", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		return req
	}
	rawRefused := func(t *testing.T, target, cred string, code auth.Code) {
		t.Helper()
		before := up.Hits()
		r := MustRawRequest(t, g.Addr("public"), "GET "+target+" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+
			cred+"\r\nConnection: close\r\n\r\n")
		MustBeRefused(t, r, code)
		if n := up.Hits() - before; n != 0 {
			t.Errorf("the upstream received %d request(s) for %s", n, target)
		}
		covered[code] = true
	}

	t.Run("sanity: owner is proxied", func(t *testing.T) {
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil))
	})
	t.Run("missing_token/no header", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", ""), auth.CodeMissingToken)
	})
	t.Run("missing_token/basic auth", func(t *testing.T) {
		req := get(t, "/v2/Instance", "")
		req.SetBasicAuth("user", "pass")
		refused(t, req, auth.CodeMissingToken)
	})
	t.Run("missing_token/empty bearer", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", "Bearer "), auth.CodeMissingToken)
	})
	t.Run("malformed_token/bad prefix", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", "Bearer xyz_"+owner.Token[4:]), auth.CodeMalformedToken)
	})
	t.Run("malformed_token/one secret character changed", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", "Bearer "+MustChangeSecretChar(t, owner.Token)), auth.CodeMalformedToken)
	})
	t.Run("malformed_token/checksum changed", func(t *testing.T) {
		b := []byte(owner.Token)
		if b[len(b)-1] == 'Z' {
			b[len(b)-1] = 'Y'
		} else {
			b[len(b)-1] = 'Z'
		}
		refused(t, get(t, "/v2/Instance", "Bearer "+string(b)), auth.CodeMalformedToken)
	})
	t.Run("malformed_token/truncated", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", "Bearer "+owner.Token[:len(owner.Token)-1]), auth.CodeMalformedToken)
		refused(t, get(t, "/v2/Instance", "Bearer "+owner.ID), auth.CodeMalformedToken)
	})
	t.Run("invalid_token/never stored", func(t *testing.T) {
		_, cred, err := auth.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		refused(t, get(t, "/v2/Instance", "Bearer "+cred), auth.CodeInvalidToken)
	})
	t.Run("invalid_token/known id, other secret with a valid checksum", func(t *testing.T) {
		forged := MustForgeCredential(t, owner.ID)
		if !auth.ValidCredential(forged) {
			t.Fatalf("forged credential %q fails the checksum: the documented format is wrong", forged)
		}
		refused(t, get(t, "/v2/Instance", "Bearer "+forged), auth.CodeInvalidToken)
		// The real token still works: a wrong secret does not poison the id.
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", owner.Token, nil))
	})
	t.Run("token_inactive", func(t *testing.T) {
		_, cred := g.MustCreateRecord(t, func(tok *auth.Token) { tok.Status = auth.StatusInactive })
		refused(t, get(t, "/v2/Instance", "Bearer "+cred), auth.CodeTokenInactive)
	})
	t.Run("token_expired", func(t *testing.T) {
		_, cred := g.MustCreateRecord(t, func(tok *auth.Token) { tok.ExpiresAt = time.Now().Add(-time.Minute) })
		refused(t, get(t, "/v2/Instance", "Bearer "+cred), auth.CodeTokenExpired)
	})
	t.Run("token_revoked", func(t *testing.T) {
		tok := g.MustCreateToken(t, testProject, "owner", "to-revoke")
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)) // cached now
		if _, err := g.Admin.Revoke(context.Background(), tok.ID); err != nil {
			t.Fatal(err)
		}
		refused(t, get(t, "/v2/Instance", "Bearer "+tok.Token), auth.CodeTokenRevoked)
		// Whoever presents the revoked id with any well-formed secret is
		// told "revoked".
		refused(t, get(t, "/v2/Instance", "Bearer "+MustForgeCredential(t, tok.ID)), auth.CodeTokenRevoked)
	})
	t.Run("permission_denied/accounting reads compute", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance", "Bearer "+acct.Token), auth.CodePermissionDenied)
	})
	t.Run("permission_denied/accounting writes compute", func(t *testing.T) {
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", acct.Token, []byte(`{"projectId":42}`))
		req.Header.Set("Content-Type", "application/json")
		refused(t, req, auth.CodePermissionDenied)
	})
	t.Run("ip_not_allowed", func(t *testing.T) {
		bound, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{
			ProjectID: testProject, Role: "owner", Name: "bound", AllowedIPs: []string{"192.0.2.0/24"},
		})
		if err != nil {
			t.Fatal(err)
		}
		rememberSecret(bound.Token)
		refused(t, get(t, "/v2/Instance", "Bearer "+bound.Token), auth.CodeIPNotAllowed)
	})
	t.Run("billing has no write route: unknown_route", func(t *testing.T) {
		// The spec has no write operation on Invoice or Usage; a write
		// there is not a route, so even an owner gets 404 unknown_route
		// (routes are matched before roles are checked).
		for _, tok := range []string{acct.Token, owner.Token} {
			refused(t, MustNewRequest(t, "DELETE", g.URL+"/v2/Usage", tok, nil), auth.CodeUnknownRoute)
			refused(t, MustNewRequest(t, "POST", g.URL+"/v2/Invoice", tok, []byte(`{}`)), auth.CodeUnknownRoute)
		}
	})
	t.Run("project_mismatch", func(t *testing.T) {
		refused(t, get(t, "/v2/Instance?ProjectId=7", "Bearer "+owner.Token), auth.CodeProjectMismatch)
		refused(t, get(t, "/v2/Usage?projectId=7", "Bearer "+acct.Token), auth.CodeProjectMismatch)
	})
	t.Run("unknown_route", func(t *testing.T) {
		refused(t, get(t, "/v2/Nope", "Bearer "+owner.Token), auth.CodeUnknownRoute)
		refused(t, get(t, "/v3/Instance", "Bearer "+owner.Token), auth.CodeUnknownRoute)
		refused(t, get(t, "/", "Bearer "+owner.Token), auth.CodeUnknownRoute)
	})
	t.Run("invalid_path", func(t *testing.T) {
		for _, target := range []string{
			"/v2/Instance/..%2FInvoice",
			"/v2//Instance",
			"/v2/Instance/../Invoice",
			"/v2/./Instance",
			"/v2/Instance/%2e%2e/Invoice",
			"/v2/Instance/1%5c..%5cx",
			// Bytes net/http would re-escape: refused, not passed on
			// in another spelling.
			"/v2/Instance/1|2",
			"/v2/Instance/{1}",
			"/v2/Instance/\xc4\xb1",
			"/v2/Instance/1#x",
		} {
			rawRefused(t, target, owner.Token, auth.CodeInvalidPath)
		}
		// Through Go's client with an explicit raw path, too.
		req := MustNewRequest(t, "GET", g.URL+"/", owner.Token, nil)
		req.URL.Path, req.URL.RawPath = "/v2/Instance/../Invoice", "/v2/Instance/..%2FInvoice"
		refused(t, req, auth.CodeInvalidPath)
	})
	t.Run("invalid_body", func(t *testing.T) {
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, []byte("{not json"))
		req.Header.Set("Content-Type", "application/json")
		refused(t, req, auth.CodeInvalidBody)
	})
	t.Run("unsupported_media_type", func(t *testing.T) {
		post := func(contentType, body string) *http.Request {
			req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, []byte(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			return req
		}
		refused(t, post("application/x-www-form-urlencoded", "projectId=42"), auth.CodeUnsupportedMediaType)
		refused(t, post("multipart/form-data; boundary=x", "--x--\r\n"), auth.CodeUnsupportedMediaType)
		refused(t, post("application /x-www-form-urlencoded", "projectId=43"), auth.CodeUnsupportedMediaType)
		refused(t, post("application/json; charset=utf-16", "{\x00}\x00"), auth.CodeUnsupportedMediaType)
		refused(t, post("text/plain", `{"projectId":42}`), auth.CodeUnsupportedMediaType)
		refused(t, post("", `{"projectId":42}`), auth.CodeUnsupportedMediaType)
		// Two Content-Type fields are read as the list they join to.
		req := post("application/json", `/**/{"projectId":43}`)
		req.Header.Add("Content-Type", "text/plain")
		refused(t, req, auth.CodeUnsupportedMediaType)
		req = post("application/json", `{"projectId":42}`)
		req.Header.Set("Content-Encoding", "gzip")
		refused(t, req, auth.CodeUnsupportedMediaType)
		r := refused(t, post("text/plain", "x"), auth.CodeUnsupportedMediaType)
		if msg, _ := MustEnvelope(t, r); !strings.Contains(msg, "application/json") {
			t.Errorf("message %q does not name the accepted types", msg)
		}
	})
	t.Run("body_not_allowed", func(t *testing.T) {
		// Seen on main: an Accounting token's GET with a form body.
		req := MustNewRequest(t, "GET", g.URL+"/v2/Usage?projectId=42", acct.Token, []byte("projectId=43"))
		req.Header.Set("Content-Type", "application /x-www-form-urlencoded")
		refused(t, req, auth.CodeBodyNotAllowed)
		req = MustNewRequest(t, "POST", g.URL+"/v2/Metal/7/PowerCommand?command=PowerOn", owner.Token, []byte(`{}`))
		req.Header.Set("Content-Type", "application/json")
		refused(t, req, auth.CodeBodyNotAllowed)
		// Unknown length (chunked), on a GET.
		req = MustNewRequest(t, "GET", g.URL+"/v2/Instance", owner.Token, nil)
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(`{"projectId":42}`)), -1
		req.Header.Set("Content-Type", "application/json")
		refused(t, req, auth.CodeBodyNotAllowed)
	})
	t.Run("invalid_query", func(t *testing.T) {
		for _, target := range []string{
			"/v2/Instance?ProjectId=42&Tag=%zz",
			"/v2/Instance?Project%u0049d=7",
			"/v2/Instance?ProjectId=42%",
			"/v2/Usage?projectId=4%2",
		} {
			cred := owner.Token
			if strings.HasPrefix(target, "/v2/Usage") {
				cred = acct.Token
			}
			rawRefused(t, target, cred, auth.CodeInvalidQuery)
		}
	})
	t.Run("body_too_large", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString(`{"name":"big","pad":"`)
		b.WriteString(strings.Repeat("x", 4096-len(`{"name":"big","pad":"","projectId":7}`)))
		b.WriteString(`","projectId":7}`)
		if b.Len() != 4096 || !json.Valid(b.Bytes()) {
			t.Fatalf("test body: %d bytes, valid %v", b.Len(), json.Valid(b.Bytes()))
		}
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, b.Bytes())
		req.Header.Set("Content-Type", "application/json")
		refused(t, req, auth.CodeBodyTooLarge)
	})
	t.Run("project_rate_limited", func(t *testing.T) {
		// e2e_policy_test.go has it shared by two tokens, on both stores.
		limited := g.MustCreateToken(t, testProject+7, "owner", "project-limited")
		if _, err := g.Admin.SetPolicy(context.Background(), testProject+7, tokenapi.PolicyRequest{RateLimit: 0.001, Burst: 1}); err != nil {
			t.Fatal(err)
		}
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", limited.Token, nil))
		refused(t, MustNewRequest(t, "GET", g.URL+"/v2/Instance", limited.Token, nil), auth.CodeProjectRateLimited)
		covered[auth.CodeProjectRateLimited] = true
	})
	t.Run("rate_limited", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL, "TSWGATE_RATE_OWNER=1", "TSWGATE_BURST_OWNER=1")
		tok := g.MustCreateToken(t, testProject, "owner", "limited")
		first := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		MustBeProxied(t, first)
		if first.Header.Get("RateLimit-Limit") != "1" || first.Header.Get("RateLimit-Remaining") != "0" {
			t.Errorf("first response RateLimit-Limit/Remaining = %q/%q, want 1/0",
				first.Header.Get("RateLimit-Limit"), first.Header.Get("RateLimit-Remaining"))
		}
		before := up.Hits()
		second := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		MustBeRefused(t, second, auth.CodeRateLimited)
		covered[auth.CodeRateLimited] = true
		if up.Hits() != before {
			t.Error("the upstream received a rate-limited request")
		}
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			if second.Header.Get(h) == "" {
				t.Errorf("429 lacks %s", h)
			}
		}
		if second.Header.Get("RateLimit-Remaining") != "0" {
			t.Errorf("429 RateLimit-Remaining = %q, want 0", second.Header.Get("RateLimit-Remaining"))
		}
		if n, _ := parseSeconds(second.Header.Get("RateLimit-Reset")); n < 1 {
			t.Errorf("429 RateLimit-Reset = %q, want >= 1", second.Header.Get("RateLimit-Reset"))
		}
		// Accounting tokens are not limited (TSWGATE_RATE_ACCOUNTING=0).
		a := g.MustCreateToken(t, testProject, "accounting", "unlimited")
		for range 3 {
			r := g.MustCall(t, "GET", "/v2/Invoice", a.Token, nil)
			MustBeProxied(t, r)
			if r.Header.Get("RateLimit-Limit") != "" {
				t.Errorf("unlimited token got RateLimit-Limit %q", r.Header.Get("RateLimit-Limit"))
			}
		}
	})

	t.Run("auth_rate_limited", func(t *testing.T) {
		// One failure allowed per address: the second attempt is refused
		// before its credential is read (e2e_ratelimit_test.go has more).
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL, "TSWGATE_AUTH_FAILURE_RATE=0.01", "TSWGATE_AUTH_FAILURE_BURST=1")
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", "tsw_nope", nil), auth.CodeMalformedToken)
		before := up.Hits()
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", "tsw_nope", nil), auth.CodeAuthRateLimited)
		covered[auth.CodeAuthRateLimited] = true
		if up.Hits() != before {
			t.Error("the upstream received a request refused as auth_rate_limited")
		}
	})

	t.Run("invalid_framing", func(t *testing.T) {
		// Transfer-Encoding with Content-Length (e2e_security_test.go has
		// HTTP/1.0 too, against the built binary), in every HTTP/1 minor
		// version net/http serves.
		// A field whose value ends like a request line hides neither.
		for _, tc := range []struct{ version, between string }{
			{"HTTP/1.1", ""}, {"HTTP/1.2", ""}, {"HTTP/1.9", ""}, {"HTTP/1.1", "X-Via: gw HTTP/1.1\r\n"},
		} {
			version := strings.TrimSpace(tc.version + " " + strings.TrimSpace(tc.between))
			before := up.Hits()
			c, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "POST /v2/SshKey %s\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
				"Content-Length: 5\r\n%sTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", tc.version, owner.Token, tc.between)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Tsw-Error-Code") != "invalid_framing" || !resp.Close {
				t.Errorf("%s: got %d %q (close %v), want 400 invalid_framing and the connection closed",
					version, resp.StatusCode, resp.Header.Get("X-Tsw-Error-Code"), resp.Close)
			}
			if up.Hits() != before {
				t.Errorf("%s: the upstream received a request refused as invalid_framing", version)
			}
		}
		covered[auth.CodeInvalidFraming] = true
	})

	t.Run("credential_misplaced", func(t *testing.T) {
		// e2e_credleak_test.go has the other places, against the built binary.
		refused(t, get(t, "/v2/Instance?token="+owner.Token, "Bearer "+owner.Token), auth.CodeCredentialMisplaced)
	})

	t.Run("invalid_header", func(t *testing.T) {
		// e2e_security_test.go has trailers too, against the built binary.
		before := up.Hits()
		req := MustNewRequest(t, "GET", g.URL+"/v2/Invoice", owner.Token, nil)
		req.Header.Set("Connection", "X-Tsw-Project-Id")
		MustBeRefused(t, MustDo(t, g.HTTP, req), auth.CodeInvalidHeader)
		covered[auth.CodeInvalidHeader] = true
		if up.Hits() != before {
			t.Error("the upstream received a request refused as invalid_header")
		}
	})

	for _, c := range auth.Codes() {
		// Nobody can see a store outage here or a client's 499:
		// resilience_test.go and the proxy's tests have them.
		if c != auth.CodeStoreUnavailable && c != auth.CodeClientClosed && !covered[c] {
			t.Errorf("refusal code %s is not covered", c)
		}
	}
}

// TestE2ERoleMatrix calls every operation of the spec under /v2 and /v1
// (lower-cased) with an owner and an accounting token, in front of the
// stand-in API.
func TestE2ERoleMatrix(t *testing.T) {
	standin := httptest.NewServer(teraswitch.NewStandin())
	t.Cleanup(standin.Close)
	g := MustStartGateway(t, standin.URL)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")

	ops, err := teraswitch.Operations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	param := regexp.MustCompile(`\{[^}/]+\}`)
	billing := func(path string) bool {
		seg := strings.Split(path, "/")[2]
		return strings.EqualFold(seg, "Invoice") || strings.EqualFold(seg, "Usage")
	}
	tested := map[string]bool{}
	call := func(t *testing.T, method, path, cred string, op teraswitch.Operation) *response {
		t.Helper()
		target := g.URL + path
		for _, q := range op.Query {
			if strings.EqualFold(q, "projectId") {
				target += "?" + q + "=42"
				break
			}
		}
		var body []byte
		if op.HasBody && method != "HEAD" {
			body = []byte(`{"projectId":42}`)
		}
		req := MustNewRequest(t, method, target, cred, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return MustDo(t, g.HTTP, req)
	}
	for _, op := range ops {
		filled := param.ReplaceAllString(op.Path, "1")
		tested[op.Method+" "+op.Path] = true
		for _, path := range []string{filled, "/v1" + strings.ToLower(strings.TrimPrefix(filled, "/v2"))} {
			methods := []string{op.Method}
			if op.Method == "GET" {
				methods = append(methods, "HEAD")
			}
			for _, method := range methods {
				t.Run(method+" "+path, func(t *testing.T) {
					wantRoute := op.Method + " " + op.Path
					r := call(t, method, path, owner.Token, op)
					MustBeProxied(t, r)
					if got := r.Header.Get(teraswitch.RouteHeader); got != wantRoute {
						t.Errorf("owner: %s = %q, want %q", teraswitch.RouteHeader, got, wantRoute)
					}
					r = call(t, method, path, acct.Token, op)
					if billing(op.Path) && op.Method == "GET" {
						MustBeProxied(t, r)
						if got := r.Header.Get(teraswitch.RouteHeader); got != wantRoute {
							t.Errorf("accounting: %s = %q, want %q", teraswitch.RouteHeader, got, wantRoute)
						}
					} else {
						MustBeRefused(t, r, auth.CodePermissionDenied)
					}
				})
			}
		}
	}
	if len(tested) != len(ops) {
		t.Errorf("tested %d distinct (method, path) pairs, the spec has %d operations", len(tested), len(ops))
	}
	if n := len(auth.DefaultRoutes().Routes()); n != len(ops) {
		t.Errorf("the route table has %d routes, the spec %d operations", n, len(ops))
	}
}

// TestE2EProjectScope checks project scoping of queries and bodies through
// the gateway, and that bodies reach the upstream intact.
func TestE2EProjectScope(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_MAX_BODY_SCAN=1024")
	owner := g.MustCreateToken(t, testProject, "owner", "owner")

	for _, tc := range []struct {
		query string
		want  auth.Code
	}{
		{"ProjectId=42", auth.OK},
		{"projectid=42&PROJECTID=7", auth.CodeProjectMismatch},
		{"ProjectId=42&ProjectId=42", auth.OK},
		{"Project%49d=7", auth.CodeProjectMismatch},
		{"Project%49d=42", auth.OK},
		{"projectId=42&projectId=", auth.CodeProjectMismatch},
		{"ProjectId=042", auth.CodeProjectMismatch},
		{"Limit=5&Skip=0", auth.OK},
		{"ProjectId=42;ProjectId=7", auth.CodeProjectMismatch}, // the value is "42;ProjectId=7"
		{"Tag=a;b&ProjectId=42", auth.OK},                      // ";" is data, as for the API
		{"Tag=a;ProjectId=7&ProjectId=42", auth.OK},
		{"filter.projectId=7", auth.CodeProjectMismatch},
		{"x[ProjectId]=7", auth.CodeProjectMismatch},
		{"ProjectId=4%32", auth.OK},
		{"ProjectId=+42", auth.CodeProjectMismatch},
		{"ProjectId", auth.CodeProjectMismatch},
		{"Project%C4%B1d=7", auth.CodeProjectMismatch},
		{"Tag=%zz&ProjectId=42", auth.CodeInvalidQuery},
		{"Project%u0049d=7", auth.CodeInvalidQuery},
	} {
		t.Run("query "+tc.query, func(t *testing.T) {
			before := up.Hits()
			r := g.MustCall(t, "GET", "/v2/Instance?"+tc.query, owner.Token, nil)
			if tc.want == auth.OK {
				MustBeProxied(t, r)
				if got := up.MustLast(t).RequestURI; got != "/v2/Instance?"+tc.query {
					t.Errorf("upstream request URI = %q, want the query unchanged", got)
				}
				return
			}
			MustBeRefused(t, r, tc.want)
			if up.Hits() != before {
				t.Error("the upstream received a refused request")
			}
		})
	}

	post := func(t *testing.T, contentType string, body []byte) *response {
		t.Helper()
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, body)
		req.Header.Set("Content-Type", contentType)
		return MustDo(t, g.HTTP, req)
	}
	t.Run("body other project", func(t *testing.T) {
		before := up.Hits()
		MustBeRefused(t, post(t, "application/json", []byte(`{"projectId":7}`)), auth.CodeProjectMismatch)
		MustBeRefused(t, post(t, "application/json", []byte(`{"ProjectId":42,"PROJECTID":7}`)), auth.CodeProjectMismatch)
		MustBeRefused(t, post(t, "application/json", []byte(`{"projectId":42.0}`)), auth.CodeProjectMismatch)
		// At any depth (seen on main: only top-level keys were read).
		MustBeRefused(t, post(t, "application/json", []byte(`{"projectId":42,"service":{"projectId":7}}`)), auth.CodeProjectMismatch)
		MustBeRefused(t, post(t, "application/json", []byte(`[{"a":[{"Project\u0131d":"7"}]}]`)), auth.CodeProjectMismatch)
		MustBeRefused(t, post(t, "application/json-patch+json", []byte(`[{"op":"replace","path":"/projectId","value":7}]`)), auth.CodeProjectMismatch)
		// Not JSON, or JSON the API would not read as the gateway does.
		MustBeRefused(t, post(t, "text/plain", []byte(` {"projectId":"7"}`)), auth.CodeUnsupportedMediaType)
		MustBeRefused(t, post(t, "application/x-www-form-urlencoded", []byte(`name=x&projectId=7`)), auth.CodeUnsupportedMediaType)
		MustBeRefused(t, post(t, "multipart/form-data; boundary=x", []byte("--x--\r\n")), auth.CodeUnsupportedMediaType)
		MustBeRefused(t, post(t, "application/json", []byte(`/**/{"projectId":7}`)), auth.CodeInvalidBody)
		// Chunked (unknown length) bodies are checked too.
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, nil)
		req.Body = io.NopCloser(strings.NewReader(`{"projectId":7}`))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		MustBeRefused(t, MustDo(t, g.HTTP, req), auth.CodeProjectMismatch)
		// A body beyond TSWGATE_MAX_BODY_SCAN cannot be checked whole.
		MustBeRefused(t, post(t, "application/json", largeJSONBody(2048)), auth.CodeBodyTooLarge)
		if up.Hits() != before {
			t.Error("the upstream received a refused request")
		}
	})
	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"own project JSON", "application/json", []byte("{\"ProjectId\":42,\"name\":\"web-1\",\"tags\":[\"a\",\"b\"],\n \"nested\":{\"projectId\":42}}\n")},
		{"own project as string", "application/json; charset=utf-8", []byte(`{"projectId":"42","x":"\u00e9"}`)},
		{"JSON Patch", "application/json-patch+json", []byte(`[{"op":"replace","path":"/displayName","value":"projectId"}]`)},
		{"text/json", "Text/JSON; Charset=\"UTF-8\"", []byte("\xef\xbb\xbf{\"a\":[1,2]}")},
		{"up to the scan limit", "application/json", largeJSONBody(1024)},
	} {
		t.Run("body "+tc.name, func(t *testing.T) {
			MustBeProxied(t, post(t, tc.contentType, tc.body))
			got := up.MustLast(t)
			if !bytes.Equal(got.Body, tc.body) {
				t.Fatalf("the upstream received %d bytes, not the %d sent byte-for-byte", len(got.Body), len(tc.body))
			}
			if got.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("upstream Content-Type = %q, want %q", got.Header.Get("Content-Type"), tc.contentType)
			}
		})
	}
	t.Run("body JSON chunked", func(t *testing.T) {
		body := largeJSONBody(1000)
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, nil)
		req.Body = io.NopCloser(bytes.NewReader(body)) // unknown length: chunked
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		MustBeProxied(t, MustDo(t, g.HTTP, req))
		if got := up.MustLast(t).Body; !bytes.Equal(got, body) {
			t.Fatalf("the upstream received %d bytes, not the %d sent byte-for-byte", len(got), len(body))
		}
	})
	t.Run("empty bodies are no bodies", func(t *testing.T) {
		// Chunked, zero bytes, on a route that takes no body; and an
		// empty body with headers that would refuse a real one.
		req := MustNewRequest(t, "POST", g.URL+"/v2/Metal/7/PowerCommand?command=PowerOn", owner.Token, nil)
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("")), -1
		req.Header.Set("Content-Type", "text/plain")
		MustBeProxied(t, MustDo(t, g.HTTP, req))
		req = MustNewRequest(t, "GET", g.URL+"/v2/Instance", owner.Token, []byte{})
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Content-Encoding", "gzip")
		MustBeProxied(t, MustDo(t, g.HTTP, req))
	})
}

// TestE2ESDKRequests sends requests as TeraSwitch's Go SDK (gotsw) builds
// them: bodies from encoding/json (HTML escaping off, a trailing newline)
// with Content-Type application/json, no body and no Content-Type where a
// call has none, query parameters from url.Values.Encode. All must reach
// the upstream unchanged.
func TestE2ESDKRequests(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	// sdk mirrors gotsw's Client.Request.
	sdk := func(t *testing.T, method, path string, body any, query ...string) {
		t.Helper()
		u := g.URL + "/v2/" + path
		if len(query) > 0 {
			q := url.Values{}
			for i := 0; i+1 < len(query); i += 2 {
				q.Add(query[i], query[i+1])
			}
			u += "?" + q.Encode()
		}
		var sent []byte
		var rd io.Reader
		if body != nil {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(body); err != nil {
				t.Fatal(err)
			}
			sent = buf.Bytes()
			rd = &buf
		}
		req, err := http.NewRequest(method, u, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", "gotsw/v2")
		req.Header.Set("Authorization", "Bearer "+owner.Token)
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		MustBeProxied(t, MustDo(t, g.HTTP, req))
		got := up.MustLast(t)
		if want := strings.TrimPrefix(u, g.URL); got.RequestURI != want {
			t.Errorf("upstream request URI %q, want %q", got.RequestURI, want)
		}
		if !bytes.Equal(got.Body, sent) {
			t.Errorf("upstream body %q, want %q", got.Body, sent)
		}
	}
	type partition struct {
		Name      string `json:"name"`
		Device    string `json:"device"`
		SizeBytes *int64 `json:"sizeBytes,omitempty"`
	}
	size := int64(1 << 30)
	t.Run("ListMetal", func(t *testing.T) {
		sdk(t, "GET", "Metal", nil, "Skip", "10", "Limit", "5", "Status", "Active", "Tag", "web&db", "ProjectId", "42")
	})
	t.Run("GetMetalAvailability", func(t *testing.T) {
		sdk(t, "GET", "Metal/Availability", nil, "ProjectId", "42", "Region", "PIT1")
	})
	t.Run("CreateMetalService", func(t *testing.T) {
		sdk(t, "POST", "Metal", map[string]any{
			"displayName": "web-1 <prod>", "regionId": "PIT1", "tierId": "c1", "memoryGb": 64,
			"imageId": "ubuntu-24.04", "tags": []string{"a"}, "sshKeyIds": []int{1, 2},
			"disks": map[string]string{"nvme0n1": "960g"}, "ipxeUrl": nil, "userData": "#cloud-config\n",
			"reservePricing": false, "partitions": []partition{{Name: "/", Device: "md0", SizeBytes: &size}},
		}, "projectId", "42")
	})
	t.Run("CreateSshKey", func(t *testing.T) {
		sdk(t, "POST", "SshKey", struct {
			DisplayName string `json:"displayName"`
			ProjectID   int64  `json:"projectId"`
			Key         string `json:"key"`
		}{"laptop", 42, "ssh-ed25519 AAAAC3Nza me@host"})
	})
	t.Run("RenameMetalService", func(t *testing.T) {
		sdk(t, "POST", "Metal/7/rename", map[string]string{"name": "web-2"})
	})
	t.Run("ReinstallMetalService", func(t *testing.T) {
		sdk(t, "POST", "Metal/7/Reinstall", map[string]any{"imageId": "debian-12", "sshKeyIds": []int64{3}})
	})
	t.Run("SendPowerCommand", func(t *testing.T) {
		sdk(t, "POST", "Metal/7/PowerCommand", nil, "command", "PowerOff")
	})
	t.Run("GetMetalLogs", func(t *testing.T) {
		sdk(t, "GET", "Metal/7/Logs", nil)
	})
	t.Run("older SDK: empty body with Content-Type on a POST", func(t *testing.T) {
		// gotsw's first NewRequest sent every non-GET with a body, empty
		// when the call had none, and Content-Type application/json.
		req := MustNewRequest(t, "POST", g.URL+"/v2/Metal/7/PowerCommand?command=PowerOn", owner.Token, []byte{})
		req.Header.Set("Content-Type", "application/json")
		MustBeProxied(t, MustDo(t, g.HTTP, req))
	})
}

// largeJSONBody is a JSON object of n bytes (n >= 40) naming project 42,
// with random printable padding.
func largeJSONBody(n int) []byte {
	const head, tail = `{"projectId":42,"pad":"`, `"}`
	r := rand.New(rand.NewPCG(1, 2))
	b := []byte(head)
	for len(b) < n-len(tail) {
		b = append(b, "abcdefghijklmnopqrstuvwxyz0123456789 -_.:"[r.IntN(41)])
	}
	return append(b, tail...)
}

// TestE2EUpstreamHeaders checks what the upstream receives.
func TestE2EUpstreamHeaders(t *testing.T) {
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "upstream-says-otherwise")
		_, _ = io.WriteString(w, `{"success":true,"message":""}`)
	}))
	g := MustStartGateway(t, up.URL)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")

	t.Run("identity", func(t *testing.T) {
		r := g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil)
		MustBeProxied(t, r)
		got := up.MustLast(t)
		MustHeader(t, got.Header, proxy.HeaderProjectID, "42")
		MustHeader(t, got.Header, proxy.HeaderTokenID, owner.ID)
		MustHeader(t, got.Header, proxy.HeaderTokenRole, "owner")
		if v, ok := got.Header["Authorization"]; ok {
			t.Errorf("the upstream received Authorization %q; it must be dropped by default", v)
		}
		if got.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got.Header.Get("X-Forwarded-For"))
		}
		if got.Header.Get("X-Forwarded-Host") != g.Addr("public") || got.Header.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("X-Forwarded-Host/Proto = %q/%q", got.Header.Get("X-Forwarded-Host"), got.Header.Get("X-Forwarded-Proto"))
		}
		if got.RequestURI != "/v2/Instance?ProjectId=42" {
			t.Errorf("upstream RequestURI = %q", got.RequestURI)
		}
	})
	t.Run("client identity headers replaced", func(t *testing.T) {
		req := MustNewRequest(t, "GET", g.URL+"/v2/Invoice", acct.Token, nil)
		req.Header.Set("X-Tsw-Project-Id", "7")
		req.Header.Set("X-Tsw-Token-Role", "owner")
		req.Header["x-tsw-token-id"] = []string{owner.ID}
		req.Header["X-TSW-EXTRA"] = []string{"spoof"}
		MustBeProxied(t, MustDo(t, g.HTTP, req))
		got := up.MustLast(t)
		MustHeader(t, got.Header, proxy.HeaderProjectID, "42")
		MustHeader(t, got.Header, proxy.HeaderTokenID, acct.ID)
		MustHeader(t, got.Header, proxy.HeaderTokenRole, "accounting")
		for k, v := range got.Header {
			norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			ours := k == proxy.HeaderProjectID || k == proxy.HeaderTokenID || k == proxy.HeaderTokenRole || k == proxy.HeaderAssertion
			if strings.HasPrefix(norm, "x-tsw-") && !ours {
				t.Errorf("the upstream received client header %s: %q", k, v)
			}
		}
	})
	t.Run("client forwarding headers dropped", func(t *testing.T) {
		req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", owner.Token, nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		MustBeProxied(t, MustDo(t, g.HTTP, req))
		got := up.MustLast(t)
		MustHeader(t, got.Header, "X-Forwarded-For", "127.0.0.1")
		MustHeader(t, got.Header, "X-Forwarded-Host", g.Addr("public"))
		MustHeader(t, got.Header, "X-Forwarded-Proto", "http")
		if v := got.Header.Values("Forwarded"); len(v) != 0 {
			t.Errorf("upstream Forwarded = %q, want it dropped", v)
		}
	})
	t.Run("request id kept", func(t *testing.T) {
		req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", owner.Token, nil)
		req.Header.Set("X-Request-Id", "client-req-123")
		r := MustDo(t, g.HTTP, req)
		MustBeProxied(t, r)
		if got := up.MustLast(t).Header.Get("X-Request-Id"); got != "client-req-123" {
			t.Errorf("upstream X-Request-Id = %q, want client-req-123", got)
		}
		if got := r.Header.Get("X-Request-Id"); got != "client-req-123" {
			t.Errorf("response X-Request-Id = %q, want client-req-123", got)
		}
	})
	t.Run("request id generated", func(t *testing.T) {
		var ids []string
		for range 2 {
			r := g.MustCall(t, "GET", "/v2/Instance", owner.Token, nil)
			MustBeProxied(t, r)
			upID := up.MustLast(t).Header.Get("X-Request-Id")
			if upID == "" || upID == "upstream-says-otherwise" {
				t.Fatalf("upstream X-Request-Id = %q, want a generated one", upID)
			}
			if got := r.Header.Get("X-Request-Id"); got != upID {
				t.Errorf("response X-Request-Id = %q, the upstream saw %q", got, upID)
			}
			ids = append(ids, upID)
		}
		if ids[0] == ids[1] {
			t.Errorf("two requests got the same generated id %q", ids[0])
		}
	})
	t.Run("insane request id replaced", func(t *testing.T) {
		req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", owner.Token, nil)
		req.Header.Set("X-Request-Id", strings.Repeat("a", 200))
		r := MustDo(t, g.HTTP, req)
		MustBeProxied(t, r)
		if got := up.MustLast(t).Header.Get("X-Request-Id"); got == "" || len(got) > 128 {
			t.Errorf("upstream X-Request-Id = %q, want a generated one", got)
		}
	})
	t.Run("pass authorization", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL, "TSWGATE_PASS_AUTHORIZATION=true")
		tok := g.MustCreateToken(t, testProject, "owner", "owner")
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
		got := up.MustLast(t)
		MustHeader(t, got.Header, "Authorization", "Bearer "+tok.Token)
		MustHeader(t, got.Header, proxy.HeaderTokenID, tok.ID)
	})
}

func MustHeader(t *testing.T, h http.Header, key, want string) {
	t.Helper()
	if got := h.Values(key); len(got) != 1 || got[0] != want {
		t.Errorf("upstream %s = %q, want exactly [%q]", key, got, want)
	}
}

// TestE2EUpstreamFailures checks the answers when the upstream fails.
func TestE2EUpstreamFailures(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		g := MustStartGateway(t, deadURL)
		tok := g.MustCreateToken(t, testProject, "owner", "owner")
		r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		if r.Status != http.StatusBadGateway {
			t.Fatalf("want 502, got %s", r)
		}
		if _, code := MustEnvelope(t, r); code != "upstream_error" {
			t.Errorf("code = %q, want upstream_error", code)
		}
		if r.Header.Get("X-Request-Id") == "" {
			t.Error("502 lacks X-Request-Id")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		reached := make(chan struct{}, 1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case reached <- struct{}{}:
			default:
			}
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(up.Close)
		t.Cleanup(func() { close(block) }) // runs before up.Close
		g := MustStartGateway(t, up.URL, "TSWGATE_UPSTREAM_TIMEOUT=200ms")
		tok := g.MustCreateToken(t, testProject, "owner", "owner")
		start := time.Now()
		r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		took := time.Since(start)
		if r.Status != http.StatusGatewayTimeout {
			t.Fatalf("want 504, got %s", r)
		}
		if _, code := MustEnvelope(t, r); code != "upstream_timeout" {
			t.Errorf("code = %q, want upstream_timeout", code)
		}
		select {
		case <-reached:
		default:
			t.Error("the upstream was never reached")
		}
		if took < 200*time.Millisecond || took > 5*time.Second {
			t.Errorf("504 after %v, want about the 200ms timeout", took)
		}
	})
}

// TestE2EAdminAPI checks the token API on the admin listener.
func TestE2EAdminAPI(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	ctx := context.Background()
	tok := g.MustCreateToken(t, testProject, "owner", "ci-deploy")
	other := g.MustCreateToken(t, testProject, "accounting", "books")

	t.Run("admin key", func(t *testing.T) {
		r := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens?project_id=42", "", nil))
		if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("no admin key: want 401 with a challenge, got %s", r)
		}
		r = MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens?project_id=42", "wrong-key-0123456789abcdefghijklmnop", nil))
		if r.Status != http.StatusUnauthorized {
			t.Errorf("wrong admin key: want 401, got %s", r)
		}
		// An Owner token manages its own project here too; an Accounting
		// token manages nothing.
		r = MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens?project_id=42", tok.Token, nil))
		if r.Status != http.StatusOK {
			t.Errorf("Owner token on the admin listener, own project: want 200, got %s", r)
		}
		r = MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens?project_id=42", other.Token, nil))
		if r.Status != http.StatusForbidden || r.Header.Get("X-Tsw-Error-Code") != "role_forbidden" {
			t.Errorf("Accounting token on the admin listener: want 403 role_forbidden, got %s", r)
		}
		bad := &tokenapi.Client{BaseURL: g.AdminURL, AdminKey: "nope", HTTP: g.HTTP}
		_, err := bad.List(ctx, testProject)
		var ae *tokenapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("client with a wrong key: err = %v, want APIError 401", err)
		}
	})
	t.Run("create bad input", func(t *testing.T) {
		_, err := g.Admin.Create(ctx, tokenapi.CreateRequest{ProjectID: 0, Role: "admin", Name: ""})
		var ae *tokenapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Fatalf("err = %v, want APIError 400", err)
		}
		if len(ae.Errors) != 3 {
			t.Fatalf("problems = %q, want three (project_id, role, name)", ae.Errors)
		}
		for i, prefix := range []string{"project_id:", "role:", "name:"} {
			if !strings.HasPrefix(ae.Errors[i], prefix) {
				t.Errorf("problem %d = %q, want it to start with %q", i, ae.Errors[i], prefix)
			}
		}
		if !strings.Contains(ae.Errors[1], `"admin"`) {
			t.Errorf("role problem %q does not name the bad role", ae.Errors[1])
		}
	})
	t.Run("list", func(t *testing.T) {
		r := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens?project_id=42", g.AdminKey(), nil))
		if r.Status != http.StatusOK {
			t.Fatalf("list: %s", r)
		}
		MustNotLeak(t, "the list", string(r.Body), g, tok.Token, other.Token)
		var resp struct {
			Tokens []map[string]any `json:"tokens"`
		}
		if err := json.Unmarshal(r.Body, &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Tokens) != 2 {
			t.Fatalf("listed %d tokens, want 2: %s", len(resp.Tokens), r.Body)
		}
		for _, m := range resp.Tokens {
			id, _ := m["id"].(string)
			disp, _ := m["display_id"].(string)
			if !strings.HasSuffix(disp, "…") || disp != id[:8]+"…" {
				t.Errorf("display_id = %q for id %q, want the partial id ending in …", disp, id)
			}
			for k := range m {
				if k == "token" || strings.Contains(k, "hash") || strings.Contains(k, "secret") || strings.Contains(k, "pepper") {
					t.Errorf("listed token has field %q", k)
				}
			}
		}
	})
	t.Run("show", func(t *testing.T) {
		got, err := g.Admin.Get(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != tok.ID || got.Name != "ci-deploy" || got.Role != "owner" || got.Status != "active" ||
			got.ProjectID != testProject || got.Token != "" || got.DisplayID != auth.DisplayID(tok.ID) {
			t.Errorf("show = %+v", got)
		}
		r := MustDo(t, g.HTTP, MustNewRequest(t, "GET", g.AdminURL+"/v1/tokens/"+tok.ID, g.AdminKey(), nil))
		MustNotLeak(t, "show", string(r.Body), g, tok.Token)
	})
	t.Run("revoke unknown", func(t *testing.T) {
		_, err := g.Admin.Revoke(ctx, "tsw_"+MustRandomBase62(t, 20))
		var ae *tokenapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != "token_not_found" {
			t.Errorf("revoking an unknown id: err = %v, want APIError 404 token_not_found", err)
		}
		_, err = g.Admin.Revoke(ctx, "not-an-id")
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("revoking a malformed id: err = %v, want APIError 400", err)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		got, err := g.Admin.Revoke(ctx, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "revoked" || got.RevokedAt == nil || got.Token != "" {
			t.Errorf("revoke = %+v", got)
		}
		list, err := g.Admin.List(ctx, testProject)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != tok.ID {
			t.Errorf("after revoking, list = %+v, want only %s", list, tok.ID)
		}
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Invoice", other.Token, nil), auth.CodeTokenRevoked)
	})
}

// mustNotLeak checks that text holds none of the credentials, their secret
// parts, or their stored hashes.
func MustNotLeak(t testing.TB, where, text string, g *testGateway, creds ...string) {
	t.Helper()
	for _, c := range creds {
		if strings.Contains(text, c) {
			t.Errorf("%s contains a whole credential", where)
		}
		if s := secretOf(c); strings.Contains(text, s) || strings.Contains(text, s[:len(auth.SecretPrefix)+12]) {
			t.Errorf("%s contains a credential's secret", where)
		}
		if g != nil {
			h, _ := g.Hasher().Hash(c)
			if strings.Contains(text, hex.EncodeToString(h[:])) || strings.Contains(text, base64.StdEncoding.EncodeToString(h[:])) {
				t.Errorf("%s contains a stored secret hash", where)
			}
		}
	}
}

// TestE2ESecretHygiene runs good and bad calls with debug logging and
// checks that no credential shows in the logs, refusals or metrics.
func TestE2ESecretHygiene(t *testing.T) {
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/fail") {
			// Drop the connection: the gateway answers 502.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_, _ = io.WriteString(w, `{"success":true,"message":""}`)
	}))
	logs := newSyncBuffer()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, Logger: logger, Env: []string{"TSWGATE_LOG_LEVEL=debug"}})
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	acct := g.MustCreateToken(t, testProject, "accounting", "acct")
	revoked := g.MustCreateToken(t, testProject, "owner", "gone")
	_, inactive := g.MustCreateRecord(t, func(tok *auth.Token) { tok.Status = auth.StatusInactive })
	_, neverStored, _ := auth.NewCredential()
	forged := MustForgeCredential(t, owner.ID)
	mangled := MustChangeSecretChar(t, owner.Token)
	if _, err := g.Admin.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	creds := []string{owner.Token, acct.Token, revoked.Token, inactive, neverStored, forged, mangled}

	var bodies strings.Builder
	call := func(method, path, cred string, body []byte, want int) {
		t.Helper()
		req := MustNewRequest(t, method, g.URL+path, cred, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		r := MustDo(t, g.HTTP, req)
		if r.Status != want {
			t.Errorf("%s %s: want %d, got %s", method, path, want, r)
		}
		bodies.Write(r.Body)
		for k, vs := range r.Header {
			bodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
	}
	call("GET", "/v2/Instance?ProjectId=42", owner.Token, nil, 200)
	call("GET", "/v2/Invoice", acct.Token, nil, 200)
	call("GET", "/v2/Instance", acct.Token, nil, 403)
	call("GET", "/v2/Instance?ProjectId=7", owner.Token, nil, 403)
	call("POST", "/v2/Instance", owner.Token, []byte(`{"projectId":7}`), 403)
	call("POST", "/v2/Instance", owner.Token, []byte(`{not json`), 400)
	call("GET", "/v2/Instance", revoked.Token, nil, 401)
	call("GET", "/v2/Instance", inactive, nil, 401)
	call("GET", "/v2/Instance", neverStored, nil, 401)
	call("GET", "/v2/Instance", forged, nil, 401)
	call("GET", "/v2/Instance", mangled, nil, 401)
	call("GET", "/v2/Instance", "tsw_"+owner.Token, nil, 401)
	call("GET", "/v2/Nope", owner.Token, nil, 404)
	call("GET", "/v2/Instance/fail", owner.Token, nil, 502)
	r := MustRawRequest(t, g.Addr("public"), "GET /v2//Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+
		owner.Token+"\r\nConnection: close\r\n\r\n")
	bodies.Write(r.Body)
	metrics := g.MustGet(t, g.MetricsURL+"/metrics")
	if metrics.Status != 200 {
		t.Fatalf("/metrics: %s", metrics)
	}

	log := logs.String()
	if !strings.Contains(log, "upstream request failed") || !strings.Contains(log, "tswgate started") {
		t.Fatalf("the log capture missed expected lines:\n%s", log)
	}
	MustNotLeak(t, "the gateway log", log, g, creds...)
	MustNotLeak(t, "the refusal bodies and headers", bodies.String(), g, creds...)
	MustNotLeak(t, "/metrics", string(metrics.Body), g, creds...)
	if re := regexp.MustCompile(auth.CredentialPattern); re.MatchString(log + bodies.String() + string(metrics.Body)) {
		t.Errorf("CredentialPattern matches the output: %q", re.FindString(log+bodies.String()+string(metrics.Body)))
	}
	// No per-token series.
	for _, id := range []string{owner.ID, acct.ID, revoked.ID} {
		if strings.Contains(string(metrics.Body), id) {
			t.Errorf("/metrics names token %s", id)
		}
	}
	// The admin key is a secret too.
	if strings.Contains(log, g.AdminKey()) || strings.Contains(string(metrics.Body), g.AdminKey()) {
		t.Error("the admin key shows in the log or the metrics")
	}
}

// TestE2EHealth checks the metrics listener of an embedded-store gateway.
func TestE2EHealth(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	MustBeHealthy(t, g)
}

// MustBeHealthy checks /readyz, /healthz and, after some traffic, /metrics.
func MustBeHealthy(t *testing.T, g *testGateway) {
	t.Helper()
	r := g.MustGet(t, g.MetricsURL+"/readyz")
	var rep struct {
		Ready  bool                       `json:"ready"`
		Status string                     `json:"status"`
		Checks map[string]json.RawMessage `json:"checks"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &rep) != nil || !rep.Ready {
		t.Fatalf("/readyz: want 200 and ready true, got %s", r)
	}
	if rep.Status != "ok" {
		t.Errorf("/readyz status = %q, want ok: %s", rep.Status, r.Body)
	}
	if r := g.MustGet(t, g.MetricsURL+"/healthz"); r.Status != http.StatusOK {
		t.Fatalf("/healthz: %s", r)
	}
	tok := g.MustCreateToken(t, testProject, "owner", "health")
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", "", nil), auth.CodeMissingToken)
	m := g.MustGet(t, g.MetricsURL+"/metrics")
	if m.Status != http.StatusOK {
		t.Fatalf("/metrics: %s", m)
	}
	for _, name := range []string{"tswgate_requests_total", "tswgate_refusals_total"} {
		if !regexp.MustCompile(`(?m)^` + name + `\{[^}]*\} [1-9]`).Match(m.Body) {
			t.Errorf("/metrics has no positive %s sample:\n%s", name, grepLines(string(m.Body), "tswgate_"))
		}
	}
	if !strings.Contains(string(m.Body), `tswgate_refusals_total{reason="missing_token"} 1`) {
		t.Errorf("/metrics does not count the missing_token refusal:\n%s", grepLines(string(m.Body), "tswgate_refusals"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EConcurrentIdentity sends many concurrent requests with tokens of
// several projects and roles, and checks that each is proxied with its own
// identity and body, or refused for its own reason (per-request state is
// pooled in the proxy).
func TestE2EConcurrentIdentity(t *testing.T) {
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := w.Header()
		h.Set("Echo-Project", r.Header.Get(proxy.HeaderProjectID))
		h.Set("Echo-Token", r.Header.Get(proxy.HeaderTokenID))
		h.Set("Echo-Role", r.Header.Get(proxy.HeaderTokenRole))
		h.Set("Echo-Request-Id", r.Header.Get("X-Request-Id"))
		_, _ = w.Write(body)
	}))
	g := MustStartGateway(t, up.URL, "TSWGATE_MAX_BODY_SCAN=2048")
	type tokenOf struct {
		tok     tokenapi.Token
		project int64
	}
	var toks []tokenOf
	for p := int64(1); p <= 4; p++ {
		for _, role := range []string{"owner", "accounting"} {
			toks = append(toks, tokenOf{g.MustCreateToken(t, p, role, fmt.Sprintf("%s-%d", role, p)), p})
		}
	}
	var proxied atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 40 {
				tk := toks[rng.IntN(len(toks))]
				reqID := fmt.Sprintf("w%d-r%d", w, i)
				var (
					method, path string
					body         []byte
					wantCode     auth.Code
				)
				switch kind := rng.IntN(4); {
				case tk.tok.Role == "owner" && kind < 3:
					method, path = "POST", "/v2/Instance"
					body = fmt.Appendf(nil, `{"projectId":%d,"n":%q,"pad":%q}`, tk.project, reqID, strings.Repeat("p", rng.IntN(1800)))
				case tk.tok.Role == "owner":
					method, path, wantCode = "GET", "/v2/Instance?ProjectId=999", auth.CodeProjectMismatch
				case kind < 3:
					method, path = "GET", fmt.Sprintf("/v2/Invoice?ProjectId=%d", tk.project)
				default:
					method, path, wantCode = "GET", "/v2/Instance", auth.CodePermissionDenied
				}
				var rd io.Reader
				if body != nil {
					rd = bytes.NewReader(body)
				}
				req, _ := http.NewRequest(method, g.URL+path, rd)
				req.Header.Set("Authorization", "Bearer "+tk.tok.Token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Request-Id", reqID)
				resp, err := g.HTTP.Do(req)
				if err != nil {
					t.Errorf("%s: %v", reqID, err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Header.Get("X-Request-Id") != reqID {
					t.Errorf("%s: response X-Request-Id %q", reqID, resp.Header.Get("X-Request-Id"))
				}
				if wantCode != auth.OK {
					if resp.StatusCode != proxy.Status(wantCode) || resp.Header.Get(proxy.HeaderErrorCode) != wantCode.String() {
						t.Errorf("%s: want %s, got %d %s", reqID, wantCode, resp.StatusCode, got)
					}
					continue
				}
				proxied.Add(1)
				if resp.StatusCode != 200 {
					t.Errorf("%s: want 200, got %d %s", reqID, resp.StatusCode, got)
					continue
				}
				if resp.Header.Get("Echo-Project") != strconv.FormatInt(tk.project, 10) ||
					resp.Header.Get("Echo-Token") != tk.tok.ID || resp.Header.Get("Echo-Role") != tk.tok.Role ||
					resp.Header.Get("Echo-Request-Id") != reqID {
					t.Errorf("%s: the upstream saw project %q token %q role %q request %q; sent with %s (%s, project %d)",
						reqID, resp.Header.Get("Echo-Project"), resp.Header.Get("Echo-Token"), resp.Header.Get("Echo-Role"),
						resp.Header.Get("Echo-Request-Id"), tk.tok.ID, tk.tok.Role, tk.project)
				}
				if body != nil && !bytes.Equal(got, body) {
					t.Errorf("%s: the upstream received another body (%d bytes, sent %d)", reqID, len(got), len(body))
				}
			}
		})
	}
	wg.Wait()
	if up.Hits() != proxied.Load() {
		t.Errorf("the upstream received %d requests, %d were proxied", up.Hits(), proxied.Load())
	}
}

// TestE2EGracefulShutdown checks that Shutdown turns the replica unready,
// stops accepting, and lets an in-flight request finish.
func TestE2EGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case reached <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, `{"success":true,"message":"done"}`)
	}))
	var releaseOnce sync.Once
	releaseFn := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseFn) // before the upstream closes
	g := MustStartGateway(t, up.URL)
	tok := g.MustCreateToken(t, testProject, "owner", "owner")

	inflight := make(chan *http.Response, 1)
	inflightErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", g.URL+"/v2/Instance/slow", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := g.HTTP.Do(req)
		if err != nil {
			inflightErr <- err
			return
		}
		inflight <- resp
	}()
	select {
	case <-reached:
	case err := <-inflightErr:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request never reached the upstream")
	}

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- g.ShutdownOnce(ctx)
	}()
	// While the public listener drains, the metrics listener still answers
	// and says the replica is not ready.
	metrics := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	MustPoll(t, 5*time.Second, "/readyz turning 503 during shutdown", func() (bool, string) {
		resp, err := metrics.Get(g.MetricsURL + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "shutting down"), string(b)
	})
	MustPoll(t, 5*time.Second, "the public listener refusing new connections", func() (bool, string) {
		c, err := net.DialTimeout("tcp", g.Addr("public"), time.Second)
		if err != nil {
			return true, ""
		}
		c.Close()
		return false, "connected"
	})
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned (%v) before the in-flight request finished", err)
	default:
	}

	releaseFn()
	select {
	case resp := <-inflight:
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "done") {
			t.Errorf("in-flight request: %d %s", resp.StatusCode, b)
		}
	case err := <-inflightErr:
		t.Fatalf("in-flight request failed during shutdown: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not finish")
	}
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestE2EClientTrailersRefused checks that identity (and Authorization)
// fields cannot reach the upstream as request trailers: a request with
// trailers is refused (invalid_header), since the proxy would not forward
// them as they were sent.
func TestE2EClientTrailersRefused(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	raw := "POST /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + owner.Token + "\r\n" +
		"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n" +
		"Trailer: X-Tsw-Project-Id, X-Tsw-Token-Role, Authorization\r\nConnection: close\r\n\r\n" +
		"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\nX-Tsw-Project-Id: 7\r\nX-Tsw-Token-Role: owner\r\nAuthorization: Bearer spoofed\r\n\r\n"
	MustBeRefused(t, MustRawRequest(t, g.Addr("public"), raw), auth.CodeInvalidHeader)
	if up.Hits() != 0 {
		t.Errorf("the upstream received %d requests", up.Hits())
	}
}

// TestE2EStartFailureReturnsError checks that Start reports a failure as an
// error that names the setting, and releases what it opened.
func TestE2EStartFailureReturnsError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up := MustStartUpstream(t, nil)
	for _, tc := range []struct {
		name, env, want string
	}{
		{"listen port taken", "TSWGATE_LISTEN_ADDR=" + ln.Addr().String(), "TSWGATE_LISTEN_ADDR"},
		{"metrics port taken", "TSWGATE_METRICS_ADDR=" + ln.Addr().String(), "TSWGATE_METRICS_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			cfg, err := config.Load("", append([]string{tc.env, "TSWGATE_DATA_DIR=" + dataDir}, baseEnv(t, up.URL)...))
			if err != nil {
				t.Fatal(err)
			}
			g, err := func() (g *gateway.Gateway, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return gateway.Start(context.Background(), cfg, gateway.StartOptions{Logger: slog.New(slog.DiscardHandler), AccessLog: io.Discard})
			}()
			if err != nil && strings.HasPrefix(err.Error(), "panic: ") {
				t.Fatalf("BUG: Start panicked instead of returning its error: %v", err)
			}
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("Start succeeded on a taken port")
			}
			if g != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start = %v, %v; want nil and an error naming %s", g, err, tc.want)
			}
			// What it opened is released: the embedded store's lock too,
			// so a second start on the same data dir works.
			g2 := MustStartGateway(t, up.URL, "TSWGATE_DATA_DIR="+dataDir)
			MustBeHealthy(t, g2)
		})
	}
}

// TestE2EStressBodyResponsesIntact proxies many POSTs with bodies from
// several processes at once (this test binary, run as children) and checks
// that no response is cut short. It is opt-in (TSWGATE_TEST_STRESS=1):
// it needs the load of several processes to hit the race it guards
// against, where net/http closes the inbound body once the response
// starts while the transport still reads it, and the upstream connection
// is torn down mid-response (golang/go#40747; the proxy should call
// http.ResponseController.EnableFullDuplex).
func TestE2EStressBodyResponsesIntact(t *testing.T) {
	if os.Getenv("TSWGATE_TEST_STRESS") == "" {
		t.Skip("opt-in: set TSWGATE_TEST_STRESS=1")
	}
	const children = 8
	var wg sync.WaitGroup
	outs := make([]string, children)
	errs := make([]error, children)
	for i := range children {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestE2EStressChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "E2E_STRESS_CHILD=1")
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	failed := 0
	for i := range children {
		if errs[i] != nil {
			failed++
			t.Logf("child %d: %v\n%s", i, errs[i], grepLines(outs[i], "stress_child"))
		}
	}
	if failed > 0 {
		t.Errorf("BUG: %d of %d processes saw a proxied response cut short", failed, children)
	}
}

// TestE2EStressChild is a child process of TestE2EStressBodyResponsesIntact.
func TestE2EStressChild(t *testing.T) {
	if os.Getenv("E2E_STRESS_CHILD") == "" {
		t.Skip("child process of TestE2EStressBodyResponsesIntact")
	}
	standin := httptest.NewServer(teraswitch.NewStandin())
	t.Cleanup(standin.Close)
	g := MustStartGateway(t, standin.URL)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	for i := range 3000 {
		req := MustNewRequest(t, "POST", g.URL+"/v2/Instance", owner.Token, []byte(`{"projectId":42}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := g.HTTP.Do(req)
		if err != nil {
			t.Fatalf("stress_child request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stress_child request %d: HTTP %d, read %d of %s bytes: %v", i, resp.StatusCode, len(body), resp.Header.Get("Content-Length"), err)
		}
	}
}
