package auth

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tswgate/tswgate/internal/ascii"
)

// CheckJSONProject checks a JSON body against the token's project by the
// package's body rules (see scope.go), whatever its media type.
//
// body is the body or, when complete is false, a prefix of it cut at the
// front end's scan limit. CheckJSONProject returns CodeProjectMismatch when
// a member names another project, or a JSON Patch path or from names the
// project; CodeInvalidQuery when a top-level key names a method override
// (see override.go); CodeInvalidBody when the body is not one JSON document: empty or
// only white space, malformed, with comments, invalid UTF-8 or an escaped
// lone surrogate, nested deeper than 512 levels, or with anything but white
// space after its value; and CodeBodyTooLarge when the body is cut, so
// that the rest is unread. The first problem met, reading from the start,
// decides: a cut body never passes, and is body_too_large unless its prefix
// already names another project or is malformed. It does not allocate.
func CheckJSONProject(body []byte, complete bool, project int64) Code {
	var buf [20]byte
	s := jsonScanner{data: body, complete: complete, want: strconv.AppendInt(buf[:0], project, 10)}
	return s.document()
}

// maxJSONDepth is how deep a checked JSON body may nest. It bounds the
// scanner's recursion, and so its stack, well above what the API accepts
// (System.Text.Json's default limit is 64).
const maxJSONDepth = 512

// jsonScanner validates a JSON document and checks the members of every
// object. It decodes only keys, the values of project members and the
// values of path and from members. Its methods return OK or the Code to
// refuse with; they never allocate.
type jsonScanner struct {
	data     []byte
	pos      int
	complete bool   // data is the whole body, not a cut prefix
	want     []byte // the canonical decimal of the project

	// What str decodes into: up to len(buf) bytes of the string in buf[:n]
	// (fits says whether all of it did), or the pointer matcher.
	buf  [24]byte
	n    int
	fits bool
	ptr  pointerMatcher
	ovr  overrideMatcher // a long top-level key, read again
}

// strMode says what str does with the decoded string.
type strMode uint8

const (
	strSkip     strMode = iota // validate only
	strKeep                    // keep it in buf
	strPointer                 // feed it to ptr
	strOverride                // feed it to ovr
)

// end is the outcome of running out of data: the document is malformed if
// data is complete, else it may go on beyond the prefix.
func (s *jsonScanner) end() Code {
	if s.complete {
		return CodeInvalidBody
	}
	return CodeBodyTooLarge
}

