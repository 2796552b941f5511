package tokenapi

// Strict reading of requests: a body is exactly one JSON object whose
// members are each a field of the endpoint's request, spelt as the field,
// given once, with a value of the field's type (never null); a query names
// only the parameters its endpoint reads, each once, with a value. Every
// endpoint of the token API, and the management APIs served beside it
// (through Authorizer.Authorize and DecodeBody), read requests through
// these. Every problem found is listed in the answer's errors, each as
// "<field or parameter>: <what is wrong>".

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// readBody reads r's body, at most maxRequestBody bytes, and decodes it
// into v, a pointer, when it has no problem; it returns the problems
// found. An empty body is accepted when optional.
func readBody(w http.ResponseWriter, r *http.Request, v any, optional bool) []string {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return []string{fmt.Sprintf("body: larger than %d KiB", maxRequestBody>>10)}
	case err != nil:
		return []string{"body: could not be read: " + err.Error()}
	}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		if optional {
			return nil
		}
		return []string{"body: empty; send a JSON object"}
	}
	if problems := bodyProblems(body, v); len(problems) > 0 {
		return problems
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil { // not expected: every field was checked
		return []string{"body: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	return nil
}

// bodyProblems lists what is wrong with body, a request to be decoded
// into v: not one JSON object, a key given twice or null in any object,
// and each member that is not one of v's fields or whose value its field
// does not take.
func bodyProblems(body []byte, v any) []string {
	if !utf8.Valid(body) {
		// encoding/json would replace the bytes silently.
		return []string{fmt.Sprintf("body: not UTF-8 text (at byte %d); send JSON in UTF-8", invalidUTF8At(body))}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var whole json.RawMessage
	if err := dec.Decode(&whole); err != nil {
		return []string{"body: " + syntaxProblem(err)}
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return []string{fmt.Sprintf("body: data after the JSON object, at byte %d: a body is one JSON value, white space after it allowed", len(body)-len(rest))}
	}
	if whole[0] != '{' {
		return []string{"body: a JSON object is expected, not " + jsonValueKind(whole)}
	}
	if at, bad := loneSurrogate(body); bad {
		// encoding/json would replace it silently, as bytes that are
		// not UTF-8.
		return []string{fmt.Sprintf("body: a \\u escape at byte %d is half of a UTF-16 surrogate pair; escape whole characters", at)}
	}
	problems := keyProblems(body)
	members, err := objectMembers(whole)
	if err != nil {
		return append(problems, "body: "+err.Error())
	}
	fields := requestFields(v)
	if fields == nil { // not a struct: decoding names the problem
		return problems
	}
	for _, m := range members {
		if p := fields.problem(m.key, m.value); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

// syntaxProblem says why a body is not JSON, with the byte where it is
// not.
func syntaxProblem(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not JSON: %s, at byte %d", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not JSON: it ends before its value does"
	}
	return "not JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// invalidUTF8At returns the offset of the first byte of b that is not
// part of valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// loneSurrogate returns the offset of the first \u escape in body, valid
// JSON, that is a UTF-16 surrogate not paired with the escape after it,
// and whether there is one.
func loneSurrogate(body []byte) (int, bool) {
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			inString = !inString
		case c != '\\' || !inString:
		case body[i+1] != 'u':
			i++ // a two-character escape
		default:
			r := hexRune(body[i+2 : i+6])
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+12 > len(body) || body[i+6] != '\\' || body[i+7] != 'u' ||
					utf16.DecodeRune(r, hexRune(body[i+8:i+12])) == utf8.RuneError {
					return i, true
				}
				i += 6 // the pair's second half
			}
			i += 5
		}
	}
	return 0, false
}

// hexRune reads four hexadecimal digits (valid JSON's, after \u).
func hexRune(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// controlChar returns the first control character of s, and whether
// there is one: C0, DEL or C1, as a terminal or a log reader may act on
// them, or a bidirectional control, which makes text display in another
// order than it is read ("Trojan Source").
func controlChar(s string) (rune, bool) {
	for _, c := range s {
		if c < 0x20 || c >= 0x7f && c <= 0x9f || bidiControl(c) {
			return c, true
		}
	}
	return 0, false
}

// bidiControl reports whether c is one of Unicode's explicit
// bidirectional embeddings, overrides or isolates, which reorder the text
// around them. The marks (U+200E, U+200F, U+061C) are not: they only
// give a neutral character a direction, and Hebrew or Arabic text pasted
// from other applications often holds them.
func bidiControl(c rune) bool {
	return c >= 0x202A && c <= 0x202E || c >= 0x2066 && c <= 0x2069
}

// jsonValueKind names the kind of a JSON value: "an array", "a string"...
func jsonValueKind(raw []byte) string {
	switch raw[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	return "a number"
}

// member is one member of a JSON object, in the order given.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of obj, a valid JSON object.
func objectMembers(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var m member
		m.key, _ = tok.(string)
		if err := dec.Decode(&m.value); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// fieldSet is the fields of a request type by JSON name.
type fieldSet map[string]requestField

// requestField is a field of a request type.
type requestField struct {
	typ reflect.Type
	// omitEmpty: its zero value means the field was left out, so an
	// explicit empty string is no value either.
	omitEmpty bool
}

// requestFields returns the fields of v's struct type by JSON name (as
// encoding/json names them), or nil when v is not a struct.
func requestFields(v any) fieldSet {
	rt := reflect.TypeOf(v)
	for rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt == nil || rt.Kind() != reflect.Struct {
		return nil
	}
	fields := fieldSet{}
	for _, f := range reflect.VisibleFields(rt) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = requestField{typ: f.Type, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	return fields
}

// problem says what is wrong with a member of a request body (key and
// its value), "" when nothing is.
func (fs fieldSet) problem(key string, value json.RawMessage) string {
	name := quoteKey(key)
	f, ok := fs[key]
	if !ok {
		return name + ": " + fs.unknown(key)
	}
	if bytes.Equal(value, []byte("null")) {
		return name + ": null is not a value: leave the field out, or give one"
	}
	if f.omitEmpty && f.typ.Kind() == reflect.String && bytes.Equal(value, []byte(`""`)) {
		// "expires_in":"" would mean no expiry, "grace":"" no grace
		// period: most likely an unset variable, not what was meant.
		return name + ": empty; give a value, or leave the field out"
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(reflect.New(f.typ).Interface())
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case err == nil:
		return numberProblem(name, f.typ, value)
	case errors.As(err, &te):
		return describeTypeError(key, te)
	case errors.As(err, &pe):
		return fmt.Sprintf("%s: %s is not an RFC 3339 time such as 2030-01-02T15:04:05Z", name, truncate(string(value)))
	}
	return name + ": " + strings.TrimPrefix(err.Error(), "json: ")
}

// unknown says why key is not one of the fields, and which are.
func (fs fieldSet) unknown(key string) string {
	if len(fs) == 0 {
		return "unknown field: this endpoint takes no body (send none, or {})"
	}
	for name := range fs {
		if strings.EqualFold(key, name) { // encoding/json would take it for name
			return fmt.Sprintf("unknown field: field names are lower case, such as %q", name)
		}
	}
	names := make([]string, 0, len(fs))
	for name := range fs {
		names = append(names, name)
	}
	slices.Sort(names)
	return "unknown field; the fields are " + strings.Join(names, ", ")
}

// quoteKey writes a key or parameter name of a request as it is named in
// problems: as it is when made of letters, digits, '_', '-' and '.',
// quoted otherwise, and shortened when long (it is the caller's own
// input, echoed).
func quoteKey(key string) string {
	plain := key != ""
	for _, c := range key {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			plain = false
			break
		}
	}
	if plain && len(key) <= 64 {
		return key
	}
	return strconv.Quote(truncate(key))
}

// truncate shortens s, echoed in a problem, to at most 64 bytes.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// utf8Start reports whether b starts a UTF-8 sequence.
func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// memberOf names the member whose value is being read: the key of the
// innermost object in stack, "body" at the top.
func memberOf(stack []*jsonFrame) string {
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].keys != nil {
			return quoteKey(stack[i].key)
		}
	}
	return "body"
}

// jsonFrame is an object or array being read by keyProblems.
type jsonFrame struct {
	keys    map[string]bool // nil for an array
	wantKey bool            // an object's next token is a key or its end
	key     string          // the member being read
}

// keyProblems lists, for body, a valid JSON value, every key given twice
// in one object (whatever its case: encoding/json matches names so),
// every member given as null below the top level (the top level's are
// the fields' problems), and every string holding a control character:
// no field of a request takes one, and a name or description holding an
// escape sequence would act on the terminal that a CLI prints it on.
func keyProblems(body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonFrame
	var problems []string
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return problems // io.EOF, or malformed: decoding reports it
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			top := stack[n-1]
			key, ok := tok.(string)
			if !ok { // the object's end
				stack = stack[:n-1]
				valueDone()
				continue
			}
			if c, bad := controlChar(key); bad {
				problems = append(problems, fmt.Sprintf("%s: a key holds the control character U+%04X", quoteKey(key), c))
			}
			folded := strings.ToLower(key)
			if top.keys[folded] {
				problems = append(problems, quoteKey(key)+": given twice in one object; give each field once")
			}
			top.keys[folded] = true
			top.wantKey, top.key = false, key
			continue
		}
		if n := len(stack); tok == nil && n > 0 && stack[n-1].keys != nil && n > 1 {
			// A top-level member's null is named with its field's
			// problem; a nested one here.
			problems = append(problems, quoteKey(stack[n-1].key)+": null is not a value: leave the field out, or give one")
		}
		if str, ok := tok.(string); ok {
			if c, bad := controlChar(str); bad {
				problems = append(problems, fmt.Sprintf("%s: holds the control character U+%04X; give printable text", memberOf(stack), c))
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonFrame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &jsonFrame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// describeTypeError names the member (key) of a value of the wrong JSON
// type and the types expected and given, in the API's terms (not Go's).
func describeTypeError(key string, te *json.UnmarshalTypeError) string {
	field := quoteKey(key)
	if te.Field != "" {
		field += "." + te.Field
	}
	return fmt.Sprintf("%s: %s is expected, not %s", field, jsonKind(te.Type), article(te.Value))
}

var timeType = reflect.TypeFor[time.Time]()

// jsonKind says which JSON value decodes into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct:
		if t == timeType {
			return "an RFC 3339 time string"
		}
		return "an object"
	case reflect.Map:
		return "an object"
	}
	return "another value"
}

// article renders the JSON type encoding/json reports ("string",
// "number 1.5", "array") as "a string", "a number 1.5", "an array".
func article(value string) string {
	if value == "" {
		return "this value"
	}
	if strings.HasPrefix(value, "array") || strings.HasPrefix(value, "object") {
		return "an " + value
	}
	return "a " + value
}

// checkQuery answers 400 invalid_request, and returns false, when r's
// query is malformed, gives a parameter more than once or empty, or names
// one that the endpoint does not read (allowed), listing each: a
// parameter means one thing, a misspelt or empty filter would silently
// select everything, and taking one of two values would act on something
// the caller may not have meant.
func checkQuery(w http.ResponseWriter, r *http.Request, allowed []string) bool {
	if problems := queryProblems(r.URL.RawQuery, allowed); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "The query is invalid: "+strings.Join(problems, "; ")+".", problems...)
		return false
	}
	return true
}

// checkNoBody answers 400 invalid_request, and returns false, when a
// request to an endpoint that takes no body (GET, HEAD, DELETE) carries
// one holding anything but an empty object, naming what it holds: what
// the body asks for would not be done (a DELETE with {"grace":"1h"}
// would revoke at once), so the request is not what its caller meant.
func checkNoBody(w http.ResponseWriter, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return decodeBody(w, r, &struct{}{}, true)
	}
	return true
}

// queryProblems lists what is wrong with a raw query: malformed, or a
// parameter given more than once, given empty, or not one of allowed
// (each named, sorted).
func queryProblems(raw string, allowed []string) []string {
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return []string{"query: " + err.Error()}
	}
	var problems []string
	for name, vs := range values {
		switch {
		case !slices.Contains(allowed, name):
			problems = append(problems, quoteKey(name)+": "+unknownParameter(name, allowed))
		case len(vs) > 1:
			problems = append(problems, fmt.Sprintf("%s: given %d times; give it once", name, len(vs)))
		case vs[0] == "":
			problems = append(problems, name+": empty; give a value, or leave the parameter out")
		}
	}
	slices.Sort(problems)
	return problems
}

// unknownParameter says why name is not a parameter of an endpoint that
// reads allowed, and which it reads.
func unknownParameter(name string, allowed []string) string {
	if len(allowed) == 0 {
		return "unknown parameter: this endpoint reads no query parameters"
	}
	for _, a := range allowed {
		if strings.EqualFold(name, a) {
			return fmt.Sprintf("unknown parameter: parameter names are lower case, such as %s", a)
		}
	}
	return "unknown parameter; this endpoint reads " + strings.Join(allowed, ", ")
}
