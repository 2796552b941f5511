package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHeadSplitAnywhere: requests arriving in two pieces, split at every
// byte, are read as when whole (pipelined, with a body, then one handed
// over).
func TestHeadSplitAnywhere(t *testing.T) {
	addr, _ := startFast(t, handlers["echo body"])
	raw := "POST /v2/a?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /v2/b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n" +
		"GET /v2/c HTTP/1.0\r\nHost: h\r\n\r\n"
	want := []string{"POST /v2/a q host=h len=3 close=false body=abc", "GET /v2/b  host=h len=0 close=false body=",
		"GET /v2/c  host=h len=0 close=true body="}
	for i := 1; i < len(raw); i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, raw[:i])
		_, _ = io.WriteString(c, raw[i:])
		br := bufio.NewReader(c)
		for n, w := range want {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("split at %d: answer %d: %v", i, n+1, err)
			}
			if got := summarize(resp).Body; got != w {
				t.Errorf("split at %d: answer %d %q, want %q", i, n+1, got, w)
			}
		}
		_ = c.Close()
	}
}

// TestShutdownLeavesNoGoroutine: once Shutdown and Serve have returned,
// no goroutine of the server is left: connections served, kept alive,
// handed over or watched.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	s := &Server{Fallback: &http.Server{Handler: handlers["echo body"]}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	for _, raw := range []string{
		"GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n",                                      // kept alive
		"GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\nGET /v2/b HTTP/1.0\r\nHost: h\r\n\r\n", // handed over
		"POST /v2/a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx",
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	// Goroutines that have signalled their end may still be returning:
	// wait for them to be gone, within a bound.
	var left string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); runtime.Gosched() {
		if left = h1Goroutines(); left == "" {
			return
		}
	}
	t.Errorf("goroutines left after Shutdown:\n%s", left)
}

// h1Goroutines returns the stacks of the goroutines running this
// package's code (less the test's own).
func h1Goroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "tswgate/internal/h1.(") && !strings.Contains(g, "TestShutdownLeavesNoGoroutine") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
