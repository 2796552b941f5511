package main

// The edge, read one way: what a client can send that the gateway and an
// HTTP/1.1 upstream (or a front end) could read two ways is refused, the
// same way whichever server of the public listener (the fast path or
// net/http) reads it, and on the admin and metrics listeners too.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/proxy"
)

// edgeAnswer is what a client reads of one answer on a raw connection.
type edgeAnswer struct {
	Status int
	Code   string // X-Tsw-Error-Code
	Close  bool
	Proto  string
}

// readEdgeAnswers reads n answers from br.
func readEdgeAnswers(t *testing.T, br *bufio.Reader, n int) []edgeAnswer {
	t.Helper()
	out := make([]edgeAnswer, n)
	for i := range out {
		resp := readAnswer(t, br, "")
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("reading answer %d's body: %v", i+1, err)
		}
		out[i] = edgeAnswer{resp.StatusCode, resp.Header.Get(proxy.HeaderErrorCode), resp.Close, resp.Proto}
	}
	return out
}

// mustBeClosed checks that the server closed the connection after the
// answers read from br.
func mustBeClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if b, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the connection is still open after the answers (read %q, %v)", b, err)
	}
}

// rawQueries are raw query strings with a byte outside RFC 3986's query
// characters: HTTP/1.1 and HTTP/2 both carry them, net/http passes them
// on as they are, and readers after the gateway escape, drop or decode
// them differently.
var rawQueries = []string{
	`ProjectId=42&x="`, "ProjectId=42&x=<b>", `ProjectId=42&x=\`, "ProjectId=42&x=^", "ProjectId=42&x=`",
	"ProjectId=42&x={}", "ProjectId=42&x=|", "ProjectId=42&x=\xc3\xa9", "Project\xc4\xb1d=42", "ProjectId=42&\xff=1",
}

// TestE2EQueryOutsideRFC3986: a query with such a byte unescaped is
// refused (400 invalid_query) and never reaches the upstream, over
// HTTP/1.1 with the fast path and without, and over h2c; escaped, it is
// proxied byte for byte.
func TestE2EQueryOutsideRFC3986(t *testing.T) {
	up := MustStartUpstream(t, nil)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	h2cClient := &http.Client{Transport: h2c, Timeout: 10 * time.Second}
	for _, mode := range fastPathModes {
		g := MustStartGateway(t, up.URL, mode, "TSWGATE_H2C=true")
		cred := g.MustCreateToken(t, testProject, "owner", "raw-query").Token
		for _, q := range rawQueries {
			before := up.Hits()
			raw := "GET /v2/Instance?" + q + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + cred + "\r\n\r\n"
			a := readEdgeAnswers(t, sendRaw(t, g.Addr("public"), raw), 1)[0]
			if a.Status != http.StatusBadRequest || a.Code != "invalid_query" {
				t.Errorf("%s, HTTP/1.1, %q: %+v, want 400 invalid_query", mode, q, a)
			}
			req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", cred, nil)
			req.URL.RawQuery = q
			resp, err := h2cClient.Do(req)
			if err != nil {
				t.Fatalf("h2c, %q: %v", q, err)
			}
			resp.Body.Close()
			if resp.Proto != "HTTP/2.0" || resp.StatusCode != http.StatusBadRequest || resp.Header.Get(proxy.HeaderErrorCode) != "invalid_query" {
				t.Errorf("%s, h2c, %q: %s %s %q, want 400 invalid_query", mode, q, resp.Proto, resp.Status, resp.Header.Get(proxy.HeaderErrorCode))
			}
			if up.Hits() != before {
				t.Errorf("%s, %q: the upstream got the request", mode, q)
			}
		}
		const escaped = "ProjectId=42&x=%22%3Cb%3E%5C%5E%60%7B%7D%7C%C3%A9&y[0]=-._~!$'()*+,;:@/?"
		raw := "GET /v2/Instance?" + escaped + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + cred + "\r\n\r\n"
		if a := readEdgeAnswers(t, sendRaw(t, g.Addr("public"), raw), 1)[0]; a.Status != http.StatusOK || a.Code != "" {
			t.Errorf("%s: the escaped query got %+v, want it proxied", mode, a)
		}
		if got := up.MustLast(t).RequestURI; got != "/v2/Instance?"+escaped {
			t.Errorf("%s: the upstream got %q", mode, got)
		}
	}
}

