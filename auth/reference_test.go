package auth

// Reference readings of queries, media types and JSON bodies, written
// independently of the checks (on the standard library where it can), and
// generators of adversarial inputs for the differential tests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// refNameIsProjectID is the reference name comparison: strings.EqualFold
// once the Turkish dotless ı and dotted İ are read as i.
func refNameIsProjectID(s string) bool {
	s = strings.NewReplacer("ı", "i", "İ", "i").Replace(s)
	return strings.EqualFold(s, "projectid")
}

// refKeyNamesProject reports whether a decoded query key, or one of its
// parts between ".", "[" and "]" trimmed of ASCII white space, is
// projectid.
func refKeyNamesProject(key string) bool {
	for _, part := range strings.FieldsFunc(key, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		if refNameIsProjectID(strings.Trim(part, " \t\n\r\v\f")) {
			return true
		}
	}
	return false
}

// refQueryCheck reads a raw query the way ASP.NET's QueryHelpers does:
// pairs split at "&" only, key and value split at the first "=", each
// url.QueryUnescape'd. A malformed escape, or a raw byte outside RFC
// 3986's query (pchar, "/" and "?", with "[" and "]" as in paths), is
// invalid_query; a key naming the project with another value than want is
// project_mismatch; else a key naming a method override is invalid_query.
func refQueryCheck(q, want string) Code {
	const (
		unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
		subDelims  = "!$&'()*+,;="
		query      = unreserved + subDelims + ":@" + "/?" + "%" + "[]"
	)
	for i := 0; i < len(q); i++ {
		if !strings.ContainsRune(query, rune(q[i])) {
			return CodeInvalidQuery
		}
	}
	type pair struct{ k, v string }
	var pairs []pair
	for _, p := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(p, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return CodeInvalidQuery
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return CodeInvalidQuery
		}
		if strings.ContainsRune(dk+dv, 0) || strings.ContainsFunc(dk, refKeyControl) {
			return CodeInvalidQuery
		}
		pairs = append(pairs, pair{dk, dv})
	}
	for _, p := range pairs {
		if refKeyNamesProject(p.k) && p.v != want {
			return CodeProjectMismatch
		}
	}
	for _, p := range pairs {
		if refKeyOverrides(p.k) {
			return CodeInvalidQuery
		}
	}
	return OK
}

// refKeyOverrides reports whether a decoded query key, trimmed of ASCII
// white space, names a method override in any ASCII letter case, "_" and
// "-" alike.
func refKeyOverrides(key string) bool {
	k := strings.ReplaceAll(strings.Trim(key, " \t\n\r\v\f"), "_", "-")
	for _, name := range []string{"-method", "x-http-method-override", "x-http-method", "x-method-override"} {
		if len(k) == len(name) && strings.EqualFold(k, name) && !strings.ContainsFunc(k, func(r rune) bool { return r > 0x7f }) {
			return true
		}
	}
	return false
}

// refKeyControl reports a control character that a query key may not
// hold, even escaped: all but ASCII white space.
func refKeyControl(r rune) bool {
	return r < 0x20 && !strings.ContainsRune("\t\n\v\f\r", r) || r == 0x7f
}

// refMediaType is RFC 9110's media-type with parameters, without obs-text,
// around optional white space.
var (
	refTchar     = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]"
	refQuoted    = `"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"`
	refParam     = `[ \t]*;[ \t]*(` + refTchar + `+)=(` + refTchar + `+|` + refQuoted + `)`
	refMediaType = regexp.MustCompile(`^[ \t]*(` + refTchar + `+)/(` + refTchar + `+)((?:` + refParam + `)*)[ \t]*$`)
	refParamRE   = regexp.MustCompile(refParam)
)

// refMediaTypeOK is the reference reading of CheckMediaType's rules.
func refMediaTypeOK(ct string) bool {
	if strings.Contains(ct, ",") {
		return false
	}
	m := refMediaType.FindStringSubmatch(ct)
	if m == nil {
		return false
	}
	typ, sub := strings.ToLower(m[1]), strings.ToLower(m[2])
	switch {
	case typ == "application" && sub == "json", typ == "text" && sub == "json":
	case typ == "application" && len(sub) > len("+json") && strings.HasSuffix(sub, "+json") && !strings.Contains(sub, "*"):
	default:
		return false
	}
	params := refParamRE.FindAllStringSubmatch(m[3], -1)
	if len(params) > 8 {
		return false
	}
	seen := map[string]bool{}
	for _, p := range params {
		name, value := strings.ToLower(p[1]), p[2]
		if seen[name] {
			return false
		}
		seen[name] = true
		if strings.HasPrefix(value, `"`) {
			value = value[1 : len(value)-1]
		}
		if name == "charset" && strings.ToLower(value) != "utf-8" {
			return false
		}
	}
	return true
}

