package h1

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of a request the fast path read. It
// writes what net/http's would for the same handler calls: the head when
// the body starts (or the handler returns), Content-Length when the
// handler set it or returned having written little, chunked otherwise,
// Date, a sniffed Content-Type, trailers, "Connection: close" when the
// connection will close.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   *body // nil without one

	status      int
	wroteHeader bool // WriteHeader called (or implied)
	committed   bool // the head is in the write buffer
	chunked     bool
	head        bool  // a HEAD request: no body is written
	length      int64 // the declared Content-Length, -1 if none
	written     int64 // body bytes written
	closeAfter  bool
	fullDuplex  bool // the handler may read the body after the head is written
	// What WriteHeader saw of the handler's header.
	typed, dated, encoded, trailers bool
	pending                         []byte // body held back until the head is written
}

// holdBack is how much body the response holds before writing its head,
// so that a short answer gets a Content-Length (net/http's is 2 KiB).
const holdBack = 2 << 10

func (w *response) reset(c *conn, r *http.Request) {
	pending := w.pending[:0]
	if pending == nil {
		pending = make([]byte, 0, holdBack)
	}
	header := w.header
	if header == nil || len(header) > 32 {
		header = make(http.Header, 8)
	}
	clear(header) // the last response's: its handler has returned
	*w = response{c: c, req: r, header: header, length: -1, pending: pending,
		head: r.Method == http.MethodHead, closeAfter: r.Close || c.srv.shutdown.Load(), body: c.body}
}

func (w *response) Header() http.Header { return w.header }

// EnableFullDuplex lets the handler read the request body while it writes
// the response, as with net/http's (for http.ResponseController). The
// fast path allows that anyway; the call only means that a large unread
// body does not make the head announce the connection's close.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.header
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
	// The head is the header as it is now, as with net/http: what the
	// handler sets later is not sent (but for trailers).
	_, w.typed = h["Content-Type"]
	_, w.dated = h["Date"]
	w.encoded = h.Get("Content-Encoding") != ""
	w.closeAfter = w.closeAfter || h.Get("Connection") == "close"
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" {
			w.trailers = true
		}
	}
	hb := appendStatus(w.c.head[:0], code)
	hb = appendFields(hb, h, !bodyAllowed(code), code == http.StatusNotModified)
	w.c.head = hb
}

// WriteAnswer writes a whole answer the handler rendered ahead, with no
// header map: what WriteHeader(status) and Write(body) would write had
// fields been set in Header(), in fields' order. fields are whole field
// lines ("Name: value\r\n"), valid as written, one of them Content-Type;
// none of them is Content-Length, Date, Connection, Transfer-Encoding,
// Trailer or a trailer: the server adds Content-Length, Date and
// "Connection: close" as it would. It writes nothing and reports false
// when the handler wrote already, set fields in Header(), or status is
// not one with a body.
func (w *response) WriteAnswer(status int, fields, body []byte) bool {
	if w.wroteHeader || len(w.header) > 0 || status < 200 || status > 999 || !bodyAllowed(status) {
		return false
	}
	w.wroteHeader, w.status, w.typed = true, status, true
	w.length, w.written = int64(len(body)), int64(len(body))
	hb := appendStatus(w.c.head[:0], status)
	hb = append(hb, fields...)
	hb = append(hb, "Content-Length: "...)
	hb = strconv.AppendInt(hb, w.length, 10)
	w.c.head = append(hb, "\r\n"...)
	w.commit(false, nil)
	_, _ = w.writeBody(body)
	return true
}

// informational writes a 1xx answer at once.
func (w *response) informational(code int) {
	hb := appendStatus(w.c.head[:0], code)
	hb = appendFields(hb, w.header, false, false)
	_, _ = w.c.bw.Write(hb)
	_, _ = w.c.bw.WriteString("\r\n")
	_ = w.c.bw.Flush()
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.length < 0 && len(w.pending)+len(p) <= holdBack {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false, p)
	}
	return w.writeBody(p)
}

// writeBody writes p, as a chunk when chunked, nothing for HEAD.
func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if len(p) == 0 || w.head {
		return len(p), nil
	}
	if w.chunked {
		var hex [16]byte
		_, _ = bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush writes the head and what the body has so far.
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	_ = w.c.bw.Flush()
}

