package main

import (
	"net/http"

	"github.com/tswgate/tswgate/config"
	"github.com/tswgate/tswgate/console"
)

// adminHandler is the admin listener's handler: the token API, and the web
// console at /console/ unless TSWGATE_CONSOLE is off.
func adminHandler(cfg config.Config, api http.Handler) http.Handler {
	if !cfg.Console {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mountConsole(mux, "/console")
	return mux
}

// mountConsole serves the console at prefix+"/" on mux (prefix without a
// trailing slash, e.g. "/console"), and redirects prefix to it. The page
// calls the token API at the prefix's parent + "v1/tokens", so mount it
// beside the API it manages.
func mountConsole(mux *http.ServeMux, prefix string) {
	h := http.StripPrefix(prefix, console.Handler())
	mux.Handle(prefix, h)
	mux.Handle(prefix+"/", h)
}
