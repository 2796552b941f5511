package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Client is the gateway's upstream client: an http.RoundTripper that speaks
// HTTP/1.1 to one upstream over a pool of keep-alive connections (TLS for
// https). Unlike http.Transport it runs each exchange on the caller's
// goroutine: it writes the request and reads the response itself, with no
// per-connection reader and writer goroutines to hand them over to. That
// hand-over, and the header copies around it, were most of the Go proxy
// hop's cost beyond the system calls (docs/performance.md).
//
// It writes a request exactly as given: the request line from the URL's
// RequestURI, Host, then the header fields, refusing any field a parser
// could read another way (a name that is not a token, a value with a
// control byte). It never adds fields of its own but Content-Length or
// Transfer-Encoding, and never asks for compression.
//
// Before reusing an idle connection it looks (one non-blocking peek)
// whether the upstream closed it or sent on it unasked; either way the
// connection is dropped, so a stray answer is never taken for the next
// request's. A request whose body cannot be replayed is never retried; one
// without a body or with GetBody is retried once, on a new connection, when
// a reused connection failed before any answer came and the request is
// idempotent (RFC 9110 §9.2.2) or was not sent at all. A timeout is never
// retried.
type Client struct {
	opts   TransportOptions
	dialer net.Dialer

	mu      sync.Mutex
	idle    []*upConn // most recently used last
	janitor bool      // a goroutine is closing connections idle too long
	closed  atomic.Bool
}

// NewClient returns a Client; zero options take NewTransport's defaults.
func NewClient(o TransportOptions) *Client {
	o = o.withDefaults()
	return &Client{opts: o, dialer: net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}}
}

// upConn is one pooled connection to the upstream.
type upConn struct {
	nc      net.Conn
	br      *bufio.Reader
	lim     headLimit // bounds what br reads for a response head
	bw      *bufio.Writer
	key     poolKey
	idleAt  time.Time
	reused  bool
	peek    peeker      // looks at the idle connection before reuse
	written int64       // bytes written on the connection
	aborted atomic.Bool // the request's context ended: never reuse
	// writeDone, when not nil, gets the outcome of a body still being
	// written by another goroutine.
	writeDone chan error
}

// RoundTrip sends r and returns the response, whose Body returns the
// connection to the pool when read to its end.
func (c *Client) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := c.check(r); err != nil {
		closeBody(r)
		return nil, err
	}
	resp, err := c.exchange(r, false)
	if err != nil && retryable(r, err) {
		if r.GetBody != nil && r.Body != nil && r.Body != http.NoBody {
			body, gerr := r.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *r
			r2.Body = body
			r = &r2
		}
		resp, err = c.exchange(r, true) // on a new connection
	}
	if err != nil {
		closeBody(r)
		if ctxErr := r.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("upstream %s: %w", r.URL.Host, ctxErr)
		}
		return nil, fmt.Errorf("upstream %s: %w", r.URL.Host, err)
	}
	return resp, nil
}

// check refuses what Client cannot send as given.
func (c *Client) check(r *http.Request) error {
	if r.URL == nil || r.URL.Host == "" {
		return errors.New("proxy.Client: request has no upstream host")
	}
	if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
		return fmt.Errorf("proxy.Client: unsupported scheme %q", r.URL.Scheme)
	}
	if !validToken(r.Method) {
		return fmt.Errorf("proxy.Client: invalid method %q", r.Method)
	}
	if c.closed.Load() {
		return errors.New("proxy.Client: closed")
	}
	return nil
}

// retryErr is an exchange failure on a reused connection before any byte
// of an answer came.
type retryErr struct {
	err     error
	written bool // some of the request was written
}

func (e *retryErr) Error() string { return e.err.Error() }
func (e *retryErr) Unwrap() error { return e.err }

// retryable reports whether r may be sent again after err.
func retryable(r *http.Request, err error) bool {
	var re *retryErr
	if !errors.As(err, &re) || r.Context().Err() != nil {
		return false
	}
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	return !re.written || idempotent(r)
}

// idempotent reports whether RFC 9110 §9.2.2 lets r be sent twice.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	return ok
}

// exchange sends r on one connection, a new one when fresh, and reads the
// response head.
func (c *Client) exchange(r *http.Request, fresh bool) (*http.Response, error) {
	ctx := r.Context()
	uc, err := c.get(ctx, r.URL, fresh)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, uc.abort)
	resp, err := c.send(r, uc)
	if err != nil {
		stop()
		uc.nc.Close()
		return nil, err
	}
	if resp.Body == http.NoBody || resp.Body == nil {
		c.release(uc, resp.Close, stop)
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = &upBody{rc: resp.Body, c: c, uc: uc, stop: stop, close: resp.Close}
	return resp, nil
}

