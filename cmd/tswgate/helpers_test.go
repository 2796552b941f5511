package main

// Shared helpers of the end-to-end tests: a real Gateway (Start, with a
// configuration from config.Load) in front of an httptest upstream, called
// over real HTTP.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/internal/freeport"
	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/proxy"
)

// testProject is the project of the tests' tokens.
const testProject = 42

// testAdminKey and testPepper are 32+ character secrets for gateways that
// must share them (Redis).
const (
	testAdminKey = "e2e-admin-key-0123456789abcdefghijklmnop"
	testPepper   = "e2e-pepper-0123456789abcdefghijklmnopqrst"
)

// syncBuffer is a bytes.Buffer safe for concurrent use that also signals
// every write on Changed (buffered, so a reader that missed a signal still
// sees the next one).
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Changed is signalled after writes.
func (b *syncBuffer) Changed() <-chan struct{} { return b.changed }

// recordedRequest is what the upstream received.
type recordedRequest struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
	RemoteAddr string
}

// recordingUpstream is an httptest upstream that counts and records every
// request, then answers with next (or 200 and the API's envelope).
type recordingUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	reqs []recordedRequest
	next http.Handler
}

// MustStartUpstream starts a recording upstream in front of next (nil: a
// fixed 200 answer). It is closed when the test ends.
func MustStartUpstream(t testing.TB, next http.Handler) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{next: next}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, recordedRequest{
		Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body, RemoteAddr: r.RemoteAddr,
	})
	u.mu.Unlock()
	u.hits.Add(1)
	if u.next != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = io.WriteString(w, `{"success":true,"message":""}`)
}

// Hits is how many requests the upstream received.
func (u *recordingUpstream) Hits() int64 { return u.hits.Load() }

// MustLast returns the last request the upstream received.
func (u *recordingUpstream) MustLast(t testing.TB) recordedRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// testGateway is a running Gateway with clients for its listeners.
type testGateway struct {
	*gateway.Gateway
	URL        string // public listener, http://host:port
	AdminURL   string
	MetricsURL string
	Admin      *tokenapi.Client
	HTTP       *http.Client
	Logs       *syncBuffer // nil when the caller supplied the logger
	StartTook  time.Duration

	shutdownOnce sync.Once
	shutdownErr  error
}

// ShutdownOnce shuts the gateway down; later calls (and the test's
// cleanup) return the first call's result.
func (g *testGateway) ShutdownOnce(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.Gateway.Shutdown(ctx) })
	return g.shutdownErr
}

// gatewayOptions are what a test may vary.
type gatewayOptions struct {
	// Upstream is TSWGATE_UPSTREAM_URL.
	Upstream string
	// Env holds per-test settings ("NAME=value"); they take precedence
	// over the base environment.
	Env []string
	// Logger replaces the default (JSON, to a buffer shown on failure).
	Logger *slog.Logger
	// AccessLog receives the access log; nil means Logs (with the
	// default logger) or nothing (with Logger set).
	AccessLog io.Writer
	// TokenCountEvery is StartOptions.TokenCountEvery.
	TokenCountEvery time.Duration
	// PolicyReloadEvery is StartOptions.PolicyReloadEvery.
	PolicyReloadEvery time.Duration
	// WhileStarting, if set, runs while Start is in progress (Start runs
	// in another goroutine meanwhile).
	WhileStarting func()
}

// baseEnv is the environment of every test gateway: loopback listeners on
// free ports, a temporary data dir, every log line (kept in memory, shown
// when a test fails, and searched for secrets by TestMain).
func baseEnv(t testing.TB, upstream string) []string {
	return []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0",
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + t.TempDir(),
		"TSWGATE_UPSTREAM_URL=" + upstream,
		"TSWGATE_LOG_LEVEL=debug",
		// Many tests send bad credentials on purpose, all from 127.0.0.1;
		// e2e_ratelimit_test.go tests the per-address limit with it on.
		"TSWGATE_AUTH_FAILURE_RATE=0",
	}
}

