package main

import (
	"io"
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
