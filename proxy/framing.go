package proxy

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
)

// HTTP/1.0 requests with Transfer-Encoding.
//
// RFC 9112 §6.1: a server that receives an HTTP/1.0 message with a
// Transfer-Encoding must treat its framing as faulty and close the
// connection. net/http instead ignores the field on HTTP/1.0 and removes it
// from the request, so a chunked body on a keep-alive connection is read as
// the next request: a front end that honours the field and the gateway
// would read the connection two ways. Since the handler cannot see the
// removed field, the listener watches the bytes of each connection for it
// (WatchFraming) and the handler refuses the HTTP/1.0 requests of a
// connection where it was seen, closing the connection.

// WatchFraming wraps ln so that Handler can refuse HTTP/1.0 requests that
// carry Transfer-Encoding. Serve the result with ConnContext set as the
// http.Server's ConnContext. The watch reads each line's first and last
// bytes only; it costs a few nanoseconds per line received.
func WatchFraming(ln net.Listener) net.Listener { return framingListener{ln} }

// ConnContext is the http.Server.ConnContext that goes with WatchFraming:
// it lets Handler find the connection of a request.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

type framingKey struct{}

// faultyFraming reports whether r is an HTTP/1.0 request on a connection
// where an HTTP/1.0 request header carried Transfer-Encoding.
func faultyFraming(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 0 {
		return false
	}
	fc, _ := r.Context().Value(framingKey{}).(*framingConn)
	return fc != nil && fc.faulty.Load()
}

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn watches the lines a connection receives: after a request
// line that ends in "HTTP/1.0", up to the blank line that ends its header
// block, a line that starts with "Transfer-Encoding" (in any case) followed
// by a colon marks the connection faulty. Lines of bodies pass through the
// same watch; one that looks like such a request marks the connection too,
// which affects only its HTTP/1.0 requests.
type framingConn struct {
	net.Conn
	faulty atomic.Bool

	// Read is not called concurrently; these are its state.
	head    [len(teField) + 8]byte // the current line's first bytes
	headLen int
	tail    [len(http10Line)]byte // the current line's last bytes, in order
	tailLen int
	in10    bool // inside the header block of an HTTP/1.0 request
}

const (
	teField    = "transfer-encoding"
	http10Line = "HTTP/1.0\r"
)

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.faulty.Load() {
		c.watch(p[:n])
	}
	return n, err
}

// watch feeds received bytes to the line watch.
func (c *framingConn) watch(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.add(b)
			return
		}
		c.add(b[:i])
		c.endLine()
		b = b[i+1:]
	}
}

// add appends part of a line.
func (c *framingConn) add(b []byte) {
	c.headLen += copy(c.head[c.headLen:], b)
	if len(b) >= len(c.tail) {
		c.tailLen = copy(c.tail[:], b[len(b)-len(c.tail):])
		return
	}
	if keep := len(c.tail) - len(b); c.tailLen > keep {
		copy(c.tail[:], c.tail[c.tailLen-keep:c.tailLen])
		c.tailLen = keep
	}
	c.tailLen += copy(c.tail[c.tailLen:], b)
}

// endLine judges the line just ended and starts the next.
func (c *framingConn) endLine() {
	head := c.head[:c.headLen]
	switch {
	case len(head) == 0 || len(head) == 1 && head[0] == '\r':
		c.in10 = false // the end of a header block
	case bytes.HasSuffix(c.tail[:c.tailLen], []byte(http10Line)) ||
		bytes.HasSuffix(c.tail[:c.tailLen], []byte(http10Line[:len(http10Line)-1])):
		c.in10 = true // a request line ending in HTTP/1.0 (CRLF or bare LF)
	case c.in10 && isTEField(head, c.headLen == len(c.head)):
		c.faulty.Store(true)
	}
	c.headLen, c.tailLen = 0, 0
}

// isTEField reports whether a header line starts with the
// Transfer-Encoding field name (any case), white space, then a colon; cut
// says the line was longer than what was kept of it, and then a run of
// white space to the end of the kept bytes counts as leading to a colon.
func isTEField(line []byte, cut bool) bool {
	if len(line) < len(teField) {
		return false
	}
	for i := 0; i < len(teField); i++ {
		if lowerASCII(line[i]) != teField[i] {
			return false
		}
	}
	rest := line[len(teField):]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return cut
	}
	return rest[0] == ':'
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
