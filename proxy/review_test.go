package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TestClientNoRetryAfterHeaderTimeout: a reused connection whose upstream
// does not answer within ResponseHeaderTimeout is a timeout, not a stale
// connection: the request must not be sent a second time.
func TestClientNoRetryAfterHeaderTimeout(t *testing.T) {
	var heads atomic.Int32
	release := make(chan struct{})
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readHead(br) != nil {
			if heads.Add(1) == 1 {
				io.WriteString(c, okAnswer)
				continue
			}
			<-release
			return
		}
	})
	defer close(release)
	c := NewClient(TransportOptions{ResponseHeaderTimeout: 50 * time.Millisecond})
	defer c.Close()
	mustGet(t, c, up.url()+"/v2/x")
	_, err := get(t, c, "PUT", up.url()+"/v2/x", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if n := heads.Load(); n != 2 {
		t.Fatalf("upstream received %d requests, want 2 (no resend after a timeout)", n)
	}
}

// failingBody yields n bytes, then fails (a client body broken mid-way).
type failingBody struct{ n int }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, errors.New("client body broke off")
	}
	k := min(len(p), b.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	b.n -= k
	return k, nil
}

// TestClientStreamedBodyErrorEndsExchange: when a large body fails while
// it is being sent, the exchange ends with that failure at once, not with a
// header timeout while the upstream waits for the rest of the body.
func TestClientStreamedBodyErrorEndsExchange(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.Copy(io.Discard, br) // waits for a body that never ends
	})
	c := NewClient(TransportOptions{ResponseHeaderTimeout: 2 * time.Second})
	defer c.Close()
	req, _ := http.NewRequest("POST", up.url()+"/v2/x", io.NopCloser(&failingBody{n: 1 << 20}))
	req.ContentLength = 2 << 20
	_, err := c.RoundTrip(req)
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("err = %v, want the body's failure, not a timeout", err)
	}
	if !strings.Contains(err.Error(), "broke off") {
		t.Logf("err = %v", err)
	}
}

// TestUndeclaredTrailersRelayed: trailers the upstream sends without
// announcing them reach the client, as ReverseProxy relayed them.
func TestUndeclaredTrailersRelayed(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush() // chunked: room for trailers
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	defer up.Close()
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	resp, err := http.Get(gw.URL + "/v2/Invoice")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Late") != "yes" {
		t.Fatalf("undeclared trailer lost: %v", resp.Trailer)
	}
}

// TestEmptyChunkedBodyNotChunkedUpstream: a GET whose chunked body is
// empty goes upstream without a body (no Transfer-Encoding), as
// http.Transport sent it.
func TestEmptyChunkedBodyNotChunkedUpstream(t *testing.T) {
	up := newRecordingUpstream(t)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{})
	addr := strings.TrimPrefix(gw.URL, "http://")
	out := rawRequest(t, addr, "GET /v2/Invoice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("%.80q", out)
	}
	r, _ := up.last(t)
	if len(r.TransferEncoding) != 0 || r.ContentLength != 0 {
		t.Fatalf("upstream got TE %v, length %d; want no body", r.TransferEncoding, r.ContentLength)
	}
}

// TestClientUnsolicitedAnswerNotTakenForNext: bytes an upstream sends on
// an idle connection (an answer nobody asked for) must not be read as the
// answer to the next request on it. http.Transport's read loop saw them
// and dropped the connection; Client looks at every idle connection
// before it reuses it.
func TestClientUnsolicitedAnswerNotTakenForNext(t *testing.T) {
	sent, extra := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if readHead(br) == nil {
			return
		}
		if !first.CompareAndSwap(false, true) { // a later connection: answer plainly
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
			return
		}
		io.WriteString(c, okAnswer)
		<-sent
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforeign")
		close(extra)
		if readHead(br) != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
		}
	})
	c := NewClient(TransportOptions{})
	defer c.Close()
	mustGet(t, c, up.url()+"/v2/a")
	close(sent)
	<-extra
	// Wait until the bytes are on the socket: peerClosed sees them.
	for {
		c.mu.Lock()
		uc := c.idle[0]
		c.mu.Unlock()
		if peerClosed(uc.nc) {
			break
		}
	}
	if got := mustGet(t, c, up.url()+"/v2/b"); got != "mine" {
		t.Fatalf("the next request got %q, want its own answer", got)
	}
}

type accessFunc func(e *AccessEntry)

func (f accessFunc) LogAccess(e *AccessEntry) { f(e) }

// TestClientLeavingMidStreamIsNoUpstreamFault: a client that leaves while
// a streamed answer is relayed is not logged as an upstream answer that
// broke off, and is logged as client_closed.
func TestClientLeavingMidStreamIsNoUpstreamFault(t *testing.T) {
	done := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer up.Close()
	defer close(done)
	var logs syncBuffer
	entries := make(chan AccessEntry, 1)
	gw := newHandler(t, deciderFunc(allow), up.URL, Options{
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		AccessLog: accessFunc(func(e *AccessEntry) { entries <- *e }),
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/v2/Invoice", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	e := <-entries
	if strings.Contains(logs.String(), "broke off") {
		t.Errorf("a client leaving was logged as an upstream fault: %s", logs.String())
	}
	if e.Code != auth.CodeClientClosed.String() {
		t.Errorf("access log code %q, want %q", e.Code, auth.CodeClientClosed.String())
	}
}

// TestClientNoRetryAfterInterimAnswer: an interim (1xx) answer is an
// answer: a reused connection that breaks after one means the upstream
// had the request, which must not be sent again.
func TestClientNoRetryAfterInterimAnswer(t *testing.T) {
	var heads atomic.Int32
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readHead(br) != nil {
			if heads.Add(1) == 1 {
				io.WriteString(c, okAnswer)
				continue
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
			return
		}
	})
	c := NewClient(TransportOptions{})
	defer c.Close()
	mustGet(t, c, up.url()+"/v2/x")
	if _, err := get(t, c, "DELETE", up.url()+"/v2/x", nil); err == nil {
		t.Fatal("no error after a broken answer")
	}
	if n := heads.Load(); n != 2 {
		t.Fatalf("upstream received %d requests, want 2 (no resend after a 103)", n)
	}
}

// TestClientBoundsTheResponseHead: a response head past 10 MiB is an
// error, as with http.Transport, not read into memory without end.
func TestClientBoundsTheResponseHead(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		readHead(br)
		w := bufio.NewWriter(c)
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
		line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
		for i := 0; i < 11<<10; i++ {
			if _, err := w.WriteString(line); err != nil {
				return
			}
		}
		w.WriteString("\r\n")
		w.Flush()
	})
	c := NewClient(TransportOptions{})
	defer c.Close()
	resp, err := get(t, c, "GET", up.url()+"/v2/x", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("an 11 MiB response head was read whole (%d fields)", len(resp.Header["X-Pad"]))
	}
}
