package main

// End-to-end tests of the command line, through run(ctx, args, environ,
// stdout, stderr).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// cliResult is the outcome of one run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// MustRun runs the command line with environ and a bounded context.
func MustRun(t testing.TB, environ []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, environ, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("tswgate %s did not return before its context ended", strings.Join(args, " "))
	}
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// TestCLITokenCommands runs the token commands against a running gateway.
func TestCLITokenCommands(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	env := []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=" + g.AdminKey()}

	// create
	res := MustRun(t, env, "token", "create", "--project", "42", "--role", "owner", "--name", "ci-deploy", "-o", "json")
	if res.code != 0 {
		t.Fatalf("token create: %v", res)
	}
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("token create -o json: not a JSON object: %v\n%s", err, res.stdout)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		t.Fatalf("token create -o json printed more than one JSON value:\n%s", res.stdout)
	}
	for _, k := range []string{"id", "token", "project_id", "role", "name", "status", "created_at"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("token create -o json lacks %q:\n%s", k, res.stdout)
		}
	}
	var created struct {
		ID        string    `json:"id"`
		Token     string    `json:"token"`
		ProjectID int64     `json:"project_id"`
		Role      string    `json:"role"`
		Name      string    `json:"name"`
		Status    string    `json:"status"`
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil {
		t.Fatal(err)
	}
	if created.ProjectID != 42 || created.Role != "owner" || created.Name != "ci-deploy" || created.Status != "active" ||
		created.CreatedAt.IsZero() || !auth.ValidCredential(created.Token) || !strings.HasPrefix(created.Token, created.ID+":") {
		t.Fatalf("token create -o json = %+v", created)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", created.Token, nil))
	secret := secretOf(created.Token)

	// create, table output
	res = MustRun(t, env, "token", "create", "--project", "42", "--role", "accounting", "--name", "books")
	if res.code != 0 || !regexp.MustCompile(`\btsw_[0-9A-Za-z]{20}:tswsk_[0-9A-Za-z]{36}\b`).MatchString(res.stdout) {
		t.Fatalf("token create (table): %v", res)
	}

	// list
	res = MustRun(t, env, "token", "list", "--project", "42")
	if res.code != 0 {
		t.Fatalf("token list: %v", res)
	}
	if !strings.Contains(res.stdout, auth.DisplayID(created.ID)) || !strings.Contains(res.stdout, "ci-deploy") {
		t.Errorf("token list lacks the display id %s or the name:\n%s", auth.DisplayID(created.ID), res.stdout)
	}
	if strings.Contains(res.stdout, secret) || strings.Contains(res.stdout, created.ID) {
		t.Errorf("token list shows the secret or the whole id:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "TOKEN ID") || !strings.Contains(res.stdout, "Owner") || !strings.Contains(res.stdout, "never") {
		t.Errorf("token list table:\n%s", res.stdout)
	}

	res = MustRun(t, env, "token", "list", "--project", "42", "-o", "json")
	if res.code != 0 {
		t.Fatalf("token list -o json: %v", res)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("token list -o json: %v\n%s", err, res.stdout)
	}
	if len(list) != 2 || list[0]["id"] != created.ID || list[0]["display_id"] != auth.DisplayID(created.ID) {
		t.Errorf("token list -o json = %v", list)
	}
	if strings.Contains(res.stdout, secret) || strings.Contains(res.stdout, `"token"`) {
		t.Errorf("token list -o json shows a secret:\n%s", res.stdout)
	}
	res = MustRun(t, env, "token", "list", "--project", "7", "-o", "json")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "[]" {
		t.Errorf("token list of an empty project -o json: %v", res)
	}
	res = MustRun(t, env, "token", "list", "--project", "7")
	if res.code != 0 || !strings.Contains(res.stdout, "no tokens in project 7") {
		t.Errorf("token list of an empty project: %v", res)
	}

	// show, with the flag after the argument
	res = MustRun(t, env, "token", "show", created.ID, "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, created.ID) || strings.Contains(res.stdout, secret) {
		t.Errorf("token show -o json: %v", res)
	}

	// The admin key may come from the gateway's data dir instead.
	res = MustRun(t, []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_DATA_DIR=" + g.Config().DataDir}, "token", "show", created.ID)
	if res.code != 0 || !strings.Contains(res.stdout, "ci-deploy") {
		t.Errorf("token show with the key file: %v", res)
	}

	// revoke
	res = MustRun(t, env, "token", "revoke", created.ID)
	if res.code != 0 || !strings.Contains(res.stdout, "Revoked token "+created.ID) {
		t.Fatalf("token revoke: %v", res)
	}
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", created.Token, nil), auth.CodeTokenRevoked)
	res = MustRun(t, env, "token", "show", created.ID, "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"revoked"`) {
		t.Errorf("token show after revoke: %v", res)
	}

	// API refusals exit 1 and say why.
	res = MustRun(t, env, "token", "create", "--project", "42", "--role", "admin", "--name", "x", "--expires-in", "soon")
	if res.code != 1 || !strings.Contains(res.stderr, "role") || !strings.Contains(res.stderr, "expires_in") {
		t.Errorf("token create with bad input: %v", res)
	}
	// Missing required flags are usage errors, caught before any call.
	res = MustRun(t, env, "token", "create", "--project", "0", "--role", "owner", "--name", "x")
	if res.code != 2 || !strings.Contains(res.stderr, "--project") {
		t.Errorf("token create without a project: %v", res)
	}
	res = MustRun(t, env, "token", "create", "-h")
	if res.code != 0 || !strings.Contains(res.stdout, "-expires-in") {
		t.Errorf("token create -h: %v", res)
	}
	res = MustRun(t, env, "token", "revoke", "tsw_"+MustRandomBase62(t, 20))
	if res.code != 1 || !strings.Contains(res.stderr, "token_not_found") {
		t.Errorf("token revoke of an unknown id: %v", res)
	}
	res = MustRun(t, []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=wrong-key-0123456789abcdefghijklmnop"}, "token", "list", "--project", "42")
	if res.code != 1 || !strings.Contains(res.stderr, "401") {
		t.Errorf("token list with a wrong admin key: %v", res)
	}
}

// TestCLIUsageErrors checks that mistakes in the command line exit 2 with
// the usage, before any call.
func TestCLIUsageErrors(t *testing.T) {
	// An admin URL nobody listens on: a usage error must not get that far.
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"token"},
		{"token", "bogus"},
		{"token", "create", "--bogus"},
		{"token", "create", "--project", "abc", "--role", "owner", "--name", "x"},
		{"token", "create", "--project", "42", "--role", "owner", "--name", "x", "extra"},
		{"token", "list", "--project", "42", "-o", "yaml"},
		{"token", "show"},
		{"token", "show", "a", "b"},
		{"token", "revoke"},
		{"token", "deactivate"},
		{"token", "activate", "a", "b"},
		{"token", "rotate"},
		{"token", "rotate", "tsw_x", "--grace", "-1s"},
		{"token", "rotate", "tsw_x", "--grace", "soon"},
		{"token", "limit", "tsw_x"},
		{"token", "limit", "--rate", "1"},
		{"token", "limit", "tsw_x", "--rate", "-1"},
		{"token", "limit", "tsw_x", "--rate", "1", "--burst", "-1"},
		{"serve", "extra"},
		{"quickstart", "extra"},
	} {
		res := MustRun(t, env, args...)
		if res.code != 2 {
			t.Errorf("tswgate %q: %v, want exit 2", args, res)
			continue
		}
		if !strings.Contains(res.stderr, "Usage:") {
			t.Errorf("tswgate %q: stderr lacks the usage:\n%s", args, res.stderr)
		}
		if res.stdout != "" {
			t.Errorf("tswgate %q wrote to stdout:\n%s", args, res.stdout)
		}
	}
	if res := MustRun(t, nil, "version"); res.code != 0 || !strings.HasPrefix(res.stdout, "tswgate ") {
		t.Errorf("tswgate version: %v", res)
	}
	if res := MustRun(t, nil, "help"); res.code != 0 || !strings.Contains(res.stdout, "Usage:") {
		t.Errorf("tswgate help: %v", res)
	}
}

// MustDeadURL returns an http URL on a loopback port nobody listens on,
// reserved for the test so that it stays so.
func MustDeadURL(t testing.TB) string {
	t.Helper()
	return "http://" + MustReserveAddr(t)
}

// TestCLIUnreachableAdmin checks the message when the admin API is not
// there.
func TestCLIUnreachableAdmin(t *testing.T) {
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, args := range [][]string{
		{"token", "list", "--project", "42"},
		{"token", "create", "--project", "42", "--role", "owner", "--name", "x"},
		{"token", "revoke", "tsw_" + MustRandomBase62(t, 20)},
	} {
		res := MustRun(t, env, args...)
		if res.code != 1 || !strings.Contains(res.stderr, "TSWGATE_ADMIN_URL") {
			t.Errorf("tswgate %q with an unreachable admin URL: %v, want exit 1 naming TSWGATE_ADMIN_URL", args, res)
		}
	}
	// No key at all: say how to give one.
	res := MustRun(t, []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_DATA_DIR=" + t.TempDir()}, "token", "list", "--project", "42")
	if res.code != 1 || !strings.Contains(res.stderr, "TSWGATE_ADMIN_KEY") {
		t.Errorf("token list without an admin key: %v", res)
	}
}

// TestCLIServeConfig checks serve's configuration errors and --check.
func TestCLIServeConfig(t *testing.T) {
	base := []string{
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + t.TempDir(),
		"TSWGATE_LOG_LEVEL=error",
	}
	res := MustRun(t, append([]string{"TSWGATE_CACHE_TTL=abc", "TSWGATE_LISTEN_ADR=:1"}, base...), "serve")
	if res.code != 1 {
		t.Fatalf("serve with a bad config: %v, want exit 1", res)
	}
	for _, want := range []string{"TSWGATE_CACHE_TTL", "TSWGATE_LISTEN_ADR", "TSWGATE_LISTEN_ADDR"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("serve's error does not name %s:\n%s", want, res.stderr)
		}
	}
	valid := append([]string{"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_UPSTREAM_URL=http://127.0.0.1:1"}, base...)
	res = MustRun(t, valid, "serve", "--check")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "configuration is valid" {
		t.Errorf("serve --check with a valid config: %v", res)
	}
	res = MustRun(t, append([]string{"TSWGATE_CACHE_TTL=abc"}, valid...), "serve", "--check")
	if res.code != 1 || !strings.Contains(res.stderr, "TSWGATE_CACHE_TTL") || strings.Contains(res.stdout, "valid") {
		t.Errorf("serve --check with a bad config: %v", res)
	}
	res = MustRun(t, valid, "serve", "--config", t.TempDir()+"/missing.json", "--check")
	if res.code != 1 || !strings.Contains(res.stderr, "missing.json") {
		t.Errorf("serve --check with a missing config file: %v", res)
	}
	file := filepath.Join(t.TempDir(), "tswgate.json")
	if err := os.WriteFile(file, []byte(`{"cache_ttl": "abc", "listen_adr": ":1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res = MustRun(t, valid, "serve", "--config", file, "--check")
	if res.code != 1 || !strings.Contains(res.stderr, "cache_ttl") || !strings.Contains(res.stderr, "TSWGATE_CACHE_TTL") ||
		!strings.Contains(res.stderr, `"listen_addr"`) {
		t.Errorf("serve --check with a bad config file: %v", res)
	}
	// The environment wins over the file; TSWGATE_CONFIG names the file.
	// (A file value that does not parse is reported even when the
	// environment overrides it: the file itself is wrong.)
	if err := os.WriteFile(file, []byte(`{"cache_ttl": "1s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res = MustRun(t, append([]string{"TSWGATE_CONFIG=" + file}, valid...), "serve", "--check")
	if res.code != 1 || !strings.Contains(res.stderr, "TSWGATE_NEGATIVE_CACHE_TTL") {
		t.Errorf("serve --check, file cache_ttl 1s below the 2s negative TTL: %v", res)
	}
	res = MustRun(t, append([]string{"TSWGATE_CONFIG=" + file, "TSWGATE_CACHE_TTL=10s"}, valid...), "serve", "--check")
	if res.code != 0 {
		t.Errorf("serve --check, the environment overriding the file's cache_ttl: %v", res)
	}
}

// TestCLIStartFailures checks that a gateway that cannot start says why
// and exits 1. Each case runs in a child process (this test binary, see
// TestCLIStartFailureChild), so that a crash fails this test instead of
// killing the whole test binary.
func TestCLIStartFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, command, env, want string
	}{
		{"serve, listen port taken", "serve", "TSWGATE_LISTEN_ADDR=" + ln.Addr().String(), "TSWGATE_LISTEN_ADDR"},
		{"quickstart, listen port taken", "quickstart", "TSWGATE_LISTEN_ADDR=" + ln.Addr().String(), "TSWGATE_LISTEN_ADDR"},
		{"serve, data dir is a file", "serve", "TSWGATE_DATA_DIR=" + notADir, "TSWGATE_DATA_DIR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCLIStartFailureChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "E2E_CHILD_COMMAND="+tc.command, "E2E_CHILD_ENV="+tc.env, "E2E_CHILD_DATA="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if strings.Contains(string(out), "panic:") || err != nil {
				first, _, _ := strings.Cut(string(out), "goroutine ")
				t.Fatalf("BUG: tswgate %s crashed instead of exiting 1 (%v):\n%s", tc.command, err, first)
			}
			if !strings.Contains(string(out), "exit=1\n") || !strings.Contains(string(out), tc.want) {
				t.Errorf("tswgate %s: want exit 1 naming %s, got:\n%s", tc.command, tc.want, out)
			}
		})
	}
}

// TestCLIStartFailureChild is the child process of TestCLIStartFailures.
func TestCLIStartFailureChild(t *testing.T) {
	command := os.Getenv("E2E_CHILD_COMMAND")
	if command == "" {
		t.Skip("child process of TestCLIStartFailures")
	}
	environ := []string{
		os.Getenv("E2E_CHILD_ENV"),
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0",
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + os.Getenv("E2E_CHILD_DATA"),
		"TSWGATE_UPSTREAM_URL=http://127.0.0.1:1",
		"TSWGATE_LOG_LEVEL=error",
	}
	res := MustRun(t, environ, command)
	fmt.Printf("exit=%d\nstderr:\n%s\n", res.code, res.stderr)
}

// TestCLIQuickstart runs the quickstart until it prints its tokens, tries
// them, and stops it by cancelling its context.
func TestCLIQuickstart(t *testing.T) {
	environ := []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0",
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + t.TempDir(),
		"TSWGATE_LOG_LEVEL=error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"quickstart"}, environ, stdout, stderr) }()

	ownerRe := regexp.MustCompile(`(?m)^\s*export OWNER=(\S+)$`)
	acctRe := regexp.MustCompile(`(?m)^\s*export ACCOUNTING=(\S+)$`)
	gwRe := regexp.MustCompile(`(?m)^\s*gateway\s+(http://\S+)$`)
	var out string
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for out = stdout.String(); !(ownerRe.MatchString(out) && acctRe.MatchString(out) && gwRe.MatchString(out)); out = stdout.String() {
		select {
		case <-stdout.Changed():
		case code := <-done:
			t.Fatalf("quickstart exited with %d before printing its tokens\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		case <-timeout.C:
			t.Fatalf("quickstart did not print its tokens in time\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	}
	owner := ownerRe.FindStringSubmatch(out)[1]
	acct := acctRe.FindStringSubmatch(out)[1]
	gw := gwRe.FindStringSubmatch(out)[1]
	if !auth.ValidCredential(owner) || !auth.ValidCredential(acct) {
		t.Fatalf("quickstart printed invalid credentials %q, %q", owner, acct)
	}

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	MustBeProxied(t, MustDo(t, c, MustNewRequest(t, "GET", gw+"/v2/Instance?ProjectId=42", owner, nil)))
	MustBeProxied(t, MustDo(t, c, MustNewRequest(t, "GET", gw+"/v2/Invoice", acct, nil)))
	MustBeRefused(t, MustDo(t, c, MustNewRequest(t, "GET", gw+"/v2/Instance", acct, nil)), auth.CodePermissionDenied)
	MustBeRefused(t, MustDo(t, c, MustNewRequest(t, "GET", gw+"/v2/Instance?ProjectId=7", owner, nil)), auth.CodeProjectMismatch)
	MustBeRefused(t, MustDo(t, c, MustNewRequest(t, "GET", gw+"/v2/Instance", "", nil)), auth.CodeMissingToken)
	c.CloseIdleConnections()

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("quickstart exited with %d after cancel, want 0\nstderr:\n%s", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("quickstart did not return after its context was cancelled")
	}
}

// TestCLIServe runs "tswgate serve" until it logs its addresses, manages a
// token with the CLI, calls through it, and stops it by cancelling its
// context (as SIGTERM does).
func TestCLIServe(t *testing.T) {
	up := MustStartUpstream(t, nil)
	dataDir := t.TempDir()
	environ := []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0",
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + dataDir,
		"TSWGATE_UPSTREAM_URL=" + up.URL,
		"TSWGATE_ADMIN_KEY=" + testAdminKey,
		"TSWGATE_LOG_LEVEL=info",
		"TSWGATE_LOG_FORMAT=json",
		"HOME=/nonexistent", // other variables are ignored
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, environ, stdout, stderr) }()

	var started struct {
		Msg, Public, Admin, Metrics, Store string
	}
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for started.Msg == "" {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, `"msg":"tswgate started"`) {
				if err := json.Unmarshal([]byte(line), &started); err != nil {
					t.Fatalf("start log line %q: %v", line, err)
				}
			}
		}
		if started.Msg != "" {
			break
		}
		select {
		case <-stderr.Changed():
		case code := <-done:
			t.Fatalf("serve exited with %d before starting\nstderr:\n%s", code, stderr)
		case <-timeout.C:
			t.Fatalf("serve did not log its start in time\nstderr:\n%s", stderr)
		}
	}
	if started.Store != "embedded" || started.Public == "" || started.Admin == "" || started.Metrics == "" {
		t.Fatalf("start log: %+v", started)
	}

	cliEnv := []string{"TSWGATE_ADMIN_URL=http://" + started.Admin, "TSWGATE_ADMIN_KEY=" + testAdminKey}
	res := MustRun(t, cliEnv, "token", "create", "--project", "42", "--role", "accounting", "--name", "books", "--expires-in", "720h", "-o", "json")
	if res.code != 0 {
		t.Fatalf("token create: %v", res)
	}
	var tok struct {
		ID, Token string
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &tok); err != nil || tok.ExpiresAt == nil {
		t.Fatalf("token create --expires-in -o json: %v\n%s", err, res.stdout)
	}
	if d := time.Until(*tok.ExpiresAt); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("expires_at %v is not 720h from now", tok.ExpiresAt)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	MustBeProxied(t, MustDo(t, c, MustNewRequest(t, "GET", "http://"+started.Public+"/v2/Invoice", tok.Token, nil)))
	MustBeRefused(t, MustDo(t, c, MustNewRequest(t, "GET", "http://"+started.Public+"/v2/Instance", tok.Token, nil)), auth.CodePermissionDenied)
	if r := MustDo(t, c, MustNewRequest(t, "GET", "http://"+started.Metrics+"/readyz", "", nil)); r.Status != 200 {
		t.Errorf("/readyz: %s", r)
	}
	res = MustRun(t, cliEnv, "token", "list", "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, "Accounting") || strings.Contains(res.stdout, "never") {
		t.Errorf("token list (the token expires): %v", res)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after cancel, want 0\nstderr:\n%s", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after its context was cancelled")
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("serve did not log its stop:\n%s", logs)
	}
	if strings.Contains(logs, testAdminKey) || strings.Contains(logs, secretOf(tok.Token)) {
		t.Errorf("serve's log holds the admin key or a token secret:\n%s", logs)
	}
	if stdout.String() != "" {
		t.Errorf("serve wrote to stdout: %q", stdout)
	}
}
