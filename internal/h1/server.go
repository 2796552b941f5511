// Package h1 is the public listener's fast path for clear-text HTTP/1.1:
// a small server that reads request heads in a narrow grammar net/http
// reads the same way (see parse.go), serves them with the same handler,
// and hands every connection whose next request is outside that grammar
// to a net/http server, which serves it from then on. One handler, so one
// decision and one refusal mapping, whichever server read the request.
// (HTTP/2's preface after requests is the one exception: see
// prefaceRequest.)
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves a listener: the requests it reads with Handler, the
// connections it hands over with Fallback.
type Server struct {
	// Fallback serves the connections the fast path hands over, with its
	// own handler. Its timeouts and MaxHeaderBytes apply to the fast
	// path too. Required.
	Fallback *http.Server
	// Handler serves the requests the fast path reads; nil means
	// Fallback.Handler.
	Handler http.Handler
	// Route reports the request targets the fast path serves (others go
	// to Fallback); nil means all.
	Route func(target string) bool
	// WrapFallback, when set, wraps the listener Fallback serves (the
	// handed-over connections), e.g. to watch their framing.
	WrapFallback func(net.Listener) net.Listener
	// Logger receives handler panics; nil discards them.
	Logger *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	ln       net.Listener
	handoff  *handoffListener
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

// bufSize is the size of each connection's read buffer: a request head
// that does not fit is handed to net/http.
const bufSize = 8 << 10

// Serve accepts connections on ln until Shutdown or a listener error.
func (s *Server) Serve(ln net.Listener) error {
	if s.Fallback == nil {
		return errors.New("h1: Server.Fallback is required")
	}
	s.mu.Lock()
	s.ln = ln
	s.conns = make(map[*conn]struct{})
	s.handoff = newHandoffListener(ln.Addr())
	fallbackLn := net.Listener(s.handoff)
	if s.WrapFallback != nil {
		fallbackLn = s.WrapFallback(fallbackLn)
	}
	s.mu.Unlock()
	fallbackErr := make(chan error, 1)
	go func() { fallbackErr <- s.Fallback.Serve(fallbackLn) }()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accepting a connection: %w", err)
			}
			// Out of file descriptors, say: wait and try again, as
			// net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logf("accepting a connection failed; retrying", slog.String("err", err.Error()), slog.Duration("in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case err := <-fallbackErr:
			_ = nc.Close()
			return fmt.Errorf("the fallback server stopped: %w", err)
		default:
		}
		c := s.newConn(nc)
		if c == nil {
			_ = nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, waits for busy ones
// to finish their request within ctx, and shuts Fallback down.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !s.closeIdle() {
		select {
		case <-ctx.Done():
			s.closeAll()
			return errors.Join(ctx.Err(), s.Fallback.Shutdown(ctx))
		case <-t.C:
		}
	}
	s.wg.Wait()
	return s.Fallback.Shutdown(ctx)
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			_ = c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return nil
	}
	c := &conn{srv: s, nc: nc, br: bufio.NewReaderSize(nc, bufSize), bw: bufio.NewWriterSize(nc, 4<<10)}
	c.idle.Store(true)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// logf logs a warning, if there is a Logger.
func (s *Server) logf(msg string, attrs ...slog.Attr) {
	if s.Logger != nil {
		s.Logger.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	}
}

func (s *Server) handler() http.Handler {
	if s.Handler != nil {
		return s.Handler
	}
	return s.Fallback.Handler
}

// conn is one client connection while the fast path serves it.
type conn struct {
	srv  *Server
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle atomic.Bool // waiting for a request: Shutdown may close it

	base   *http.Request // carries the connection's context
	remote string
	h      head
	res    response
	body   *body              // of the current request, nil without one
	head   []byte             // the response head WriteHeader wrote
	rd, wd time.Time          // the read and write deadlines last set
	cancel context.CancelFunc // of the connection's context, the requests'
	watch  watch
	served bool      // a request was read: the next waits IdleTimeout
	post   bool      // the last request was a POST
	start  time.Time // when the current request's first byte was read
}

// serve reads and serves requests until the connection closes or is
// handed over.
func (c *conn) serve() {
	defer c.srv.forget(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.cancel = cancel
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.nc.LocalAddr())
	c.base = (&http.Request{}).WithContext(ctx)
	c.remote = c.nc.RemoteAddr().String()
	for {
		r, v := c.readRequest()
		switch v {
		case handOff:
			c.handOver()
			return
		case needMore: // the connection ended or timed out
			_ = c.nc.Close()
			return
		}
		if !c.serveRequest(r) {
			c.closeAfterAnswer()
			return
		}
	}
}