// abort ends the exchange on uc at once: its context ended.
func (uc *upConn) abort() {
	uc.aborted.Store(true)
	_ = uc.nc.SetDeadline(time.Unix(1, 0))
}

// setReadDeadline sets uc's read deadline, unless abort ran: its past
// deadline must not be overwritten, or a request whose context ended
// would wait on (for a stream, without end).
func (uc *upConn) setReadDeadline(t time.Time) {
	_ = uc.nc.SetReadDeadline(t)
	if uc.aborted.Load() {
		_ = uc.nc.SetDeadline(time.Unix(1, 0))
	}
}

// send writes r on uc and reads the response head, skipping interim (1xx)
// answers.
func (c *Client) send(r *http.Request, uc *upConn) (*http.Response, error) {
	if err := c.write(r, uc); err != nil {
		return nil, err
	}
	uc.setReadDeadline(time.Now().Add(c.opts.ResponseHeaderTimeout))
	uc.lim.on, uc.lim.n = true, maxResponseHead
	defer func() { uc.lim.on = false }()
	for interim := false; ; interim = true {
		// After an interim answer the upstream has the request: a
		// failure then is no stale connection.
		if _, err := uc.br.Peek(1); err != nil && uc.reused && !interim && uc.writeDone == nil && !isTimeout(err) {
			// A timeout is an upstream that is slow, not a stale
			// connection: sending again would apply the request twice.
			return nil, &retryErr{err: err, written: true}
		}
		resp, err := readResponse(uc.br, r)
		if err != nil {
			return nil, fmt.Errorf("reading the response: %w", err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("the upstream switched protocols, which was not asked for")
		}
		if resp.StatusCode >= 200 || resp.StatusCode < 100 {
			uc.setReadDeadline(time.Time{})
			return resp, nil
		}
		// An interim answer (100 Continue, 103 Early Hints): the gateway
		// already answered the client's Expect itself; wait for the final.
	}
}

// maxResponseHead bounds the bytes read for a response's head (interim
// answers included), as http.Transport's MaxResponseHeaderBytes default.
const maxResponseHead = 10 << 20

// headLimit is the reader under a connection's bufio.Reader: while on, it
// reads at most n more bytes.
type headLimit struct {
	r  io.Reader
	on bool
	n  int64
}

var errHeadTooLarge = errors.New("the response head is too large")

func (l *headLimit) Read(p []byte) (int, error) {
	if !l.on {
		return l.r.Read(p)
	}
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// streamedBody is the size past which a body is sent while the answer is
// read (the upstream may answer before it has read it all), rather than
// before.
const streamedBody = 256 << 10

// write sends r on uc: all of it, or for a large or unsized body the head
// now and the body from another goroutine, so that an upstream answering
// early is heard.
func (c *Client) write(r *http.Request, uc *upConn) error {
	n := outgoingLength(r)
	if n >= 0 && n <= streamedBody {
		before := uc.written
		err := writeRequest(uc.bw, r)
		if err != nil && uc.reused && !errors.Is(err, errBadField) {
			return &retryErr{err: err, written: uc.written > before}
		}
		return err
	}
	if err := writeHead(uc.bw, r); err != nil {
		closeBody(r)
		return err
	}
	// The goroutine reports on its own copy of the channel: release may
	// forget uc.writeDone before it reports (an early answer).
	done := make(chan error, 1)
	uc.writeDone = done
	body := &readTracker{rc: r.Body}
	r2 := *r
	r2.Body = body
	go func() {
		err := writeBody(uc.bw, &r2)
		if err == nil {
			err = uc.bw.Flush()
		}
		if body.err != nil {
			// The body broke off: the upstream waits for the rest, which
			// never comes; end the exchange now rather than at the
			// header timeout.
			uc.nc.Close()
		}
		done <- err
	}()
	return nil
}

// readTracker remembers a body's read failure (other than its end).
type readTracker struct {
	rc  io.ReadCloser
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func (t *readTracker) Close() error { return t.rc.Close() }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeRequest writes r's request line, Host, header fields and body.
func writeRequest(bw *bufio.Writer, r *http.Request) error {
	if err := writeHead(bw, r); err != nil {
		return err
	}
	if err := writeBody(bw, r); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the request: %w", err)
	}
	return nil
}

// errBadField is a header field Client will not write as given.
var errBadField = errors.New("invalid header field")

// writeHead buffers the request line and the header fields.
func writeHead(bw *bufio.Writer, r *http.Request) error {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if !validFieldValue(host) {
		return fmt.Errorf("%w: Host %q", errBadField, host)
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	writeTarget(bw, r.URL)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range r.Header {
		if skippedField(k) {
			continue
		}
		if !validToken(k) {
			return fmt.Errorf("%w: name %q", errBadField, k)
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return fmt.Errorf("%w: %s", errBadField, k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch n := outgoingLength(r); {
	case n > 0 || (n == 0 && bodyMethod(r.Method)):
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(n, 10))
		bw.WriteString("\r\n")
	case n < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeTarget writes u's request target: its escaped path (the path as
// parsed, when u came from a parser) and query, without building a
// string.
func writeTarget(bw *bufio.Writer, u *url.URL) {
	if u.Opaque != "" {
		bw.WriteString(u.RequestURI())
		return
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
}

// skippedField reports the fields Client writes itself (Host, framing) or
// that belong to one connection only.
func skippedField(k string) bool {
	return k == "Host" || k == "Content-Length" || hopField(k)
}

// outgoingLength is the body's length: 0 for none, -1 when unknown.
func outgoingLength(r *http.Request) int64 {
	if r.Body == nil || r.Body == http.NoBody {
		return 0
	}
	if r.ContentLength != 0 {
		return r.ContentLength
	}
	return -1
}

// bodyMethod reports methods that announce an empty body as
// Content-Length: 0, as net/http's client does.
func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// writeBody writes r's body: as is when its length is known (exactly that
// many bytes), chunked otherwise.
func writeBody(bw *bufio.Writer, r *http.Request) error {
	n := outgoingLength(r)
	if n == 0 {
		return nil
	}
	defer r.Body.Close()
	if n > 0 {
		copied, err := io.Copy(bw, io.LimitReader(r.Body, n))
		if err == nil && copied < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("sending the request body (%d of %d bytes): %w", copied, n, err)
		}
		return nil
	}
	cw := httputil.NewChunkedWriter(bw)
	if _, err := io.Copy(cw, r.Body); err != nil {
		return fmt.Errorf("sending the request body: %w", err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("sending the request body: %w", err)
	}
	_, err := bw.WriteString("\r\n") // no trailers
	return err
}

// validToken reports whether s is an RFC 9110 token (a method or a field
// name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the tchar bytes of RFC 9110 §5.6.2.
var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validFieldValue reports whether v is a field value Client may write: no
// control byte but horizontal tab, no DEL, no leading or trailing white
// space.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return v == "" || (v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t')
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// Write writes to the connection, counting what was written.
func (uc *upConn) Write(p []byte) (int, error) {
	n, err := uc.nc.Write(p)
	uc.written += int64(n)
	return n, err
}

// poolKey names the upstream a pooled connection leads to.
type poolKey struct {
	tls  bool
	host string // host:port as in the URL
}

// get returns an idle connection to u's host, or dials one (always, when
// fresh).
func (c *Client) get(ctx context.Context, u *url.URL, fresh bool) (*upConn, error) {
	key := poolKey{tls: u.Scheme == "https", host: u.Host}
	if fresh {
		return c.dial(ctx, u, key)
	}
	if uc := c.takeIdle(key); uc != nil {
		return uc, nil
	}
	return c.dial(ctx, u, key)
}

// takeIdle pops the most recently used idle connection to key that is
// still open.
func (c *Client) takeIdle(key poolKey) *upConn {
	now := time.Now()
	for {
		c.mu.Lock()
		var uc *upConn
		for i := len(c.idle) - 1; i >= 0; i-- {
			if c.idle[i].key == key {
				uc = c.idle[i]
				c.idle = append(c.idle[:i], c.idle[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		if uc == nil {
			return nil
		}
		if now.Sub(uc.idleAt) < c.opts.IdleConnTimeout && !uc.peek.closed(uc.nc) {
			uc.reused = true
			return uc
		}
		uc.nc.Close()
	}
}

// dial opens a new connection to u's host.
func (c *Client) dial(ctx context.Context, u *url.URL, key poolKey) (*upConn, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	if u.Scheme == "https" {
		if nc, err = c.handshake(ctx, nc, u.Hostname()); err != nil {
			return nil, err
		}
	}
	uc := &upConn{nc: nc, key: key}
	uc.lim.r = nc
	uc.br = bufio.NewReaderSize(&uc.lim, 4<<10)
	uc.bw = bufio.NewWriterSize(uc, 4<<10)
	return uc, nil
}

// handshake runs the TLS handshake on nc, asking for HTTP/1.1.
func (c *Client) handshake(ctx context.Context, nc net.Conn, host string) (net.Conn, error) {
	conf := &tls.Config{}
	if c.opts.TLS != nil {
		conf = c.opts.TLS.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName = host
	}
	conf.NextProtos = []string{"http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, c.opts.TLSHandshakeTimeout)
	defer cancel()
	tc := tls.Client(nc, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", host, err)
	}
	return tc, nil
}

// release ends an exchange on uc: back to the pool when the connection
// can carry another, closed otherwise.
func (c *Client) release(uc *upConn, closeAfter bool, stop func() bool) {
	stopped := stop()
	if uc.writeDone != nil {
		select {
		case err := <-uc.writeDone:
			closeAfter = closeAfter || err != nil
		default: // the upstream answered before reading the whole body
			closeAfter = true
		}
		uc.writeDone = nil
	}
	if closeAfter || !stopped || uc.aborted.Load() || uc.br.Buffered() > 0 {
		uc.nc.Close()
		return
	}
	uc.idleAt = time.Now()
	c.mu.Lock()
	if c.closed.Load() || len(c.idle) >= c.opts.MaxIdleConnsPerHost {
		c.mu.Unlock()
		uc.nc.Close()
		return
	}
	c.idle = append(c.idle, uc)
	startJanitor := !c.janitor
	c.janitor = true
	c.mu.Unlock()
	if startJanitor {
		go c.sweep()
	}
}

// sweep closes connections idle past IdleConnTimeout, until none is idle.
func (c *Client) sweep() {
	t := time.NewTicker(c.opts.IdleConnTimeout / 3)
	defer t.Stop()
	for range t.C {
		c.mu.Lock()
		cut := time.Now().Add(-c.opts.IdleConnTimeout)
		keep := c.idle[:0]
		for _, uc := range c.idle {
			if uc.idleAt.Before(cut) {
				uc.nc.Close()
			} else {
				keep = append(keep, uc)
			}
		}
		clear(c.idle[len(keep):])
		c.idle = keep
		done := len(c.idle) == 0
		if done {
			c.janitor = false
		}
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// CloseIdleConnections closes the pooled connections.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, uc := range idle {
		uc.nc.Close()
	}
}

// Close closes the pooled connections; the Client sends no more requests.
func (c *Client) Close() {
	c.closed.Store(true)
	c.CloseIdleConnections()
}

// upBody is a response body that gives its connection back once read to
// its end, and closes it when closed before that.
type upBody struct {
	rc    io.ReadCloser
	c     *Client
	uc    *upConn
	stop  func() bool
	close bool
	done  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done = true
		b.c.release(b.uc, b.close, b.stop)
	}
	return n, err
}

// Close ends the exchange; a body not read to its end costs the
// connection.
func (b *upBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.stop()
	b.uc.nc.Close()
	return nil
}

// peerClosed reports whether the upstream closed an idle connection or sent
// on it unasked (either way it cannot carry a request): it peeks at the
// socket without blocking.
func peerClosed(nc net.Conn) bool {
	var p peeker
	return p.closed(nc)
}

// peeker peeks at a connection's socket without blocking (peerClosed),
// with what it needs made once per connection rather than per look.
type peeker struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool // look, bound once
	gone  bool                  // what fn saw
	plain bool                  // no socket to look at
}

// closed is peerClosed(nc); nc must be the connection of every call.
func (p *peeker) closed(nc net.Conn) bool {
	if p.raw == nil && !p.plain {
		if tc, ok := nc.(*tls.Conn); ok {
			nc = tc.NetConn()
		}
		sc, ok := nc.(syscall.Conn)
		if !ok {
			p.plain = true
			return false
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		p.raw, p.fn = raw, p.look
	}
	if p.plain {
		return false
	}
	p.gone = false
	err := p.raw.Read(p.fn)
	return p.gone || err != nil
}

func (p *peeker) look(fd uintptr) bool {
	var b [1]byte
	n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.gone = n >= 0 && rerr == nil || rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK
	return true // never wait
}
