package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TestQuickstartAuditsItsTokens runs the quickstart and reads project 42's
// audit trail with "tswgate audit", as the quickstart's own instructions
// say: the two tokens it created are there, created by the system.
func TestQuickstartAuditsItsTokens(t *testing.T) {
	dataDir := t.TempDir()
	environ := []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0",
		"TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + dataDir,
		"TSWGATE_LOG_LEVEL=error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"quickstart"}, environ, stdout, stderr) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("quickstart did not return after its context was cancelled")
		}
	}()

	ownerRe := regexp.MustCompile(`(?m)^\s*export OWNER=(\S+)$`)
	acctRe := regexp.MustCompile(`(?m)^\s*export ACCOUNTING=(\S+)$`)
	adminRe := regexp.MustCompile(`(?m)^\s*admin API\s+(http://\S+)`)
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	var out string
	for out = stdout.String(); !(ownerRe.MatchString(out) && acctRe.MatchString(out) && adminRe.MatchString(out)); out = stdout.String() {
		select {
		case <-stdout.Changed():
		case code := <-done:
			t.Fatalf("quickstart exited with %d before printing its tokens\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		case <-timeout.C:
			t.Fatalf("quickstart did not print its tokens in time\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	}
	tokenID := func(cred string) string { id, _, _ := strings.Cut(cred, ":"); return id }
	want := map[string]string{ // token id -> the role in the event's detail
		tokenID(ownerRe.FindStringSubmatch(out)[1]): "owner",
		tokenID(acctRe.FindStringSubmatch(out)[1]):  "accounting",
	}

	// The CLI as the quickstart prints it, with only the environment it
	// prints: the admin API is not on its default address, and the admin
	// key is in a data directory other than the default one.
	auditRe := regexp.MustCompile(`(?m)^  ((?:TSWGATE_[A-Z_]+=\S+ )*)go run \./cmd/tswgate audit --project 42$`)
	m := auditRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("quickstart prints no audit command:\n%s", out)
	}
	cli := strings.Fields(m[1])
	for _, want := range []string{"TSWGATE_ADMIN_URL=" + adminRe.FindStringSubmatch(out)[1], "TSWGATE_DATA_DIR=" + dataDir} {
		if !slices.Contains(cli, want) {
			t.Errorf("the printed audit command lacks %s: %q", want, m[0])
		}
	}
	res := MustRun(t, cli, "audit", "--project", "42", "-o", "json")
	if res.code != 0 {
		t.Fatalf("tswgate audit: %v", res)
	}
	var page auditPage
	if err := json.Unmarshal([]byte(res.stdout), &page); err != nil {
		t.Fatalf("tswgate audit -o json: %v\n%s", err, res.stdout)
	}
	for _, ev := range page.Events {
		role, ok := want[ev.TokenID]
		if !ok {
			t.Errorf("unexpected event %+v", ev)
			continue
		}
		if ev.Action != "token.create" || ev.ActorKind != auth.ActorSystem || ev.Outcome != auth.OutcomeOK ||
			ev.ProjectID != quickstartProject || !strings.HasPrefix(ev.Detail, role+" token ") || ev.Time.IsZero() {
			t.Errorf("event of %s = %+v, want a token.create by the system with detail %q…", ev.TokenID, ev, role+" token")
		}
		delete(want, ev.TokenID)
	}
	if len(want) != 0 {
		t.Errorf("no token.create event for %v in %+v", want, page.Events)
	}

	res = MustRun(t, cli, "audit", "--project", "42")
	if res.code != 0 || strings.Contains(res.stdout, "no audit events") || strings.Count(res.stdout, "token.create") != 2 {
		t.Errorf("tswgate audit --project 42: %v", res)
	}
}

// TestQuickstartTLS: quickstart --tls serves HTTPS and HTTP/2 with a
// self-signed certificate that the printed curl commands trust.
func TestQuickstartTLS(t *testing.T) {
	dataDir := t.TempDir()
	environ := []string{"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_ADMIN_ADDR=127.0.0.1:0",
		"TSWGATE_METRICS_ADDR=", "TSWGATE_DATA_DIR=" + dataDir, "TSWGATE_LOG_LEVEL=error"}
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"quickstart", "--tls"}, environ, stdout, stderr) }()
	defer func() { cancel(); <-done }()
	re := regexp.MustCompile(`curl -s --cacert (\S+) -H "Authorization: Bearer \$OWNER" "(https://localhost:\d+/v2/Instance\?ProjectId=42)"`)
	ownerRe := regexp.MustCompile(`(?m)^\s*export OWNER=(\S+)$`)
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for !re.MatchString(stdout.String()) || !ownerRe.MatchString(stdout.String()) {
		select {
		case <-stdout.Changed():
		case code := <-done:
			t.Fatalf("quickstart exited with %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		case <-timeout.C:
			t.Fatalf("no curl command with --cacert in time:\n%s", stdout)
		}
	}
	m, owner := re.FindStringSubmatch(stdout.String()), ownerRe.FindStringSubmatch(stdout.String())[1]
	pemData, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	req, _ := http.NewRequest("GET", m[2], nil)
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("%s over %s", resp.Status, resp.Proto)
	}
}