// MustReserveAddr returns a free loopback address ("127.0.0.1:port")
// reserved until the test ends (see package freeport): a child process
// told the address, or one started again on it, can listen on it, and no
// other listener or connection of the machine gets the port meanwhile.
// While nothing listens on it, connections to it are refused. (Listening
// on port 0 and closing the listener to pass the number on is a race: the
// kernel readily hands that port to the next listen on port 0.)
func MustReserveAddr(tb testing.TB) string {
	tb.Helper()
	p, err := freeport.Reserve()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Release() })
	return p.Addr()
}

// MustStartGateway starts a gateway in front of upstream with extra
// settings, and shuts it down when the test ends.
func MustStartGateway(t testing.TB, upstream string, env ...string) *testGateway {
	t.Helper()
	return MustStartGatewayOpts(t, gatewayOptions{Upstream: upstream, Env: env})
}

// MustStartGatewayOpts is MustStartGateway with every option.
func MustStartGatewayOpts(t testing.TB, o gatewayOptions) *testGateway {
	t.Helper()
	// config.Load keeps the first of duplicate names: per-test settings go
	// first.
	environ := append(append([]string(nil), o.Env...), baseEnv(t, o.Upstream)...)
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	tg := &testGateway{}
	logger, accessLog := o.Logger, o.AccessLog
	if logger == nil {
		tg.Logs = newSyncBuffer()
		logger, err = newLogger(cfg, io.MultiWriter(tg.Logs, hygieneSink{}))
		if err != nil {
			t.Fatalf("newLogger: %v", err)
		}
		if accessLog == nil {
			accessLog = io.MultiWriter(tg.Logs, hygieneSink{})
		}
	}
	if accessLog == nil {
		accessLog = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type started struct {
		g   *gateway.Gateway
		err error
	}
	startc := make(chan started, 1)
	begin := time.Now()
	go func() {
		g, err := gateway.Start(ctx, cfg, gateway.StartOptions{Logger: logger, AccessLog: accessLog,
			TokenCountEvery: o.TokenCountEvery, PolicyReloadEvery: o.PolicyReloadEvery})
		startc <- started{g, err}
	}()
	if o.WhileStarting != nil {
		o.WhileStarting()
	}
	res := <-startc // bounded by ctx
	tg.StartTook = time.Since(begin)
	g, err := res.g, res.err
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}
	tg.Gateway = g
	tg.HTTP = &http.Client{Transport: tr, Timeout: 15 * time.Second}
	tg.URL = "http://" + g.Addr("public")
	tg.AdminURL = "http://" + g.Addr("admin")
	tg.MetricsURL = "http://" + g.Addr("metrics")
	tg.Admin = &tokenapi.Client{BaseURL: tg.AdminURL, AdminKey: g.AdminKey(), HTTP: tg.HTTP}
	t.Cleanup(func() {
		keepMetrics(tg.MetricsURL)
		tr.CloseIdleConnections()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tg.ShutdownOnce(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if tg.Logs != nil && t.Failed() {
			t.Logf("gateway log:\n%s", tg.Logs.String())
		}
	})
	return tg
}

// MustCreateToken creates a token through the admin API.
func (g *testGateway) MustCreateToken(t testing.TB, project int64, role, name string) tokenapi.Token {
	t.Helper()
	tok, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: project, Role: role, Name: name})
	if err != nil {
		t.Fatalf("creating a %s token: %v", role, err)
	}
	if !auth.ValidCredential(tok.Token) || !strings.HasPrefix(tok.Token, tok.ID+":") {
		t.Fatalf("created token %q (id %q) is not a valid credential", tok.Token, tok.ID)
	}
	rememberSecret(tok.Token)
	return tok
}

// MustCreateRecord stores a token record directly (for states the admin
// API cannot make) and returns its credential.
func (g *testGateway) MustCreateRecord(t testing.TB, edit func(*auth.Token)) (id, cred string) {
	t.Helper()
	id, cred, err := auth.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	tok := &auth.Token{
		ID: id, ProjectID: testProject, Name: "direct", Role: auth.RoleOwner,
		Status: auth.StatusActive, CreatedAt: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond),
	}
	rememberSecret(cred)
	tok.SecretHash, tok.PepperID = g.Hasher().Hash(cred)
	edit(tok)
	if err := g.Store().Create(context.Background(), tok); err != nil {
		t.Fatalf("store.Create: %v", err)
	}
	return id, cred
}

