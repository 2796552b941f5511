package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a TCP upstream whose every connection is served by fn.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
}

func newRawUpstream(t *testing.T, fn func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// readHead reads one request head, returning its lines, or nil at EOF.
func readHead(br *bufio.Reader) []string {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil
		}
		if l == "\r\n" {
			return lines
		}
		lines = append(lines, strings.TrimSuffix(l, "\r\n"))
	}
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func get(t *testing.T, c *Client, method, target string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	return c.RoundTrip(req)
}

// mustGet GETs target through c and reads the whole answer.
func mustGet(t *testing.T, c *Client, target string) string {
	t.Helper()
	resp, err := get(t, c, "GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return string(b)
}

// TestClientWritesTheRequestAsGiven: request line, Host and framing are
// exactly what the request says, byte for byte.
func TestClientWritesTheRequestAsGiven(t *testing.T) {
	heads := make(chan []string, 4)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			h := readHead(br)
			if h == nil {
				return
			}
			if cl := headValue(h, "Content-Length"); cl != "" && cl != "0" {
				_, _ = io.CopyN(io.Discard, br, 4)
			}
			if headValue(h, "Transfer-Encoding") == "chunked" {
				_, _ = io.Copy(io.Discard, httputil.NewChunkedReader(br))
			}
			heads <- h
			_, _ = io.WriteString(c, okAnswer)
		}
	})
	c := NewClient(TransportOptions{})
	defer c.Close()
	for _, tc := range []struct {
		method, target string
		body           io.Reader
		wantLine       string
		want, notWant  []string
	}{
		{"GET", "/v2/a%2Fb/x?Tag=a;b&q=%zz", nil, "GET /v2/a%2Fb/x?Tag=a;b&q=%zz HTTP/1.1", nil, []string{"Content-Length", "Transfer-Encoding"}},
		{"POST", "/v2/Instance", nil, "POST /v2/Instance HTTP/1.1", []string{"Content-Length: 0"}, []string{"Transfer-Encoding"}},
		{"POST", "/v2/Instance", strings.NewReader("abcd"), "POST /v2/Instance HTTP/1.1", []string{"Content-Length: 4"}, []string{"Transfer-Encoding"}},
		{"POST", "/v2/Instance", io.MultiReader(strings.NewReader("abcd")), "POST /v2/Instance HTTP/1.1", []string{"Transfer-Encoding: chunked"}, []string{"Content-Length"}},
	} {
		req, err := http.NewRequest(tc.method, up.url()+tc.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = http.Header{"X-A": {"1"}}
		u := req.URL
		if tc.body != nil {
			req.Body = io.NopCloser(tc.body)
			if sr, ok := tc.body.(*strings.Reader); ok {
				req.ContentLength = int64(sr.Len())
			}
		}
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		readAll(t, resp)
		h := <-heads
		if h[0] != tc.wantLine || !contains(h, "Host: "+u.Host) || !contains(h, "X-A: 1") {
			t.Errorf("%s %s: upstream got %q", tc.method, tc.target, h)
		}
		for _, w := range tc.want {
			if !contains(h, w) {
				t.Errorf("%s %s: no %q in %q", tc.method, tc.target, w, h)
			}
		}
		for _, n := range tc.notWant {
			if headValue(h, n) != "" {
				t.Errorf("%s %s: unexpected %s in %q", tc.method, tc.target, n, h)
			}
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("the upstream saw %d connections, want 1 (keep-alive)", n)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func headValue(lines []string, name string) string {
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// TestClientRefusesFieldsAParserCouldMisread: a field that would split a
// header line, or a name that is no token, is refused and nothing is sent.
func TestClientRefusesFieldsAParserCouldMisread(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) { readHead(br) })
	c := NewClient(TransportOptions{})
	defer c.Close()
	for name, h := range map[string]http.Header{
		"CRLF in value":  {"X-A": {"1\r\nX-Tsw-Project-Id: 7"}},
		"LF in value":    {"X-A": {"1\nX-B: 2"}},
		"NUL in value":   {"X-A": {"a\x00b"}},
		"space in name":  {"X A": {"1"}},
		"colon in name":  {"X:A": {"1"}},
		"leading space":  {"X-A": {" 1"}},
		"trailing space": {"X-A": {"1 "}},
	} {
		req, _ := http.NewRequest("GET", up.url()+"/v2/x", nil)
		req.Header = h
		if _, err := c.RoundTrip(req); !errors.Is(err, errBadField) {
			t.Errorf("%s: err = %v, want errBadField", name, err)
		}
	}
	req, _ := http.NewRequest("GET", up.url()+"/v2/x", nil)
	req.Method = "GE T"
	if _, err := c.RoundTrip(req); err == nil {
		t.Error("a method with a space was sent")
	}
}

// countRequest reads one request (a 4-byte body, if any), counting it in
// seen; false at the connection's end.
func countRequest(br *bufio.Reader, seen *atomic.Int32) bool {
	h := readHead(br)
	if h == nil {
		return false
	}
	seen.Add(1)
	if cl := headValue(h, "Content-Length"); cl != "" && cl != "0" {
		_, _ = io.CopyN(io.Discard, br, 4)
	}
	return true
}

// staleOnce is an upstream that answers the first request of each
// connection and then closes it, like one whose keep-alive timed out;
// it counts the requests it read.
func staleOnce(t *testing.T, closed chan<- struct{}, seen *atomic.Int32) *rawUpstream {
	return newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if !countRequest(br, seen) {
			return
		}
		_, _ = io.WriteString(c, okAnswer)
		c.Close()
		closed <- struct{}{}
	})
}

