package main

// The public listener's fast path (internal/h1) against net/http alone:
// the same raw requests, sent to a gateway with TSWGATE_FAST_PATH on and
// to one with it off, get the same answers and send the same requests
// upstream; and the connection-level behaviour clients rely on is the
// same.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/proxy"
)

// fastPathModes are the settings of the two gateways compared.
var fastPathModes = [2]string{"TSWGATE_FAST_PATH=true", "TSWGATE_FAST_PATH=false"}

// rawAnswer is what a client and the upstream see of one answer.
type rawAnswer struct {
	Status   int
	Code     string // the refusal envelope's code; "" when proxied
	Close    bool
	Upstream []recordedRequest // what reached the upstream for the exchange
}

// rawExchange writes raw to addr and reads n answers (the head of each,
// its body, and the refusal code if it is one).
func rawExchange(t *testing.T, addr, raw string, n int) []rawAnswer {
	t.Helper()
	br := sendRaw(t, addr, raw)
	out := make([]rawAnswer, n)
	for i := range out {
		resp := readAnswer(t, br, "")
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading answer %d's body: %v", i+1, err)
		}
		out[i] = rawAnswer{Status: resp.StatusCode, Close: resp.Close}
		if resp.Header.Get(proxy.HeaderRequestID) != "" && strings.Contains(string(body), `"code"`) {
			_, out[i].Code = MustEnvelope(t, &response{Status: resp.StatusCode, Header: resp.Header, Body: body})
		}
	}
	return out
}

// sendRaw writes raw on a new connection to addr and returns the reader
// of its answers; the connection is closed when the test ends.
func sendRaw(t *testing.T, addr, raw string) *bufio.Reader {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing %q: %v", raw, err)
	}
	return bufio.NewReader(c)
}

// readAnswer reads the next final answer (past any 1xx) to a request of
// method ("" for GET).
func readAnswer(t *testing.T, br *bufio.Reader, method string) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	return resp
}

// since returns the requests the upstream received after the first n,
// less the fields that differ between gateways by design (token id,
// request id, identity assertion).
func (u *recordingUpstream) since(n int) []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []recordedRequest
	for _, r := range u.reqs[n:] {
		h := r.Header.Clone()
		for _, k := range []string{proxy.HeaderTokenID, proxy.HeaderRequestID, proxy.HeaderAssertion} {
			delete(h, k)
		}
		out = append(out, recordedRequest{Method: r.Method, RequestURI: r.RequestURI, Header: h, Body: r.Body})
	}
	return out
}