// commit writes the head, the fields the server adds, and the held-back
// body to the write buffer; done says the handler has returned, next is
// the body about to be written (for sniffing when nothing is held).
func (w *response) commit(done bool, next []byte) {
	w.committed = true
	if !w.fullDuplex && w.body.tooLong() {
		// As net/http: the body will not be read past, so the
		// connection closes after the answer.
		w.closeAfter = true
	}
	bw := w.c.bw
	_, _ = bw.Write(w.c.head)
	allowed := bodyAllowed(w.status)
	if done && !w.trailers && w.length < 0 && allowed && (!w.head || len(w.pending) > 0) {
		w.length = int64(len(w.pending))
		var n [20]byte
		writeFieldBytes(bw, "Content-Length", strconv.AppendInt(n[:0], w.length, 10))
	}
	sniff := w.pending
	if len(sniff) == 0 {
		sniff = next
	}
	if allowed && !w.typed && !w.encoded && len(sniff) > 0 {
		writeField(bw, "Content-Type", http.DetectContentType(sniff))
	}
	if !w.dated {
		writeField(bw, "Date", httpDate())
	}
	if w.closeAfter {
		writeField(bw, "Connection", "close")
	}
	if !allowed {
		w.length = -1
	}
	w.chunked = allowed && !w.head && w.length < 0
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		_, _ = w.writeBody(w.pending)
	}
}

// finish ends the response after the handler returned; false means the
// connection must close.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		writeTrailers(bw, w.header)
		_, _ = bw.WriteString("\r\n")
	}
	if w.length >= 0 && w.written < w.length && !w.head {
		w.closeAfter = true // the client waits for bytes that will not come
	}
	if err := bw.Flush(); err != nil {
		return false
	}
	return !w.closeAfter && w.body.finish()
}

// writeTrailers writes the announced trailers and those set with
// http.TrailerPrefix, as net/http does: less names that are no token, and
// announced ones a trailer may not carry (RFC 9110 §6.5.1: framing,
// routing, authentication).
func writeTrailers(bw *bufio.Writer, h http.Header) {
	for _, list := range h["Trailer"] {
		for name := range strings.SplitSeq(list, ",") {
			k := http.CanonicalHeaderKey(strings.TrimSpace(name))
			if !isToken(k) || !httpguts.ValidTrailerHeader(k) {
				continue
			}
			for _, v := range h[k] {
				writeField(bw, k, v)
			}
		}
	}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && isToken(name) {
			for _, v := range vs {
				writeField(bw, name, v)
			}
		}
	}
}

func appendStatus(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}

// appendFields appends h's fields as net/http writes them: less those set
// with http.TrailerPrefix, Transfer-Encoding and Connection (the server's
// to set), Content-Length when invalid or noBody, Content-Type when
// notModified; skipping invalid names and writing CR and LF in values as
// spaces.
func appendFields(b []byte, h http.Header, noBody, notModified bool) []byte {
	for k, vs := range h {
		switch {
		case !isToken(k), strings.HasPrefix(k, http.TrailerPrefix), k == "Transfer-Encoding", k == "Connection":
			continue
		case k == "Content-Length" && (noBody || !validLength(vs)), k == "Content-Type" && notModified:
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	return b
}

// validLength reports a Content-Length the response keeps: one
// non-negative number.
func validLength(vs []string) bool {
	if len(vs) != 1 {
		return false
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	return err == nil && n >= 0
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

func writeField(bw *bufio.Writer, k, v string) {
	_, _ = bw.Write(appendField(bw.AvailableBuffer(), k, v))
}

// writeFieldBytes writes a field whose value v needs no cleaning.
func writeFieldBytes(bw *bufio.Writer, k string, v []byte) {
	b := append(bw.AvailableBuffer(), k...)
	b = append(b, ": "...)
	b = append(b, v...)
	_, _ = bw.Write(append(b, "\r\n"...))
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

// httpDate returns the current time in the Date field's format, made at
// most once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := date.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateStamp{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.s
}

type dateStamp struct {
	unix int64
	s    string
}

var date atomic.Pointer[dateStamp]

// body is the body of a request the fast path read: Content-Length bytes
// of the connection. Another goroutine may read it (an upload the
// upstream client writes while it reads the answer), hence the lock.
type body struct {
	mu     sync.Mutex
	c      *conn
	remain int64
	closed bool
	err    error
}

// maxDrain is how much unread body the fast path reads past, after the
// handler returned, to keep the connection (net/http's figure).
const maxDrain = 256 << 10

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.remain == 0:
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if err == io.EOF && b.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	if b.remain == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// Close stops reading: the rest of the body is read past when the
// response ends, or the connection closes.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// tooLong reports whether more of the body is unread than the fast path
// reads past; false without a body.
func (b *body) tooLong() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == nil && b.remain > maxDrain
}

// unread reports whether bytes of the body are still on their way, and
// the connection is otherwise intact.
func (b *body) unread() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == nil && b.remain > 0
}

// finish reads past the unread rest of the body, if it is short, so
// that the next request can be read; false means the connection must
// close.
func (b *body) finish() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.err != nil {
		return false
	}
	if b.remain > maxDrain {
		return false
	}
	if b.remain > 0 {
		n, err := b.c.br.Discard(int(b.remain))
		b.remain -= int64(n)
		if err != nil {
			return false
		}
	}
	return true
}
