package proxy

import (
	"bytes"

	"github.com/tswgate/tswgate/internal/ascii"
)

// framingWatch follows the HTTP/1 requests of one connection as net/http's
// server reads them (net/http's ReadRequest, its chunked reader and its
// trailer reader), byte by byte and without buffering, so that it judges
// header blocks only and skips bodies:
//
//   - a head is the request line and the lines up to the first empty one
//     (a line ends at "\n", a "\r" before it is dropped); a line starting
//     with a space or tab continues the field before it (obs-fold);
//   - after a head, a body framed by Content-Length is skipped by count, a
//     chunked one by reading its chunk-size lines, data, and trailer
//     section with net/http's rules and limits; a request with neither has
//     no body;
//   - after a POST, up to four CR or LF bytes before the next request are
//     skipped, as net/http does for old clients.
//
// A head whose framing net/http reads differently from RFC 9112 or
// refuses (Transfer-Encoding on HTTP/1.0 or with Content-Length, several
// or unknown transfer codings, an invalid or repeated differing
// Content-Length), and a chunked body net/http fails to read, mark the
// connection faulty: from there on the watch cannot be sure where
// net/http's next request starts. Other heads net/http refuses are
// followed all the same: net/http closes the connection after them.
type framingWatch struct {
	state  watchState
	faulty bool
	pos    int64 // bytes fed so far

	// The current line.
	lineLen int  // bytes of the line so far, not counting a held '\r'
	heldCR  bool // the last byte was '\r', the line's end or its content

	// The request line.
	reqStart  int64
	first     [len(http2Preface)]byte // its first bytes
	tail      [len(" HTTP/1.1")]byte  // its last bytes, in order
	tailLen   int
	seenLine  bool // a request line was read before this one
	atLeast11 bool // its version is HTTP/1.1 or later
	preface   bool // the line was HTTP/2's preface ("PRI * HTTP/2.0\r\n")
	post      bool // the method is POST
	skipCRLF  int  // CR or LF bytes still to skip before a request

	// The header block (or trailer section).
	field    fieldKind // the field the current line belongs to
	keyMatch uint8     // bit set: names the key may still be (teBit, clBit)
	keyWS    bool      // white space followed the key, before the colon
	inValue  bool      // the colon was seen
	piece    valuePiece
	pieces   int // non-empty pieces of the current framing field's value
	lastTE   bool
	teLines  int
	teOK     bool // the (first) Transfer-Encoding value is "chunked"
	clLines  int
	clBad    bool       // a Content-Length value is invalid or differs from the first
	clZeros  int        // the first Content-Length value's leading zeros
	clValue  uint64     // and value
	clPiece  valuePiece // the digits of the current Content-Length field
	trailerN int        // bytes after the last chunk, up to 2

	// The trailer section's look-ahead (net/http wants "\r\n\r\n" within
	// its first 4096 bytes unless it is a bare "\r\n").
	crlfRun    int  // bytes of "\r\n\r\n" matched
	crlfWanted bool // still looking for it
	crlfLeft   int  // bytes left in which it must end

	// The body.
	left    uint64 // body or chunk bytes left to skip
	excess  int64  // net/http's chunk overhead account
	chunkN  uint64 // the chunk size being read
	digits  int    // its hex digits
	sizeEnd uint8  // 0: digits, 1: white space after them, 2: extension

	trace func(start, end int64) // for tests: each head judged
}

type watchState uint8

const (
	wRequestLine watchState = iota // at or in a request line
	wField                         // at or in a header field line
	wOtherLine                     // in a line the watch only needs the end of
	wBody                          // skipping a Content-Length body
	wChunkSize                     // in a chunk-size line
	wChunkData                     // skipping chunk data
	wChunkCR                       // at the CRLF after chunk data
	wChunkLF
	wTrailerStart // at the trailer section's first byte
	wTrailer      // at or in a trailer line
	wStopped      // HTTP/2, or faulty: nothing more to watch
)

type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldTE
	fieldCL
	fieldNone // before the first field, or after a line net/http refuses
)

const (
	teBit = 1 << iota
	clBit
)

const (
	// chunkLineMax is the longest chunk-size line (without its CRLF)
	// net/http reads: its reader's buffer (4096 bytes) holds the line
	// with "\r\n".
	chunkLineMax = 4096 - 2
	// trailerWindow is the span in which net/http wants a trailer
	// section's "\r\n\r\n" (its reader's buffer).
	trailerWindow = 4096
	// maxChunkExcess is net/http's limit on chunk overhead.
	maxChunkExcess = 16 * 1024
)

