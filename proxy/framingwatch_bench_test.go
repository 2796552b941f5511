package proxy

import (
	"strconv"
	"strings"
	"testing"
)

// BenchmarkFramingWatch: the watch's cost on a keep-alive connection's
// requests, a typical head with a JSON body, then a 64 KiB body.
func BenchmarkFramingWatch(b *testing.B) {
	head := "POST /v2/SshKey HTTP/1.1\r\nHost: api.example\r\nUser-Agent: terraform-provider/1.0\r\nAuthorization: Bearer tsw_0123456789abcdefghij.0123456789abcdefghij0123456789\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
	for _, body := range []string{`{"projectId":42,"name":"k","key":"ssh-ed25519 AAAA"}`, strings.Repeat("x", 64<<10)} {
		req := []byte(head + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
		b.Run(strconv.Itoa(len(body)), func(b *testing.B) {
			c := &framingConn{}
			b.SetBytes(int64(len(req)))
			for i := 0; i < b.N; i++ {
				c.watch(req)
			}
			if c.faulty.Load() {
				b.Fatal("faulty")
			}
		})
	}
}
