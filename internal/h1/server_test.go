package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// served records which server a handler ran under.
type served struct{ fast, fallback atomic.Int32 }

// startFast serves h on a loopback port with the fast path for targets
// under /v2/, and returns the address. Fallback runs the same handler.
func startFast(t *testing.T, h http.Handler, tune ...func(*Server)) (string, *served) {
	t.Helper()
	var seen served
	fb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.fallback.Add(1)
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	s := &Server{
		Fallback: fb,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.fast.Add(1)
			h.ServeHTTP(w, r)
		}),
		Route: func(target string) bool { return strings.HasPrefix(target, "/v2/") },
	}
	for _, f := range tune {
		f(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), &seen
}

// startStd serves h with net/http alone.
func startStd(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// exchange sends raw on a new connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int, method string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", len(out)+1, err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}

// summary is what a client sees of a response, less the Date.
type summary struct {
	Status           int
	Header, Trailer  http.Header
	Body             string
	ContentLength    int64
	TransferEncoding []string
	Close            bool
}

func summarize(resp *http.Response) summary {
	b, _ := io.ReadAll(resp.Body)
	h := resp.Header.Clone()
	delete(h, "Date")
	return summary{resp.StatusCode, h, resp.Trailer, string(b), resp.ContentLength, resp.TransferEncoding, resp.Close}
}

// handlers exercise the ResponseWriter the way the gateway's handlers do.
var handlers = map[string]http.HandlerFunc{
	"short body": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	},
	"sniffed type": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>hi</html>") },
	"no body":      func(w http.ResponseWriter, r *http.Request) {},
	"status only":  func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) },
	"204": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.WriteHeader(http.StatusNoContent)
		_, _ = io.WriteString(w, "abc")
	},
	"304": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotModified)
	},
	"long body, no length": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		_, _ = io.WriteString(w, strings.Repeat("y", 100))
	},
	"declared length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "6000")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, strings.Repeat("z", 6000))
	},
	"flushed stream": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: 2\n\n")
	},
	"trailers": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	},
	"asks to close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	},
	"echo body": func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s host=%s len=%d close=%t body=%s", r.Method, r.URL.Path, r.URL.RawQuery,
			r.Host, r.ContentLength, r.Close, b)
	},
	"header echo": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%q %q %q", r.Header["X-A"], r.Header["Cache-Control"], r.Header["Host"])
	},
	"bad field": func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Bad"] = []string{"a\r\nInjected: 1"}
		w.Header()["Bad Name"] = []string{"v"}
		_, _ = io.WriteString(w, "ok")
	},
}

var requests = []string{
	"GET /v2/x?y=1 HTTP/1.1\r\nHost: api\r\n\r\n",
	"HEAD /v2/x HTTP/1.1\r\nHost: api\r\n\r\n",
	"POST /v2/x HTTP/1.1\r\nHost: api\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
	"GET /v2/x HTTP/1.1\r\nHost: api\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\nPragma: no-cache\r\n\r\n",
}

