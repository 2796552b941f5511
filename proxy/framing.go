package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
)

// Framing read two ways.
//
// net/http reads two kinds of request framing differently from RFC 9112's
// advice to treat them as faulty, and hides the difference from handlers:
//
//   - Transfer-Encoding on HTTP/1.0 (§6.1: faulty framing, close the
//     connection): net/http ignores and removes the field, so a chunked body
//     on a keep-alive connection is read as the next request;
//   - Transfer-Encoding with Content-Length (§6.3: ought to be an error; a
//     server that answers must close the connection): net/http takes the
//     chunked body, removes Content-Length and keeps the connection open.
//
// A front end that reads either the other way (by Content-Length, say) and
// the gateway would see different requests on one connection: the classic
// request-smuggling gap. Since a handler cannot see the removed fields, the
// listener watches the header lines each connection receives
// (WatchFraming), and Handler refuses the requests of a connection where
// such a header block was seen, closing it.

// WatchFraming wraps ln so that Handler can refuse requests whose framing
// net/http reads differently from RFC 9112 (see above). Serve the result
// with ConnContext as the http.Server's ConnContext. The watch looks at
// each line's first and last bytes only: a few nanoseconds per line.
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

// faultyFraming reports whether r came on a connection where a header
// block with faulty framing was seen.
func faultyFraming(r *http.Request) bool {
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

// framingConn watches the lines a connection receives. A line that ends
// in "HTTP/1." and a digit starts a header block (unless one is open: a
// field may end so too), which a blank line ends; a block that has a
// Transfer-Encoding field and is HTTP/1.0 or also has a Content-Length
// field marks the connection faulty. Lines of bodies pass through the
// same watch; a body holding such a block (which no JSON body can: its
// strings have no raw line breaks) marks the connection too.
type framingConn struct {
	net.Conn
	faulty atomic.Bool

	// Read is not called concurrently; these are its state.
	head    [len("transfer-encoding") + 8]byte // the current line's first bytes
	headLen int
	tail    [len(" HTTP/1.x\r")]byte // the current line's last bytes, in order
	tailLen int
	block   bool // inside a header block
	http10  bool // of an HTTP/1.0 request
	te, cl  bool // with Transfer-Encoding, Content-Length
	lines   int  // lines ended so far, counted up to 2
	pri     bool // the first line was http2Preface's
	http2   bool // the connection opened with HTTP/2's preface (h2c)
}

// http2Preface is the first line of an HTTP/2 connection with prior
// knowledge (RFC 9113 §3.4), an empty line follows. Such a connection has
// no HTTP/1 framing to read two ways, and its DATA frames (several
// clients' streams, when a balancer multiplexes them) may hold any bytes:
// it is not watched further. The same line followed by fields is a
// request that net/http reads as HTTP/1 and is watched as one; without
// fields but served as HTTP/1, net/http closes the connection after it.
const http2Preface = "PRI * HTTP/2.0\r"

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.http2 && !c.faulty.Load() {
		c.watch(p[:n])
	}
	return n, err
}

// CloseWrite closes the sending side, which net/http does before closing
// a connection with request body unread, so that the client reads the
// answer rather than a reset.
func (c *framingConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("closing the sending side of a %T: %w", c.Conn, errors.ErrUnsupported)
	}
	return cw.CloseWrite()
}

// watch feeds received bytes to the line watch.
func (c *framingConn) watch(b []byte) {
	for len(b) > 0 && !c.http2 {
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
	head, tail := c.head[:c.headLen], bytes.TrimSuffix(c.tail[:c.tailLen], []byte("\r"))
	cut := c.headLen == len(c.head)
	c.headLen, c.tailLen = 0, 0
	if c.lines < 2 {
		c.lines++
		if c.lines == 1 {
			c.pri = string(head) == http2Preface
		} else if c.pri && (len(head) == 0 || len(head) == 1 && head[0] == '\r') {
			c.http2 = true
			return
		}
	}
	switch {
	case len(head) == 0 || len(head) == 1 && head[0] == '\r':
		// The end of a header block.
		if c.block && c.te && (c.http10 || c.cl) {
			c.faulty.Store(true)
		}
		c.block, c.te, c.cl = false, false, false
	case requestLineEnd(tail) || bytes.HasSuffix(tail, []byte(" HTTP/2.0")):
		// A request line (net/http reads "PRI * HTTP/2.0" with fields as
		// HTTP/1), or inside a header block a field whose value ends like
		// one: that starts no new block (its fields would be forgotten,
		// though net/http reads them with the rest), and counts as
		// HTTP/1.0 if it says so, to err on refusing.
		if !c.block {
			c.block, c.te, c.cl, c.http10 = true, false, false, false
		}
		c.http10 = c.http10 || bytes.HasSuffix(tail, []byte(" HTTP/1.0"))
		c.field(head, cut)
	case c.block:
		c.field(head, cut)
	}
}

// field notes a framing field of the current header block.
func (c *framingConn) field(head []byte, cut bool) {
	switch {
	case isField(head, "transfer-encoding", cut):
		c.te = true
	case isField(head, "content-length", cut):
		c.cl = true
	}
}

// requestLineEnd reports whether a line ends as a request line net/http
// serves: " HTTP/1." and a digit. It serves every HTTP/1 minor version,
// reading the framing of all but 1.0 as HTTP/1.1's, so "HTTP/1.2" with
// Transfer-Encoding and Content-Length is as faulty as "HTTP/1.1".
func requestLineEnd(tail []byte) bool {
	const prefix = " HTTP/1."
	n := len(tail)
	return n > len(prefix) && string(tail[n-1-len(prefix):n-1]) == prefix && '0' <= tail[n-1] && tail[n-1] <= '9'
}

// isField reports whether a header line starts with the field name (lower
// case; the line in any case), white space, then a colon; cut says the line
// was longer than what was kept of it, and then a run of white space to the
// end of the kept bytes counts as leading to a colon.
func isField(line []byte, name string, cut bool) bool {
	if len(line) < len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if lowerASCII(line[i]) != name[i] {
			return false
		}
	}
	rest := line[len(name):]
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