func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// fastPathCases are raw requests; "{cred}" stands for a valid owner
// credential of project 42; answers is how many answers each gets.
var fastPathCases = []struct {
	name, raw string
	answers   int
}{
	{"plain GET", "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"escapes and params", "GET /v2/Instance;x=1/a%2Fb/%2e%2E/c?ProjectId=42&a=%20&ProjectId=43 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"empty query", "GET /v2/Instance? HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"bad escape", "GET /v2/Instance%zz HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"host forms", "GET /v2/Instance HTTP/1.1\r\nHost: [::1]:8080\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"host with a path", "GET /v2/Instance HTTP/1.1\r\nHost: gw/x\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"lower-case method", "get /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"POST with leading zeros", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: application/json\r\nContent-Length: 0016\r\n\r\n{\"projectId\":42}", 1},
	{"POST other project", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"projectId\":43}", 1},
	{"GET with a body", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Length: 5\r\n\r\nhello", 1},
	{"connection list", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nConnection: keep-alive, Close\r\n\r\n", 1},
	{"connection naming a field", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nConnection: X-Foo\r\nX-Foo: 1\r\n\r\n", 1},
	{"spoofed fields", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nX_Tsw_Project_Id: 1\r\nX-Forwarded-For: 10.0.0.1\r\nX-HTTP-Method-Override: DELETE\r\nForwarded: for=1.2.3.4\r\n\r\n", 1},
	{"two credentials", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nauthorization: Bearer {cred}\r\n\r\n", 1},
	{"pragma", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nPragma: no-cache\r\n\r\n", 1},
	{"many fields", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n" + strings.Repeat("X-Pad: 1\r\n", 80) + "\r\n", 1},
	{"no credential", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\n\r\n", 1},
	{"two hosts", "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nhost: other\r\nAuthorization: Bearer {cred}\r\n\r\n", 1},
	{"two lengths", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 1},
	{"framing read two ways", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1},
	{"body that looks like a request", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: text/plain\r\nContent-Length: 37\r\n\r\nGET /v2/Secret HTTP/1.1\r\nHost: gw\r\n\r\n" +
		"GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 2},
	{"pipelined, then handed over", "GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n" +
		"POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"projectId\":42}\r\n0\r\n\r\n" +
		"GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\n\r\n", 3},
	{"HTTP/1.0 chunked", "POST /v2/SshKey HTTP/1.0\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n", 1},
	{"expect continue", "POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {cred}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 16\r\n\r\n{\"projectId\":42}", 1},
}

// TestE2EFastPathParity sends each raw request to a gateway with the fast
// path and to one without: same statuses, refusal codes and closes, and
// the same requests reach the upstream.
func TestE2EFastPathParity(t *testing.T) {
	var ups [2]*recordingUpstream
	var gws [2]*testGateway
	var creds [2]string
	for i, mode := range fastPathModes {
		ups[i] = MustStartUpstream(t, nil)
		gws[i] = MustStartGateway(t, ups[i].URL, mode)
		creds[i] = gws[i].MustCreateToken(t, testProject, "owner", "fast-path-parity").Token
	}
	for _, c := range fastPathCases {
		var got [2][]rawAnswer
		for i, g := range gws {
			before := ups[i].count()
			got[i] = rawExchange(t, g.Addr("public"), strings.ReplaceAll(c.raw, "{cred}", creds[i]), c.answers)
			got[i][0].Upstream = ups[i].since(before)
		}
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Errorf("%s:\nfast path %+v\nnet/http  %+v", c.name, got[0], got[1])
		}
	}
}

// TestE2EEarlyAnswerToLargeUpload: a large upload refused before its
// body is in (no credential; a body too large to check its project)
// gets its refusal, "Connection: close", and then a clean close (no reset
// that can cost the client the answer), with the fast path and without.
// (The gateway forwards only bodies it has read whole, so an upstream's
// early answer leaves none of the client's body unread.)
func TestE2EEarlyAnswerToLargeUpload(t *testing.T) {
	const n = 4 << 20
	up := MustStartUpstream(t, nil)
	for _, mode := range fastPathModes {
		g := MustStartGateway(t, up.URL, mode)
		cred := g.MustCreateToken(t, testProject, "owner", "upload").Token
		for _, c := range []struct{ authz, code string }{
			{"", "missing_token"},
			{"Authorization: Bearer " + cred + "\r\n", "body_too_large"},
		} {
			head := fmt.Sprintf("POST /v2/SshKey HTTP/1.1\r\nHost: gw\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.authz, n)
			resp, body, next := uploadAndRead(t, g.Addr("public"), head, n)
			_, code := MustEnvelope(t, &response{Status: resp.StatusCode, Header: resp.Header, Body: body})
			if code != c.code || !resp.Close {
				t.Errorf("%s: %d %s close=%t, want %s and close", mode, resp.StatusCode, code, resp.Close, c.code)
			}
			if !errors.Is(next, io.EOF) {
				t.Errorf("%s, %s: after the answer the connection gave %v, want io.EOF", mode, c.code, next)
			}
		}
	}
}

// uploadAndRead sends head and a body of n bytes (from another goroutine,
// as a client that writes its whole request before reading), reads the
// answer, and returns it, its body, and what the connection gives next:
// io.EOF after a clean close.
func uploadAndRead(t *testing.T, addr, head string, n int) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = io.WriteString(c, head+strings.Repeat(" ", n))
	}()
	defer func() {
		_ = c.Close()
		<-wrote
	}()
	br := bufio.NewReader(c)
	resp := readAnswer(t, br, "")
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	_, err = br.ReadByte()
	return resp, body, err
}

// TestE2EClientLeavingStopsUpstream: a client leaving while the upstream
// is slow stops the upstream call and is logged as client_closed, with
// the fast path and without; also when it leaves after the request
// head's deadline has passed (ReadHeaderTimeout made short here).
func TestE2EClientLeavingStopsUpstream(t *testing.T) {
	arrived, stopped := make(chan struct{}, 1), make(chan struct{}, 1)
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			stopped <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	}))
	for _, mode := range fastPathModes {
		access := newSyncBuffer()
		g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, AccessLog: access,
			Env: []string{mode, "TSWGATE_READ_HEADER_TIMEOUT=100ms"}})
		cred := g.MustCreateToken(t, testProject, "owner", "leaving").Token
		c, err := net.DialTimeout("tcp", g.Addr("public"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /v2/Instance HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+cred+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-arrived
		time.AfterFunc(time.Second, func() { _ = c.Close() }) // past the head's deadline
		select {
		case <-stopped:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: the upstream call went on after the client left", mode)
		}
		if err := g.ShutdownOnce(context.Background()); err != nil { // flushes the access log
			t.Fatal(err)
		}
		if log := access.String(); !strings.Contains(log, `"status":499`) || !strings.Contains(log, `"code":"client_closed"`) {
			t.Errorf("%s: access log %q, want status 499, client_closed", mode, log)
		}
	}
}

// upstreamAnswers answers, by the "answer" query parameter, the ways an
// API can: lengths, chunks, trailers, no body, streams, closes, breaks.
var upstreamAnswers = map[string]http.HandlerFunc{
	"length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "11")
		_, _ = io.WriteString(w, `{"ok":true}`)
	},
	"chunked": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"a":"`+strings.Repeat("x", 5000))
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, `"}`)
	},
	"trailers": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "42")
	},
	"nocontent": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
	"notmodified": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"1"`)
		w.WriteHeader(http.StatusNotModified)
	},
	"events": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			_, _ = fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	},
	"close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	},
	"hints": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "after hints")
	},
	"broken": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000")
		_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	},
	"broken-chunked": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	},
}

// clientView is what a client sees of an answer, less what changes from
// one request to the next.
type clientView struct {
	Status           int
	Header, Trailer  http.Header
	Body             string
	BodyErr          bool // the body broke off
	ContentLength    int64
	TransferEncoding []string
	Close            bool
}

// TestE2EFastPathAnswers relays each kind of upstream answer, to GET and
// HEAD, through a gateway with the fast path and one without: the client
// sees the same.
func TestE2EFastPathAnswers(t *testing.T) {
	up := MustStartUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamAnswers[r.URL.Query().Get("answer")](w, r)
	}))
	var gws [2]*testGateway
	var creds [2]string
	for i, mode := range fastPathModes {
		gws[i] = MustStartGateway(t, up.URL, mode)
		creds[i] = gws[i].MustCreateToken(t, testProject, "owner", "fast-path-answers").Token
	}
	for answer := range upstreamAnswers {
		path := "/v2/Instance?ProjectId=42&answer=" + answer
		for _, method := range []string{"GET", "HEAD"} {
			var got [2]clientView
			for i, g := range gws {
				got[i] = viewAnswer(t, g.Addr("public"), method+" "+path+" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+creds[i]+"\r\n\r\n", method)
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Errorf("%s %s:\nfast path %+v\nnet/http  %+v", method, path, got[0], got[1])
			}
		}
	}
}

// viewAnswer sends raw and reads the final answer as a client does.
func viewAnswer(t *testing.T, addr, raw, method string) clientView {
	t.Helper()
	resp := readAnswer(t, sendRaw(t, addr, raw), method)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		body = nil // how much of a broken-off body came depends on buffering
	}
	h := resp.Header.Clone()
	for _, k := range []string{"Date", proxy.HeaderRequestID} {
		delete(h, k)
	}
	return clientView{Status: resp.StatusCode, Header: h, Trailer: resp.Trailer, Body: string(body), BodyErr: err != nil,
		ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding, Close: resp.Close}
}