// document checks the whole body: an optional UTF-8 byte order mark, one
// value, white space around it.
func (s *jsonScanner) document() Code {
	d := s.data
	if len(d) >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf {
		s.pos = 3
	} else if !s.complete && len(d) < 3 && string(d) == "\xef\xbb\xbf"[:len(d)] {
		return CodeBodyTooLarge // a cut byte order mark
	}
	s.pos = skipJSONSpace(d, s.pos)
	if code := s.value(0); code != OK {
		return code
	}
	s.pos = skipJSONSpace(d, s.pos)
	switch {
	case s.pos < len(d):
		return CodeInvalidBody // data after the value
	case !s.complete:
		return CodeBodyTooLarge // the rest, unread, may be more than white space
	}
	return OK
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// value scans any JSON value starting at s.pos, inside containers nested
// depth deep.
func (s *jsonScanner) value(depth int) Code {
	if s.pos == len(s.data) {
		return s.end()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.str(strSkip)
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return CodeInvalidBody
}

// member kinds: what an object member's key makes of its value.
const (
	memberPlain = iota
	memberProject
	memberPointer
)

// object scans the object starting at s.pos, checking its members.
func (s *jsonScanner) object(depth int) Code {
	if depth > maxJSONDepth {
		return CodeInvalidBody
	}
	s.pos = skipJSONSpace(s.data, s.pos+1) // '{'
	if s.pos == len(s.data) {
		return s.end()
	}
	if s.data[s.pos] == '}' {
		s.pos++
		return OK
	}
	for {
		if s.pos == len(s.data) {
			return s.end()
		}
		if s.data[s.pos] != '"' {
			return CodeInvalidBody
		}
		kind, code := s.key(depth)
		if code != OK {
			return code
		}
		s.pos = skipJSONSpace(s.data, s.pos)
		if s.pos == len(s.data) {
			return s.end()
		}
		if s.data[s.pos] != ':' {
			return CodeInvalidBody
		}
		s.pos = skipJSONSpace(s.data, s.pos+1)
		switch {
		case kind == memberProject:
			code = s.projectValue()
		case kind == memberPointer && s.pos < len(s.data) && s.data[s.pos] == '"':
			s.ptr = pointerMatcher{}
			if code = s.str(strPointer); code == OK && s.ptr.matched() {
				code = CodeProjectMismatch
			}
		default:
			code = s.value(depth)
		}
		if code != OK {
			return code
		}
		s.pos = skipJSONSpace(s.data, s.pos)
		if s.pos == len(s.data) {
			return s.end()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos = skipJSONSpace(s.data, s.pos+1)
		case '}':
			s.pos++
			return OK
		default:
			return CodeInvalidBody
		}
	}
}

// key scans the member key at s.pos and returns the member's kind. A
// top-level key (depth 1) that names a method override is refused
// (CodeInvalidQuery, as in the query).
func (s *jsonScanner) key(depth int) (kind int, code Code) {
	start := s.pos
	code = s.str(strKeep)
	switch {
	case code != OK:
		return memberPlain, code
	case depth == 1 && (!s.fits || s.n > 0 && overrideLead[s.buf[0]]) && s.overrideKey(start):
		return memberPlain, CodeInvalidQuery
	case !s.fits:
		return memberPlain, OK
	}
	switch key := s.buf[:s.n]; {
	case isProjectID(key):
		return memberProject, OK
	case len(key) == 4 && (asciiEqualFold(string(key), "path") || asciiEqualFold(string(key), "from")):
		return memberPointer, OK
	}
	return memberPlain, OK
}

// overrideLead marks the bytes a method-override key may start with: the
// first letter of a name ("_", "-", "x" or "X"), or white space.
var overrideLead = func() (t [256]bool) {
	for _, c := range []byte("_-xX \t\n\r\v\f") {
		t[c] = true
	}
	return t
}()

// overrideKey reports whether the key str has just scanned, from start,
// names a method override. A key longer than buf (padded with white space,
// say) is scanned again, into the override matcher.
func (s *jsonScanner) overrideKey(start int) bool {
	if s.fits {
		m := newOverrideMatcher()
		for _, c := range s.buf[:s.n] {
			if m.add(c); m.alive == 0 {
				return false
			}
		}
		return m.matched()
	}
	end := s.pos
	s.pos, s.ovr = start, newOverrideMatcher()
	_ = s.str(strOverride) // scanned once already: OK
	s.pos, s.fits = end, false
	return s.ovr.matched()
}

// projectValue checks the value of a project member: the canonical
// decimal, as a number or a string.
func (s *jsonScanner) projectValue() Code {
	if s.pos == len(s.data) {
		return s.end()
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		if code := s.str(strKeep); code != OK {
			return code
		}
		if !s.fits || string(s.buf[:s.n]) != string(s.want) {
			return CodeProjectMismatch
		}
		return OK
	case c == '-' || '0' <= c && c <= '9':
		start := s.pos
		if code := s.number(); code != OK {
			return code
		}
		if string(s.data[start:s.pos]) != string(s.want) {
			return CodeProjectMismatch
		}
		return OK
	}
	return CodeProjectMismatch
}

func (s *jsonScanner) array(depth int) Code {
	if depth > maxJSONDepth {
		return CodeInvalidBody
	}
	s.pos = skipJSONSpace(s.data, s.pos+1) // '['
	if s.pos == len(s.data) {
		return s.end()
	}
	if s.data[s.pos] == ']' {
		s.pos++
		return OK
	}
	for {
		if code := s.value(depth); code != OK {
			return code
		}
		s.pos = skipJSONSpace(s.data, s.pos)
		if s.pos == len(s.data) {
			return s.end()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos = skipJSONSpace(s.data, s.pos+1)
		case ']':
			s.pos++
			return OK
		default:
			return CodeInvalidBody
		}
	}
}

func (s *jsonScanner) literal(lit string) Code {
	for i := 0; i < len(lit); i++ {
		if s.pos == len(s.data) {
			return s.end()
		}
		if s.data[s.pos] != lit[i] {
			return CodeInvalidBody
		}
		s.pos++
	}
	return OK
}

// number scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() Code {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos == len(d):
		return s.end()
	case d[s.pos] == '0':
		s.pos++
	case '1' <= d[s.pos] && d[s.pos] <= '9':
		s.pos = skipDigits(d, s.pos)
	default:
		return CodeInvalidBody
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if code := s.digits(); code != OK {
			return code
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if code := s.digits(); code != OK {
			return code
		}
	}
	if s.pos == len(d) && !s.complete {
		return CodeBodyTooLarge // the number may go on
	}
	return OK
}

// digits scans one or more digits.
func (s *jsonScanner) digits() Code {
	if s.pos == len(s.data) {
		return s.end()
	}
	if c := s.data[s.pos]; c < '0' || c > '9' {
		return CodeInvalidBody
	}
	s.pos = skipDigits(s.data, s.pos)
	return OK
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// emit hands one byte of a decoded string to the mode's sink.
func (s *jsonScanner) emit(mode strMode, c byte) {
	switch mode {
	case strKeep:
		if s.n < len(s.buf) {
			s.buf[s.n] = c
			s.n++
		} else {
			s.fits = false
		}
	case strPointer:
		s.ptr.add(c)
	case strOverride:
		s.ovr.add(c)
	}
}

// jsonPlain marks the bytes that stand for themselves in a JSON string:
// ASCII except control characters, the quote and the backslash.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string starting at s.pos and decodes it as mode says. It
// refuses invalid UTF-8 and escaped surrogates that do not form a pair
// (System.Text.Json refuses both).
func (s *jsonScanner) str(mode strMode) Code {
	d := s.data
	s.n, s.fits = 0, true
	s.pos++ // the opening quote
	for {
		start := s.pos
		for s.pos < len(d) && jsonPlain[d[s.pos]] {
			s.pos++
		}
		if mode != strSkip {
			for _, c := range d[start:s.pos] {
				s.emit(mode, c)
			}
		}
		if s.pos == len(d) {
			return s.end()
		}
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return OK
		case c < 0x20:
			return CodeInvalidBody
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(d[s.pos:]) {
					return s.end()
				}
				return CodeInvalidBody
			}
			for _, b := range d[s.pos : s.pos+size] {
				s.emit(mode, b)
			}
			s.pos += size
			continue
		}
		// An escape.
		if s.pos+1 == len(d) {
			return s.end()
		}
		e := d[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			s.emit(mode, e)
		case 'b':
			s.emit(mode, '\b')
		case 'f':
			s.emit(mode, '\f')
		case 'n':
			s.emit(mode, '\n')
		case 'r':
			s.emit(mode, '\r')
		case 't':
			s.emit(mode, '\t')
		case 'u':
			if code := s.unicodeEscape(mode); code != OK {
				return code
			}
		default:
			return CodeInvalidBody
		}
	}
}

