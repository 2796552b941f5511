package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// netHTTPRead reads b's first request as net/http's server does: the head
// (http.ReadRequest) and the server's own checks, Host taken out of the
// header. It returns nil when net/http would refuse it, and the bytes the
// head took.
func netHTTPRead(b []byte) (*http.Request, int) {
	br := bufio.NewReader(bytes.NewReader(b))
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, 0
	}
	// ReadRequest took Host out of the header, refusing a second one.
	if r.Host == "" || !httpguts.ValidHostHeader(r.Host) {
		return nil, 0
	}
	for k, vs := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, 0
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, 0
			}
		}
	}
	// The head's size: what the reader consumed, less the body bytes it
	// buffered beyond.
	return r, len(b) - br.Buffered()
}

// sameRequest reports how ours differs from net/http's reading.
func sameRequest(t *testing.T, ours, std *http.Request) {
	t.Helper()
	check := func(what string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: fast path %#v, net/http %#v", what, a, b)
		}
	}
	check("method", ours.Method, std.Method)
	check("RequestURI", ours.RequestURI, std.RequestURI)
	check("URL", *ours.URL, *std.URL)
	check("proto", [3]any{ours.Proto, ours.ProtoMajor, ours.ProtoMinor}, [3]any{std.Proto, std.ProtoMajor, std.ProtoMinor})
	check("header", ours.Header, std.Header)
	check("Host", ours.Host, std.Host)
	check("ContentLength", ours.ContentLength, std.ContentLength)
	check("Close", ours.Close, std.Close)
	check("TransferEncoding", len(std.TransferEncoding), 0)
	check("Trailer", len(std.Trailer), 0)
}

// differ checks the property the fast path rests on: whatever head it
// reads, net/http reads the same way.
func differ(t *testing.T, b []byte) {
	var h head
	if parseHead(b, &h) != accept {
		return
	}
	ours, err := h.request(&http.Request{})
	if err != nil {
		return // handed over
	}
	std, size := netHTTPRead(b)
	if std == nil {
		t.Fatalf("the fast path reads %q, net/http refuses it", b)
	}
	if size != h.size {
		t.Errorf("head size: fast path %d, net/http %d (%q)", h.size, size, b)
	}
	sameRequest(t, ours, std)
}

var heads = []string{
	"GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer a:b\r\n\r\n",
	"POST /v2/Instance HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n{\"a\"}",
	"GET /v2/a%20b HTTP/1.1\r\nhost: x:80\r\nconnection: keep-alive, Close\r\npragma: no-cache\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a:  2 \t\r\nX_B: y\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n",
	"DELETE /v1/a;b=c/d?e=f&g HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
	"GET /v2/x? HTTP/1.1\r\nHost: x\r\n\r\n",
	// Not the fast path's (handed over): bare LF, folding, framing.
	"GET /v2/x HTTP/1.1\nHost: x\n\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
	"POST /v2/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	"POST /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"GET /v2/x HTTP/1.0\r\nHost: x\r\n\r\n",
	"GET http://x/v2/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost : x\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
	"GET /v2/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nX: \x80\r\n\r\n",
	"GET  /v2/x HTTP/1.1\r\nHost: x\r\n\r\n",
}

func TestParseHeadAgreesWithNetHTTP(t *testing.T) {
	accepted := 0
	for _, s := range heads {
		var h head
		if parseHead([]byte(s), &h) == accept {
			if _, err := h.request(&http.Request{}); err == nil {
				accepted++
			}
		}
		differ(t, []byte(s))
	}
	if accepted != 7 {
		t.Errorf("the fast path read %d of the heads in its grammar, want 7", accepted)
	}
}

func TestParseHeadHandsOver(t *testing.T) {
	for _, s := range heads[7:] {
		var h head
		v := parseHead([]byte(s), &h)
		if v == accept {
			if _, err := h.request(&http.Request{}); err == nil {
				t.Errorf("read %q; it is outside the grammar and must go to net/http", s)
			}
		}
	}
}

func TestParseHeadNeedsMore(t *testing.T) {
	full := heads[0]
	for i := 0; i < len(full)-1; i++ {
		var h head
		if v := parseHead([]byte(full[:i]), &h); v != needMore {
			t.Fatalf("%q: verdict %d, want needMore", full[:i], v)
		}
	}
	var h head
	if v := parseHead([]byte("GET /v2/x HTTP/1.1\nHost"), &h); v != handOff {
		t.Errorf("a bare LF before the end: verdict %d, want handOff", v)
	}
}

// FuzzParseHead checks, for any bytes, that a head the fast path reads is
// read the same way by net/http: method, target, URL, fields, Host, body
// length, Close and the head's size.
func FuzzParseHead(f *testing.F) {
	for _, s := range heads {
		f.Add([]byte(s))
	}
	f.Add([]byte("GET /v2/x HTTP/1.1\r\nHost: x\r\nCache-Control: max-age=0\r\nPragma: no-cache\r\n\r\n"))
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 16<<10 || strings.Contains(string(b), "\x00") && len(b) > 4<<10 {
			return
		}
		differ(t, b)
	})
}

// fuzzSeeds lead the fuzzer to the corners where a reading could differ:
// escapes, parameters and empty queries in targets, other methods, Host
// and Content-Length forms, Connection lists, repeated and odd names.
var fuzzSeeds = []string{
	"GET /v1/a%2Fb;p=1/%2e%2e/c?x=%20&y&&z=1#f HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v2/a?%zz HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v2/%7e%7E?a=b? HTTP/1.1\r\nHost: x\r\n\r\n",
	"OPTIONS /v2/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"get /v2/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"M-SEARCH /v2/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: 1.2.3.4:65536\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: a_b-c.example.:\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: [fe80::1%25en0]:8080\r\n\r\n",
	"POST /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: 000000000000000003\r\n\r\nabc",
	"POST /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length:\t3 \t\r\n\r\nabc",
	"POST /v2/x HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: ,close,\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nconnection: CLOSE\r\nKeep-Alive: 1\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nX-A:\r\nx-a: b\r\nX_A: c\r\n~!#$%&'*+-.^_`|: d\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nTrailer: X\r\n\r\n",
	"GET /v2/x HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\nPragma: x\r\n\r\n",
}