// response is a whole HTTP response.
type response struct {
	Method string // of the request
	Status int
	Header http.Header
	Body   []byte
	Proto  string // spoken, e.g. HTTP/2.0
}

func (r *response) String() string {
	return fmt.Sprintf("HTTP %d %v\n%s", r.Status, r.Header, r.Body)
}

// MustNewRequest builds a request; cred, if set, goes in a Bearer header.
func MustNewRequest(t testing.TB, method, url, cred string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("NewRequest %s %s: %v", method, url, err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	return req
}

// MustDo sends req with c and reads the whole response.
func MustDo(t testing.TB, c *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	keepForHygiene(resp.StatusCode, body)
	return &response{Method: req.Method, Status: resp.StatusCode, Header: resp.Header, Body: body, Proto: resp.Proto}
}

// MustCall sends method path (relative to the gateway) with cred.
func (g *testGateway) MustCall(t testing.TB, method, path, cred string, body []byte) *response {
	t.Helper()
	return MustDo(t, g.HTTP, MustNewRequest(t, method, g.URL+path, cred, body))
}

// MustGet GETs a URL without credentials.
func (g *testGateway) MustGet(t testing.TB, url string) *response {
	t.Helper()
	return MustDo(t, g.HTTP, MustNewRequest(t, http.MethodGet, url, "", nil))
}

// MustRawRequest writes request bytes as they are to addr (so no client
// cleans the path) and reads the response.
func MustRawRequest(t testing.TB, addr, raw string) *response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return &response{Method: strings.Fields(raw)[0], Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// envelope is the refusal body.
type envelope struct {
	Success *bool   `json:"success"`
	Message *string `json:"message"`
	Code    *string `json:"code"`
}

// MustEnvelope decodes a refusal body strictly: exactly success, message
// and code, success false.
func MustEnvelope(t testing.TB, r *response) (message, code string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	var e envelope
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("refusal body is not the envelope: %v\n%s", err, r)
	}
	if e.Success == nil || e.Message == nil || e.Code == nil {
		t.Fatalf("refusal body lacks success, message or code: %s", r.Body)
	}
	if *e.Success {
		t.Errorf("refusal body has success true: %s", r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("refusal Content-Type = %q, want application/json", ct)
	}
	if got := r.Header.Get(proxy.HeaderErrorCode); got != *e.Code {
		t.Errorf("%s = %q, body code %q", proxy.HeaderErrorCode, got, *e.Code)
	}
	return *e.Message, *e.Code
}

// MustBeRefused checks that r is the gateway's refusal with code: status,
// envelope, X-Tsw-Error-Code, WWW-Authenticate on 401 (and on
// permission_denied), Retry-After exactly where the code calls for it.
func MustBeRefused(t testing.TB, r *response, code auth.Code) {
	t.Helper()
	if r.Status != proxy.Status(code) {
		t.Fatalf("want %s (HTTP %d), got %s", code, proxy.Status(code), r)
	}
	var msg string
	if r.Method == http.MethodHead {
		// No body: the code is in the header alone.
		if got := r.Header.Get(proxy.HeaderErrorCode); got != code.String() {
			t.Fatalf("%s = %q, want %q", proxy.HeaderErrorCode, got, code)
		}
		if len(r.Body) != 0 {
			t.Errorf("HEAD refusal has a body: %q", r.Body)
		}
	} else {
		// The message is for humans and may name the token's role or
		// project; only the code is stable.
		var got string
		msg, got = MustEnvelope(t, r)
		if got != code.String() {
			t.Fatalf("code = %q, want %q\n%s", got, code, r)
		}
		if strings.TrimSpace(msg) == "" {
			t.Errorf("empty message for %s", code)
		}
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", r.Header.Get("Cache-Control"))
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", r.Header.Get("X-Content-Type-Options"))
	}
	if r.Header.Get(proxy.HeaderRequestID) == "" {
		t.Errorf("refusal has no %s", proxy.HeaderRequestID)
	}
	challenge := r.Header.Get("WWW-Authenticate")
	switch {
	case r.Status == http.StatusUnauthorized:
		if !strings.Contains(challenge, `error="invalid_token"`) || !strings.HasPrefix(challenge, "Bearer ") {
			t.Errorf("401 WWW-Authenticate = %q, want a Bearer challenge with error=\"invalid_token\"", challenge)
		}
		if !strings.Contains(challenge, code.String()) {
			t.Errorf("WWW-Authenticate = %q does not name %s", challenge, code)
		}
		// README: error_description="<code>: <message>".
		if want := `Bearer realm="tswgate", error="invalid_token", error_description="` + code.String() + ": " + msg + `"`; msg != "" && challenge != want {
			t.Errorf("WWW-Authenticate = %q, want %q", challenge, want)
		}
	case code == auth.CodePermissionDenied:
		if !strings.Contains(challenge, `error="insufficient_scope"`) {
			t.Errorf("permission_denied WWW-Authenticate = %q, want error=\"insufficient_scope\"", challenge)
		}
	case challenge != "":
		t.Errorf("unexpected WWW-Authenticate %q on %s", challenge, code)
	}
	ra := r.Header.Get("Retry-After")
	switch code {
	case auth.CodeRateLimited, auth.CodeStoreUnavailable, auth.CodeAuthRateLimited, auth.CodeProjectRateLimited:
		if n, err := parseSeconds(ra); err != nil || n < 1 {
			t.Errorf("Retry-After = %q, want whole seconds >= 1", ra)
		}
	default:
		if ra != "" {
			t.Errorf("unexpected Retry-After %q on %s", ra, code)
		}
	}
}

func parseSeconds(s string) (int, error) {
	var n int
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number of seconds", s)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// MustBeProxied checks that r is a success the upstream answered.
func MustBeProxied(t testing.TB, r *response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200 from the upstream, got %s", r)
	}
	if r.Header.Get(proxy.HeaderErrorCode) != "" {
		t.Fatalf("success carries %s: %s", proxy.HeaderErrorCode, r)
	}
}

// Credential format, written out from the README/auth.token.go comment
// independently of the auth package:
//
//	tsw_<20 base62>:tswsk_<30 base62><6 base62 CRC32 IEEE of everything before>
const testBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// formatChecksum is the 6-digit base62 (most significant first, zero
// padded) CRC32 IEEE of s.
func formatChecksum(s string) string {
	v := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = testBase62[v%62]
		v /= 62
	}
	return string(out)
}

// randomBase62 returns n random base62 characters.
func MustRandomBase62(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = testBase62[int(b[i])%62]
	}
	return string(b)
}

// forgeCredential makes a credential for id with a fresh secret and a
// valid checksum, built from the documented format alone.
func MustForgeCredential(t testing.TB, id string) string {
	t.Helper()
	body := id + ":tswsk_" + MustRandomBase62(t, 30)
	return body + formatChecksum(body)
}

// MustChangeSecretChar returns cred with one character of its secret's
// random part replaced by another base62 character: the checksum fails.
func MustChangeSecretChar(t testing.TB, cred string) string {
	t.Helper()
	b := []byte(cred)
	i := auth.IDLen + 1 + len(auth.SecretPrefix) + 5
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	if auth.ValidCredential(string(b)) {
		t.Fatalf("changing one character left %q valid", b)
	}
	return string(b)
}

// secretOf returns the secret part of a credential.
func secretOf(cred string) string {
	_, s, _ := strings.Cut(cred, ":")
	return s
}

// MustPoll calls try until it reports done or timeout passes, with a short
// growing backoff between tries; it returns how long it took. It awaits an
// outcome that has no signal to wait on.
func MustPoll(t testing.TB, timeout time.Duration, what string, try func() (done bool, last string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	backoff := time.Millisecond
	for {
		done, last := try()
		if done {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(backoff) // bounded backoff between polls for an outcome
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}
