package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/internal/gateway"
)

// TestTokenListEmptyNamesFilters: an empty list under filters says that
// no token matches them, not that the project has no tokens.
func TestTokenListEmptyNamesFilters(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true,"message":"","project_id":42,"tokens":[]}`))
	}))
	defer api.Close()
	env := []string{"TSWGATE_ADMIN_URL=" + api.URL, "TSWGATE_ADMIN_KEY=" + testAdminKey}
	res := MustRun(t, env, "token", "list", "--project", "42", "--status", "inactive", "--role", "owner")
	if res.code != 0 || !strings.Contains(res.stdout, "(no inactive owner tokens in project 42)") {
		t.Errorf("token list with filters, empty: %v", res)
	}
	res = MustRun(t, env, "token", "list", "--project", "42", "--role", "accounting")
	if res.code != 0 || !strings.Contains(res.stdout, "(no accounting tokens in project 42)") {
		t.Errorf("token list with a filter, empty: %v", res)
	}
	res = MustRun(t, env, "token", "list", "--project", "42")
	if res.code != 0 || !strings.Contains(res.stdout, "(no tokens in project 42)") {
		t.Errorf("token list, empty: %v", res)
	}
}

// TestInvalidAdminKeyNamesItsSource: an admin key the admin API refuses
// is reported with where it came from (the variable or the key file),
// never with the key itself.
func TestInvalidAdminKeyNamesItsSource(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"success":false,"message":"The admin key is not valid.","code":"invalid_admin_key"}`))
	}))
	defer api.Close()
	const key = "not-the-gateways-admin-key-0123456789"
	res := MustRun(t, []string{"TSWGATE_ADMIN_URL=" + api.URL, "TSWGATE_ADMIN_KEY=" + key}, "token", "list", "--project", "42")
	if res.code != 1 || !strings.Contains(res.stderr, "from TSWGATE_ADMIN_KEY") || strings.Contains(res.stderr, key) {
		t.Errorf("token list with a wrong TSWGATE_ADMIN_KEY: %v", res)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, gateway.AdminKeyFile), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = MustRun(t, []string{"TSWGATE_ADMIN_URL=" + api.URL, "TSWGATE_DATA_DIR=" + dir}, "webhook", "list")
	if res.code != 1 || !strings.Contains(res.stderr, filepath.Join(dir, gateway.AdminKeyFile)) || strings.Contains(res.stderr, key) {
		t.Errorf("webhook list with a stale key file: %v", res)
	}
}
