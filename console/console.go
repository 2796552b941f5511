// Package console is tswgate's web console: one page, served by the gateway
// itself, to sign in with an admin key (or an Owner token) and list,
// generate, deactivate, activate, rotate and revoke a project's API tokens
// through the token API.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// framework, no build step, nothing loaded from another host. It finds the
// token API from its own address: mounted at <base>console/, it calls
// <base>v1/tokens (so /console/ on the admin listener uses /v1/tokens, and
// /tswgate/console/ uses /tswgate/v1/tokens).
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every response: only this origin's
// scripts, styles, images and API (no inline script or style, no other
// host), no framing, no form submissions, no string-to-DOM sinks.
const ContentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
	// noStore marks the page itself (never cached); the other assets are
	// revalidated with their ETag.
	noStore bool
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Files returns the names and contents of the embedded assets (for tests
// and audits).
func Files() map[string][]byte {
	out := map[string][]byte{}
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(p, "assets/")] = b
		return nil
	})
	return out
}

// Handler serves the console. It answers GET and HEAD for "/" (the page),
// "/index.html" and the page's assets, relative to wherever it is mounted:
// mount it with http.StripPrefix, e.g.
//
//	mux.Handle("/console/", http.StripPrefix("/console", console.Handler()))
//	mux.Handle("/console", http.StripPrefix("/console", console.Handler()))
//
// A request for the mount point without its slash ("/console", seen here as
// an empty path) is redirected to it with one ("console/", relative, so
// that it holds behind a proxy that adds a path prefix).
func Handler() http.Handler {
	files := map[string]*asset{}
	for name, body := range Files() {
		sum := sha256.Sum256(body)
		files["/"+name] = &asset{
			body:        body,
			contentType: contentTypes[path.Ext(name)],
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
			noStore:     name == "index.html",
		}
	}
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "" {
			redirectToSlash(w, r)
			return
		}
		a := files[r.URL.Path]
		if a == nil {
			h.Set("Cache-Control", "no-store")
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", a.contentType)
		if a.noStore {
			h.Set("Cache-Control", "no-store")
		} else {
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", a.etag)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// redirectToSlash answers a request for the mount point without its
// trailing slash with a relative redirect to the same name with one.
func redirectToSlash(w http.ResponseWriter, r *http.Request) {
	u, err := url.ParseRequestURI(r.RequestURI)
	name := ""
	if err == nil {
		name = path.Base(u.EscapedPath())
	}
	if name == "" || name == "/" || name == "." {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	loc := "./" + name + "/"
	if u.RawQuery != "" {
		loc += "?" + u.RawQuery
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}
