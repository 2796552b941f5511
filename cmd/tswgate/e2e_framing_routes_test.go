package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/internal/gateway"
	"github.com/tswgate/tswgate/proxy"
)

// TestE2EFaultyFramingOnEveryRoute: the public listener serves more than
// the proxy (the self-service API, the console, the public revocation and
// secret-scanning endpoints). A request with faulty framing is refused
// whichever of them it names, and so is every later request on its
// connection: otherwise a request smuggled past a front end that reads the
// framing the other way would be served by the routes beside the proxy.
func TestE2EFaultyFramingOnEveryRoute(t *testing.T) {
	const faulty = " HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	targets := []string{
		"POST " + gateway.SelfServicePrefix + "/v1/tokens",
		"GET " + gateway.PublicConsolePrefix + "/",
		"POST " + gateway.PublicRevokePath,
		"OPTIONS *", // net/http answers it before any handler, unless told not to
	}
	up := MustStartUpstream(t, nil)
	for _, mode := range fastPathModes {
		g := MustStartGateway(t, up.URL, mode)
		for _, target := range targets {
			method, _, _ := strings.Cut(target, " ")
			br := sendRaw(t, g.Addr("public"), target+faulty)
			resp := readAnswer(t, br, method)
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 400 || resp.Header.Get(proxy.HeaderErrorCode) != "invalid_framing" || !resp.Close {
				t.Errorf("%s, %s: got %d %q (close %v), want 400 invalid_framing and the connection closed",
					mode, target, resp.StatusCode, resp.Header.Get(proxy.HeaderErrorCode), resp.Close)
			}
		}
	}
}

// TestE2EOptionsStar: "OPTIONS *" on a sound connection is answered as
// net/http answers it (200, no body) on a kept connection, with a body too.
func TestE2EOptionsStar(t *testing.T) {
	const raw = "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n" +
		"OPTIONS * HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /v2/Instance HTTP/1.1\r\nHost: gw\r\n\r\n"
	up := MustStartUpstream(t, nil)
	for _, mode := range fastPathModes {
		g := MustStartGateway(t, up.URL, mode)
		br := sendRaw(t, g.Addr("public"), raw)
		for i := range 2 {
			resp := readAnswer(t, br, http.MethodOptions)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.ContentLength != 0 || len(body) != 0 || resp.Close {
				t.Errorf("%s: answer %d: %d, length %d, close %v; want 200, empty, kept", mode, i+1, resp.StatusCode, resp.ContentLength, resp.Close)
			}
		}
		if resp := readAnswer(t, br, ""); resp.StatusCode != 401 {
			t.Errorf("%s: the request after got %d, want 401", mode, resp.StatusCode)
		}
	}
}
