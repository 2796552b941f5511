package h1

import (
	"bytes"
	"net/textproto"
	"strings"
)

// The grammar the fast path reads.
//
// A request head is read here only when it is in a narrow, unambiguous
// subset of HTTP/1.1 (RFC 9112) that net/http reads the same way:
//
//	request-line = method SP origin-form SP "HTTP/1.1" CRLF
//	field-line   = field-name ":" OWS field-value OWS CRLF
//
// with a token method other than CONNECT and PRI; a request target of
// visible ASCII from a conservative set (no "#", quotes, brackets, back
// slashes or bytes above 0x7E); field names of token bytes directly followed
// by the colon; field values of visible ASCII, spaces and tabs; exactly one
// non-empty Host of host characters; at most one Content-Length of at most
// 18 digits; and no Transfer-Encoding, Expect or Upgrade field. Anything
// else — bare LF line ends, folded lines, HTTP/1.0, absolute-form, a second
// Host or Content-Length, a chunked body, a head longer than the fast path's
// buffer — is not refused here but handed, with the whole connection, to
// net/http, which then reads, judges and serves it as it would have without
// the fast path. So the fast path never reads a request another way than
// net/http: it reads fewer of them.

// verdict is what parseHead makes of the bytes read so far.
type verdict int

const (
	needMore verdict = iota // no blank line yet: read on
	accept                  // a head in the grammar above
	handOff                 // anything else: net/http's to read
)

// head is a request head in the fast path's grammar. Its strings share
// one copy of the head's bytes.
type head struct {
	method, target string
	fields         []field // in order, names canonical, Host included
	host           string
	contentLength  int64 // 0 when absent
	close          bool  // Connection names "close"
	size           int   // bytes of the head, blank line included
}

type field struct{ name, value string }

// maxFields bounds the fields of a head the fast path reads.
const maxFields = 64

// parseHead reads the head at the start of b. On accept, h holds it (h's
// fields slice is reused); b is not retained.
func parseHead(b []byte, h *head) verdict {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if bytes.IndexByte(b, '\n') >= 0 && !onlyCRLF(b) {
			return handOff // a bare LF: never ours to read
		}
		return needMore
	}
	size := end + len(crlfcrlf)
	if !onlyCRLF(b[:size]) {
		return handOff
	}
	s := string(b[:size]) // the one copy every string of h shares
	line, rest, _ := strings.Cut(s, "\r\n")
	if !requestLine(line, h) {
		return handOff
	}
	h.size, h.fields, h.host, h.contentLength, h.close = size, h.fields[:0], "", 0, false
	var hosts, lengths int
	for rest != "\r\n" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		f, ok := fieldLine(line)
		if !ok || len(h.fields) == maxFields {
			return handOff
		}
		switch f.name {
		case "Host":
			hosts++
			h.host = f.value
		case "Content-Length":
			lengths++
			n, ok := contentLength(f.value)
			if !ok {
				return handOff
			}
			h.contentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade":
			return handOff
		case "Connection":
			h.close = h.close || hasToken(f.value, "close")
		}
		h.fields = append(h.fields, f)
	}
	if hosts != 1 || lengths > 1 || !validHost(h.host) {
		return handOff
	}
	return accept
}

var crlfcrlf = []byte("\r\n\r\n")

// onlyCRLF reports whether every LF in b follows a CR and every CR
// precedes an LF.
func onlyCRLF(b []byte) bool {
	for i, c := range b {
		switch c {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return false
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return false
			}
		}
	}
	return true
}

// requestLine reads "METHOD SP target SP HTTP/1.1" into h.
func requestLine(line string, h *head) bool {
	rest, ok := strings.CutSuffix(line, " HTTP/1.1")
	if !ok {
		return false
	}
	method, target, ok := strings.Cut(rest, " ")
	if !ok || method == "" || method == "CONNECT" || method == "PRI" || !isToken(method) || !validTarget(target) {
		return false
	}
	h.method, h.target = internMethod(method), target
	return true
}

// internMethod returns the common methods as constants.
func internMethod(m string) string {
	for _, c := range [...]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
		if m == c {
			return c
		}
	}
	return m
}

// validTarget accepts an origin-form target of the bytes targetByte
// allows, starting with one "/".
func validTarget(t string) bool {
	if len(t) == 0 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !targetByte[t[i]] {
			return false
		}
	}
	return true
}

// fieldLine reads "name: value", the value stripped of OWS, the name in
// canonical form.
func fieldLine(line string) (field, bool) {
	name, value, ok := strings.Cut(line, ":")
	if !ok || name == "" || !isToken(name) {
		return field{}, false
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c > '~' {
			return field{}, false
		}
	}
	return field{name: textproto.CanonicalMIMEHeaderKey(name), value: strings.Trim(value, " \t")}, true
}

// contentLength reads a Content-Length value: 1 to 18 digits.
func contentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validHost accepts a non-empty Host of letters, digits and ".-_:[]".
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isAlnum(c) && strings.IndexByte(".-_:[]", c) < 0 {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v names tok, in any
// letter case.
func hasToken(v, tok string) bool {
	for opt := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.Trim(opt, " \t"), tok) {
			return true
		}
	}
	return false
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// tokenByte and targetByte are the byte classes of field names and
// methods (RFC 9110 tchar) and of the targets the fast path reads.
var tokenByte, targetByte [256]bool

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		tokenByte[c] = isAlnum(b) || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		targetByte[c] = isAlnum(b) || strings.IndexByte("-._~!$&'()*+,;=:@/?%", b) >= 0
	}
}