// readRequest waits for the next request and reads its head; needMore
// means the connection is done.
func (c *conn) readRequest() (*http.Request, verdict) {
	fb := c.srv.Fallback
	c.idle.Store(true)
	if c.srv.shutdown.Load() {
		return nil, needMore
	}
	// As with net/http: a new connection has ReadHeaderTimeout for its
	// first head, a kept one IdleTimeout for the next request to start;
	// either falls back on ReadTimeout when zero.
	headTimeout, idle := orElse(fb.ReadHeaderTimeout, fb.ReadTimeout), orElse(fb.IdleTimeout, fb.ReadTimeout)
	first := !c.served
	c.served = true
	switch {
	case first:
		c.readDeadline(headTimeout, time.Now())
	case c.br.Buffered() == 0:
		c.readDeadline(idle, time.Now())
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, needMore
	}
	if c.post {
		// As net/http: up to 4 CR or LF bytes after a POST are skipped
		// (RFC 9112 §2.2 tolerance for clients that end a body with one).
		peek, _ := c.br.Peek(4)
		_, _ = c.br.Discard(leadingCRorLF(peek))
	}
	c.idle.Store(false)
	start := time.Now()
	limit := bufSize
	if m := fb.MaxHeaderBytes; m > 0 && m < limit {
		limit = m
	}
	for reads := 0; ; reads++ {
		buf, _ := c.br.Peek(c.br.Buffered())
		switch parseHead(buf, &c.h) {
		case handOff:
			return c.handOffOrPreface(buf, first, start)
		case accept:
			if c.h.size > limit {
				return nil, handOff // all in one read, but as long
			}
			return c.request(start)
		}
		if reads == 0 && !first {
			// Not all there in one read: the head's own deadline.
			c.readDeadline(headTimeout, start)
		}
		if len(buf) >= limit {
			return c.handOffOrPreface(buf, first, start) // net/http judges long heads
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 && !isTimeout(err) {
				return c.handOffOrPreface(buf, first, start) // a cut-off head: net/http answers it
			}
			return nil, needMore
		}
	}
}

// h2PrefaceLine is the first line of HTTP/2's connection preface (RFC 9113
// §3.4), which net/http's HTTP/1 server reads as a request line.
var h2PrefaceLine = []byte("PRI * HTTP/2.0\r\n")

// handOffOrPreface hands the connection over, unless the head in buf
// starts like HTTP/2's preface after requests on the connection: that one
// is read here (prefaceRequest), whatever follows its first line.
func (c *conn) handOffOrPreface(buf []byte, first bool, start time.Time) (*http.Request, verdict) {
	if !first && bytes.HasPrefix(buf, h2PrefaceLine) {
		return c.prefaceRequest(start), accept
	}
	return nil, handOff
}

// prefaceRequest reads a head that starts with HTTP/2's preface line,
// come after requests on the connection, as net/http reads the preface
// there: a "PRI *" request over HTTP/2.0, without fields or body, after
// which the connection closes (what follows the line is not read: the
// handler refuses the request, and nothing after it is served). It is not
// handed over: the preface is valid only as a connection's first bytes,
// and net/http, to which a handed-over connection is new, would take the
// whole preface for HTTP/2 with prior knowledge (h2c) and read the rest of
// the connection as HTTP/2, or, given a head that starts like it but is
// no preface ("PRI * HTTP/2.0\r\nA:\r\n\r\n"), wait for the rest of a
// preface that never comes, and close without an answer.
func (c *conn) prefaceRequest(start time.Time) *http.Request {
	_, _ = c.br.Discard(len(h2PrefaceLine))
	c.start, c.body = start, nil
	r := new(http.Request)
	*r = *c.base
	r.Method, r.URL, r.RequestURI = "PRI", &url.URL{Path: "*"}, "*"
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header, r.Body, r.ContentLength, r.Close = http.Header{}, http.NoBody, -1, true
	r.RemoteAddr = c.remote
	return r
}

// request builds the http.Request of the head just read, as net/http
// would have, or hands the connection over when the target is not the
// fast path's or does not parse.
func (c *conn) request(start time.Time) (*http.Request, verdict) {
	h := &c.h
	if route := c.srv.Route; route != nil && !route(h.target) {
		return nil, handOff
	}
	r, err := h.request(c.base)
	if err != nil {
		return nil, handOff
	}
	_, _ = c.br.Discard(h.size)
	c.start = start
	r.RemoteAddr = c.remote
	r.Body, c.body = http.NoBody, nil
	if h.contentLength > 0 {
		c.body = &body{c: c, remain: h.contentLength}
		r.Body = c.body
		c.readDeadline(c.srv.Fallback.ReadTimeout, start)
	}
	return r, accept
}

// request returns the http.Request of h as net/http would read it (less
// RemoteAddr and Body), with base's context.
func (h *head) request(base *http.Request) (*http.Request, error) {
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return nil, fmt.Errorf("reading the request target: %w", err)
	}
	r := new(http.Request)
	*r = *base
	r.Method, r.URL, r.RequestURI = h.method, u, h.target
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = make(http.Header, len(h.fields))
	vals := make([]string, len(h.fields)) // one allocation for the values
	for i, f := range h.fields {
		if f.name == "Host" {
			continue
		}
		if vs, ok := r.Header[f.name]; ok {
			r.Header[f.name] = append(vs, f.value) // a repeated field: copied
			continue
		}
		vals[i] = f.value
		r.Header[f.name] = vals[i : i+1 : i+1]
	}
	fixPragma(r.Header)
	r.Host, r.Close, r.ContentLength = h.host, h.close, h.contentLength
	return r, nil
}

