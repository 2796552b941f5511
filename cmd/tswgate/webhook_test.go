package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/webhook"
	"github.com/tswgate/tswgate/webhook/webhookapi"
)

// MustStartWebhookAPI serves the webhook API alone over embedded stores,
// for the CLI, and returns its URL and admin key.
func MustStartWebhookAPI(t *testing.T) (string, string) {
	t.Helper()
	const key = "cli-webhook-test-admin-key-0123456789abcdef"
	dir := t.TempDir()
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(dir, "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := webhook.OpenFileRegistry(filepath.Join(dir, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := webhook.OpenFileQueue(webhook.FileQueueOptions{Path: filepath.Join(dir, "webhooks.queue")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	z, err := tokenapi.NewAuthorizer(tokenapi.Options{Store: st, AdminKeys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhookapi.New(webhookapi.Options{Endpoints: reg, Queue: q, Auth: z, Audit: st, AllowPrivateOperator: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, key
}

func TestCLIWebhookCommands(t *testing.T) {
	url, key := MustStartWebhookAPI(t)
	env := []string{"TSWGATE_ADMIN_URL=" + url, "TSWGATE_ADMIN_KEY=" + key}

	res := MustRun(t, env, "webhook", "create", "--project", "42", "--url", "https://hooks.example.com/tsw",
		"--types", "token.revoked,token.leaked", "-o", "json")
	if res.code != 0 {
		t.Fatalf("webhook create: %v", res)
	}
	var ep webhookapi.Endpoint
	if err := json.Unmarshal([]byte(res.stdout), &ep); err != nil || !strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Types) != 2 {
		t.Fatalf("webhook create -o json: %+v, %v", ep, err)
	}
	res = MustRun(t, env, "webhook", "list", "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, ep.ID) || strings.Contains(res.stdout, "whsec_") {
		t.Fatalf("webhook list: %v", res)
	}
	res = MustRun(t, env, "webhook", "test", ep.ID, "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, "dlv_") {
		t.Fatalf("webhook test: %v", res)
	}
	res = MustRun(t, env, "webhook", "deliveries", ep.ID, "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, "webhook.test") || !strings.Contains(res.stdout, "pending") {
		t.Fatalf("webhook deliveries: %v", res)
	}
	dlv := strings.Fields(strings.Split(res.stdout, "\n")[1])[0]
	res = MustRun(t, env, "webhook", "deliveries", ep.ID, dlv, "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, "Webhook-id: msg_") {
		t.Fatalf("webhook deliveries ID DELIVERY: %v", res)
	}
	// A pending delivery is attempted already: replay refuses it.
	res = MustRun(t, env, "webhook", "replay", ep.ID, dlv, "--project", "42")
	if res.code != 1 || !strings.Contains(res.stderr, "delivery_in_flight") {
		t.Fatalf("webhook replay of a pending delivery: %v", res)
	}
	res = MustRun(t, env, "webhook", "rotate", ep.ID, "--project", "42", "--grace", "1h")
	if res.code != 0 || !strings.Contains(res.stdout, "whsec_") || strings.Contains(res.stdout, ep.Secret) {
		t.Fatalf("webhook rotate: %v", res)
	}
	// The operator's endpoints are apart from the project's.
	res = MustRun(t, env, "webhook", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "(no webhook endpoints)") {
		t.Fatalf("webhook list (operator): %v", res)
	}
	res = MustRun(t, env, "webhook", "delete", ep.ID)
	if res.code != 1 || !strings.Contains(res.stderr, "endpoint_not_found") {
		t.Fatalf("webhook delete of a project's endpoint as the operator's: %v", res)
	}
	if res = MustRun(t, env, "webhook", "delete", ep.ID, "--project", "42"); res.code != 0 {
		t.Fatalf("webhook delete: %v", res)
	}
	for _, args := range [][]string{{"webhook"}, {"webhook", "frob"}, {"webhook", "create"}, {"webhook", "test"},
		{"webhook", "replay", "ep_x"}, {"webhook", "list", "-o", "yaml"}} {
		if res := MustRun(t, env, args...); res.code != 2 {
			t.Errorf("%s: %v, want exit 2", strings.Join(args, " "), res)
		}
	}
	if res := MustRun(t, env, "webhook", "-h"); res.code != 0 || !strings.Contains(res.stdout, "webhook deliveries") {
		t.Errorf("webhook -h: %v", res)
	}
}

// TestWebhookNotFoundSaysProject: an endpoint not found under the
// operator's endpoints (no --project) is reported with the hint that a
// project's endpoint needs --project.
func TestWebhookNotFoundSaysProject(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"success":false,"message":"No webhook endpoint has that id.","code":"endpoint_not_found"}`))
	}))
	defer api.Close()
	env := []string{"TSWGATE_ADMIN_URL=" + api.URL, "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, args := range [][]string{{"delete", "ep_x"}, {"deliveries", "ep_x"}, {"test", "ep_x"}, {"rotate", "ep_x"}} {
		res := MustRun(t, env, append([]string{"webhook"}, args...)...)
		if res.code != 1 || !strings.Contains(res.stderr, "--project") {
			t.Errorf("tswgate webhook %s: want exit 1 and a hint at --project: %v", strings.Join(args, " "), res)
		}
	}
	res := MustRun(t, env, "webhook", "delete", "ep_x", "--project", "42")
	if res.code != 1 || !strings.Contains(res.stderr, "webhook list --project 42") {
		t.Errorf("tswgate webhook delete --project 42: want a hint at the project's list: %v", res)
	}
}
