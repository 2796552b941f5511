package auth

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Project scoping.
//
// A token may only act on its own project. The TeraSwitch API takes the
// project from the request: from a query parameter or a top-level field of
// the JSON body named projectId, in any letter case. The checks here refuse
// any request that names another project, and are deliberately broader than
// the API's own model binding, so that every spelling the API might bind is
// checked:
//
//   - A query (or form) key names the project if, percent-decoded with "+"
//     as space (and IIS-style %uXXXX also decoded), one of its parts
//     between ".", "[" and "]" is "projectid" in any case, ignoring
//     surrounding spaces: "ProjectId", "filter.projectId", "ProjectId[]",
//     "x[PROJECTID]". The dotless "ı" and dotted "İ" count as "i".
//     Pairs are separated by "&" and, conservatively, ";".
//   - Every such key must have a value that, percent-decoded, is exactly
//     the canonical decimal of the project: no sign, no leading zeros, no
//     spaces. A key without "=" has the empty value, which never matches.
//   - A JSON body's top-level key names the project if, unescaped, it is
//     "projectid" in any case (no parts). Its value must be a JSON number
//     spelling the canonical decimal exactly (so not 42.0 or 4.2e1) or a
//     string holding it. Every duplicate key is checked.

// CheckQueryProject checks a raw (still-escaped) query string against the
// token's project: it returns CodeProjectMismatch if any key naming the
// project has a value other than project's canonical decimal, else OK.
//
// It does not allocate unless a key needs percent-decoding and decodes to
// more than 64 bytes.
func CheckQueryProject(rawQuery string, project int64) Code {
	var buf [20]byte
	return checkPairs(rawQuery, strconv.AppendInt(buf[:0], project, 10))
}

// CheckBodyProject checks a request body against the token's project.
//
// body is the body or, when complete is false, a prefix of it cut at the
// gateway's read limit. A body is checked as JSON if contentType is a JSON
// media type (application/json, text/json, anything ending in +json) or
// if its first byte after an optional UTF-8 byte order mark and white space
// is "{", whatever the content type; it is checked like a query if the
// content type is application/x-www-form-urlencoded. Multipart bodies are
// refused with CodeInvalidBody: the API takes none, and they are not
// checked. Other bodies, and empty ones, are OK.
//
// CheckBodyProject returns CodeProjectMismatch when a field names another
// project (see CheckQueryProject and the package's rules), CodeInvalidBody
// when a JSON body is malformed, nests deeper than 512 levels, or has
// anything but white space after its top-level value (also when the value
// ends inside a cut prefix: the rest is more data), and CodeBodyTooLarge
// when the prefix is cut before the checks are done, so that a project
// field could hide in the rest.
func CheckBodyProject(contentType string, body []byte, complete bool, project int64) Code {
	var buf [20]byte
	want := strconv.AppendInt(buf[:0], project, 10)
	mt := mediaType(contentType)
	if hasPrefixFold(mt, "multipart/") {
		return CodeInvalidBody
	}
	form := asciiEqualFold(mt, "application/x-www-form-urlencoded")
	if form {
		pairs := body
		if !complete {
			// The last pair may be cut: check only the whole ones.
			pairs = pairs[:lastSeparator(pairs)+1]
		}
		if code := checkPairs(pairs, want); code != OK {
			return code
		}
	}
	start := skipBOM(body)
	start = skipJSONSpace(body, start)
	if start == len(body) {
		if complete {
			return OK
		}
		return CodeBodyTooLarge
	}
	if body[start] != '{' && !isJSONMediaType(mt) {
		if form && !complete {
			return CodeBodyTooLarge
		}
		return OK
	}
	s := jsonScanner{data: body, pos: start, complete: complete, want: want}
	return s.document()
}

// mediaType returns contentType without parameters and surrounding space.
func mediaType(contentType string) string {
	for i := 0; i < len(contentType); i++ {
		if contentType[i] == ';' {
			contentType = contentType[:i]
			break
		}
	}
	return trimSpace(contentType)
}

func isJSONMediaType(mt string) bool {
	return asciiEqualFold(mt, "application/json") || asciiEqualFold(mt, "text/json") ||
		len(mt) > len("+json") && asciiEqualFold(mt[len(mt)-len("+json"):], "+json")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && asciiEqualFold(s[:len(prefix)], prefix)
}