// TestE2EPrefaceAfterRequests: HTTP/2's preface is valid only as a
// connection's first bytes. After an HTTP/1.1 request on the same
// connection it is refused (400 invalid_framing) and the connection
// closed, with the fast path and without, with h2c on or off: the rest
// of the connection is never read as HTTP/2.
func TestE2EPrefaceAfterRequests(t *testing.T) {
	up := MustStartUpstream(t, nil)
	for _, mode := range fastPathModes {
		for _, h2c := range []string{"TSWGATE_H2C=true", "TSWGATE_H2C=false"} {
			g := MustStartGateway(t, up.URL, mode, h2c)
			cred := g.MustCreateToken(t, testProject, "owner", "preface").Token
			get := "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + cred + "\r\n\r\n"
			for _, first := range []string{get, "GET /tswgate/v1/tokens HTTP/1.1\r\nHost: gw\r\n\r\n"} {
				br := sendRaw(t, g.Addr("public"), first+"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
				got := readEdgeAnswers(t, br, 2)
				if got[0].Close || got[0].Status == http.StatusBadRequest {
					t.Errorf("%s, %s: the request before the preface got %+v", mode, h2c, got[0])
				}
				if a := got[1]; a.Status != http.StatusBadRequest || a.Code != "invalid_framing" || !a.Close || a.Proto != "HTTP/1.1" {
					t.Errorf("%s, %s: the preface after %q got %+v, want 400 invalid_framing and a close", mode, h2c, strings.Fields(first)[1], a)
				}
				mustBeClosed(t, br)
			}
		}
	}
}

// TestE2EAdminAndMetricsWatchFraming: the admin and metrics listeners
// (clear text, net/http) refuse requests on a connection where a header
// block with faulty framing was seen, and close it, as the public one
// does: a front end reading the framing another way cannot smuggle a
// request to them. Sound requests, and "OPTIONS *", are served as before.
func TestE2EAdminAndMetricsWatchFraming(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	faulty := []string{
		"POST %s HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET %s HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	}
	for _, l := range []struct{ role, path, key string }{
		{"admin", "/v1/tokens?project_id=42", g.AdminKey()},
		{"metrics", "/healthz", ""},
	} {
		auth := ""
		if l.key != "" {
			auth = "Authorization: Bearer " + l.key + "\r\n"
		}
		sound := "GET " + l.path + " HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"
		if a := readEdgeAnswers(t, sendRaw(t, g.Addr(l.role), sound+"OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n"), 2); a[0].Status != http.StatusOK ||
			a[0].Close || a[1].Status != http.StatusOK || a[1].Close {
			t.Errorf("%s: sound requests got %+v", l.role, a)
		}
		for _, f := range faulty {
			br := sendRaw(t, g.Addr(l.role), fmt.Sprintf(f, l.path)+sound)
			a := readEdgeAnswers(t, br, 1)[0]
			if a.Status != http.StatusBadRequest || a.Code != "invalid_framing" || !a.Close {
				t.Errorf("%s, %q: %+v, want 400 invalid_framing and a close", l.role, strings.SplitN(f, "\r\n", 2)[0], a)
			}
			mustBeClosed(t, br)
		}
	}
}

// edgeParityCases are raw exchanges at the edge of the fast path's
// grammar; "{cred}" stands for an owner credential of project 42.
var edgeParityCases = []struct {
	name, raw string
	answers   int
}{
	{"raw bytes in the query", "GET /v2/Instance?ProjectId=42&x=<\"\xc3\xa9\"> HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"preface after a request", edgeGet + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 2},
	{"preface after a POST and CRLF", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"projectId\":42}\r\n" +
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 2},
	{"PRI with a path", edgeGet + "PRI /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 2},
	{"PRI first, with fields", "PRI * HTTP/2.0\r\nHost: gw\r\n\r\n", 1},
	{"OPTIONS * after a request", edgeGet + "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n" + edgeGet, 3},
	{"HTTP/1.2", "GET /v2/Instance?ProjectId=42 HTTP/1.2\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n" + edgeGet, 2},
	{"obs-text in a field", "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nX-A: \xe9\r\n\r\n", 1},
	{"underscore length", "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent_Length: 5\r\n\r\n" + edgeGet, 2},
}

// edgeGet is a request the fast path reads and the upstream answers.
const edgeGet = "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n"

// TestE2EEdgeParity: with h2c on, the same bytes get the same answers
// (statuses, codes, closes) and send the same requests upstream with the
// fast path as with net/http alone.
func TestE2EEdgeParity(t *testing.T) {
	var ups [2]*recordingUpstream
	var gws [2]*testGateway
	var creds [2]string
	for i, mode := range fastPathModes {
		ups[i] = MustStartUpstream(t, nil)
		gws[i] = MustStartGateway(t, ups[i].URL, mode, "TSWGATE_H2C=true")
		creds[i] = gws[i].MustCreateToken(t, testProject, "owner", "edge-parity").Token
	}
	for _, c := range edgeParityCases {
		var got [2][]rawAnswer
		for i, g := range gws {
			before := ups[i].count()
			got[i] = rawExchange(t, g.Addr("public"), strings.ReplaceAll(c.raw, "{cred}", creds[i]), c.answers)
			got[i][0].Upstream = ups[i].since(before)
		}
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Errorf("%s:\nfast path %+v\nnet/http  %+v", c.name, got[0], got[1])
		}
		t.Logf("%s: %+v", c.name, got[0])
	}
}