// valuePiece classifies one line's part of a field value, trimmed of
// spaces and tabs: empty, digits (with their leading zeros and value),
// "chunked" in any case, or anything else.
type valuePiece struct {
	state   uint8 // 0: leading white space, 1: in the token, 2: after it
	n       int   // bytes of the token
	digits  bool  // the token is digits so far
	zeros   int   // leading zeros
	value   uint64
	over    bool // the value exceeds net/http's limit (2^63-1)
	chunked bool // the token is a prefix of "chunked" so far
}

func (p *valuePiece) reset() { *p = valuePiece{digits: true, chunked: true} }

func (p *valuePiece) add(b byte) {
	if b == ' ' || b == '\t' {
		if p.state == 1 {
			p.state = 2
		}
		return
	}
	if p.state == 2 {
		p.digits, p.chunked = false, false
		return
	}
	p.state = 1
	if p.digits {
		switch {
		case b < '0' || b > '9':
			p.digits = false
		case b == '0' && p.value == 0 && !p.over:
			p.zeros++
		default:
			d := uint64(b - '0')
			if p.value > (1<<63-1-d)/10 {
				p.over = true
			}
			p.value = p.value*10 + d
		}
	}
	if p.chunked {
		p.chunked = p.n < len("chunked") && lowerASCII(b) == "chunked"[p.n]
	}
	p.n++
}

func (p *valuePiece) empty() bool     { return p.n == 0 }
func (p *valuePiece) isChunked() bool { return p.chunked && p.n == len("chunked") }
func (p *valuePiece) isDigits() bool  { return p.n > 0 && p.digits && !p.over }

// feed follows the bytes b, which come next on the connection, and
// reports whether the connection is faulty.
func (w *framingWatch) feed(b []byte) bool {
	for len(b) > 0 && w.state != wStopped {
		n := w.step(b)
		w.pos += int64(n)
		if w.crlfWanted {
			w.lookAhead(b[:n])
		}
		b = b[n:]
	}
	return w.faulty
}

// lookAhead looks for the "\r\n\r\n" net/http wants within a trailer
// section's first bytes, in bytes already followed.
func (w *framingWatch) lookAhead(b []byte) {
	for _, c := range b {
		w.crlfLeft--
		switch {
		case c == "\r\n\r\n"[w.crlfRun]:
			w.crlfRun++
		case c == '\r':
			w.crlfRun = 1
		default:
			w.crlfRun = 0
		}
		switch {
		case w.crlfRun == 4:
			w.crlfWanted = false
			return
		case w.crlfLeft == 0:
			w.fail()
			return
		}
	}
}

func (w *framingWatch) fail() {
	w.faulty = true
	w.state = wStopped
}

// step follows a prefix of b (at least one byte) and returns its length.
func (w *framingWatch) step(b []byte) int {
	switch w.state {
	case wBody, wChunkData:
		n := uint64(len(b))
		if n > w.left {
			n = w.left
		}
		w.left -= n
		if w.left == 0 {
			if w.state == wBody {
				w.nextRequest()
			} else {
				w.state = wChunkCR
			}
		}
		return int(n)
	case wRequestLine:
		if w.lineLen > 0 || w.heldCR {
			return w.requestLine(b)
		}
	case wOtherLine:
		// The rest of a line that matters only by its end.
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.lineLen += len(b)
			w.heldCR = b[len(b)-1] == '\r'
			return len(b)
		}
		w.state, w.lineLen, w.heldCR, w.preface = wField, 0, false, false
		return i + 1
	}
	w.byte(b[0])
	return 1
}

// requestLine follows the rest of a request line, or as much of it as b
// holds, at once.
func (w *framingWatch) requestLine(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	seg := b
	if i >= 0 {
		seg = b[:i]
	}
	if w.heldCR && len(seg) > 0 {
		w.heldCR = false
		w.lineBytes([]byte{'\r'})
	}
	crlf := w.heldCR
	if n := len(seg); n > 0 && seg[n-1] == '\r' {
		seg, crlf = seg[:n-1], true
	}
	w.lineBytes(seg)
	if i < 0 {
		w.heldCR = crlf
		return len(b)
	}
	w.heldCR = false
	w.endRequestLine(crlf)
	return i + 1
}

