package main

import (
	"net/http"
	"strings"

	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/console"
)

// consolePrefix is where the admin listener serves the web console.
const consolePrefix = "/console"

// adminHandler is the admin listener's handler: the token API, and the web
// console at /console/ unless TSWGATE_CONSOLE is off. Every other path goes
// to the API as it is (no ServeMux path cleaning in front of it).
func adminHandler(cfg config.Config, api http.Handler) http.Handler {
	if !cfg.Console {
		return api
	}
	page := http.StripPrefix(consolePrefix, console.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == consolePrefix || strings.HasPrefix(p, consolePrefix+"/") {
			page.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// mountConsole serves the console at prefix+"/" on mux (prefix without a
// trailing slash, e.g. "/tswgate/console") and redirects prefix to it. The
// page calls the token API at the prefix's parent + "v1/tokens"
// ("/tswgate/v1/tokens"), so mount it beside the API it manages.
func mountConsole(mux *http.ServeMux, prefix string) {
	h := http.StripPrefix(prefix, console.Handler())
	mux.Handle(prefix, h)
	mux.Handle(prefix+"/", h)
}