// mustQuickstartOutput runs the quickstart with environ until it has
// printed its instructions, and returns them; the quickstart is stopped
// when the test ends.
func mustQuickstartOutput(t *testing.T, environ []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"quickstart"}, environ, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("quickstart did not return after its context was cancelled")
		}
	})
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case <-stdout.Changed():
		case code := <-done:
			t.Fatalf("quickstart exited with %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		case <-timeout.C:
			t.Fatalf("quickstart did not print its instructions in time\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	}
	return stdout.String()
}

// TestQuickstartListenersOff: with the admin and metrics listeners off
// (their addresses empty) the quickstart prints no address it does not
// serve and no CLI command, which needs the admin API, but says how to
// turn the admin API on; the Owner token's own calls are still offered,
// unless self-service is off too.
func TestQuickstartListenersOff(t *testing.T) {
	base := []string{"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_ADMIN_ADDR=", "TSWGATE_METRICS_ADDR=", "TSWGATE_LOG_LEVEL=error"}
	out := mustQuickstartOutput(t, append(base, "TSWGATE_DATA_DIR="+t.TempDir()))
	for _, bad := range []string{"http:// ", "http:///", "go run ./cmd/tswgate token", "go run ./cmd/tswgate audit", "/console/   (sign in with the admin key"} {
		if strings.Contains(out, bad) {
			t.Errorf("quickstart with the admin and metrics listeners off prints %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"TSWGATE_ADMIN_ADDR=127.0.0.1:8081", "/tswgate/v1/tokens"} {
		if !strings.Contains(out, want) {
			t.Errorf("quickstart with the admin listener off does not print %q:\n%s", want, out)
		}
	}
	out = mustQuickstartOutput(t, append(base, "TSWGATE_DATA_DIR="+t.TempDir(), "TSWGATE_SELF_SERVICE=false"))
	if strings.Contains(out, "/tswgate/v1/tokens") || strings.Contains(out, "Manage tokens") {
		t.Errorf("quickstart with the admin API and self-service off offers to manage tokens:\n%s", out)
	}
}

// TestQuickstartPrintedCommandsWork runs the CLI commands the quickstart
// prints, as printed (its environment assignments included): they
// succeed, and the revoke line names the Accounting token, which is
// refused afterwards.
func TestQuickstartPrintedCommandsWork(t *testing.T) {
	out := mustQuickstartOutput(t, []string{
		"TSWGATE_LISTEN_ADDR=127.0.0.1:0", "TSWGATE_ADMIN_ADDR=127.0.0.1:0", "TSWGATE_METRICS_ADDR=127.0.0.1:0",
		"TSWGATE_DATA_DIR=" + t.TempDir(), "TSWGATE_LOG_LEVEL=error",
	})
	acct := regexp.MustCompile(`(?m)^\s*export ACCOUNTING=(\S+)$`).FindStringSubmatch(out)
	gw := regexp.MustCompile(`(?m)^\s*gateway\s+(http://\S+)$`).FindStringSubmatch(out)
	lines := regexp.MustCompile(`(?m)^  ((?:\S+=\S+ )*)go run \./cmd/tswgate ([^#\n]*?)\s*(?:#.*)?$`).FindAllStringSubmatch(out, -1)
	if acct == nil || gw == nil || len(lines) < 3 {
		t.Fatalf("quickstart output lacks the tokens, the gateway or the CLI commands:\n%s", out)
	}
	acctID, _, _ := strings.Cut(acct[1], ":")
	revoked := false
	for _, l := range lines {
		args := strings.Fields(l[2])
		res := MustRun(t, strings.Fields(l[1]), args...)
		if res.code != 0 {
			t.Errorf("printed command %q: %v", l[0], res)
		}
		revoked = revoked || slices.Equal(args, []string{"token", "revoke", acctID})
	}
	if !revoked {
		t.Fatalf("quickstart prints no revoke of the Accounting token %s:\n%s", acctID, out)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	MustBeRefused(t, MustDo(t, c, MustNewRequest(t, "GET", gw[1]+"/v2/Invoice", acct[1], nil)), auth.CodeTokenRevoked)
}
