package edge

import (
	"net/http"
	"strconv"
	"time"
)

// HSTS wraps h so that every answer over TLS carries
// Strict-Transport-Security with maxAge (RFC 6797; not over plain HTTP,
// where the header means nothing). A zero maxAge returns h as it is.
func HSTS(h http.Handler, maxAge time.Duration, includeSubdomains bool) http.Handler {
	if maxAge <= 0 {
		return h
	}
	v := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	if includeSubdomains {
		v += "; includeSubDomains"
	}
	value := []string{v}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header()["Strict-Transport-Security"] = value
		}
		h.ServeHTTP(w, r)
	})
}
