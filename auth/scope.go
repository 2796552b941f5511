package auth

import (
	"strconv"
	"strings"

	"github.com/tswgate/tswgate/internal/ascii"
)

// Request content checks: one reading of each request.
//
// A token may only act on its own project, and the API behind the gateway
// (an ASP.NET Core service) takes the project from the request's query and
// JSON body. What reaches the API must be exactly what the gateway checked,
// and the gateway must read it exactly as the API does; whatever it cannot
// read with certainty is refused with a code, never guessed at or altered.
// The checks below are deliberately broader than the API's model binding,
// so that every spelling the API might bind is covered.
//
// Names. A name "is projectid" if it is "projectid" in ASCII letters of any
// case, where the Turkish dotless "ı" and dotted "İ" (UTF-8, escaped in a
// query) also count as "i" (.NET's case-insensitive comparisons
// upper-case "ı" to "I").
//
// Query (CheckQueryProject), the raw, still-escaped query string:
//
//   - Pairs are separated by "&" only, as ASP.NET's QueryHelpers splits
//     them; ";" is data. A pair's key ends at its first "=" (no "=": the
//     value is empty).
//   - Every "%" must start a %HH escape (two hex digits: so no "%zz", no
//     trailing "%", no IIS-style "%u0050"); only RFC 3986's query
//     characters (unreserved, sub-delims, ":", "@", "/", "?") and "[" and
//     "]" (as in paths, and as clients send array keys) may appear
//     unescaped: no control byte, space, "#", quote, "<", ">", "\", "^",
//     "`", "{", "|", "}" or byte above 0x7e (HTTP/2 carries them in :path
//     and net/http passes them on raw; in the upstream's request line a
//     space would end the target and "#" start a fragment, and readers
//     differ on the others: some escape, drop or decode them in another
//     charset); no control byte but white space escaped in a key, and no
//     NUL (%00) anywhere; else CodeInvalidQuery, whatever the keys.
//   - A key names the project if, decoded ("+" is a space, %HH a byte), one
//     of its parts between ".", "[" and "]", trimmed of ASCII white space,
//     is projectid: "ProjectId", "filter.projectId", "ProjectId[]",
//     "x[PROJECTID]", "Project%49d".
//   - Every key naming the project, each repeat included, must have a
//     value that, decoded, is exactly the canonical decimal of the token's
//     project (no sign, no leading zeros, no spaces); else
//     CodeProjectMismatch.
//   - No key may name a method override (see override.go); else
//     CodeInvalidQuery, unless a key names another project.
//
// Body (CheckBody), once the route is known:
//
//   - An empty body is no body: nothing below applies.
//   - A body on a route whose operation declares none (see Route.TakesBody)
//     is refused with CodeBodyNotAllowed.
//   - A body with any Content-Encoding, or without a Content-Type, or whose
//     Content-Type is not exactly one of the API's declared request media
//     types, is refused with CodeUnsupportedMediaType: see CheckMediaType.
//     Form and multipart bodies are therefore never forwarded.
//   - The body must be one JSON document (RFC 8259, UTF-8, an optional
//     UTF-8 byte order mark, no comments, nothing but white space after
//     it, nesting at most 512 deep, no escaped lone surrogates); else
//     CodeInvalidBody.
//   - In every object at any depth, inside arrays too, every member whose
//     key, unescaped, is projectid must have as value the token's project:
//     a JSON number spelled exactly as its canonical decimal (so not 42.0,
//     4.2e1 or 042) or a string holding exactly that decimal (so not "042"
//     or " 42"); null, booleans, objects and arrays never match. Every
//     duplicate key is checked. Else CodeProjectMismatch.
//   - In every object at any depth, a member named "path" or "from" (in
//     any ASCII case) whose value is a string is read as a JSON Patch
//     pointer: split at "/", each segment unescaped ("~1" is "/", "~0" is
//     "~"); a segment that is projectid is refused with CodeProjectMismatch,
//     whatever the operation.
//   - The whole body must be checked: a body longer than the gateway's scan
//     limit (of which it reads only a prefix) never passes. It is refused
//     with CodeBodyTooLarge unless the prefix already gives another reason
//     (CodeProjectMismatch, CodeInvalidBody): the first problem met,
//     reading from the start, decides.