// fixPragma gives a request with "Pragma: no-cache" and no Cache-Control
// a "Cache-Control: no-cache", as net/http does (RFC 7234 §5.4).
func fixPragma(h http.Header) {
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// serveRequest runs the handler on r and finishes its response; false
// means the connection must close.
func (c *conn) serveRequest(r *http.Request) (keep bool) {
	c.post = r.Method == http.MethodPost
	w := &c.res
	w.reset(c, r)
	c.writeDeadline(c.srv.Fallback.WriteTimeout, c.start)
	c.arm()
	defer func() {
		c.disarm()
		if p := recover(); p != nil {
			keep = false
			if p != http.ErrAbortHandler {
				c.logPanic(r, p)
			}
			_ = c.bw.Flush()
		}
	}()
	c.srv.handler().ServeHTTP(w, r)
	return w.finish()
}

// leadingCRorLF counts the CR and LF bytes b starts with.
func leadingCRorLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// lingerTime bounds how long a connection closing with request body
// still on its way is read past after the answer (net/http waits 500 ms).
const lingerTime = 500 * time.Millisecond

// closeAfterAnswer closes the connection once the answer is written.
// With request body still on its way, it first closes its sending side
// and reads past what comes until the client closes or lingerTime
// passes: closing with unread bytes sends a TCP reset, which can cost the
// client the answer it has not read yet.
func (c *conn) closeAfterAnswer() {
	unread := c.body.unread()
	if c.body != nil {
		// A reader the handler left behind (an upload's) touches the
		// connection no more.
		_ = c.body.Close()
	}
	if cw, ok := c.nc.(closeWriter); ok && unread && cw.CloseWrite() == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.Copy(io.Discard, c.br)
	}
	_ = c.nc.Close()
}

func (c *conn) logPanic(r *http.Request, p any) {
	if c.srv.Logger == nil {
		return
	}
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	c.srv.Logger.Error("panic serving a request", slog.String("remote", c.remote),
		slog.String("method", r.Method), slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(buf)))
}

// handOver passes the connection, with the bytes read but not consumed,
// to Fallback.
func (c *conn) handOver() {
	_ = c.nc.SetReadDeadline(time.Time{})
	pending, _ := c.br.Peek(c.br.Buffered())
	rc := &replayConn{Conn: c.nc, pending: append([]byte(nil), pending...)}
	if !c.srv.handoff.deliver(rc) {
		_ = c.nc.Close()
	}
}

// deadlineSlack is how far a connection's deadline may be from the one
// asked for before it is set again: setting it costs a timer update, and
// a timeout of minutes need not be exact to the second.
// It is at most an eighth of the timeout, so short ones stay short.
const deadlineSlack = time.Second

// readDeadline makes the connection's read deadline d after from (none
// for d = 0), within deadlineSlack.
func (c *conn) readDeadline(d time.Duration, from time.Time) {
	if t := deadline(d, from); !near(t, c.rd, d) {
		c.rd = t
		_ = c.nc.SetReadDeadline(t)
	}
}

// writeDeadline is readDeadline's twin for writes.
func (c *conn) writeDeadline(d time.Duration, from time.Time) {
	if t := deadline(d, from); !near(t, c.wd, d) {
		c.wd = t
		_ = c.nc.SetWriteDeadline(t)
	}
}

func deadline(d time.Duration, from time.Time) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return from.Add(d)
}

// near reports whether deadlines a and b, for a timeout, are both none or
// within the slack of each other: deadlineSlack, or an eighth of the
// timeout when that is less.
func near(a, b time.Time, timeout time.Duration) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	diff := a.Sub(b)
	slack := min(deadlineSlack, timeout/8)
	return -slack < diff && diff < slack
}

// orElse returns d, or alt when d is zero.
func orElse(d, alt time.Duration) time.Duration {
	if d == 0 {
		return alt
	}
	return d
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// replayConn is a connection whose first reads return bytes already read
// from it.
type replayConn struct {
	net.Conn
	pending []byte
}

// closeWriter is a connection whose sending side closes alone (a TCP
// connection's).
type closeWriter interface{ CloseWrite() error }

// CloseWrite closes the sending side, which net/http does before closing
// a connection with request body unread, so that the client reads the
// answer rather than a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("closing the sending side of a %T: %w", c.Conn, errors.ErrUnsupported)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// handoffListener is the listener Fallback serves: its connections are
// the ones the fast path hands over.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to Accept; false when the listener is closed.
func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
