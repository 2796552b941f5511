package main

// The security promise — forward only what was checked, refuse what cannot
// be checked with certainty, never change a request silently — tried as an
// attacker would: against the built binary (`tswgate serve`, a child
// process) in front of a recording upstream, over raw TCP where a client
// library would normalise the request.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/devtool"
)

// built is the tswgate binary the tests of this file run, built once.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// mustBinary builds cmd/tswgate once per test binary run.
func mustBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "tswgate-e2e-bin-"); built.err != nil {
			return
		}
		built.bin, built.err = devtool.GatewayBinary(context.Background(), "e2e", "", built.dir, func(string, ...any) {})
	})
	if built.err != nil {
		t.Fatalf("building tswgate: %v", built.err)
	}
	return built.bin
}

// removeBinary removes the built binary (TestMain calls it).
func removeBinary() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// binGateway is a `tswgate serve` child in front of a recording upstream,
// with an Owner and an Accounting token of testProject.
type binGateway struct {
	*devtool.Gateway
	up    *recordingUpstream
	admin *tokenapi.Client
	owner tokenapi.Token
	acct  tokenapi.Token
	http  *http.Client
}

func startBinGateway(t *testing.T, env ...string) *binGateway {
	t.Helper()
	bin := mustBinary(t)
	up := MustStartUpstream(t, nil)
	dir := t.TempDir()
	procs := devtool.NewProcs(dir)
	t.Cleanup(func() { procs.StopAll(3 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devtool.StartGateway(ctx, procs, devtool.GatewaySpec{
		Name: "tswgate", Argv: []string{bin, "serve"}, DataDir: filepath.Join(dir, "data"),
		Env: append([]string{
			"TSWGATE_UPSTREAM_URL=" + up.URL, "TSWGATE_ADMIN_KEY=" + testAdminKey, "TSWGATE_PEPPER=" + testPepper,
		}, env...),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &binGateway{Gateway: g, up: up, admin: g.AdminClient(testAdminKey, nil), http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		if log, err := os.ReadFile(g.Proc.LogPath); err == nil {
			_, _ = hygieneSink{}.Write(log)
			if t.Failed() {
				t.Logf("gateway log:\n%s", devtool.Tail(string(log), 40))
			}
		}
	})
	b.owner = b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "owner"})
	b.acct = b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "accounting", Name: "acct"})
	return b
}

func (b *binGateway) mustCreate(t *testing.T, req tokenapi.CreateRequest) tokenapi.Token {
	t.Helper()
	tok, err := b.admin.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(tok.Token)
	return tok
}

// log returns the gateway's log so far.
func (b *binGateway) log(t *testing.T) string {
	t.Helper()
	out, err := os.ReadFile(b.Proc.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// raw sends one raw HTTP/1.1 request on a new connection and returns the
// first response's status and error code header.
func (b *binGateway) raw(t *testing.T, req string) (status int, code string) {
	t.Helper()
	c, err := net.Dial("tcp", b.Public)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.60q: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	keepForHygiene(resp.StatusCode, body)
	return resp.StatusCode, resp.Header.Get("X-Tsw-Error-Code")
}

// rawRequest builds a raw request with the credential, Host and
// Connection: close, the given extra header lines and body (with its
// Content-Length).
func rawRequest(method, target, cred string, headers []string, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer %s\r\nConnection: close\r\n", method, target, cred)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.String()
}

// securityCase is one request and how the gateway must treat it.
type securityCase struct {
	name    string
	method  string
	target  string
	acct    bool // send it with the Accounting token (else the Owner's)
	headers []string
	body    []byte
	status  int    // the answer's status
	code    string // its X-Tsw-Error-Code ("" when forwarded)
}

// check sends c and asserts the answer, and that a refusal reached the
// upstream not at all and a forwarded request reached it byte for byte.
func (b *binGateway) check(t *testing.T, c securityCase) {
	t.Helper()
	cred := b.owner.Token
	if c.acct {
		cred = b.acct.Token
	}
	hits := b.up.Hits()
	status, code := b.raw(t, rawRequest(c.method, c.target, cred, c.headers, c.body))
	if status != c.status || code != c.code {
		t.Errorf("%s: %d %q, want %d %q", c.name, status, code, c.status, c.code)
		return
	}
	switch got := b.up.Hits() - hits; {
	case c.code != "" && got != 0:
		t.Errorf("%s: refused, yet the upstream got %d requests", c.name, got)
	case c.code == "" && got != 1:
		t.Errorf("%s: the upstream got %d requests, want 1", c.name, got)
	case c.code == "":
		last := b.up.MustLast(t)
		if last.Method != c.method || last.RequestURI != c.target || !bytes.Equal(last.Body, c.body) {
			t.Errorf("%s: upstream got %s %.80s body %.80q; sent %s %.80s body %.80q",
				c.name, last.Method, last.RequestURI, last.Body, c.method, c.target, c.body)
		}
	}
}

func utf16Body(s string) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xfe})
	for _, u := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(u))
		b.WriteByte(byte(u >> 8))
	}
	return b.Bytes()
}