// lineBytes adds bytes to the request line's content.
func (w *framingWatch) lineBytes(s []byte) {
	if w.lineLen < len(w.first) {
		copy(w.first[w.lineLen:], s)
	}
	w.lineLen += len(s)
	if len(s) >= len(w.tail) {
		w.tailLen = copy(w.tail[:], s[len(s)-len(w.tail):])
		return
	}
	if keep := len(w.tail) - len(s); w.tailLen > keep {
		copy(w.tail[:], w.tail[w.tailLen-keep:w.tailLen])
		w.tailLen = keep
	}
	w.tailLen += copy(w.tail[w.tailLen:], s)
}

// byte follows one byte outside bodies and skipped lines.
func (w *framingWatch) byte(c byte) {
	switch w.state {
	case wChunkSize:
		w.chunkSizeByte(c)
		return
	case wChunkCR:
		w.expect(c, '\r', wChunkLF)
		return
	case wChunkLF:
		if w.expect(c, '\n', wChunkSize) {
			w.startChunk()
		}
		return
	case wTrailerStart:
		w.trailerStart(c)
		return
	case wTrailer:
		w.trailerByte(c)
		return
	case wRequestLine:
		if w.lineLen == 0 && !w.heldCR {
			if w.skipCRLF > 0 && (c == '\r' || c == '\n') {
				w.skipCRLF--
				return
			}
			w.skipCRLF = 0
			w.reqStart = w.pos
		}
	}
	// A line of a head.
	if w.heldCR {
		w.heldCR = false
		if c == '\n' {
			w.endLine(true)
			return
		}
		w.lineByte('\r')
	}
	switch c {
	case '\r':
		w.heldCR = true
	case '\n':
		w.endLine(false)
	default:
		w.lineByte(c)
	}
}

// trailerStart follows the first bytes after the last chunk: the common
// "\r\n" ends the body; anything else starts a trailer section, for which
// net/http first looks ahead for "\r\n\r\n", then reads it as a header
// block.
func (w *framingWatch) trailerStart(c byte) {
	w.trailerN++
	switch {
	case c == '\r' && w.trailerN == 1:
		return
	case c == '\n' && w.trailerN == 2:
		w.nextRequest()
		return
	}
	// If an earlier trailer section's look-ahead is still on, its window
	// ends first; the match must lie after this section's start.
	if !w.crlfWanted {
		w.crlfLeft = trailerWindow
	}
	w.crlfWanted, w.crlfRun = true, 0
	w.state, w.field, w.lineLen, w.heldCR = wTrailer, fieldNone, 0, false
	if w.trailerN == 2 {
		// The first byte was '\r', this one is no '\n'.
		if w.lookAhead([]byte{'\r'}); w.state != wTrailer {
			return
		}
		if w.trailerByte('\r'); w.state != wTrailer {
			return
		}
	}
	w.trailerByte(c)
}

// expect checks that c is want, and moves to next if so.
func (w *framingWatch) expect(c, want byte, next watchState) bool {
	if c != want {
		w.fail()
		return false
	}
	w.state = next
	return true
}

// lineByte follows one byte of a head's line content.
func (w *framingWatch) lineByte(c byte) {
	if w.state == wRequestLine {
		w.lineBytes([]byte{c})
		return
	}
	n := w.lineLen
	w.lineLen++
	// A field line.
	if n == 0 {
		if c == ' ' || c == '\t' {
			// obs-fold: the line continues the field before it.
			if w.field == fieldTE || w.field == fieldCL {
				w.piece.reset()
				w.inValue = true
			} else {
				w.state = wOtherLine
			}
			return
		}
		w.endField()
		w.field, w.keyMatch, w.keyWS, w.inValue = fieldOther, teBit|clBit, false, false
	}
	if w.inValue {
		w.piece.add(c)
		return
	}
	w.keyByte(c, n)
}

// keyByte follows a byte of a field line before its colon; n is its index.
// White space between the name and the colon makes net/http's server
// refuse the field; it is taken for what it names all the same, to err on
// refusing.
func (w *framingWatch) keyByte(c byte, n int) {
	switch {
	case c == ':':
		if !w.keyWS {
			w.keyMatch &= fullMatch(n)
		}
		switch {
		case w.keyMatch&teBit != 0:
			w.field = fieldTE
		case w.keyMatch&clBit != 0:
			w.field = fieldCL
		default:
			w.state = wOtherLine
			return
		}
		w.inValue = true
		w.piece.reset()
		return
	case c == ' ' || c == '\t':
		if !w.keyWS {
			w.keyWS = true
			w.keyMatch &= fullMatch(n)
		}
	case w.keyWS:
		w.keyMatch = 0
	default:
		l := lowerASCII(c)
		if n >= len("transfer-encoding") || "transfer-encoding"[n] != l {
			w.keyMatch &^= teBit
		}
		if n >= len("content-length") || "content-length"[n] != l {
			w.keyMatch &^= clBit
		}
	}
	if w.keyMatch == 0 {
		w.state = wOtherLine
	}
}