// TestResponsesMatchNetHTTP runs each handler behind the fast path and
// behind net/http and compares what a client reads.
func TestResponsesMatchNetHTTP(t *testing.T) {
	for name, h := range handlers {
		fast, seen := startFast(t, h)
		std := startStd(t, h)
		for _, raw := range requests {
			method, _, _ := strings.Cut(raw, " ")
			a := summarize(exchange(t, fast, raw, 1, method)[0])
			b := summarize(exchange(t, std, raw, 1, method)[0])
			if !reflect.DeepEqual(a, b) {
				a.Body, b.Body = clip(a.Body), clip(b.Body)
				t.Errorf("%s, %q:\nfast path %+v\nnet/http  %+v", name, raw, a, b)
			}
		}
		if seen.fast.Load() != int32(len(requests)) || seen.fallback.Load() != 0 {
			t.Errorf("%s: fast path served %d, fallback %d; want %d, 0", name, seen.fast.Load(), seen.fallback.Load(), len(requests))
		}
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	addr, seen := startFast(t, handlers["echo body"])
	raw := "POST /v2/a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /v2/b?q HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /v2/c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nde"
	got := exchange(t, addr, raw, 3, "GET")
	want := []string{"POST /v2/a  host=h len=3 close=false body=abc", "GET /v2/b q host=h len=0 close=false body=",
		"POST /v2/c  host=h len=2 close=false body=de"}
	for i, resp := range got {
		if b := summarize(resp).Body; b != want[i] {
			t.Errorf("response %d: %q, want %q", i+1, b, want[i])
		}
	}
	if seen.fast.Load() != 3 {
		t.Errorf("fast path served %d requests, want 3", seen.fast.Load())
	}
}

// TestCRLFAfterPostIsSkipped: as net/http does, up to 4 CR or LF bytes
// after a POST's body are skipped, and the next request is the fast
// path's; after another method they are not.
func TestCRLFAfterPostIsSkipped(t *testing.T) {
	addr, seen := startFast(t, handlers["echo body"])
	raw := "POST /v2/a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n" +
		"GET /v2/b HTTP/1.1\r\nHost: h\r\n\r\n"
	got := exchange(t, addr, raw, 2, "GET")
	if b := summarize(got[1]).Body; b != "GET /v2/b  host=h len=0 close=false body=" {
		t.Errorf("the request after the CRLFs: %d %q", got[1].StatusCode, b)
	}
	if seen.fast.Load() != 2 || seen.fallback.Load() != 0 {
		t.Errorf("fast path served %d, net/http %d; want 2 and 0", seen.fast.Load(), seen.fallback.Load())
	}
	std := startStd(t, handlers["echo body"])
	for _, a := range []string{addr, std} {
		after := exchange(t, a, "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /v2/b HTTP/1.1\r\nHost: h\r\n\r\n", 2, "GET")
		if after[1].StatusCode != http.StatusBadRequest {
			t.Errorf("%s: CRLF after a GET answered %d, want 400 as net/http", a, after[1].StatusCode)
		}
	}
}

// TestUnreadBodyIsSkipped: a handler that does not read the body leaves
// the next request readable.
func TestUnreadBodyIsSkipped(t *testing.T) {
	addr, _ := startFast(t, handlers["short body"])
	raw := "POST /v2/a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789" +
		"GET /v2/b HTTP/1.1\r\nHost: h\r\n\r\n"
	if got := exchange(t, addr, raw, 2, "GET"); got[1].StatusCode != http.StatusOK {
		t.Errorf("second response: %d", got[1].StatusCode)
	}
}

// TestHandOver: a request outside the grammar or the route goes to
// net/http, with the rest of its connection.
func TestHandOver(t *testing.T) {
	addr, seen := startFast(t, handlers["echo body"])
	raw := "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /v2/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET /v2/c HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /other HTTP/1.1\r\nHost: h\r\n\r\n"
	got := exchange(t, addr, raw, 4, "GET")
	if b := summarize(got[1]).Body; b != "POST /v2/b  host=h len=-1 close=false body=abc" {
		t.Errorf("chunked request: %q", b)
	}
	if f, fb := seen.fast.Load(), seen.fallback.Load(); f != 1 || fb != 3 {
		t.Errorf("fast path served %d, fallback %d; want 1 and 3", f, fb)
	}
	_, seen = startFast(t, handlers["echo body"])
	addr2, seen2 := startFast(t, handlers["echo body"])
	exchange(t, addr2, "GET /tswgate/x HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET")
	if seen2.fast.Load() != 0 || seen2.fallback.Load() != 1 || seen.fast.Load() != 0 {
		t.Errorf("a target off the route: fast %d, fallback %d", seen2.fast.Load(), seen2.fallback.Load())
	}
}

// TestHandOverIsWrapped: handed-over connections pass through
// WrapFallback, so the framing watch sees them.
func TestHandOverIsWrapped(t *testing.T) {
	var wrapped atomic.Int32
	addr, _ := startFast(t, handlers["short body"], func(s *Server) {
		s.WrapFallback = func(ln net.Listener) net.Listener { return countingListener{ln, &wrapped} }
	})
	exchange(t, addr, "GET /v2/a HTTP/1.0\r\nHost: h\r\n\r\n", 1, "GET")
	if wrapped.Load() != 1 {
		t.Errorf("%d connections passed WrapFallback, want 1", wrapped.Load())
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestAbortBreaksTheResponse: a handler that panics with
// http.ErrAbortHandler mid-body leaves the client a cut-off answer.
func TestAbortBreaksTheResponse(t *testing.T) {
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 4000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the broken-off body: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestShutdownClosesIdle: Shutdown closes an idle keep-alive connection
// and returns.
func TestShutdownClosesIdle(t *testing.T) {
	fb := &http.Server{Handler: handlers["short body"]}
	s := &Server{Fallback: fb}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the idle connection is still open after Shutdown")
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

// clip shortens a body for a failure message.
func clip(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s... (%d bytes)", s[:40], len(s))
	}
	return s
}

// TestClientLeavingCancelsTheRequest: a client that closes its connection
// while a long request runs cancels the request's context, as with
// net/http.
func TestClientLeavingCancelsTheRequest(t *testing.T) {
	cancelled := make(chan struct{})
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(30 * time.Second):
		}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /v2/slow HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the request's context was not cancelled after its client left")
	}
}

// TestSlowAnswerKeepsTheConnection: a request watched for its client
// leaving, whose client stays, is answered and the connection serves the
// next request (pipelined while the first ran).
func TestSlowAnswerKeepsTheConnection(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
				t.Error("the first request was cancelled though its client stayed")
			}
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = io.WriteString(c, "GET /v2/one HTTP/1.1\r\nHost: h\r\n\r\n")
	time.AfterFunc(2*watchAfter, func() {
		_, _ = io.WriteString(c, "GET /v2/two HTTP/1.1\r\nHost: h\r\n\r\n")
		time.AfterFunc(watchAfter, func() { close(release) })
	})
	br := bufio.NewReader(c)
	for _, want := range []string{"/v2/one", "/v2/two"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b := summarize(resp).Body; b != want {
			t.Errorf("answer %q, want %q", b, want)
		}
	}
}

// TestSilentConnectionTimesOut: a connection that sends nothing is closed
// after ReadHeaderTimeout, not IdleTimeout, as with net/http; a head sent
// in pieces slower than that is cut off too.
func TestSilentConnectionTimesOut(t *testing.T) {
	addr, _ := startFast(t, handlers["short body"], func(s *Server) {
		s.Fallback.ReadHeaderTimeout = 200 * time.Millisecond
		s.Fallback.IdleTimeout = time.Hour
	})
	for _, send := range []string{"", "GET /v2/x HTTP/1.1\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(c, send)
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("after %q: the connection is still open (%v); the head timeout did not apply", send, err)
		}
		_ = c.Close()
	}
}

// TestAcceptErrorsAreRetried: a failing Accept (out of file descriptors,
// say) does not stop the server, as with net/http.
func TestAcceptErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: ln}
	flaky.fails.Store(3)
	s := &Server{Fallback: &http.Server{Handler: handlers["short body"]}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(flaky) }()
	got := exchange(t, ln.Addr().String(), "GET /v2/x HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET")
	if got[0].StatusCode != http.StatusOK {
		t.Errorf("status %d after failed accepts", got[0].StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

// flakyListener fails its first Accepts with an error like EMFILE's.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: errors.New("too many open files")}
	}
	return l.Listener.Accept()
}

func init() {
	handlers["odd trailers"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Trailer"] = []string{"X-Ok, Bad Name, Authorization"}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Ok", "1")
		w.Header()["Bad Name"] = []string{"v"}
		w.Header().Set("Authorization", "not a trailer")
		w.Header()[http.TrailerPrefix+"Bad Late"] = []string{"v"}
	}
}
