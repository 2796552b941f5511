package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestE2EBodyDoesNotPoisonTheConnection: behind a balancer that pools
// HTTP/1.1 connections, one client's request body may hold bytes that look
// like a header block with faulty framing. The framing watch judges heads
// only, so the request is answered for what it is and the next request on
// the connection (another client's) is served, with the fast path and
// without: the body is skipped by its Content-Length or its chunks.
func TestE2EBodyDoesNotPoisonTheConnection(t *testing.T) {
	fake := "\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
	body := strings.Repeat("x", 64<<10-len(fake)) + fake
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	// Chunks whose data looks like a chunk-size line and a trailer.
	tricky := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chunked), chunked)
	const next = "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n"
	cases := []struct {
		name    string
		raw     string
		answers int
	}{
		{"content-length", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body + next, 2},
		{"chunked", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n" + chunked + next, 2},
		{"chunked in chunks", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n" + tricky + next, 2},
		// A connection the fast path hands over (chunked), then a
		// request with a Content-Length body.
		{"after a hand-over", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
			"POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body + next, 3},
	}
	up := MustStartUpstream(t, nil)
	for _, mode := range fastPathModes {
		g := MustStartGateway(t, up.URL, mode)
		cred := g.MustCreateToken(t, testProject, "owner", "body-framing").Token
		for _, c := range cases {
			got := rawExchange(t, g.Addr("public"), strings.ReplaceAll(c.raw, "{cred}", cred), c.answers)
			for i, a := range got[:len(got)-1] {
				if a.Status != 401 || a.Code != "missing_token" || a.Close {
					t.Errorf("%s, %s: answer %d %+v, want 401 missing_token on a kept connection", mode, c.name, i+1, a)
				}
			}
			if last := got[len(got)-1]; last.Status != 200 || last.Code != "" {
				t.Errorf("%s, %s: the next request on the connection got %+v, want it proxied (200)", mode, c.name, last)
			}
		}
	}
}
