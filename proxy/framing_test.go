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
// without a watched connection, it is.
func TestRefuseFaultyFraming(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stream    string // what the connection received; "" for no watch
		wantCalls int
	}{
		{"no watch", "", 1},
		{"sound", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		{"faulty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0},
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
			h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/tswgate/v1/tokens", nil))
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