// refJSONMismatch returns what in body names another project than want,
// or "" if nothing does, or the body is not JSON encoding/json reads. It
// reads the body twice: decoded into maps (the last duplicate key wins, as
// in ASP.NET's binding), and member by member (every duplicate).
func refJSONMismatch(body []byte, want string) string {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	if bad := refWalkDecoded(v, want); bad != "" {
		return "decoded: " + bad
	}
	if bad := refWalkRaw(body, want); bad != "" {
		return "raw: " + bad
	}
	return ""
}

// refValueIs reports whether a decoded project value is want.
func refValueIs(v any, want string) bool {
	switch v := v.(type) {
	case json.Number:
		return string(v) == want
	case string:
		return v == want
	}
	return false
}

// refPointerNamesProject reads s as a JSON Pointer and reports whether a
// segment is projectid.
func refPointerNamesProject(s string) bool {
	for _, seg := range strings.Split(s, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		if refNameIsProjectID(seg) {
			return true
		}
	}
	return false
}

func refIsPointerKey(k string) bool {
	return strings.EqualFold(k, "path") || strings.EqualFold(k, "from")
}

func refWalkDecoded(v any, want string) string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if refNameIsProjectID(k) && !refValueIs(x, want) {
				return fmt.Sprintf("%q: %#v", k, x)
			}
			if s, ok := x.(string); ok && refIsPointerKey(k) && refPointerNamesProject(s) {
				return fmt.Sprintf("%q: %q", k, s)
			}
			if bad := refWalkDecoded(x, want); bad != "" {
				return bad
			}
		}
	case []any:
		for _, x := range v {
			if bad := refWalkDecoded(x, want); bad != "" {
				return bad
			}
		}
	}
	return ""
}

// refWalkRaw walks a valid JSON document token by token, so that every
// duplicate key is seen.
func refWalkRaw(doc []byte, want string) string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct{ object, wantKey bool }
	var stack []frame
	key, keyed := "", false // the key of the value that comes next
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "" // the end, or not JSON encoding/json reads
		}
		d, isDelim := tok.(json.Delim)
		if isDelim && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			key, keyed = tok.(string), true
			stack[n-1].wantKey = false
			continue
		}
		if keyed {
			keyed = false
			if refNameIsProjectID(key) && (isDelim || !refValueIs(tok, want)) {
				return fmt.Sprintf("%q: %v", key, tok)
			}
			if s, ok := tok.(string); ok && refIsPointerKey(key) && refPointerNamesProject(s) {
				return fmt.Sprintf("%q: %q", key, s)
			}
		}
		if isDelim {
			stack = append(stack, frame{object: d == '{', wantKey: d == '{'})
			continue
		}
		valueDone()
	}
}

// refJSONCheck is the reference outcome for a complete body: invalid_body
// unless it is one valid UTF-8 JSON document (after an optional byte
// order mark) nesting at most maxJSONDepth deep, else project_mismatch if
// refJSONMismatch finds something, else OK. It does not know about
// escaped lone surrogates.
func refJSONCheck(body []byte, want string) Code {
	doc := bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !json.Valid(doc) || !utf8.Valid(doc) || refDepth(doc) > maxJSONDepth {
		return CodeInvalidBody
	}
	if refJSONMismatch(body, want) != "" {
		return CodeProjectMismatch
	}
	return OK
}