// fullMatch returns the bits of the framing field names n bytes long.
func fullMatch(n int) uint8 {
	switch n {
	case len("transfer-encoding"):
		return teBit
	case len("content-length"):
		return clBit
	}
	return 0
}

// endLine ends a line of a head; crlf says it ended with "\r\n".
func (w *framingWatch) endLine(crlf bool) {
	if w.state == wRequestLine {
		w.endRequestLine(crlf)
		return
	}
	if w.lineLen > 0 {
		w.endPiece()
		w.lineLen = 0
		w.preface = false
		return
	}
	// The empty line that ends the head.
	if w.preface {
		// HTTP/2 with prior knowledge: frames follow.
		w.state = wStopped
		return
	}
	w.endField()
	w.judgeHead()
}

// endRequestLine notes what the request line says of the request's
// framing: its version (the last bytes of a line net/http reads), and
// whether it is a POST or HTTP/2's preface.
func (w *framingWatch) endRequestLine(crlf bool) {
	const pri = "PRI * HTTP/2.0"
	n := w.lineLen
	w.post = n >= len("POST ") && string(w.first[:len("POST ")]) == "POST "
	w.preface = !w.seenLine && crlf && n == len(pri) && string(w.first[:len(pri)]) == pri
	w.seenLine = true
	w.atLeast11 = atLeastHTTP11(w.tail[:w.tailLen])
	w.state, w.lineLen, w.tailLen = wField, 0, 0
	w.field, w.pieces, w.lastTE = fieldNone, 0, false
	w.teLines, w.teOK, w.clLines, w.clBad = 0, false, 0, false
}

// atLeastHTTP11 reports whether a request line ending in tail is one whose
// framing net/http reads as HTTP/1.1's: tail is " HTTP/" and a version
// net/http parses, 1.1 or later. Any other line with Transfer-Encoding is
// faulty: HTTP/1.0's (net/http ignores the field) or one net/http refuses.
func atLeastHTTP11(tail []byte) bool {
	if len(tail) != len(" HTTP/1.1") || string(tail[:len(" HTTP/")]) != " HTTP/" || tail[7] != '.' {
		return false
	}
	major, minor := tail[6], tail[8]
	if major < '0' || major > '9' || minor < '0' || minor > '9' {
		return false
	}
	return major > '1' || major == '1' && minor >= '1'
}

// endPiece adds the value on the line just ended to its framing field.
func (w *framingWatch) endPiece() {
	if !w.inValue || w.field != fieldTE && w.field != fieldCL {
		return
	}
	w.lastTE = w.piece.isChunked()
	if w.piece.empty() {
		return
	}
	w.pieces++
	if w.field == fieldCL {
		w.clPiece = w.piece
	}
}

// endField judges the value of the framing field just ended, as net/http
// joins and trims its lines: Transfer-Encoding must be "chunked",
// Content-Length digits, each the only word of the value.
func (w *framingWatch) endField() {
	switch w.field {
	case fieldTE:
		w.teLines++
		if w.teLines == 1 {
			w.teOK = w.pieces == 1 && w.lastTE
		}
	case fieldCL:
		w.clLines++
		p := &w.clPiece
		switch {
		case w.pieces != 1 || !p.isDigits():
			w.clBad = true
		case w.clLines == 1:
			w.clZeros, w.clValue = p.zeros, p.value
		case p.zeros != w.clZeros || p.value != w.clValue:
			// net/http compares the values as strings.
			w.clBad = true
		}
	}
	w.field, w.pieces, w.lastTE = fieldNone, 0, false
}

