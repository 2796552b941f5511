package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/console"
)

// TestConsoleOnAdminListener: the admin listener serves the console at
// /console/ (and redirects /console to it) beside the token API, and not
// at all with TSWGATE_CONSOLE=false; the public listener never serves it.
func TestConsoleOnAdminListener(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)

	r := g.MustGet(t, g.AdminURL+"/console/")
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Generate New Token") {
		t.Fatalf("GET /console/: %s", r)
	}
	for k, v := range map[string]string{
		"Content-Security-Policy": console.ContentSecurityPolicy,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("GET /console/: %s = %q, want %q", k, got, v)
		}
	}
	if r := g.MustGet(t, g.AdminURL+"/console/console.js"); r.Status != http.StatusOK {
		t.Errorf("GET /console/console.js: %s", r)
	}

	noRedirect := &http.Client{Transport: g.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	r = MustDo(t, noRedirect, MustNewRequest(t, http.MethodGet, g.AdminURL+"/console", "", nil))
	if r.Status != http.StatusFound || r.Header.Get("Location") != "./console/" {
		t.Errorf("GET /console: %d Location %q, want 302 ./console/", r.Status, r.Header.Get("Location"))
	}

	// The token API is unchanged beside it.
	if _, err := g.Admin.List(t.Context(), testProject); err != nil {
		t.Errorf("token API beside the console: %v", err)
	}
	r = g.MustGet(t, g.AdminURL+"/v1/tokens?project_id=42")
	if r.Status != http.StatusUnauthorized {
		t.Errorf("token API without a key: %s", r)
	}

	// Not on the public listener: that is the proxy's (deny by default).
	r = g.MustGet(t, g.URL+"/console/")
	if r.Status == http.StatusOK || strings.Contains(string(r.Body), "Generate New Token") {
		t.Errorf("public listener serves the console: %s", r)
	}

	off := MustStartGateway(t, up.URL, "TSWGATE_CONSOLE=false")
	r = off.MustGet(t, off.AdminURL+"/console/")
	if r.Status == http.StatusOK || strings.Contains(string(r.Body), "Generate New Token") { // the API's 401
		t.Errorf("TSWGATE_CONSOLE=false: GET /console/: %s", r)
	}
}
