package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/console"
)

// mounted serves the console the way the gateway does: at prefix+"/", with
// prefix alone redirected.
func mounted(prefix string) http.Handler {
	mux := http.NewServeMux()
	h := http.StripPrefix(prefix, console.Handler())
	mux.Handle(prefix, h)
	mux.Handle(prefix+"/", h)
	mux.Handle("/", http.NotFoundHandler())
	return mux
}

func get(t *testing.T, h http.Handler, method, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConsoleServesAssetsWithSecurityHeaders(t *testing.T) {
	h := mounted("/console")
	for _, tt := range []struct {
		path, contentType, cache, contains string
	}{
		{"/console/", "text/html; charset=utf-8", "no-store", `<script src="console.js" defer></script>`},
		{"/console/index.html", "text/html; charset=utf-8", "no-store", "Generate New Token"},
		{"/console/console.js", "text/javascript; charset=utf-8", "no-cache", "v1/tokens"},
		{"/console/console.css", "text/css; charset=utf-8", "no-cache", "@media (max-width: 640px)"},
		{"/console/favicon.svg", "image/svg+xml", "no-cache", "<svg"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := get(t, h, http.MethodGet, tt.path)
			b := body(t, r)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", r.StatusCode, b)
			}
			want := map[string]string{
				"Content-Type":               tt.contentType,
				"Cache-Control":              tt.cache,
				"Content-Security-Policy":    console.ContentSecurityPolicy,
				"X-Frame-Options":            "DENY",
				"X-Content-Type-Options":     "nosniff",
				"Referrer-Policy":            "no-referrer",
				"Cross-Origin-Opener-Policy": "same-origin",
			}
			for k, v := range want {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(b, tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
		})
	}
}

func TestConsoleCSPIsStrict(t *testing.T) {
	csp := console.ContentSecurityPolicy
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "data:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
}

func TestConsoleRevalidatesAssets(t *testing.T) {
	h := mounted("/console")
	r := get(t, h, http.MethodGet, "/console/console.js")
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on console.js")
	}
	r = get(t, h, http.MethodGet, "/console/console.js", "If-None-Match", etag)
	if r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", r.StatusCode)
	}
	r = get(t, h, http.MethodHead, "/console/")
	if r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Errorf("HEAD: status %d", r.StatusCode)
	}
}

func TestConsoleRedirectsAndRefuses(t *testing.T) {
	for _, tt := range []struct {
		prefix, target string
		status         int
		location       string
	}{
		{"/console", "/console", http.StatusFound, "./console/"},
		{"/console", "/console?x=1", http.StatusFound, "./console/?x=1"},
		{"/tswgate/console", "/tswgate/console", http.StatusFound, "./console/"},
		{"/console", "/console/nope.js", http.StatusNotFound, ""},
		{"/console", "/console/assets/console.js", http.StatusNotFound, ""},
	} {
		r := get(t, mounted(tt.prefix), http.MethodGet, tt.target)
		if r.StatusCode != tt.status || r.Header.Get("Location") != tt.location {
			t.Errorf("GET %s: %d Location %q, want %d %q", tt.target, r.StatusCode, r.Header.Get("Location"), tt.status, tt.location)
		}
		if r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP", tt.target)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		r := get(t, mounted("/console"), m, "/console/")
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q, want 405 GET, HEAD", m, r.StatusCode, r.Header.Get("Allow"))
		}
	}
}

// TestConsoleAssetsAreSelfContained: no asset names another host (no CDN,
// no web font, no analytics), no inline script or style that the CSP would
// block, no DOM sink fed with strings, and nothing logs to the console.
func TestConsoleAssetsAreSelfContained(t *testing.T) {
	files := console.Files()
	for _, name := range []string{"index.html", "console.js", "console.css", "favicon.svg"} {
		if files[name] == nil {
			t.Errorf("asset %s missing", name)
		}
	}
	// The SVG namespace is an identifier, never fetched.
	const svgNS = `xmlns="http://www.w3.org/2000/svg"`
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	for name, b := range files {
		s := strings.ReplaceAll(string(b), svgNS, "")
		if m := url.FindString(s); m != "" {
			t.Errorf("%s refers to %q: assets must not load anything from elsewhere", name, m)
		}
		switch {
		case strings.HasSuffix(name, ".html"):
			for _, bad := range []*regexp.Regexp{
				regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`), // inline script
				regexp.MustCompile(`<style`),
				regexp.MustCompile(`\sstyle=`),
				regexp.MustCompile(`\son[a-z]+=`), // inline handlers
			} {
				if m := bad.FindString(s); m != "" {
					t.Errorf("%s has inline code the CSP forbids: %q", name, m)
				}
			}
		case strings.HasSuffix(name, ".js"):
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "console.log", "console.info", "console.debug", "localStorage", "setAttribute('style'", ".style."} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %s", name, bad)
				}
			}
		}
	}
}

// TestConsoleFormsHaveLabels: every input and select of the page has a
// <label for>.
func TestConsoleFormsHaveLabels(t *testing.T) {
	page := string(console.Files()["index.html"])
	ids := regexp.MustCompile(`<(?:input|select|textarea)[^>]*\sid="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(ids) < 6 {
		t.Fatalf("found %d inputs, expected the page's forms", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("input %q has no <label for>", m[1])
		}
	}
	if !strings.Contains(page, `<html lang="en">`) || !strings.Contains(page, `name="viewport"`) {
		t.Error("page lacks lang or viewport")
	}
}
