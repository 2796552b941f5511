package proxy

import (
	"bufio"
	"io"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// cannedUpstream serves on loopback a fixed answer to every request head (it
// reads no body), allocating nothing per request, and returns its address.
func cannedUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 03 Dec 2026 00:00:00 GMT\r\n" +
		"Content-Length: " + strconv.Itoa(len(cannedBody)) + "\r\n\r\n" + cannedBody)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 {
						if _, err := c.Write(answer); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkServeProxy is one valid request on loopback through the whole
// gateway as it serves: the fast path reads it, the handler decides it
// (stubbed out: allowed, an Owner token), the metrics and the access log
// are on, and the gateway's Client forwards it to an upstream that
// answers from memory. allocs/op counts the gateway alone (the client
// and the upstream allocate nothing per request).
func BenchmarkServeProxy(b *testing.B) {
	up, _ := url.Parse("http://" + cannedUpstream(b))
	m, err := NewMetrics(prometheus.NewRegistry(), MetricsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bw := NewBufferedWriter(io.Discard, 0, 0)
	defer bw.Close()
	gw, err := New(Options{Decider: deciderFunc(allow), Upstream: up, Metrics: m, AccessLog: NewJSONAccessLog(bw)})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.Dial("tcp", serveH1(b, gw))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET /v2/Instance?ProjectId=42 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer x\r\n" +
		"User-Agent: bench\r\nAccept: application/json\r\n\r\n")
	br := bufio.NewReaderSize(conn, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := skipAnswer(br); err != nil {
			b.Fatal(err)
		}
	}
}