// TestClientStaleConnection: a pooled connection the upstream closed is
// not used again; an idempotent request left unanswered on a reused
// connection is sent again on a new one, a POST never.
func TestClientStaleConnection(t *testing.T) {
	t.Run("GET after the upstream closed the idle connection", func(t *testing.T) {
		closed, seen := make(chan struct{}, 4), new(atomic.Int32)
		up := staleOnce(t, closed, seen)
		c := NewClient(TransportOptions{})
		defer c.Close()
		for range 2 {
			mustGet(t, c, up.url()+"/v2/x")
			<-closed
		}
		if seen.Load() != 2 || up.conns.Load() != 2 {
			t.Errorf("upstream read %d requests on %d connections, want 2 on 2", seen.Load(), up.conns.Load())
		}
	})
	t.Run("POST on a connection found closed", func(t *testing.T) {
		c, up, seen := pooledThenClosed(t)
		resp, err := get(t, c, "POST", up.url()+"/v2/x", strings.NewReader("abcd"))
		if err != nil {
			t.Fatalf("POST after the upstream closed the idle connection: %v", err)
		}
		readAll(t, resp)
		if seen.Load() != 2 {
			t.Errorf("upstream read %d requests, want 2", seen.Load())
		}
	})
	t.Run("GET unanswered on a reused connection is sent again", func(t *testing.T) {
		var seen atomic.Int32
		up := dropsSecond(t, &seen)
		c := NewClient(TransportOptions{})
		defer c.Close()
		for range 2 {
			mustGet(t, c, up.url()+"/v2/x")
		}
		if seen.Load() != 3 || up.conns.Load() != 2 {
			t.Errorf("upstream read %d requests on %d connections, want 3 on 2", seen.Load(), up.conns.Load())
		}
	})
	t.Run("POST never sent twice", func(t *testing.T) {
		// The upstream reads the second request on a connection and
		// closes it unanswered: the POST may have been applied, so it
		// must fail rather than be sent again.
		var seen atomic.Int32
		up := dropsSecond(t, &seen)
		c := NewClient(TransportOptions{})
		defer c.Close()
		mustGet(t, c, up.url()+"/v2/x")
		req, _ := http.NewRequest("POST", up.url()+"/v2/x", strings.NewReader("abcd"))
		if _, err := c.RoundTrip(req); err == nil {
			t.Fatal("a POST the upstream never answered succeeded?")
		}
		if seen.Load() != 2 || up.conns.Load() != 1 {
			t.Errorf("upstream read %d requests on %d connections, want 2 on 1 (the POST once)", seen.Load(), up.conns.Load())
		}
	})
}

// dropsSecond is an upstream that reads the second request on each
// connection and closes it without an answer, counting requests read.
func dropsSecond(t *testing.T, seen *atomic.Int32) *rawUpstream {
	return newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if !countRequest(br, seen) {
				return
			}
			if i == 1 {
				return // read, and closed without an answer
			}
			_, _ = io.WriteString(c, okAnswer)
		}
	})
}

