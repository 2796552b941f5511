package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/tswgate/tswgate/auth"
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
// listener follows the requests each connection receives as net/http reads
// them, judging their header blocks and skipping their bodies
// (WatchFraming, framingWatch), and Handler refuses the requests of a
// connection where such a header block was seen, closing it.

// WatchFraming wraps ln so that Handler can refuse requests whose framing
// net/http reads differently from RFC 9112 (see above). Serve the result
// with ConnContext as the http.Server's ConnContext. The watch keeps a few
// counters per connection, buffers nothing, and skips bodies by count.
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

// RefuseFaultyFraming wraps next, a handler served on a WatchFraming
// listener beside Handler (which checks on its own), so that requests on a
// connection where a header block with faulty framing was seen are
// refused (400 invalid_framing) and the connection closed, as Handler
// refuses them: a request smuggled past a front end must not be served by
// whichever handler its target names.
func RefuseFaultyFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if faultyFraming(r) {
			// RFC 9112 §6.1: close the connection after a faulty framing.
			w.Header()["Connection"] = []string{"close"}
			refuse(w, auth.CodeInvalidFraming, 0)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// faultyFraming reports whether r came on a connection where a header
// block with faulty framing was seen, or is HTTP/2's connection preface
// read as an HTTP/1 request: "PRI" is no method, and the preface is valid
// only as a connection's first bytes (where net/http takes it for h2c
// before any handler runs), so on a connection past its start a front
// end and the gateway could disagree on which protocol follows.
func faultyFraming(r *http.Request) bool {
	if r.Method == "PRI" {
		return true
	}
	fc, _ := r.Context().Value(framingKey{}).(*framingConn)
	return fc != nil && fc.faulty.Load()
}

// ServeOptionsStar answers "OPTIONS *" requests as net/http's server does
// before any handler (200, no body), after RefuseFaultyFraming's check,
// and passes the others to next. Set the http.Server's
// DisableGeneralOptionsHandler with it: otherwise net/http answers such a
// request on a connection with faulty framing, and keeps the connection,
// so that a front end reading the framing the other way gets an answer it
// did not ask for, which it gives to the next client's request.
func ServeOptionsStar(next http.Handler) http.Handler {
	star := RefuseFaultyFraming(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
		if r.ContentLength != 0 {
			// As net/http: up to 4 KiB of body, then the connection closes.
			_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
		}
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.RequestURI == "*" {
			star.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn watches the requests a connection receives (framingWatch)
// and notes when it finds one with faulty framing.
type framingConn struct {
	net.Conn
	faulty atomic.Bool
	w      framingWatch // Read is not called concurrently
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
	if n > 0 && c.w.state != wStopped {
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

// watch follows received bytes.
func (c *framingConn) watch(b []byte) {
	if c.w.feed(b) {
		c.faulty.Store(true)
	}
}
