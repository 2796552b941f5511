package h1

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

// prefaceAfterRequest is an HTTP/1.1 request followed, on the same
// connection, by HTTP/2's connection preface.
const prefaceAfterRequest = "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n" + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// lineEcho echoes what a handler sees of a request's line and framing.
var lineEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s %d.%d fields=%d host=%q len=%d close=%t", r.Method, r.RequestURI, r.Proto,
		r.ProtoMajor, r.ProtoMinor, len(r.Header), r.Host, r.ContentLength, r.Close)
})

// withH2C turns on HTTP/2 with prior knowledge beside HTTP/1.1.
func withH2C(srv *http.Server) {
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
}

// TestPrefaceAfterRequestIsNotHandedOver: HTTP/2's preface is valid only
// as a connection's first bytes. After requests the fast path read, it is
// read as net/http reads it there (a "PRI *" request over HTTP/2.0, after
// which the connection closes), not handed over: net/http would see a new
// connection and switch the rest of it to HTTP/2 (h2c).
func TestPrefaceAfterRequestIsNotHandedOver(t *testing.T) {
	fast, seen := startFast(t, lineEcho, func(s *Server) { withH2C(s.Fallback) })
	std := httptest.NewUnstartedServer(lineEcho)
	withH2C(std.Config)
	std.Start()
	t.Cleanup(std.Close)
	var got [2]summary
	for i, addr := range []string{fast, std.Listener.Addr().String()} {
		resps := exchange(t, addr, prefaceAfterRequest, 2, "GET")
		got[i] = summarize(resps[1])
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Errorf("the preface after a request:\nfast path %+v\nnet/http  %+v", got[0], got[1])
	}
	if want := `PRI * HTTP/2.0 2.0 fields=0 host="" len=-1 close=true`; got[0].Body != want || !got[0].Close {
		t.Errorf("the preface after a request: %+v, want %q and a close", got[0], want)
	}
	if f, fb := seen.fast.Load(), seen.fallback.Load(); f != 2 || fb != 0 {
		t.Errorf("fast path served %d, fallback %d; want 2 and 0", f, fb)
	}
}

// TestPrefaceFirstIsHandedOver: at a connection's start the preface is
// net/http's to take (HTTP/2 with prior knowledge).
func TestPrefaceFirstIsHandedOver(t *testing.T) {
	addr, seen := startFast(t, lineEcho, func(s *Server) { withH2C(s.Fallback) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// An HTTP/2 server starts with a SETTINGS frame: 9 bytes of frame
	// header, type 4 at offset 3.
	var frame [9]byte
	if _, err := io.ReadFull(c, frame[:]); err != nil {
		t.Fatalf("reading the server's first frame: %v", err)
	}
	if frame[3] != 4 {
		t.Errorf("the server's first bytes %q are no SETTINGS frame", frame[:])
	}
	if seen.fast.Load() != 0 {
		t.Errorf("the fast path served %d requests", seen.fast.Load())
	}
}

// refusePRI answers as the gateway's handler does: a "PRI" request is
// refused (400) and its connection closed; anything else echoed.
var refusePRI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PRI" {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "refused %s %s %s", r.Method, r.RequestURI, r.Proto)
		return
	}
	lineEcho(w, r)
})

// TestPrefaceLineAfterRequestIsNotHandedOver: any head that starts with
// the preface's line, after requests the fast path read, is read like the
// preface, whatever follows the line: handed over, net/http would wait for
// the rest of a whole preface (24 bytes) until its header timeout and
// close without an answer, where net/http alone answers it.
func TestPrefaceLineAfterRequestIsNotHandedOver(t *testing.T) {
	fast, seen := startFast(t, refusePRI, func(s *Server) { withH2C(s.Fallback) })
	std := httptest.NewUnstartedServer(refusePRI)
	withH2C(std.Config)
	std.Start()
	t.Cleanup(std.Close)
	const first = "GET /v2/a HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, tail := range []string{
		"PRI * HTTP/2.0\r\nA:\r\n\r\n",
		"PRI * HTTP/2.0\r\nHost: h\r\nX: y\r\n\r\n",
		"PRI * HTTP/2.0\r\nContent-Length: 3\r\n\r\nabc",
	} {
		// net/http answers a head without Host itself (400, "missing
		// required Host header"), the others through the handler: the
		// same status and close either way, which is what is compared.
		var got [2]summary
		for i, addr := range []string{fast, std.Listener.Addr().String()} {
			resps := exchange(t, addr, first+tail, 2, "GET")
			got[i] = summarize(resps[1])
		}
		if got[0].Status != got[1].Status || got[0].Close != got[1].Close {
			t.Errorf("%q after a request:\nfast path %+v\nnet/http  %+v", tail, got[0], got[1])
		}
		if got[0].Status != http.StatusBadRequest || !got[0].Close || got[0].Body != "refused PRI * HTTP/2.0" {
			t.Errorf("%q after a request: %+v, want the handler's 400 and a close", tail, got[0])
		}
	}
	if f, fb := seen.fast.Load(), seen.fallback.Load(); f != 6 || fb != 0 {
		t.Errorf("fast path served %d, fallback %d; want 6 and 0", f, fb)
	}
}
