package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestClientLeavingAfterHeadDeadline: the watch for a client leaving
// works past the read deadline of the request's head (net/http's
// background read has no deadline), for the first request of a
// connection and for a pipelined one.
func TestClientLeavingAfterHeadDeadline(t *testing.T) {
	const rht = 50 * time.Millisecond
	cases := map[string]string{
		"first":     "GET /v2/slow HTTP/1.1\r\nHost: h\r\n\r\n",
		"pipelined": "GET /v2/quick HTTP/1.1\r\nHost: h\r\n\r\nGET /v2/slow HTTP/1.1\r\nHost: h\r\n\r\n",
	}
	for name, raw := range cases {
		started, cancelled := make(chan struct{}), make(chan struct{})
		addr, _ := startFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/slow" {
				return
			}
			close(started)
			select {
			case <-r.Context().Done():
				close(cancelled)
			case <-time.After(30 * time.Second):
			}
		}), timeouts(rht, 0, time.Hour))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		<-started
		// Leave once the watch has begun, past the head's deadline.
		time.AfterFunc(2*watchAfter, func() { _ = c.Close() })
		select {
		case <-cancelled:
		case <-time.After(20 * time.Second):
			t.Errorf("%s: the request's context was not cancelled after its client left", name)
		}
	}
}
