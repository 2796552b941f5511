package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// recordingUpstream records each request's raw request line and headers as
// net/http parsed them.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	bods []string
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, r)
		u.bods = append(u.bods, string(b))
		u.mu.Unlock()
		w.Write([]byte(`{"success":true,"message":""}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.reqs[len(u.reqs)-1], u.bods[len(u.bods)-1]
}

// rawRequest sends raw bytes on a new connection to addr and returns what
// came back until the server closed the connection or 2s passed.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestQueryForwardedByteForByte: the upstream gets the query exactly as
// the client sent it — also parameters net/url cannot parse, which
// ReverseProxy would otherwise drop.
func TestQueryForwardedByteForByte(t *testing.T) {
	up := newRecordingUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	many := strings.Repeat("a=1&", 10001) + "ProjectId=42"
	for _, q := range []string{
		"Tag=a;b&ProjectId=42",
		"x=%zz&ProjectId=42",
		"ProjectId=42&Tag=%E2%9C%93&empty=&flag",
		many,
	} {
		addr := strings.TrimPrefix(gw.URL, "http://")
		out := rawRequest(t, addr, "GET /v2/Invoice?"+q+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Fatalf("?%.40s: %.80q", q, out)
		}
		r, _ := up.last(t)
		if r.RequestURI != "/v2/Invoice?"+q {
			t.Errorf("sent ?%.60s, upstream got %.80s", q, r.RequestURI)
		}
	}
}

// TestOverrideHeadersDropped: headers that frameworks take for another
// method or URL, and client copies of X-Forwarded-*, never reach the
// upstream, in any letter case (spelt with "_", they are refused:
// TestUnderscoreFieldRefused).
func TestOverrideHeadersDropped(t *testing.T) {
	up := newRecordingUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	req, _ := http.NewRequest("GET", gw.URL+"/v2/Invoice", nil)
	for _, k := range []string{
		"X-HTTP-Method-Override", "X-Http-Method", "x-method-override", "X-HTTP-METHOD-OVERRIDE",
		"X-Original-URL", "X-Rewrite-Url", "X-Original-Method",
		"X-Forwarded-Prefix", "X-Forwarded-Host", "x-forwarded-for", "X-Forwarded-Port",
		"MS-ASPNETCORE-WINAUTHTOKEN", "Ms-Aspnetcore-Token", "X-Original-Host", "X-Original-For",
	} {
		req.Header[k] = []string{"DELETE /v2/Instance/1"}
	}
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, _ := up.last(t)
	for k, v := range r.Header {
		if strings.Contains(strings.Join(v, ","), "DELETE") {
			t.Errorf("the upstream got %s: %q", k, v)
		}
	}
	if r.Header.Get("X-Custom") != "kept" {
		t.Error("an ordinary header was dropped")
	}
	if r.Header.Get("X-Forwarded-For") == "" || r.Header.Get("X-Forwarded-Host") == "" {
		t.Errorf("the gateway's own X-Forwarded-* are missing: %v", r.Header)
	}
}

func TestDroppedHeader(t *testing.T) {
	for k, want := range map[string]bool{
		"X-Tsw-Project-Id": true, "x_tsw_token_id": true, "X-Tsw": false,
		"X-Http-Method-Override": true, "X-HTTP-Method": true, "X-Method-Override": true,
		"X-Original-Url": true, "X-Rewrite-Url": true, "X_original_method": true,
		"X-Forwarded-Prefix": true, "X-Forwarded-": false, "X-Forwarded": false,
		"X-Http-Method-Overrides": false, "Content-Type": false, "Authorization": false,
		"X-Client-Cert": true, "x_client_cert": true, "X-ARR-ClientCert": true, "Ms-Aspnetcore-Clientcert": true,
		"X-SSL-Client-Cert": true, "Ssl-Client-Cert": true, "X-Client-Certificate": true, "X-Client-Certs": false,
		"MS-ASPNETCORE-WINAUTHTOKEN": true, "Ms-Aspnetcore-Token": true, "ms_aspnetcore_event": true,
		"MS-ASPNETCORE-": false, "Ms-Aspnetcore": false,
		"X-Original-For": true, "X-Original-Host": true, "x_original_proto": true, "X-Original-Prefix": true,
		"X-Original": false, "X-Original-Content-Type": false,
	} {
		if got := droppedHeader(k); got != want {
			t.Errorf("droppedHeader(%q) = %v, want %v", k, got, want)
		}
	}
}

// TestExpectContinueAnsweredOnce: the client sees one 100 Continue (the
// gateway's), and the upstream is not asked for another.
func TestExpectContinueAnsweredOnce(t *testing.T) {
	up := newRecordingUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"projectId":42}`
	fmt.Fprintf(c, "POST /v2/Invoice HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", len(body))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	io.WriteString(c, body)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	rest, _ := io.ReadAll(br)
	if n := strings.Count(string(rest), "HTTP/1.1 100"); n != 0 {
		t.Fatalf("%d more 100 Continue after the first:\n%s", n, rest)
	}
	if !strings.Contains(string(rest), "HTTP/1.1 200") {
		t.Fatalf("no 200 answer:\n%s", rest)
	}
	r, got := up.last(t)
	if r.Header.Get("Expect") != "" || got != body {
		t.Fatalf("upstream got Expect %q and body %q", r.Header.Get("Expect"), got)
	}
}

// TestFaultyFramingRefused: an HTTP/1.0 request with
// Transfer-Encoding, or any with Transfer-Encoding and Content-Length, is
// refused and its connection closed, so a body read two ways is never read
// as a second request.
func TestFaultyFramingRefused(t *testing.T) {
	up := newRecordingUpstream(t)
	u, _ := url.Parse(up.URL)
	h, err := New(Options{Decider: deciderFunc(allow), Upstream: u})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: ConnContext}
	go srv.Serve(WatchFraming(ln))
	t.Cleanup(func() { srv.Close() })
	smuggled := "GET /v2/Invoice?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n"
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
	for _, te := range []string{
		"HTTP/1.0\r\nTransfer-Encoding: chunked", "HTTP/1.0\r\ntransfer-encoding:chunked", "HTTP/1.0\r\nTRANSFER-ENCODING : chunked",
		"HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", "HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
		// net/http serves every HTTP/1 minor version, reading the
		// framing as HTTP/1.1's.
		"HTTP/1.2\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", "HTTP/1.9\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
		// A field value that ends like a request line starts no new
		// request: the fields around it are of one header block.
		"HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Via: gw HTTP/1.1\r\nContent-Length: 5",
	} {
		raw := "POST /v2/Invoice " + te + "\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" + chunked
		out := rawRequest(t, ln.Addr().String(), raw)
		// net/http itself refuses a space before the colon.
		if !strings.HasPrefix(out, "HTTP/1.0 400 ") && !strings.HasPrefix(out, "HTTP/1.1 400 ") {
			t.Errorf("%s: got %.200q, want 400 invalid_framing", te, out)
		}
		if n := strings.Count("\n"+out, "\nHTTP/1."); n != 1 {
			t.Errorf("%s: %d answers on the connection, want 1:\n%s", te, n, out)
		}
	}
	up.mu.Lock()
	n := len(up.reqs)
	up.mu.Unlock()
	if n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
	// HTTP/1.0 without Transfer-Encoding, and HTTP/1.1 chunked, still work.
	if out := rawRequest(t, ln.Addr().String(), "GET /v2/Invoice HTTP/1.0\r\nHost: x\r\n\r\n"); !strings.Contains(out, " 200 ") {
		t.Errorf("plain HTTP/1.0: %.100q", out)
	}
	if out := rawRequest(t, ln.Addr().String(), "POST /v2/Invoice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"); !strings.Contains(out, " 200 ") {
		t.Errorf("HTTP/1.1 chunked: %.100q", out)
	}
}

