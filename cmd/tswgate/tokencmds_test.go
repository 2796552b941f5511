package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
