package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkServe measures one keep-alive request and its short answer on
// loopback, through the fast path and through net/http alone, with the
// same handler and the same client (which writes fixed bytes and reads a
// fixed-length answer, allocating nothing). allocs/op counts the server.
func BenchmarkServe(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Header()["Date"] = []string{"Thu, 03 Dec 2026 00:00:00 GMT"} // fixed length
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	b.Run("fast path", func(b *testing.B) {
		s := &Server{Fallback: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = s.Serve(ln) }()
		defer func() { _ = s.Shutdown(b.Context()) }()
		benchClient(b, ln.Addr().String())
	})
	b.Run("net/http", func(b *testing.B) {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ReadHeaderTimeout, srv.Config.IdleTimeout, srv.Config.WriteTimeout = 10*time.Second, 2*time.Minute, 2*time.Minute
		srv.Start()
		defer srv.Close()
		benchClient(b, srv.Listener.Addr().String())
	})
}

func benchClient(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer tsw_x:tswsk_y\r\n" +
		"User-Agent: bench\r\nAccept: application/json\r\n\r\n")
	br := bufio.NewReader(c)
	// The first answer gives the length of all.
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	var head strings.Builder
	_ = resp.Header.Write(&head)
	size := len("HTTP/1.1 200 OK\r\n") + head.Len() + len("\r\n") + len(body)
	buf := make([]byte, size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
}