// CheckQueryProject checks a raw (still-escaped) query string against the
// token's project by the rules above, splitting it into pairs once. It
// returns CodeInvalidQuery for a malformed escape or a raw control byte,
// CodeProjectMismatch if a key naming the project has a value other than
// project's canonical decimal, else CodeInvalidQuery if a key names a
// method override, else OK. It does not allocate.
func CheckQueryProject(rawQuery string, project int64) Code {
	if !validQuery(rawQuery) {
		return CodeInvalidQuery
	}
	var buf [20]byte
	want := strconv.AppendInt(buf[:0], project, 10)
	code := OK
	for q := rawQuery; q != ""; {
		var key, value string
		key, value, q = nextPair(q)
		switch {
		case keyNamesProject(key):
			if !valueIs(value, want) {
				return CodeProjectMismatch
			}
		case code == OK && keyOverrides(key):
			code = CodeInvalidQuery // a mismatch further on still decides
		}
	}
	return code
}

// nextPair splits the first key=value pair (both raw) off the raw query
// q, and returns the rest after its "&".
func nextPair(q string) (key, value, rest string) {
	pair := q
	if i := strings.IndexByte(q, '&'); i >= 0 {
		pair, rest = q[:i], q[i+1:]
	}
	key = pair
	if i := strings.IndexByte(pair, '='); i >= 0 {
		key, value = pair[:i], pair[i+1:]
	}
	return key, value, rest
}

// queryChecked marks the bytes validQuery looks at: "%", the "&" and "="
// that delimit keys, and every byte a query may not hold unescaped (all
// but RFC 3986's query characters, "[" and "]").
var queryChecked = func() (t [256]bool) {
	for c := range t {
		t[c] = true
	}
	const plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,;:@/?[]"
	for _, c := range []byte(plain) {
		t[c] = false
	}
	return t
}()

// validQuery reports whether every "%" of q starts a %HH escape, q has no
// raw byte outside RFC 3986's query characters (but "[" and "]"), no
// escaped NUL, and no key with an escaped control byte other than white
// space (a key that one reader may cut short and another read whole;
// white space is trimmed from key parts).
func validQuery(q string) bool {
	inKey := true
	for i := 0; i < len(q); i++ {
		c := q[i]
		if !queryChecked[c] {
			continue
		}
		switch {
		case c == '&':
			inKey = true
			continue
		case c == '=':
			inKey = false
			continue
		case c != '%' || i+2 >= len(q):
			return false
		}
		hi, ok1 := ascii.Unhex(q[i+1])
		lo, ok2 := ascii.Unhex(q[i+2])
		if !ok1 || !ok2 {
			return false
		}
		if b := hi<<4 | lo; b == 0 || inKey && (b < '\t' || '\r' < b && b < 0x20 || b == 0x7f) {
			return false
		}
		i += 2
	}
	return true
}

// queryByte returns the decoded byte at q[i] ("+" is a space, %HH a byte;
// q is valid) and the index after it.
func queryByte(q string, i int) (byte, int) {
	switch c := q[i]; c {
	case '+':
		return ' ', i + 1
	case '%':
		hi, _ := ascii.Unhex(q[i+1])
		lo, _ := ascii.Unhex(q[i+2])
		return hi<<4 | lo, i + 3
	default:
		return c, i + 1
	}
}

// keySpecial marks the bytes that make a query key more than its name:
// escapes, part separators and white space.
var keySpecial = func() (t [256]bool) {
	for _, c := range []byte("%+.[] \t\n\r\v\f") {
		t[c] = true
	}
	return t
}()

// keyNamesProject reports whether a raw (valid) query key names the
// project: whether a part of its decoded form, split at ".", "[" and "]"
// and trimmed of ASCII white space, is projectid.
func keyNamesProject(key string) bool {
	plain := true
	for i := 0; i < len(key); i++ {
		if keySpecial[key[i]] {
			plain = false
			break
		}
	}
	if plain {
		return isProjectID(key)
	}
	var part partMatcher
	for i := 0; i < len(key); {
		var c byte
		c, i = queryByte(key, i)
		if c == '.' || c == '[' || c == ']' {
			if part.matched() {
				return true
			}
			part = partMatcher{}
			continue
		}
		part.add(c)
	}
	return part.matched()
}

