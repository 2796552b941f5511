package main

import (
	"net/http"
	"strings"

	"github.com/tswgate/tswgate/console"
)

// Where the web console is served: on the admin listener beside the token
// API (/v1/…), and on the public listener beside the self-service API
// (/tswgate/v1/…). The page calls the API at its prefix's parent.
const (
	consolePrefix       = "/console"
	publicConsolePrefix = selfServicePrefix + consolePrefix
)

// withConsole serves the web console at prefix/ (redirecting prefix to it)
// and passes every other path to next as it is (no ServeMux path cleaning
// in front of it). With enabled false it is next.
func withConsole(enabled bool, prefix string, next http.Handler) http.Handler {
	if !enabled {
		return next
	}
	page := http.StripPrefix(prefix, console.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == prefix || strings.HasPrefix(p, prefix+"/") {
			page.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