// text is what the pair and key helpers read: a string or a byte slice.
type text interface{ ~string | ~[]byte }

// isSpace reports whether c is ASCII white space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimSpace[T text](s T) T {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isPairSeparator(c byte) bool { return c == '&' || c == ';' }

// lastSeparator returns the index of the last pair separator in s, or -1.
func lastSeparator[T text](s T) int {
	for i := len(s) - 1; i >= 0; i-- {
		if isPairSeparator(s[i]) {
			return i
		}
	}
	return -1
}

// checkPairs checks the key=value pairs of a query or form body.
func checkPairs[T text](q T, want []byte) Code {
	for len(q) > 0 {
		end := 0
		for end < len(q) && !isPairSeparator(q[end]) {
			end++
		}
		pair := q[:end]
		if end < len(q) {
			end++ // the separator
		}
		q = q[end:]
		key, value := pair, pair[len(pair):]
		for i := 0; i < len(pair); i++ {
			if pair[i] == '=' {
				key, value = pair[:i], pair[i+1:]
				break
			}
		}
		if keyNamesProject(key) && !valueIs(value, want) {
			return CodeProjectMismatch
		}
	}
	return OK
}

// keyNamesProject reports whether a raw query key names the project.
func keyNamesProject[T text](key T) bool {
	for i := 0; i < len(key); i++ {
		if key[i] == '%' || key[i] == '+' {
			var buf [64]byte
			return partsNameProject(decodeKey(buf[:0], key))
		}
	}
	return partsNameProject(key)
}

// partsNameProject reports whether any part of a decoded key, split at
// ".", "[" and "]" and trimmed of spaces, is "projectid".
func partsNameProject[T text](key T) bool {
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '.' || key[i] == '[' || key[i] == ']' {
			if isProjectID(trimSpace(key[start:i])) {
				return true
			}
			start = i + 1
		}
	}
	return false
}

// isProjectID reports whether s is "projectid" in any letter case, taking
// the Turkish dotless "ı" and dotted "İ" (UTF-8) for "i", as some
// case-insensitive comparisons do.
func isProjectID[T text](s T) bool {
	const target = "projectid"
	j := 0
	for i := 0; i < len(target); i++ {
		switch {
		case j < len(s) && lowerASCII(s[j]) == target[i]:
			j++
		case target[i] == 'i' && j+1 < len(s) && s[j] == 0xc4 && (s[j+1] == 0xb0 || s[j+1] == 0xb1):
			j += 2
		default:
			return false
		}
	}
	return j == len(s)
}