// TestFramingWatch feeds the watch its input in every split.
func TestFramingWatch(t *testing.T) {
	for _, tc := range []struct {
		in     string
		faulty bool
	}{
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.0\nHost: x\ntransfer-encoding:\tchunked\n\n", true},
		{"POST / HTTP/1.0\r\nTransfer-Encoding" + strings.Repeat(" ", 40) + ": chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.0\r\nHost: x\r\n\r\nTransfer-Encoding: chunked\r\n", false},
		{"POST / HTTP/1.0\r\nX-Transfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.0\r\nTransfer-Encodings: x\r\n\r\n", false},
		{"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length : 4\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n", false},
		{"POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\n", false},
		{"POST / HTTP/1.2\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.9\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n", true},
		{"POST / HTTP/1.2\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		// A version net/http refuses: with Transfer-Encoding, faulty.
		{"POST / HTTP/1.x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.x\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Via: gw HTTP/1.1\r\nContent-Length: 4\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\nUser-Agent: x HTTP/1.9\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		// The version is the request line's, not a field's.
		{"POST / HTTP/1.1\r\nX-A: HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\nx HTTP/1.1\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nX-Via: gw HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		// Bodies are skipped, by Content-Length or by chunks: what they
		// hold is no header block.
		{"POST / HTTP/1.1\r\nContent-Length: 56\r\n\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nxPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n38\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		// The trailer section ends the body; after a POST, net/http skips
		// up to four CR or LF bytes.
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n\r\n\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		// A body net/http fails to read: the next request's start is unknown.
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", true},
		// Framing net/http refuses.
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: -4\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", false},
		// HTTP/2's preface (h2c): the rest is frames, any bytes at all.
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x10\x00\x01POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		// Not the preface: "PRI * HTTP/2.0" with fields is a request net/http reads as HTTP/1.
		{"PRI * HTTP/2.0\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"PRI * HTTP/2.0\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		// Not at the start of the connection.
		{"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
	} {
		for split := 0; split <= len(tc.in); split++ {
			c := &framingConn{}
			c.watch([]byte(tc.in[:split]))
			c.watch([]byte(tc.in[split:]))
			if got := c.faulty.Load(); got != tc.faulty {
				t.Errorf("%q split at %d: faulty %v, want %v", tc.in, split, got, tc.faulty)
				break
			}
		}
		c := &framingConn{}
		for i := 0; i < len(tc.in); i++ {
			c.watch([]byte{tc.in[i]})
		}
		if got := c.faulty.Load(); got != tc.faulty {
			t.Errorf("%q byte by byte: faulty %v, want %v", tc.in, got, tc.faulty)
		}
	}
}

// TestClientClosedIsNoOutage: a request whose client went away while it
// was decided is recorded as 499 client_closed, not as the decision's
// store_unavailable.
func TestClientClosedIsNoOutage(t *testing.T) {
	up := newRecordingUpstream(t)
	var access syncBuffer
	entered := make(chan struct{})
	d := deciderFunc(func(ctx context.Context, _ *auth.Request, _ time.Time) auth.Verdict {
		close(entered)
		<-ctx.Done()
		return auth.Verdict{Code: auth.CodeStoreUnavailable, Err: ctx.Err()}
	})
	var done sync.WaitGroup
	done.Add(1)
	u, _ := url.Parse(up.URL)
	h, err := New(Options{Decider: d, Upstream: u, AccessLog: NewJSONAccessLog(&access)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer done.Done()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v2/Invoice", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered")
	}
	done.Wait()
	line := access.String()
	if !strings.Contains(line, `"status":499`) || !strings.Contains(line, `"code":"client_closed"`) {
		t.Fatalf("access log %q, want status 499, code client_closed", line)
	}
}

// TestContentCodingLeftToClient: the gateway neither asks the upstream to
// compress on its own nor decompresses; the client's Accept-Encoding and
// the upstream's coded answer pass through as they are.
func TestContentCodingLeftToClient(t *testing.T) {
	up := newRecordingUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	for _, ae := range []string{"", "gzip"} {
		req, _ := http.NewRequest("GET", gw.URL+"/v2/Instance?ProjectId=42", nil)
		req.Header.Set("Authorization", "Bearer x")
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got, _ := up.last(t)
		if v := got.Header.Get("Accept-Encoding"); v != ae {
			t.Errorf("client Accept-Encoding %q reached the upstream as %q", ae, v)
		}
	}
}

// TestAnswerRelayed: the upstream's answer reaches the client as given —
// status, end-to-end fields, body, trailers, HEAD without a body — less
// the fields of one connection and any its Connection field names, with
// the gateway's request id.
func TestAnswerRelayed(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "secret")
		h.Set("X-End", "kept")
		h.Set("Keep-Alive", "timeout=5")
		h.Set(HeaderRequestID, "upstream-id")
		h.Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusCreated)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, "created")
		}
		h.Set("X-Checksum", "abc")
	}))
	defer up.Close()
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	for _, method := range []string{"GET", "HEAD"} {
		req, _ := http.NewRequest(method, gw.URL+"/v2/Invoice", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantBody := map[string]string{"GET": "created", "HEAD": ""}[method]
		if resp.StatusCode != http.StatusCreated || string(body) != wantBody || resp.Header.Get("X-End") != "kept" {
			t.Errorf("%s: %d %q %v", method, resp.StatusCode, body, resp.Header)
		}
		if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("%s: a field of the upstream connection reached the client: %v", method, resp.Header)
		}
		if id := resp.Header.Get(HeaderRequestID); id == "" || id == "upstream-id" {
			t.Errorf("%s: request id %q, want the gateway's", method, id)
		}
		if method == "GET" && resp.Trailer.Get("X-Checksum") != "abc" {
			t.Errorf("trailer lost: %v", resp.Trailer)
		}
	}
}

