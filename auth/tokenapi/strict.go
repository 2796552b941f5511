package tokenapi

// Strict reading of requests: a body is exactly one JSON value without
// duplicate keys, and a query names each parameter once. Every endpoint
// of the token API, and the management APIs served beside it (through
// Authorizer.Authorize and DecodeBody), read requests through these.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// oneValue checks body, decoded into v up to offset: nothing but white
// space after the JSON value, no object naming a key twice, and each of
// the body's fields spelt as v's (encoding/json matches names whatever
// their case, so "NAME" would set name).
func oneValue(body []byte, offset int64, v any) error {
	if rest := bytes.TrimLeft(body[offset:], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("data after the JSON object, at byte %d: a body is one JSON value, white space after it allowed", len(body)-len(rest))
	}
	if err := duplicateKey(body); err != nil {
		return err
	}
	return misspeltField(body, v)
}

// misspeltField refuses a top-level member of body that names one of v's
// fields in another case ("Name" for name).
func misspeltField(body []byte, v any) error {
	rt := reflect.TypeOf(v)
	for rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	var members map[string]json.RawMessage
	if rt == nil || rt.Kind() != reflect.Struct || json.Unmarshal(body, &members) != nil {
		return nil
	}
	names := make(map[string]bool, rt.NumField())
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names[name] = true
		}
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !names[k] {
			return fmt.Errorf("unknown field %q: field names are lower case, such as %q", k, fieldNamed(k, names))
		}
	}
	return nil
}

// fieldNamed returns the field name that key names in another case, as
// encoding/json matches it (Unicode case folding: "ſcopes" is scopes),
// or key in lower case when none does.
func fieldNamed(key string, names map[string]bool) string {
	for name := range names {
		if strings.EqualFold(key, name) {
			return name
		}
	}
	return strings.ToLower(key)
}

// jsonFrame is an object or array being read by duplicateKey.
type jsonFrame struct {
	keys    map[string]bool // nil for an array
	wantKey bool            // an object's next token is a key or its end
}

// duplicateKey returns an error naming the first key that appears twice in
// one object of body, a valid JSON value; nil when none does.
func duplicateKey(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonFrame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // malformed: decoding reports it
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			top := stack[n-1]
			key, ok := tok.(string)
			if !ok { // the object's end
				stack = stack[:n-1]
				valueDone()
				continue
			}
			folded := strings.ToLower(key) // encoding/json matches names whatever their case
			if top.keys[folded] {
				return fmt.Errorf("%q given twice in one object: give each field once", key)
			}
			top.keys[folded] = true
			top.wantKey = false
			continue
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

// describeTypeError names the field of a value of the wrong JSON type and
// the types expected and given, in the API's terms (not Go's).
func describeTypeError(te *json.UnmarshalTypeError) string {
	field := te.Field
	if field == "" {
		field = "body"
	}
	return fmt.Sprintf("%s: %s is expected, not %s", field, jsonKind(te.Type), article(te.Value))
}

// jsonKind says which JSON value decodes into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		if t == timeType {
			return "an RFC 3339 time string"
		}
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
// query is malformed or gives a parameter more than once, naming it: a
// parameter means one thing, and taking one of two values would act on
// something the caller may not have meant.
func checkQuery(w http.ResponseWriter, r *http.Request) bool {
	if problems := queryProblems(r.URL.RawQuery); len(problems) > 0 {
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
// parameter given more than once (each named, sorted).
func queryProblems(raw string) []string {
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return []string{"query: " + err.Error()}
	}
	var problems []string
	for name, vs := range values {
		if len(vs) > 1 {
			problems = append(problems, fmt.Sprintf("%s: given %d times; give it once", name, len(vs)))
		}
	}
	slices.Sort(problems)
	return problems
}