// unicodeEscape decodes the \u escape whose "\u" s.pos has just passed,
// with the escaped low surrogate that must follow a high one, and emits
// the rune as mode says.
func (s *jsonScanner) unicodeEscape(mode strMode) Code {
	d := s.data
	r, code := s.hex4()
	if code != OK {
		return code
	}
	if utf16.IsSurrogate(r) {
		// Only a high surrogate followed by an escaped low one.
		if r >= 0xdc00 {
			return CodeInvalidBody
		}
		if len(d)-s.pos < 2 {
			return s.lenient(d[s.pos:], `\u`)
		}
		if d[s.pos] != '\\' || d[s.pos+1] != 'u' {
			return CodeInvalidBody
		}
		s.pos += 2
		r2, code := s.hex4()
		if code != OK {
			return code
		}
		if r2 < 0xdc00 || r2 > 0xdfff {
			return CodeInvalidBody
		}
		r = utf16.DecodeRune(r, r2)
	}
	var enc [utf8.UTFMax]byte
	for _, b := range enc[:utf8.EncodeRune(enc[:], r)] {
		s.emit(mode, b)
	}
	return OK
}

// hex4 reads the four hex digits of a \u escape at s.pos.
func (s *jsonScanner) hex4() (rune, Code) {
	d := s.data
	var r rune
	for i := 0; i < 4; i++ {
		if s.pos == len(d) {
			return 0, s.end()
		}
		v, ok := ascii.Unhex(d[s.pos])
		if !ok {
			return 0, CodeInvalidBody
		}
		r = r<<4 | rune(v)
		s.pos++
	}
	return r, OK
}

// lenient is the outcome of a prefix that ends in rest where want was
// expected: malformed if rest is not a prefix of want, else s.end().
func (s *jsonScanner) lenient(rest []byte, want string) Code {
	if string(rest) != want[:len(rest)] {
		return CodeInvalidBody
	}
	return s.end()
}