// TestStreamedAnswerFlushed: an answer without a length reaches the
// client piece by piece, not when it ends.
func TestStreamedAnswerFlushed(t *testing.T) {
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	defer up.Close()
	defer close(next)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	resp, err := http.Get(gw.URL + "/v2/Invoice")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	next <- struct{}{} // the first event arrived while the upstream still held the stream
}

// TestBrokenAnswerBreaksOff: an upstream answer cut short mid-body is cut
// short for the client too, never passed on as complete.
func TestBrokenAnswerBreaksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			readHead(br)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			c.Close()
		}
	}()
	gw := newHandler(t, deciderFunc(allow), "http://"+ln.Addr().String(), Options{})
	resp, err := http.Get(gw.URL + "/v2/Invoice")
	if err != nil {
		return // broken off before the head: also fine
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("the client read %q as a complete answer", b)
	}
}

// TestFramingWatchHalfCloses: a watched connection keeps its TCP
// half-close, which net/http uses before closing a connection whose
// request body it left unread (without it, the close resets the
// connection and the client can lose the answer).
func TestFramingWatchHalfCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wln := WatchFraming(ln)
	defer wln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	server, err := wln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cw, ok := server.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("a watched connection (%T) has no CloseWrite", server)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the client read %v after the half-close, want io.EOF", err)
	}
}