// decodeKey appends the decoded form of a query key to dst: "+" is a space,
// %XX a byte and %uXXXX a UTF-8 encoded code point. Like ASP.NET, it leaves
// a malformed escape as it is, rather than failing.
func decodeKey[T text](dst []byte, key T) []byte {
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(key):
			if hi, ok := unhex(key[i+1]); ok {
				if lo, ok := unhex(key[i+2]); ok {
					c = hi<<4 | lo
					i += 2
					break
				}
			}
			if (key[i+1] == 'u' || key[i+1] == 'U') && i+5 < len(key) {
				if r, ok := unhex4(key[i+2 : i+6]); ok {
					dst = utf8.AppendRune(dst, r)
					i += 5
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex4[T text](s T) (rune, bool) {
	var r rune
	for i := 0; i < 4; i++ {
		v, ok := unhex(s[i])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// valueIs reports whether a raw query value, percent-decoded with "+" as
// space, is exactly want. A malformed escape never matches.
func valueIs[T text](value T, want []byte) bool {
	j := 0
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(value) {
				return false
			}
			hi, ok1 := unhex(value[i+1])
			lo, ok2 := unhex(value[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = hi<<4 | lo
			i += 2
		}
		if j >= len(want) || c != want[j] {
			return false
		}
		j++
	}
	return j == len(want)
}

func skipBOM(b []byte) int {
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		return 3
	}
	return 0
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// maxJSONDepth is how deep a checked JSON body may nest. It bounds the
// scanner's recursion, and so its stack, well above what the API accepts
// (System.Text.Json's default limit is 64).
const maxJSONDepth = 512

// jsonScanner checks a JSON document's top-level fields. It validates the
// whole document, as encoding/json would, but only decodes keys and the
// values of project fields. Its methods return OK or the Code to refuse
// with; they never allocate.
type jsonScanner struct {
	data     []byte
	pos      int
	complete bool   // data is the whole body, not a cut prefix
	want     []byte // the canonical decimal of the project
}

// end is the outcome of running out of data: the document is malformed if
// data is complete, else it may go on beyond the prefix.
func (s *jsonScanner) end() Code {
	if s.complete {
		return CodeInvalidBody
	}
	return CodeBodyTooLarge
}

// document checks the top-level value, which starts at s.pos.
func (s *jsonScanner) document() Code {
	var code Code
	if s.data[s.pos] == '{' {
		code = s.object(1, true)
	} else {
		code = s.value(0)
	}
	if code != OK {
		return code
	}
	s.pos = skipJSONSpace(s.data, s.pos)
	if s.pos < len(s.data) || !s.complete {
		// Data after the value, here or beyond the prefix.
		return CodeInvalidBody
	}
	return OK
}

// object scans the object starting at s.pos; top says it is the top-level
// one, whose project fields are checked.
func (s *jsonScanner) object(depth int, top bool) Code {
	if depth > maxJSONDepth {
		return CodeInvalidBody
	}
	s.pos++ // '{'
	s.pos = skipJSONSpace(s.data, s.pos)
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
		var keyBuf [16]byte
		key, fits, code := s.str(keyBuf[:0])
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
		if top && fits && isProjectID(key) {
			code = s.projectValue()
		} else {
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

// projectValue checks the value of a top-level project field.
func (s *jsonScanner) projectValue() Code {
	if s.pos == len(s.data) {
		return s.end()
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		var buf [24]byte
		v, fits, code := s.str(buf[:0])
		if code != OK {
			return code
		}
		if !fits || string(v) != string(s.want) {
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

// value scans any JSON value starting at s.pos, inside a container at the
// given depth.
func (s *jsonScanner) value(depth int) Code {
	if s.pos == len(s.data) {
		return s.end()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth+1, false)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, code := s.str(nil)
		return code
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

// str scans the string starting at s.pos and appends its unescaped value
// to dst as far as it fits in dst's capacity; fits reports whether all of it
// did. Escaped lone surrogates decode to U+FFFD, as in encoding/json.
func (s *jsonScanner) str(dst []byte) (out []byte, fits bool, code Code) {
	d := s.data
	fits = true
	add := func(c byte) {
		if len(dst) < cap(dst) {
			dst = append(dst, c)
		} else {
			fits = false
		}
	}
	s.pos++ // the opening quote
	for {
		if s.pos == len(d) {
			return nil, false, s.end()
		}
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return dst, fits, OK
		case c < 0x20:
			return nil, false, CodeInvalidBody
		case c != '\\':
			add(c)
			s.pos++
			continue
		}
		if s.pos+1 == len(d) {
			return nil, false, s.end()
		}
		e := d[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			add(e)
		case 'b':
			add('\b')
		case 'f':
			add('\f')
		case 'n':
			add('\n')
		case 'r':
			add('\r')
		case 't':
			add('\t')
		case 'u':
			if len(d)-s.pos < 4 {
				for _, h := range d[s.pos:] {
					if _, ok := unhex(h); !ok {
						return nil, false, CodeInvalidBody
					}
				}
				return nil, false, s.end()
			}
			r, ok := unhex4(d[s.pos : s.pos+4])
			if !ok {
				return nil, false, CodeInvalidBody
			}
			s.pos += 4
			if utf16.IsSurrogate(r) {
				// A pair only if another \uXXXX follows and completes it;
				// otherwise the replacement character, and whatever follows
				// is scanned on its own.
				r2 := rune(-1)
				if len(d)-s.pos >= 6 && d[s.pos] == '\\' && d[s.pos+1] == 'u' {
					if v, ok := unhex4(d[s.pos+2 : s.pos+6]); ok {
						r2 = v
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					s.pos += 6
				} else {
					r = utf8.RuneError
				}
			}
			var enc [utf8.UTFMax]byte
			for _, b := range enc[:utf8.EncodeRune(enc[:], r)] {
				add(b)
			}
		default:
			return nil, false, CodeInvalidBody
		}
	}
}