// valueIs reports whether a raw (valid) query value, decoded, is exactly
// want.
func valueIs(value string, want []byte) bool {
	j := 0
	for i := 0; i < len(value); {
		var c byte
		c, i = queryByte(value, i)
		if j >= len(want) || c != want[j] {
			return false
		}
		j++
	}
	return j == len(want)
}

// projectID is the name the checks look for, in lower case.
const projectID = "projectid"

// idMatcher matches a stream of bytes against projectid: ASCII letters in
// any case, the UTF-8 "ı" (C4 B1) and "İ" (C4 B0) also standing for "i".
// Its zero value is ready to use.
type idMatcher struct {
	n   uint8 // bytes of projectID matched
	c4  bool  // a 0xC4 lead byte waits for its continuation
	bad bool
}

func (m *idMatcher) add(c byte) {
	switch {
	case m.bad:
	case m.c4:
		m.c4 = false
		if c == 0xb0 || c == 0xb1 {
			m.n++
		} else {
			m.bad = true
		}
	case int(m.n) == len(projectID):
		m.bad = true
	case lowerASCII(c) == projectID[m.n]:
		m.n++
	case c == 0xc4 && projectID[m.n] == 'i':
		m.c4 = true
	default:
		m.bad = true
	}
}

// matched reports whether the bytes so far are projectid.
func (m *idMatcher) matched() bool {
	return !m.bad && !m.c4 && int(m.n) == len(projectID)
}

// isProjectID reports whether s is projectid, as idMatcher would.
func isProjectID[T ~string | ~[]byte](s T) bool {
	if len(s) < len(projectID) || len(s) > len(projectID)+1 { // "ı" and "İ" take 2 bytes
		return false
	}
	j := 0
	for i := 0; i < len(projectID); i++ {
		switch {
		case j < len(s) && lowerASCII(s[j]) == projectID[i]:
			j++
		case projectID[i] == 'i' && j+1 < len(s) && s[j] == 0xc4 && (s[j+1] == 0xb0 || s[j+1] == 0xb1):
			j += 2
		default:
			return false
		}
	}
	return j == len(s)
}

// partMatcher is an idMatcher that ignores ASCII white space before and
// after the name, for the parts of query keys.
type partMatcher struct {
	m        idMatcher
	started  bool // a byte other than white space was seen
	trailing bool // white space was seen after the name
}

func (p *partMatcher) add(c byte) {
	switch {
	case isSpace(c):
		if p.started {
			if p.m.matched() {
				p.trailing = true
			} else {
				p.m.bad = true
			}
		}
	case p.trailing:
		p.m.bad = true
	default:
		p.started = true
		p.m.add(c)
	}
}

func (p *partMatcher) matched() bool { return p.m.matched() }

// pointerMatcher reads a string as a JSON Pointer (RFC 6901) and reports
// whether a segment is projectid. Like ASP.NET's JSON Patch, it does not
// need a leading "/"; "~" not followed by "0" or "1" stays in the segment.
type pointerMatcher struct {
	seg   idMatcher
	tilde bool // a "~" waits for its escape character
	found bool
}

func (p *pointerMatcher) add(c byte) {
	if p.tilde {
		p.tilde = false
		switch c {
		case '0':
			p.seg.add('~')
			return
		case '1':
			p.seg.add('/')
			return
		}
		p.seg.add('~')
	}
	switch c {
	case '/':
		p.found = p.found || p.seg.matched()
		p.seg = idMatcher{}
	case '~':
		p.tilde = true
	default:
		p.seg.add(c)
	}
}

// matched reports whether a segment of the whole string is projectid.
func (p *pointerMatcher) matched() bool {
	if p.tilde {
		p.seg.add('~')
		p.tilde = false
	}
	return p.found || p.seg.matched()
}

// isSpace reports whether c is ASCII white space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
