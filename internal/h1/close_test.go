package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// refuseUnread answers without reading the request body, as the gateway's
// refusals do.
var refuseUnread = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "no", http.StatusUnauthorized)
})

// sendAndRead writes head and a body of n bytes on a new connection (the
// body from another goroutine, as a client that sends a whole request
// before reading does), reads the response, and returns it with what the
// next read of the connection gives: io.EOF when the server closed it
// cleanly, an error such as ECONNRESET when it reset it.
func sendAndRead(t *testing.T, addr, head string, n int) (*http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = io.WriteString(c, head+strings.Repeat("x", n))
	}()
	defer func() {
		_ = c.Close()
		<-wrote
	}()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	_, err = br.ReadByte()
	return resp, err
}

// TestEarlyAnswerToLargeUpload: a handler that answers without reading a
// body too large to read past gets its answer to the client with
// "Connection: close" and a clean close (not a reset that can cost the
// client the answer), as with net/http.
func TestEarlyAnswerToLargeUpload(t *testing.T) {
	const n = 4 << 20
	head := fmt.Sprintf("POST /v2/upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", n)
	for name, addr := range map[string]string{"fast path": mustFast(t, refuseUnread), "net/http": startStd(t, refuseUnread)} {
		resp, err := sendAndRead(t, addr, head, n)
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("%s: status %d, close %t; want 401 and close", name, resp.StatusCode, resp.Close)
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the answer the connection gave %v, want io.EOF", name, err)
		}
	}
}

// TestEarlyAnswerOnClosingRequest: when a request asks to close and the
// handler leaves its body unread, the client still gets its answer and a
// clean close, not a reset (net/http resets it).
func TestEarlyAnswerOnClosingRequest(t *testing.T) {
	const n = 64 << 10
	head := fmt.Sprintf("POST /v2/upload HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", n)
	resp, err := sendAndRead(t, mustFast(t, refuseUnread), head, n)
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Errorf("status %d, close %t; want 401 and close", resp.StatusCode, resp.Close)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("after the answer the connection gave %v, want io.EOF", err)
	}
}

// TestFullDuplexUploadKeepsQuiet: a handler in full-duplex mode (the
// gateway's while it relays an upload) may answer before the body is in;
// the head then does not announce a close, as with net/http, and the
// connection still closes cleanly when the rest is too long to read past.
func TestFullDuplexUploadKeepsQuiet(t *testing.T) {
	const n = 4 << 20
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	head := fmt.Sprintf("POST /v2/upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", n)
	for name, addr := range map[string]string{"fast path": mustFast(t, h), "net/http": startStd(t, h)} {
		resp, err := sendAndRead(t, addr, head, n)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Close {
			t.Errorf("%s: status %d, close %t; want 413 and no close announced", name, resp.StatusCode, resp.Close)
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the answer the connection gave %v, want io.EOF", name, err)
		}
	}
}

func mustFast(t *testing.T, h http.Handler) string {
	addr, _ := startFast(t, h)
	return addr
}

// TestHandedOverEarlyAnswerClosesCleanly: net/http half-closes a
// connection it closes with body unread; a handed-over connection lets it
// (the replayed connection passes CloseWrite on), so that the client
// reads the answer and then the end of the connection, not a reset.
func TestHandedOverEarlyAnswerClosesCleanly(t *testing.T) {
	const n = 4 << 20
	head := fmt.Sprintf("POST /other HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", n)
	halfClosable := make(chan bool, 1)
	addr, seen := startFast(t, refuseUnread, func(s *Server) {
		s.WrapFallback = func(ln net.Listener) net.Listener { return halfCloseListener{ln, halfClosable} }
	})
	resp, err := sendAndRead(t, addr, head, n)
	if !<-halfClosable {
		t.Error("the handed-over connection cannot be half-closed")
	}
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close || seen.fallback.Load() != 1 {
		t.Errorf("status %d, close %t, fallback served %d; want 401, close, 1", resp.StatusCode, resp.Close, seen.fallback.Load())
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("after the answer the connection gave %v, want io.EOF", err)
	}
}

// halfCloseListener reports whether each connection it accepts has
// CloseWrite, as net/http looks for it.
type halfCloseListener struct {
	net.Listener
	has chan<- bool
}

func (l halfCloseListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_, ok := c.(interface{ CloseWrite() error })
		l.has <- ok
	}
	return c, err
}
