package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// A token made by a token lists its lineage's limit beside its own, and
// the headers give the one with the least left.
func TestRateLimitHeadersLineage(t *testing.T) {
	s := &auth.LimitStatus{
		Enabled: true, Allowed: true, Rate: 1, Limit: 10, Remaining: 9, Reset: time.Second,
		Lineage: auth.ProjectLimitStatus{Enabled: true, Rate: 1, Limit: 10, Remaining: 2, Reset: 8 * time.Second},
	}
	h := http.Header{}
	setRateLimitHeaders(h, s)
	want := map[string]string{
		"Ratelimit-Limit":     "10",
		"Ratelimit-Remaining": "2",
		"Ratelimit-Reset":     "8",
		"Ratelimit-Policy":    `"token";q=10;w=10, "lineage";q=10;w=10`,
		"Ratelimit":           `"token";r=9;t=1, "lineage";r=2;t=8`,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// With a project limit too, all three, the project's last.
	s.Project = auth.ProjectLimitStatus{Enabled: true, Rate: 5, Limit: 50, Remaining: 1, Reset: 10 * time.Second}
	h = http.Header{}
	setRateLimitHeaders(h, s)
	if got, want := h.Get("Ratelimit-Policy"), `"token";q=10;w=10, "lineage";q=10;w=10, "project";q=50;w=10`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got := h.Get("Ratelimit-Remaining"); got != "1" {
		t.Errorf("RateLimit-Remaining = %q, want the project's 1", got)
	}
}

// A refusal by the lineage is rate_limited, with a message naming the
// lineage.
func TestRefuseLineageLimited(t *testing.T) {
	v := &auth.Verdict{
		Code: auth.CodeRateLimited, Token: &auth.Token{Role: auth.RoleOwner}, RetryAfter: 3 * time.Second,
		Limit: auth.LimitStatus{Enabled: true, Over: true, Lineage: auth.ProjectLimitStatus{Enabled: true, Over: true}},
	}
	w := httptest.NewRecorder()
	refuseVerdict(w, v)
	var env envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusTooManyRequests || env.Code != "rate_limited" || env.Message != auth.LineageLimitedMessage ||
		w.Header().Get("Retry-After") != "3" || w.Header().Get(HeaderErrorCode) != "rate_limited" {
		t.Fatalf("got %d %+v %v", w.Code, env, w.Header())
	}
	// The token's own refusal keeps its message.
	v.Limit.Lineage.Over = false
	w = httptest.NewRecorder()
	refuseVerdict(w, v)
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Message != auth.CodeRateLimited.Message() {
		t.Fatalf("own refusal: %+v %v", env, err)
	}
}
