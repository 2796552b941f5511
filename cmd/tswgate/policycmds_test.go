package main

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// TestPolicyClearIsOneCall: "policy clear" asks the admin API once, to
// delete the policy, and "policy set" once, to replace it: one change,
// one audit event, one announcement each.
func TestPolicyClearIsOneCall(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true,"message":"ok","policy":{"project_id":42}}`))
	}))
	defer api.Close()
	env := []string{"TSWGATE_ADMIN_URL=" + api.URL, "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "clear", "--project", "42"}, "DELETE /v1/projects/42/policy"},
		{[]string{"policy", "set", "--project", "42", "--max-lifetime", "90d"}, "PUT /v1/projects/42/policy"},
	} {
		mu.Lock()
		calls = nil
		mu.Unlock()
		if res := MustRun(t, env, tc.args...); res.code != 0 {
			t.Fatalf("tswgate %v: %v", tc.args, res)
		}
		mu.Lock()
		if !slices.Equal(calls, []string{tc.want}) {
			t.Errorf("tswgate %v called %q, want only %q", tc.args, calls, tc.want)
		}
		mu.Unlock()
	}
}