// TestSecurityBodies: a body reaches the API only in a media type the API
// declares (JSON in UTF-8, no Content-Encoding), on a route that takes one,
// and naming no other project anywhere in it.
func TestSecurityBodies(t *testing.T) {
	b := startBinGateway(t)
	const ct = "Content-Type: "
	form := []byte("projectId=43&name=x")
	multipart := []byte("--x\r\nContent-Disposition: form-data; name=\"projectId\"\r\n\r\n43\r\n--x--\r\n")
	sdk := []byte(`{"name":"laptop","key":"ssh-ed25519 AAAA","projectId":42}` + "\n")
	for _, c := range []securityCase{
		{"form, space before /", "POST", "/v2/SshKey", false, []string{ct + "application /x-www-form-urlencoded"}, form, 415, "unsupported_media_type"},
		{"form", "POST", "/v2/SshKey", false, []string{ct + "application/x-www-form-urlencoded"}, form, 415, "unsupported_media_type"},
		{"form, UTF-16", "POST", "/v2/SshKey", false, []string{ct + "application /x-www-form-urlencoded; charset=utf-16"}, utf16Body("projectId=43"), 415, "unsupported_media_type"},
		{"multipart, space before /", "POST", "/v2/SshKey", false, []string{ct + "multipart /form-data; boundary=x"}, multipart, 415, "unsupported_media_type"},
		{"multipart", "POST", "/v2/SshKey", false, []string{ct + "multipart/form-data; boundary=x"}, multipart, 415, "unsupported_media_type"},
		{"a list of media types", "POST", "/v2/SshKey", false, []string{ct + "application/json, text/plain"}, []byte(`/**/{"projectId":43}`), 415, "unsupported_media_type"},
		{"two Content-Type fields", "POST", "/v2/SshKey", false, []string{ct + "application/json", ct + "text/plain"}, []byte(`{"projectId":42}`), 415, "unsupported_media_type"},
		{"JSON in UTF-16", "POST", "/v2/SshKey", false, []string{ct + "application/json; charset=utf-16"}, utf16Body(`{"projectId":43}`), 415, "unsupported_media_type"},
		{"gzip", "POST", "/v2/SshKey", false, []string{ct + "application/json", "Content-Encoding: gzip"}, []byte("\x1f\x8b\x08\x00"), 415, "unsupported_media_type"},
		{"no Content-Type", "POST", "/v2/SshKey", false, nil, []byte(`{"projectId":43}`), 415, "unsupported_media_type"},
		{"text/plain", "POST", "/v2/SshKey", false, []string{ct + "text/plain"}, []byte(`{"projectId":43}`), 415, "unsupported_media_type"},
		{"form body on an Accounting GET", "GET", "/v2/Usage?projectId=42", true, []string{ct + "application /x-www-form-urlencoded"}, []byte("projectId=43"), 400, "body_not_allowed"},
		{"JSON body on a GET", "GET", "/v2/Instance?ProjectId=42", false, []string{ct + "application/json"}, []byte(`{"projectId":43}`), 400, "body_not_allowed"},
		{"body on a route that takes none", "POST", "/v2/Metal/7/PowerCommand?command=1", false, []string{ct + "application/json"}, []byte(`{"projectId":43}`), 400, "body_not_allowed"},
		{"nested project", "POST", "/v2/Instance", false, []string{ct + "application/json"}, []byte(`{"projectId":42,"service":{"projectId":43}}`), 403, "project_mismatch"},
		{"project in an array", "POST", "/v2/Instance", false, []string{ct + "application/json"}, []byte(`{"sshKeys":[{"id":1,"projectId":43}]}`), 403, "project_mismatch"},
		{"escaped key", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"proj\u0065ctId":43}`), 403, "project_mismatch"},
		{"upper-case key, string value", "POST", "/v2/SshKey", false, []string{ct + "text/json"}, []byte(`{"PROJECTID":"43"}`), 403, "project_mismatch"},
		{"dotless i", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"projectıd":43}`), 403, "project_mismatch"},
		{"duplicate key", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"projectId":42,"projectId":43}`), 403, "project_mismatch"},
		{"null project", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"projectId":null}`), 403, "project_mismatch"},
		{"42.0", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"projectId":42.0}`), 403, "project_mismatch"},
		{"comment", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`/**/{"projectId":42}`), 400, "invalid_body"},
		{"trailing data", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, []byte(`{"projectId":42}{"projectId":43}`), 400, "invalid_body"},
		{"JSON Patch on projectId", "POST", "/v2/Instance", false, []string{ct + "application/json-patch+json"}, []byte(`[{"op":"replace","path":"/projectId","value":43}]`), 403, "project_mismatch"},
		{"the SDK's own body", "POST", "/v2/SshKey", false, []string{ct + "application/json"}, sdk, 200, ""},
		{"vendor JSON type, charset", "POST", "/v2/SshKey", false, []string{ct + "application/vnd.tsw+json; charset=\"UTF-8\""}, sdk, 200, ""},
		{"no body", "POST", "/v2/Metal/7/PowerCommand?command=1", false, nil, nil, 200, ""},
	} {
		b.check(t, c)
	}
}

// TestSecurityQuery: the query reaches the API byte for byte, read as the
// API reads it (& separates, ; is data); what cannot be read one way is
// refused.
func TestSecurityQuery(t *testing.T) {
	b := startBinGateway(t)
	many := strings.Repeat("Tag=a&", 10001)
	for _, c := range []securityCase{
		{"; is data", "GET", "/v2/Instance?Tag=a;b&ProjectId=42", false, nil, nil, 200, ""},
		{"; hides nothing", "GET", "/v2/Instance?ProjectId=42;ProjectId=43", false, nil, nil, 403, "project_mismatch"},
		{"bad escape", "GET", "/v2/Instance?Tag=%zz&ProjectId=42", false, nil, nil, 400, "invalid_query"},
		{"IIS %u escape", "GET", "/v2/Instance?%u0050rojectId=43", false, nil, nil, 400, "invalid_query"},
		{"trailing %", "GET", "/v2/Instance?ProjectId=42&x=%", false, nil, nil, 400, "invalid_query"},
		{"escaped key", "GET", "/v2/Instance?%50rojectId=43", false, nil, nil, 403, "project_mismatch"},
		{"repeat", "GET", "/v2/Instance?ProjectId=42&projectid=43", false, nil, nil, 403, "project_mismatch"},
		{"nested key", "GET", "/v2/Instance?filter.projectId=43", false, nil, nil, 403, "project_mismatch"},
		{"10,001 parameters, then another project", "GET", "/v2/Instance?" + many + "ProjectId=43", false, nil, nil, 403, "project_mismatch"},
		{"10,001 parameters", "GET", "/v2/Instance?" + many + "ProjectId=42", false, nil, nil, 200, ""},
		{"Accounting, lower-case key", "GET", "/v2/Usage?projectId=42", true, nil, nil, 200, ""},
		{"NUL in a key", "GET", "/v2/Instance?ProjectId%00=43", false, nil, nil, 400, "invalid_query"},
		{"control byte in a key", "GET", "/v2/Instance?Project%1BId=43", false, nil, nil, 400, "invalid_query"},
		{"NUL in a value", "GET", "/v2/Instance?ProjectId=42%00", false, nil, nil, 400, "invalid_query"},
	} {
		b.check(t, c)
	}
}

// TestSecurityHeaders: no header makes the API take another method or URL
// than the one checked; Expect is answered once; a request whose framing
// can be read two ways is refused and its connection closed.
func TestSecurityHeaders(t *testing.T) {
	b := startBinGateway(t)
	overrides := []string{
		"X-HTTP-Method-Override: DELETE", "X-HTTP-Method: DELETE", "X-Method-Override: DELETE",
		"X-Original-URL: /v2/Instance/1", "X-Rewrite-URL: /v2/Instance/1",
	}
	b.check(t, securityCase{"overrides", "GET", "/v2/Invoice", true, overrides, nil, 200, ""})
	for k, v := range b.up.MustLast(t).Header {
		if s := strings.Join(v, ","); strings.Contains(s, "DELETE") || strings.Contains(s, "/v2/Instance") {
			t.Errorf("the upstream got %s: %s", k, s)
		}
	}

	t.Run("Expect", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Public)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		body := `{"name":"k","key":"ssh-ed25519 AAAA","projectId":42}`
		fmt.Fprintf(c, "POST /v2/SshKey HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", b.owner.Token, len(body))
		br := bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("first line %q, want 100 Continue", line)
		}
		io.WriteString(c, body)
		rest, _ := io.ReadAll(br)
		if n := strings.Count(string(rest), "HTTP/1.1 100"); n != 0 || !strings.Contains(string(rest), "HTTP/1.1 200") {
			t.Fatalf("after the first 100 Continue:\n%s", rest)
		}
		if up := b.up.MustLast(t); up.Header.Get("Expect") != "" || string(up.Body) != body {
			t.Fatalf("upstream got Expect %q, body %q", up.Header.Get("Expect"), up.Body)
		}
	})

	for _, framing := range []string{
		"HTTP/1.0\r\nTransfer-Encoding: chunked",
		"HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
	} {
		t.Run(strings.ReplaceAll(framing, "\r\n", " "), func(t *testing.T) {
			hits := b.up.Hits()
			smuggled := "DELETE /v2/Instance/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b.owner.Token + "\r\n\r\n"
			raw := "POST /v2/SshKey " + framing + "\r\nHost: x\r\nAuthorization: Bearer " + b.owner.Token +
				"\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
			c, err := net.Dial("tcp", b.Public)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, raw)
			out, _ := io.ReadAll(c) // the gateway closes the connection
			if !strings.Contains(string(out), " 400 ") || !strings.Contains(string(out), "invalid_framing") {
				t.Fatalf("got %.300q, want 400 invalid_framing", out)
			}
			if n := strings.Count("\n"+string(out), "\nHTTP/1."); n != 1 {
				t.Fatalf("%d answers on the connection, want 1:\n%s", n, out)
			}
			if got := b.up.Hits() - hits; got != 0 {
				t.Fatalf("the upstream got %d requests", got)
			}
		})
	}
}

// TestSecurityHopByHop: no Connection option or trailer makes a proxy on
// the way drop what the gateway checked.
func TestSecurityHopByHop(t *testing.T) {
	b := startBinGateway(t)
	body := []byte(`{"name":"k","key":"ssh-ed25519 AAAA","projectId":42}`)
	jsonType := "Content-Type: application/json"
	for _, c := range []securityCase{
		{"Connection names Content-Type", "POST", "/v2/SshKey", false, []string{jsonType, "Connection: Content-Type"}, body, 400, "invalid_header"},
		{"Connection names an identity header", "GET", "/v2/Invoice", true, []string{"Connection: X-Tsw-Project-Id"}, nil, 400, "invalid_header"},
		{"Connection names Content-Length", "POST", "/v2/SshKey", false, []string{jsonType, "connection: keep-alive,content-length"}, body, 400, "invalid_header"},
		{"hop-by-hop options only", "POST", "/v2/SshKey", false, []string{jsonType, "Connection: Keep-Alive, TE", "TE: trailers"}, body, 200, ""},
	} {
		b.check(t, c)
	}
	for name, trailer := range map[string]string{
		"declared trailers":   "Trailer: X-Tsw-Project-Id\r\n",
		"undeclared trailers": "",
	} {
		t.Run(name, func(t *testing.T) {
			hits := b.up.Hits()
			raw := fmt.Sprintf("POST /v2/SshKey HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n"+
				"Transfer-Encoding: chunked\r\n%sConnection: close\r\n\r\n%x\r\n%s\r\n0\r\nX-Tsw-Project-Id: 43\r\n\r\n",
				b.owner.Token, jsonType, trailer, len(body), body)
			if status, code := b.raw(t, raw); status != 400 || code != "invalid_header" {
				t.Fatalf("got %d %q, want 400 invalid_header", status, code)
			}
			if got := b.up.Hits() - hits; got != 0 {
				t.Fatalf("the upstream got %d requests", got)
			}
		})
	}
}

// TestSecurityNothingWrittenDown: a credential sent in a path never
// reaches the gateway's log, access log or audit trail.
func TestSecurityNothingWrittenDown(t *testing.T) {
	b := startBinGateway(t, "TSWGATE_ACCESS_LOG=true")
	victim := b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "victim"})
	secret := secretOf(victim.Token)
	for _, path := range []string{
		"/tswgate/v1/tokens/" + victim.Token,
		"/tswgate/v1/tokens/" + strings.Replace(victim.Token, ":", "%3A", 1),
		"/v2/Instance/" + victim.Token,
	} {
		for _, cred := range []string{b.acct.Token, b.owner.Token} {
			b.raw(t, rawRequest("GET", path, cred, nil, nil))
		}
	}
	trail, err := b.admin.Audit(context.Background(), tokenapi.AuditOptions{ProjectID: testProject, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range trail.Events {
		if strings.Contains(fmt.Sprint(ev), secret) {
			t.Errorf("the audit trail holds the secret: %+v", ev)
		}
	}
	// The access log is flushed every 100ms: wait for the proxied paths.
	MustPoll(t, 5*time.Second, "the access log's redacted paths", func() (bool, string) {
		log := b.log(t)
		return strings.Count(log, "/v2/Instance/"+victim.ID+":tswsk_"+auth.Redacted) >= 2, devtool.Tail(log, 5)
	})
	if log := b.log(t); strings.Contains(log, secret) {
		t.Errorf("the gateway's log holds the secret:\n%s", devtool.Tail(log, 20))
	}
}

// TestSecurityGuesserSharesAddress: a client guessing tokens from an
// address locks itself out, not the valid tokens used from the same
// address (a NAT, a proxy, a CI provider's egress).
func TestSecurityGuesserSharesAddress(t *testing.T) {
	b := startBinGateway(t, "TSWGATE_AUTH_FAILURE_RATE=0.1", "TSWGATE_AUTH_FAILURE_BURST=5")
	get := func(cred string) (int, string) {
		return b.raw(t, rawRequest("GET", "/v2/Invoice", cred, nil, nil))
	}
	if s, code := get(b.acct.Token); s != 200 {
		t.Fatalf("before: %d %s", s, code)
	}
	var last string
	for range 20 {
		_, unknown, _ := auth.NewCredential()
		_, last = get(unknown)
	}
	if last != "auth_rate_limited" {
		t.Fatalf("the guesser's 20th guess: %q, want auth_rate_limited", last)
	}
	for i := range 10 {
		if s, code := get(b.acct.Token); s != 200 {
			t.Fatalf("the neighbour's valid token, call %d after the guesses: %d %s", i, s, code)
		}
	}
	// A new token, never used before, goes on too: its id is one the
	// gateway minted.
	fresh := b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "accounting", Name: "fresh"})
	if s, code := get(fresh.Token); s != 200 {
		t.Fatalf("a new token from the blocked address: %d %s", s, code)
	}
	// The guesser is still refused.
	_, unknown, _ := auth.NewCredential()
	if _, code := get(unknown); code != "auth_rate_limited" {
		t.Fatalf("a guess after the neighbours' calls: %q, want auth_rate_limited", code)
	}
}