// refDepth is the nesting depth of a valid JSON document.
func refDepth(doc []byte) int {
	depth, maxDepth, inString, escaped := 0, 0, false, false
	for _, c := range doc {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return maxDepth
}

// choices drives a generator from fuzz bytes (or random ones): each call
// takes the next byte, and zeros once they run out.
type choices struct {
	data []byte
	rng  *rand.Rand // when set, the source instead of data
}

func (c *choices) byte() byte {
	if c.rng != nil {
		return byte(c.rng.Uint32())
	}
	if len(c.data) == 0 {
		return 0
	}
	b := c.data[0]
	c.data = c.data[1:]
	return b
}

// n returns a choice in [0, n).
func (c *choices) n(n int) int { return int(c.byte()) % n }

// chance reports true about once in n calls.
func (c *choices) chance(n int) bool { return c.n(n) == 0 }

func (c *choices) pick(list []string) string { return list[c.n(len(list))] }

// mixCase changes the case of some ASCII letters.
func (c *choices) mixCase(s string) string {
	b := []byte(s)
	for i, x := range b {
		if ('a' <= x && x <= 'z' || 'A' <= x && x <= 'Z') && c.chance(3) {
			b[i] = x ^ 0x20
		}
	}
	return string(b)
}

// turkishI replaces some i and I with ı or İ.
func (c *choices) turkishI(s string) string {
	var b strings.Builder
	for _, r := range s {
		if (r == 'i' || r == 'I') && c.chance(3) {
			r = []rune{'ı', 'İ'}[c.n(2)]
		}
		b.WriteRune(r)
	}
	return b.String()
}

var (
	genKeys = []string{"projectId", "projectid", "PROJECTID", "ProjectId", "path", "from", "op", "value",
		"name", "projectIdx", "project_id", "xprojectId", "projectI", "PATH", "From", "pathx", "service", "tags"}
	genProjectValues = []string{`42`, `"42"`, `43`, `"43"`, `42.0`, `4.2e1`, `42e0`, `"042"`, `" 42"`, `"42 "`,
		`null`, `true`, `false`, `[42]`, `{"id":42}`, `-42`, `0`, `"\u0034\u0032"`, `420`, `4`, `"4\u0032"`,
		`"4"`, `""`, `-0`, `42E0`}
	genPointers = []string{"/projectId", "/a/projectId", "/name", "/project~1Id", "/proj~0ectId", "projectId",
		"/PROJECTıD", "/tags/-", "/projectId/", "//projectId", "/projectId~", "/a~1/projectId", "/~1projectId",
		"/projectIdx", "", "/", "/ projectId", "/x/0/projectid"}
	genStrings = []string{"", "x", "web-1", "projectId", `{\"projectId\":43}`, `a\"b`, `\\`, `\/`, `\n`,
		`\ud83d\ude00`, "é€", `\u00e9`, "/projectId"}
	genNumbers = []string{"0", "1", "-1", "42", "43", "1.5", "-0.5e-3", "1E10", "123456789012345678901234567890"}
)

// genJSONKey writes a quoted key, with some letters escaped.
func genJSONKey(c *choices) string {
	k := c.pick(genKeys)
	if c.chance(2) {
		k = c.mixCase(k)
	}
	if c.chance(3) {
		k = c.turkishI(k)
	}
	if c.chance(12) {
		k = []string{" ", "\t"}[c.n(2)] + k
	}
	return jsonQuote(c, k)
}

// jsonQuote quotes s as a JSON string, escaping some characters as \uXXXX
// (upper or lower case hex).
func jsonQuote(c *choices, s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		case c.chance(4):
			esc := fmt.Sprintf(`\u%04x`, r)
			if r > 0xffff {
				hi, lo := (r-0x10000)>>10+0xd800, (r-0x10000)&0x3ff+0xdc00
				esc = fmt.Sprintf(`\u%04x\u%04x`, hi, lo)
			}
			if c.chance(2) {
				esc = strings.ReplaceAll(strings.ToUpper(esc), `\U`, `\u`)
			}
			b.WriteString(esc)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// genSpace is optional JSON white space.
func genSpace(c *choices) string {
	if !c.chance(3) {
		return ""
	}
	return []string{" ", "\n", "\t", "\r\n", "  "}[c.n(5)]
}

// genJSONValue writes a value nested depth deep.
func genJSONValue(c *choices, depth int) string {
	kind := c.n(8)
	if depth >= 6 && kind < 3 {
		kind = 3
	}
	switch kind {
	case 0, 1:
		var b strings.Builder
		b.WriteString("{" + genSpace(c))
		n := c.n(5)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString("," + genSpace(c))
			}
			key := genJSONKey(c)
			b.WriteString(key + genSpace(c) + ":" + genSpace(c))
			var unq string
			_ = json.Unmarshal([]byte(key), &unq)
			switch {
			case refNameIsProjectID(strings.TrimSpace(unq)) && !c.chance(5):
				b.WriteString(c.pick(genProjectValues))
			case refIsPointerKey(unq) && !c.chance(4):
				b.WriteString(jsonQuote(c, c.mixCase(c.pick(genPointers))))
			default:
				b.WriteString(genJSONValue(c, depth+1))
			}
			b.WriteString(genSpace(c))
			if c.chance(10) { // a duplicate
				b.WriteString("," + key + ":" + c.pick(genProjectValues))
			}
		}
		b.WriteString("}")
		return b.String()
	case 2:
		var b strings.Builder
		b.WriteString("[" + genSpace(c))
		n := c.n(4)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString("," + genSpace(c))
			}
			b.WriteString(genJSONValue(c, depth+1) + genSpace(c))
		}
		b.WriteString("]")
		return b.String()
	case 3, 4:
		s := c.pick(genStrings)
		if strings.Contains(s, `\`) || strings.Contains(s, `"`) {
			return `"` + s + `"`
		}
		return jsonQuote(c, s)
	case 5, 6:
		return c.pick(genNumbers)
	default:
		return []string{"true", "false", "null"}[c.n(3)]
	}
}