// pooledThenClosed returns a Client holding one idle connection that the
// upstream has closed since, the upstream and its request count.
func pooledThenClosed(t *testing.T) (*Client, *rawUpstream, *atomic.Int32) {
	t.Helper()
	closed, seen := make(chan struct{}, 4), new(atomic.Int32)
	up := staleOnce(t, closed, seen)
	c := NewClient(TransportOptions{})
	t.Cleanup(c.Close)
	mustGet(t, c, up.url()+"/v2/x")
	<-closed
	return c, up, seen
}

// TestClientAnswers: interim answers are skipped, a protocol switch is
// refused, a body cut short is an error and the connection is not reused.
func TestClientAnswers(t *testing.T) {
	answers := map[string]string{
		"/interim": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okAnswer,
		"/switch":  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/short":   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\n\r\n",
	}
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			h := readHead(br)
			if h == nil {
				return
			}
			path := strings.Fields(h[0])[1]
			_, _ = io.WriteString(c, answers[path])
			if path == "/short" || path == "/switch" {
				return
			}
		}
	})
	c := NewClient(TransportOptions{})
	defer c.Close()
	resp, err := get(t, c, "GET", up.url()+"/interim", nil)
	if err != nil || resp.StatusCode != 200 || readAll(t, resp) != "ok" {
		t.Fatalf("interim answers: %v %v", resp, err)
	}
	if _, err := get(t, c, "GET", up.url()+"/switch", nil); err == nil {
		t.Error("a 101 was passed on")
	}
	resp, err = get(t, c, "GET", up.url()+"/short", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a body cut short read as complete")
	}
	resp.Body.Close()
	resp, err = get(t, c, "GET", up.url()+"/chunked", nil)
	if err != nil || readAll(t, resp) != "ok" || resp.Trailer.Get("X-T") != "v" {
		t.Fatalf("chunked answer with a trailer: %v %v", resp, err)
	}
}

// TestClientTimeoutAndCancel: no answer within ResponseHeaderTimeout is a
// timeout; a request whose context ends stops waiting with that error.
func TestClientTimeoutAndCancel(t *testing.T) {
	got := make(chan struct{}, 4)
	release := make(chan struct{})
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		readHead(br)
		got <- struct{}{}
		<-release
	})
	defer close(release)
	c := NewClient(TransportOptions{ResponseHeaderTimeout: 50 * time.Millisecond})
	defer c.Close()
	_, err := get(t, c, "GET", up.url()+"/v2/x", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	<-got
	c2 := NewClient(TransportOptions{})
	defer c2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	req, _ := http.NewRequestWithContext(ctx, "GET", up.url()+"/v2/x", nil)
	if _, err := c2.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestClientEarlyAnswer: an upstream that answers before reading a large
// body is heard, not turned into an error.
func TestClientEarlyAnswer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	defer up.Close()
	c := NewClient(TransportOptions{})
	defer c.Close()
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 8<<20))) // no length: chunked
	resp, err := get(t, c, "POST", up.URL+"/v2/x", body)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// TestClientTLSAndPool: an https upstream is reached over TLS with
// HTTP/1.1, and the pool keeps no more idle connections than allowed.
func TestClientTLSAndPool(t *testing.T) {
	var proto atomic.Value
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		_, _ = io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.StartTLS()
	defer up.Close()
	roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := NewClient(TransportOptions{TLS: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 2})
	defer c.Close()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := get(t, c, "GET", up.URL+"/v2/x", nil)
			if err != nil {
				t.Error(err)
				return
			}
			readAll(t, resp)
		}()
	}
	close(start)
	wg.Wait()
	if p, _ := proto.Load().(string); p != "HTTP/1.1" {
		t.Errorf("upstream saw %q, want HTTP/1.1", p)
	}
	c.mu.Lock()
	n := len(c.idle)
	c.mu.Unlock()
	if n > 2 {
		t.Errorf("%d idle connections kept, want at most 2", n)
	}
	// Sequential requests reuse a pooled TLS connection (what TLS 1.3
	// sends after the handshake is no reason to drop one).
	before := conns.Load()
	for range 3 {
		mustGet(t, c, up.URL+"/v2/x")
	}
	if opened := conns.Load() - before; opened != 0 {
		t.Errorf("%d new TLS connections for 3 sequential requests, want 0", opened)
	}
}
