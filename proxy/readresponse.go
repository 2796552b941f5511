package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
)

// readResponse reads a response head from br, and with it the body's
// framing. The common shape of an answer (HTTP/1.1, a Content-Length or
// no body, plain fields, the whole head in br's buffer) it reads itself,
// with a few allocations; anything else it leaves unread for
// http.ReadResponse. Whatever quickResponse accepts, http.ReadResponse
// reads the same way (FuzzReadResponse compares them): a response read
// two ways on a pooled connection would hand one client another's answer.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if resp := quickResponse(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// quickResponse parses the response head buffered in br and consumes it,
// or returns nil having consumed nothing.
func quickResponse(br *bufio.Reader, req *http.Request) *http.Response {
	raw := bufferedHead(br)
	if raw == nil {
		return nil
	}
	resp := parseQuickHead(string(raw), req)
	if resp == nil {
		return nil
	}
	_, _ = br.Discard(len(raw)) // buffered: cannot fail
	if resp.ContentLength > 0 && resp.Body == nil {
		resp.Body = &lengthBody{br: br, left: resp.ContentLength}
	}
	return resp
}

// bufferedHead returns the bytes of a head (up to and including the empty
// line) once they are all in br's buffer, reading more while there is
// room; nil when the head does not fit or reading fails (the caller's
// fallback then reads, and reports, the same).
func bufferedHead(br *bufio.Reader) []byte {
	for n := 1; ; {
		buf, err := br.Peek(n)
		if err != nil {
			return nil
		}
		buf, _ = br.Peek(br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			return buf[:i+4]
		}
		if len(buf) >= br.Size() {
			return nil
		}
		n = len(buf) + 1
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// quickHead is what parseQuickHead learns of the framing fields.
type quickHead struct {
	length     int64 // -1: no Content-Length
	close      bool
	declined   bool
	sawLength  bool
	sawConnect bool
	values     []string // backing for the fields' first values
}

// parseQuickHead parses s, a whole head ending in an empty line, into a
// Response without a Body (set by the caller when it has a length), or
// returns nil for anything outside the narrow grammar: status line
// "HTTP/1.1 ddd reason", fields whose names are tokens directly followed
// by ':' and whose values are visible ASCII, spaces and tabs, lines ended
// by CRLF; at most one Content-Length (digits) and one Connection (close
// or keep-alive); no Transfer-Encoding, Trailer or Pragma (which
// http.ReadResponse reads with rules of their own); and a body bounded by
// its length or absent by its status or the request's method.
func parseQuickHead(s string, req *http.Request) *http.Response {
	line, rest, _ := strings.Cut(s, "\r\n")
	resp := statusLine(line)
	if resp == nil {
		return nil
	}
	rest = rest[:len(rest)-2] // the empty line
	n := strings.Count(rest, "\r\n")
	resp.Header = make(http.Header, n)
	qh := quickHead{length: -1, values: make([]string, n)}
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		qh.field(resp.Header, line)
		if qh.declined {
			return nil
		}
	}
	if qh.close {
		resp.Header.Del("Connection") // as http.ReadResponse does
	}
	resp.Close = qh.close
	resp.Request = req
	return framed(resp, req, qh.length)
}

// statusLine parses "HTTP/1.1 ddd reason".
func statusLine(line string) *http.Response {
	const proto = "HTTP/1.1 "
	if len(line) < len(proto)+4 || line[:len(proto)] != proto || line[len(proto)+3] != ' ' {
		return nil
	}
	code := 0
	for _, c := range []byte(line[len(proto) : len(proto)+3]) {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code > 599 || !visibleText(line[len(proto)+4:]) {
		return nil
	}
	return &http.Response{
		Status: line[len(proto):], StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// field adds one field line to h, noting the framing fields.
func (qh *quickHead) field(h http.Header, line string) {
	name, value, ok := strings.Cut(line, ":")
	if !ok || !validToken(name) {
		qh.declined = true
		return
	}
	value = strings.Trim(value, " \t")
	if !visibleText(value) {
		qh.declined = true
		return
	}
	key := http.CanonicalHeaderKey(name)
	switch key {
	case "Transfer-Encoding", "Trailer", "Pragma":
		qh.declined = true
		return
	case "Content-Length":
		qh.declined = qh.sawLength
		qh.sawLength = true
		qh.length = decimal(value)
		qh.declined = qh.declined || qh.length < 0
	case "Connection":
		qh.declined = qh.sawConnect
		qh.sawConnect = true
		switch {
		case strings.EqualFold(value, "close"):
			qh.close = true
		case !strings.EqualFold(value, "keep-alive"):
			qh.declined = true
		}
	}
	if vs, ok := h[key]; ok {
		h[key] = append(vs, value)
		return
	}
	h[key], qh.values = qh.values[:1:1], qh.values[1:]
	h[key][0] = value
}

// framed sets resp's body framing as http.ReadResponse would, or returns
// nil when the body would end only with the connection.
func framed(resp *http.Response, req *http.Request, length int64) *http.Response {
	switch {
	case req != nil && req.Method == http.MethodHead:
		resp.ContentLength = length
		resp.Body = http.NoBody
	case resp.StatusCode < 200 || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case length < 0:
		return nil // unbounded: read to the connection's end
	case length == 0:
		resp.Body = http.NoBody
	default:
		resp.ContentLength = length
	}
	return resp
}

// visibleText reports whether s holds only visible ASCII, spaces and
// tabs.
func visibleText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// decimal parses 1 to 18 ASCII digits, or returns -1.
func decimal(s string) int64 {
	if s == "" || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// lengthBody is a body of a known length, read from the connection's
// reader; it reports io.EOF with its last bytes and io.ErrUnexpectedEOF
// when the connection ends before them, as net/http's body does.
type lengthBody struct {
	br   *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: upBody decides the connection's fate.
func (b *lengthBody) Close() error { return nil }
