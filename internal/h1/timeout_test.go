package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// timeouts sets the fallback server's timeouts, which the fast path
// applies too.
func timeouts(readHeader, read, idle time.Duration) func(*Server) {
	return func(s *Server) {
		s.Fallback.ReadHeaderTimeout, s.Fallback.ReadTimeout, s.Fallback.IdleTimeout = readHeader, read, idle
	}
}

// dialRaw opens a connection whose reads fail after a generous bound, so
// that a server that never closes it fails the test rather than hangs it.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// closedByServer reads c to its end and reports how it ended: nil when
// the server closed it, the read error (a timeout) otherwise.
func closedByServer(c net.Conn) error {
	_, err := io.Copy(io.Discard, c)
	return err
}

// TestSlowHeadWithoutReadHeaderTimeout: without ReadHeaderTimeout, the
// head must come within ReadTimeout, as with net/http.
func TestSlowHeadWithoutReadHeaderTimeout(t *testing.T) {
	addr, _ := startFast(t, handlers["short body"], timeouts(0, 50*time.Millisecond, 0))
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, "GET /v2/x HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	if err := closedByServer(c); err != nil {
		t.Errorf("a head that never ends kept its connection: %v", err)
	}
}

// TestBodyWithoutReadTimeout: without ReadTimeout a body may take longer
// than ReadHeaderTimeout, as with net/http: that bound is the head's.
func TestBodyWithoutReadTimeout(t *testing.T) {
	const rht = 50 * time.Millisecond
	got := make(chan struct{})
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(got)
		handlers["echo body"](w, r)
	}), timeouts(rht, 0, 0))
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, "POST /v2/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-got
	time.Sleep(3 * rht) // past the head's deadline, not awaiting anything
	if _, err := io.WriteString(c, "abc"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if s := summarize(resp); s.Status != http.StatusOK || s.Body != "POST /v2/x  host=h len=3 close=false body=abc" {
		t.Errorf("got %d %q", s.Status, s.Body)
	}
}

// TestKeepAliveWithoutIdleTimeout: without IdleTimeout and ReadTimeout a
// kept-alive connection waits for its next request however long the last
// answer took, as with net/http: the head's deadline does not linger.
func TestKeepAliveWithoutIdleTimeout(t *testing.T) {
	const rht = 50 * time.Millisecond
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/slow" {
			time.Sleep(3 * rht) // an answer that outlasts the head's deadline
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), timeouts(rht, 0, 0))
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	for _, path := range []string{"/v2/slow", "/v2/next"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: the server closed the kept-alive connection", path)
			}
			t.Fatalf("%s: %v", path, err)
		}
		if s := summarize(resp); s.Body != path {
			t.Errorf("%s: answer %q", path, s.Body)
		}
	}
}

// TestMaxHeaderBytes: a head longer than MaxHeaderBytes is not the fast
// path's to read, whole in one read or not: net/http judges it (431 when
// it is beyond net/http's own allowance).
func TestMaxHeaderBytes(t *testing.T) {
	addr, seen := startFast(t, handlers["short body"], func(s *Server) { s.Fallback.MaxHeaderBytes = 512 })
	long := "GET /v2/x HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("p", 6000) + "\r\n\r\n"
	if got := exchange(t, addr, long, 1, "GET")[0]; got.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d-byte head with MaxHeaderBytes 512: status %d, want 431", len(long), got.StatusCode)
	}
	if f := seen.fast.Load(); f != 0 {
		t.Errorf("the fast path served %d request(s) with a head over MaxHeaderBytes", f)
	}
}

// TestClientNotReading: an answer to a client that never reads it fails
// the handler's writes once WriteTimeout passes, and the connection is
// closed, as with net/http.
func TestClientNotReading(t *testing.T) {
	failed := make(chan error, 1)
	addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				failed <- err
				return
			}
		}
	}), func(s *Server) { s.Fallback.WriteTimeout = 50 * time.Millisecond })
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, "GET /v2/big HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !isTimeout(err) {
			t.Errorf("the write failed with %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writes to a client that does not read never failed")
	}
}

// TestBodyCutOff: a body that does not come within ReadTimeout fails the
// handler's read with a timeout, and one that ends before its
// Content-Length with io.ErrUnexpectedEOF, as with net/http.
func TestBodyCutOff(t *testing.T) {
	for _, end := range []string{"timeout", "close"} {
		failed := make(chan error, 1)
		addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			failed <- err
		}), timeouts(time.Second, 50*time.Millisecond, 0))
		c := dialRaw(t, addr)
		if _, err := io.WriteString(c, "POST /v2/x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab"); err != nil {
			t.Fatal(err)
		}
		if end == "close" {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		select {
		case err := <-failed:
			if end == "timeout" && !isTimeout(err) || end == "close" && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: reading the body gave %v", end, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a body that never came was waited for past ReadTimeout", end)
		}
	}
}

// TestSlowSecondHead: on a kept-alive connection, a next head that never
// ends is cut off after ReadHeaderTimeout, not IdleTimeout.
func TestSlowSecondHead(t *testing.T) {
	addr, _ := startFast(t, handlers["short body"], timeouts(50*time.Millisecond, 0, time.Hour))
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	for _, part := range []string{"GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n", "GET /v2/b HTTP/1.1\r\nHo"} {
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := http.ReadResponse(br, nil); err != nil || summarize(resp).Status != http.StatusOK {
		t.Fatalf("the first answer: %v", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Errorf("a second head that never ends kept its connection: %v", err)
	}
}

func TestDeadlineSlack(t *testing.T) {
	base := time.Unix(1000, 0)
	cases := []struct {
		a, b    time.Time
		timeout time.Duration
		want    bool
	}{
		{base, base.Add(500 * time.Millisecond), 2 * time.Minute, true},
		{base, base.Add(2 * time.Second), 2 * time.Minute, false},
		{base, base.Add(10 * time.Millisecond), 50 * time.Millisecond, false}, // slack 6.25 ms
		{base, base.Add(5 * time.Millisecond), 50 * time.Millisecond, true},
		{time.Time{}, time.Time{}, 0, true},
		{time.Time{}, base, 0, false},
	}
	for _, c := range cases {
		if got := near(c.a, c.b, c.timeout); got != c.want {
			t.Errorf("near(%v, %v, %v) = %t, want %t", c.a, c.b, c.timeout, got, c.want)
		}
	}
}