// judgeHead judges the framing of the head just ended and follows its
// body.
func (w *framingWatch) judgeHead() {
	if w.trace != nil {
		w.trace(w.reqStart, w.pos+1)
	}
	switch {
	case w.teLines > 0:
		if !w.atLeast11 || w.clLines > 0 || w.teLines > 1 || !w.teOK {
			w.fail()
			return
		}
		w.excess = 0
		w.startChunk()
	case w.clLines > 0:
		if w.clBad {
			w.fail()
			return
		}
		if w.clValue == 0 {
			w.nextRequest()
			return
		}
		w.state, w.left = wBody, w.clValue
	default:
		w.nextRequest()
	}
}

// nextRequest expects the next request.
func (w *framingWatch) nextRequest() {
	w.state, w.lineLen, w.heldCR, w.tailLen = wRequestLine, 0, false, 0
	w.skipCRLF = 0
	if w.post {
		w.skipCRLF = 4
	}
}

// startChunk expects a chunk-size line.
func (w *framingWatch) startChunk() {
	w.state, w.lineLen, w.heldCR = wChunkSize, 0, false
	w.chunkN, w.digits, w.sizeEnd = 0, 0, 0
}

// chunkSizeByte follows a byte of a chunk-size line as net/http's chunked
// reader does: the line ends with "\r\n" and has no other '\r', is at
// most chunkLineMax bytes, and is 1 to 16 hex digits, then either white
// space or ';' and an extension.
func (w *framingWatch) chunkSizeByte(c byte) {
	if w.heldCR {
		if c != '\n' {
			w.fail()
			return
		}
		w.endChunkSize()
		return
	}
	switch c {
	case '\r':
		w.heldCR = true
		return
	case '\n':
		w.fail()
		return
	}
	w.lineLen++
	if w.lineLen > chunkLineMax {
		w.fail()
		return
	}
	switch w.sizeEnd {
	case 0:
		if d, ok := ascii.Unhex(c); ok && w.digits < 16 {
			w.digits++
			w.chunkN = w.chunkN<<4 | uint64(d)
			return
		}
		switch {
		case w.digits == 0:
			w.fail()
		case c == ';':
			w.sizeEnd = 2
		case c == ' ' || c == '\t':
			w.sizeEnd = 1
		default:
			w.fail()
		}
	case 1:
		if c != ' ' && c != '\t' {
			w.fail()
		}
	}
}

// endChunkSize follows a chunk-size line's end, with net/http's account
// of chunk overhead.
func (w *framingWatch) endChunkSize() {
	if w.digits == 0 {
		w.fail()
		return
	}
	w.excess += int64(w.lineLen) + 2
	w.excess -= 16 + 2*int64(w.chunkN)
	w.excess = max(w.excess, 0)
	if w.excess > maxChunkExcess {
		w.fail()
		return
	}
	w.heldCR, w.lineLen = false, 0
	if w.chunkN == 0 {
		w.state, w.trailerN = wTrailerStart, 0
		return
	}
	w.state, w.left = wChunkData, w.chunkN
}

// trailerByte follows a byte of a trailer section, which net/http reads
// as a header block (net/textproto's rules): no white space before the
// first field, a colon in each field's first line, a name of token bytes
// or spaces, a value without control bytes but tabs, the first empty
// line its end.
func (w *framingWatch) trailerByte(c byte) {
	if w.heldCR {
		w.heldCR = false
		if c == '\n' {
			w.endTrailerLine()
			return
		}
		if w.trailerContent('\r'); w.state != wTrailer {
			return
		}
	}
	switch c {
	case '\r':
		w.heldCR = true
	case '\n':
		w.endTrailerLine()
	default:
		w.trailerContent(c)
	}
}

func (w *framingWatch) trailerContent(c byte) {
	n := w.lineLen
	w.lineLen++
	if n == 0 {
		if c == ' ' || c == '\t' {
			// A continuation line: not before the first field.
			if w.field == fieldNone {
				w.fail()
			}
			w.inValue = true
			return
		}
		w.field, w.inValue = fieldOther, false
	}
	switch {
	case w.inValue:
		if !validValueByte(c) {
			w.fail()
		}
	case c == ':':
		if n == 0 {
			w.fail()
		}
		w.inValue = true
	case c != ' ' && !isTokenByte(c):
		w.fail()
	}
}

func (w *framingWatch) endTrailerLine() {
	if w.lineLen == 0 {
		w.nextRequest()
		return
	}
	if !w.inValue {
		w.fail() // no colon
		return
	}
	w.lineLen = 0
}

// validValueByte reports whether net/textproto takes c in a field value:
// no control bytes but tab.
func validValueByte(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f
}

// isTokenByte reports whether c is a token byte (RFC 9110 §5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c < 0x80 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
