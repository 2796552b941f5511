package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRefuseFaultyFraming: a handler beside the proxy, wrapped, is not
// called for a request on a connection with faulty framing, which is
// refused (400 invalid_framing) and closed; on a sound connection, and
// without a watched connection, it is. HTTP/2's preface read as an
// HTTP/1 request ("PRI *", on a connection past its start) is refused
// likewise, watched or not.
func TestRefuseFaultyFraming(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		stream    string // what the connection received; "" for no watch
		wantCalls int
	}{
		{"no watch", http.MethodGet, "", 1},
		{"sound", http.MethodGet, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		{"faulty", http.MethodGet, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0},
		{"preface", "PRI", "GET / HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\n", 0},
		{"preface, no watch", "PRI", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			h := RefuseFaultyFraming(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls++ }))
			ctx := context.Background()
			if tc.stream != "" {
				c := &framingConn{}
				c.watch([]byte(tc.stream))
				ctx = ConnContext(ctx, c)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, tc.method, "/tswgate/v1/tokens", nil))
			if calls != tc.wantCalls {
				t.Fatalf("handler called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantCalls == 0 && (w.Code != http.StatusBadRequest || w.Header().Get(HeaderErrorCode) != "invalid_framing" ||
				w.Header().Get("Connection") != "close") {
				t.Errorf("got %d %q, Connection %q; want 400 invalid_framing, close",
					w.Code, w.Header().Get(HeaderErrorCode), w.Header().Get("Connection"))
			}
		})
	}
}

// TestServeOptionsStar: "OPTIONS *" is answered 200 without a body on a
// sound connection, refused on one with faulty framing; other requests go
// to the next handler.
func TestServeOptionsStar(t *testing.T) {
	const faulty = "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name, method, target, stream string
		wantStatus                   int
		wantNext                     bool
	}{
		{"sound", http.MethodOptions, "*", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusOK, false},
		{"faulty", http.MethodOptions, "*", faulty, http.StatusBadRequest, false},
		{"other target", http.MethodOptions, "/v2/x", "OPTIONS /v2/x HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusTeapot, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := false
			h := ServeOptionsStar(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				next = true
				w.WriteHeader(http.StatusTeapot)
			}))
			c := &framingConn{}
			c.watch([]byte(tc.stream))
			r := httptest.NewRequestWithContext(ConnContext(context.Background(), c), tc.method, "/", nil)
			r.RequestURI = tc.target
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus || next != tc.wantNext || w.Body.Len() != 0 && tc.wantStatus == http.StatusOK {
				t.Fatalf("got %d (next called %v, body %q), want %d (next %v)", w.Code, next, w.Body, tc.wantStatus, tc.wantNext)
			}
		})
	}
}