// genJSONBody writes a body: mostly a valid document, sometimes with a
// byte order mark, a comment, trailing data or a trailing comma.
func genJSONBody(c *choices) []byte {
	var b strings.Builder
	if c.chance(6) {
		b.WriteString("\xef\xbb\xbf")
	}
	if c.chance(20) {
		b.WriteString([]string{"/**/", "// x\n", "/* {\"projectId\":43} */"}[c.n(3)])
	}
	b.WriteString(genSpace(c))
	if c.chance(3) {
		b.WriteString(genJSONValue(c, 0))
	} else {
		// An object at the top, as the API takes.
		for {
			v := genJSONValue(c, 0)
			if strings.HasPrefix(v, "{") || c.chance(4) {
				b.WriteString(v)
				break
			}
		}
	}
	b.WriteString(genSpace(c))
	if c.chance(20) {
		b.WriteString([]string{"x", "{}", "//", "/**/", `{"projectId":43}`, ",", "\x00"}[c.n(7)])
	}
	body := b.String()
	if c.chance(20) {
		body = strings.Replace(body, "}", ",}", 1)
	}
	return []byte(body)
}

var (
	genQueryKeys   = []string{"ProjectId", "projectId", "projectid", "PROJECTID", "Limit", "Skip", "Tag", "Status", "ProjectIdx", "xProjectId", "project_id", "Project Id", "_method", "X-HTTP-Method-Override", "x_http_method", "X-Method-Override", "_meth od"}
	genQueryValues = []string{"42", "43", "4%32", "%34%32", "", "+42", "042", "42+", "a;b", "42;ProjectId=43", "%2B42", "%20", "-42", "4.2e1"}
)

// genQueryEscape percent-encodes some bytes of s (upper or lower case hex)
// and writes some spaces as "+".
func genQueryEscape(c *choices, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		x := s[i]
		switch {
		case x == ' ' && c.chance(2):
			b.WriteByte('+')
		case x == ' ' || x == '%' || x == '&' || x == '=' || x == '+' || x == '#' || x >= 0x80 && c.chance(2) || c.chance(5):
			if c.chance(2) {
				fmt.Fprintf(&b, "%%%02X", x)
			} else {
				fmt.Fprintf(&b, "%%%02x", x)
			}
		default:
			b.WriteByte(x)
		}
	}
	return b.String()
}

// genQuery writes a raw query of a few pairs.
func genQuery(c *choices) string {
	var b strings.Builder
	n := c.n(5)
	for i := 0; i < n; i++ {
		if i > 0 || c.chance(10) {
			b.WriteString([]string{"&", "&", "&", ";", "&&"}[c.n(5)])
		}
		k := c.pick(genQueryKeys)
		k = c.mixCase(k)
		if c.chance(3) {
			k = c.turkishI(k)
		}
		switch c.n(8) {
		case 0:
			k = "filter." + k
		case 1:
			k += "[]"
		case 2:
			k = "x[" + k + "]"
		case 3:
			k = " " + k + "\t"
		case 4:
			k = "[0]." + k
		}
		b.WriteString(genQueryEscape(c, k))
		if !c.chance(8) {
			b.WriteString("=" + c.pick(genQueryValues))
		}
	}
	if c.chance(10) {
		b.WriteString([]string{"%zz", "%", "%4", "%u0050", "\x01", "\x7f", "%G1", "\t"}[c.n(8)])
	}
	return b.String()
}

// TestReferences checks the reference readings themselves on a few cases
// where they must see a mismatch, so that a broken reference cannot make
// the differential tests pass vacuously.
func TestReferences(t *testing.T) {
	for _, body := range []string{`{"projectId":43}`, `{"a":[{"PROJECTıD":"43"}]}`, `{"projectId":42,"projectId":43}`,
		`[{"path":"/projectId"}]`, `{"FROM":"/a/project~0id/../projectid"}`, `{"projectId":42.0}`} {
		if refJSONMismatch([]byte(body), "42") == "" {
			t.Errorf("reference: %s names no other project", body)
		}
	}
	if refJSONMismatch([]byte(`{"projectId":42,"a":{"ProjectId":"42"},"path":"/name"}`), "42") != "" {
		t.Error("reference: a body naming project 42 names another")
	}
	for q, want := range map[string]Code{"a=1;ProjectId=43": OK, "+_Method=1": CodeInvalidQuery, "_method=1&ProjectId=43": CodeProjectMismatch, "x[ProjectId]=43": CodeProjectMismatch, "a=%zz": CodeInvalidQuery} {
		if got := refQueryCheck(q, "42"); got != want {
			t.Errorf("reference: %q = %v, want %v", q, got, want)
		}
	}
}
