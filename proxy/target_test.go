package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// TestDecisionReadsPathAsSent checks that the decision is given the path
// the client sent, byte for byte, and that a forwarded request reaches the
// upstream with that same path. net/http re-escapes a path that is not a
// valid escaping ("|", "{", a quote, a byte above 0x7E, "#"): deciding on,
// and forwarding, the re-escaped form would pass the API another path
// than the client's.
func TestDecisionReadsPathAsSent(t *testing.T) {
	decided := make(chan string, 1)
	d := deciderFunc(func(ctx context.Context, req *auth.Request, now time.Time) auth.Verdict {
		decided <- req.Path
		if _, _, _, code := auth.DefaultRoutes().Match(req.Method, req.Path); code != auth.OK {
			return auth.Verdict{Code: code}
		}
		return allow(ctx, req, now)
	})
	upstream := make(chan string, 1)
	up := newRecordingTarget(t, upstream)
	gw := newHandler(t, d, up, Options{})
	for _, path := range []string{
		"/v2/Usage/a|b",
		"/v2/Usage/a{b}",
		`/v2/Usage/a"b`,
		"/v2/Usage/\xc4\xb1",
		"/v2/Usage/x#y",
		"/v2/Usage/a^b`c",
		"/v2/Usage/a%7Cb",      // already escaped: unchanged
		"/v2/Usage/a!b;c=d[e]", // sub-delimiters and brackets: unchanged
	} {
		c, err := net.Dial("tcp", gw.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("%q: %v", path, err)
		}
		resp.Body.Close()
		select {
		case got := <-decided:
			if got != path {
				t.Errorf("sent %q: the decision read %q", path, got)
			}
		default:
			t.Errorf("sent %q: no decision (%d)", path, resp.StatusCode)
			continue
		}
		if resp.StatusCode != http.StatusOK && resp.Header.Get(HeaderErrorCode) != "invalid_path" {
			t.Errorf("sent %q: %d %s, want 200 or 400 invalid_path", path, resp.StatusCode, resp.Header.Get(HeaderErrorCode))
		}
		if resp.StatusCode == http.StatusOK {
			if got := <-upstream; got != path {
				t.Errorf("sent %q: the upstream got %q", path, got)
			}
		}
	}
}

// newRecordingTarget starts an upstream that reports the request target
// of each request it gets on ch.
func newRecordingTarget(t *testing.T, ch chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.RequestURI
		_, _ = w.Write([]byte(`{"success":true,"message":""}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
