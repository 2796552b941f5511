package teraswitch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// RouteHeader is the response header in which the stand-in names the
// operation it matched, as "<METHOD> <spec path>", e.g.
// "GET /v2/Instance/{id}".
const RouteHeader = "X-Standin-Route"

// NewStandin returns a stand-in for the TeraSwitch API, for tests, the
// quickstart and load benchmarks. It answers every operation of the embedded
// spec with status 200 and a JSON body shaped like the operation's success
// response: the API's envelope {"success":true,"message":"",...} with the
// schema's other fields filled with example values. Paths match case-
// insensitively, under /v1 as well as /v2, a {param} matching any one
// segment and literal segments winning over parameters; HEAD is answered as
// GET. Every answer names the matched operation in RouteHeader. Anything else
// gets 404 with {"success":false,"message":"not found"}.
//
// Response bodies are built once, here, so serving a request allocates
// little. NewStandin panics if the embedded spec cannot be read, which
// would be a build defect.
func NewStandin() http.Handler {
	s, err := newStandin(spec)
	if err != nil {
		panic("teraswitch: embedded spec: " + err.Error())
	}
	return s
}

type standin struct {
	routes         []*standinRoute // most literal first
	notFound       []byte
	notFoundLength []string
}

type standinRoute struct {
	method string
	// segs are the pattern's segments after the version; "" is a parameter.
	segs          []string
	body          []byte
	contentLength []string
	route         []string
}

// jsonContentType is shared by every response's header map; its length
// equals its capacity so that an append by anyone copies it.
var jsonContentType = []string{"application/json; charset=utf-8"}

func newStandin(data []byte) (*standin, error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	ops, err := doc.operations()
	if err != nil {
		return nil, err
	}
	gen := exampleGen{schemas: doc.Components.Schemas, active: map[string]bool{}}
	notFound := []byte(`{"success":false,"message":"not found"}`)
	s := &standin{notFound: notFound, notFoundLength: []string{strconv.Itoa(len(notFound))}}
	for _, op := range ops {
		segs := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		if len(segs) < 2 || !isVersion(segs[0]) {
			return nil, fmt.Errorf("%s %s: path does not start with a version", op.Method, op.Path)
		}
		segs = segs[1:]
		for i, seg := range segs {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				segs[i] = ""
			}
		}
		body, err := gen.envelope(op.response)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.Method, op.Path, err)
		}
		s.routes = append(s.routes, &standinRoute{
			method:        op.Method,
			segs:          segs,
			body:          body,
			contentLength: []string{strconv.Itoa(len(body))},
			route:         []string{op.Method + " " + op.Path},
		})
	}
	// Order routes so that, among those matching a path, the first has a
	// literal where the others have a parameter.
	sort.SliceStable(s.routes, func(i, j int) bool {
		a, b := s.routes[i].segs, s.routes[j].segs
		for k := 0; k < len(a) && k < len(b); k++ {
			if (a[k] == "") != (b[k] == "") {
				return a[k] != ""
			}
		}
		return false
	})
	return s, nil
}

func isVersion(seg string) bool {
	return strings.EqualFold(seg, "v1") || strings.EqualFold(seg, "v2")
}

// ServeHTTP answers r with the precomputed response of its operation.
func (s *standin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	rt := s.match(r.Method, r.URL.Path)
	if rt == nil {
		h["Content-Length"] = s.notFoundLength
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(s.notFound)
		return
	}
	h["Content-Length"] = rt.contentLength
	h[RouteHeader] = rt.route
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rt.body)
}

func (s *standin) match(method, path string) *standinRoute {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	version, rest, ok := strings.Cut(path[1:], "/")
	if !ok || !isVersion(version) {
		return nil
	}
	for _, rt := range s.routes {
		if rt.method == method && matchSegments(rt.segs, rest) {
			return rt
		}
	}
	return nil
}

// matchSegments reports whether path (without its leading slash) has as many
// segments as segs, each equal to its literal or, for a parameter, non-empty.
func matchSegments(segs []string, path string) bool {
	for i, want := range segs {
		seg, rest, more := strings.Cut(path, "/")
		if more != (i < len(segs)-1) || seg == "" {
			return false
		}
		if want != "" && !strings.EqualFold(seg, want) {
			return false
		}
		path = rest
	}
	return true
}

// exampleGen writes example JSON values for OpenAPI schemas.
type exampleGen struct {
	schemas map[string]*schema
	active  map[string]bool // $refs being expanded, to cut cycles
}

const maxExampleDepth = 12

// envelope returns the body of a success response with schema s: the API's
// envelope with success true and an empty message, then s's other fields.
func (g *exampleGen) envelope(s *schema) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"success":true,"message":""`)
	if s != nil {
		props, err := g.properties(s, 0)
		if err != nil {
			return nil, err
		}
		for _, name := range sortedKeys(props) {
			if name == "success" || name == "message" {
				continue
			}
			b.WriteByte(',')
			writeString(&b, name)
			b.WriteByte(':')
			if err := g.value(&b, props[name], name, 1); err != nil {
				return nil, err
			}
		}
	}
	b.WriteByte('}')
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("generated invalid JSON: %s", b.Bytes())
	}
	return b.Bytes(), nil
}

// resolve follows s's $ref, if any.
func (g *exampleGen) resolve(s *schema) (*schema, string, error) {
	if s == nil || s.Ref == "" {
		return s, "", nil
	}
	name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/")
	if !ok {
		return nil, "", fmt.Errorf("unsupported $ref %q", s.Ref)
	}
	t, ok := g.schemas[name]
	if !ok {
		return nil, "", fmt.Errorf("unknown schema %q", name)
	}
	return t, name, nil
}

// properties returns the properties of object schema s, merging allOf parts.
func (g *exampleGen) properties(s *schema, depth int) (map[string]*schema, error) {
	s, _, err := g.resolve(s)
	if err != nil || s == nil || depth > maxExampleDepth {
		return nil, err
	}
	props := make(map[string]*schema, len(s.Properties))
	for _, part := range s.AllOf {
		more, err := g.properties(part, depth+1)
		if err != nil {
			return nil, err
		}
		for k, v := range more {
			props[k] = v
		}
	}
	for k, v := range s.Properties {
		props[k] = v
	}
	return props, nil
}

// value writes an example value for s, the schema of a field called name.
func (g *exampleGen) value(b *bytes.Buffer, s *schema, name string, depth int) error {
	s, ref, err := g.resolve(s)
	if err != nil {
		return err
	}
	if s == nil || depth > maxExampleDepth || g.active[ref] {
		b.WriteString("null")
		return nil
	}
	if ref != "" {
		g.active[ref] = true
		defer delete(g.active, ref)
	}
	switch {
	case len(s.Example) > 0:
		return json.Compact(b, s.Example)
	case len(s.Enum) > 0:
		return json.Compact(b, s.Enum[0])
	case len(s.OneOf) > 0:
		return g.value(b, s.OneOf[0], name, depth+1)
	case len(s.AnyOf) > 0:
		return g.value(b, s.AnyOf[0], name, depth+1)
	case s.Type == "object" || len(s.Properties) > 0 || len(s.AllOf) > 0:
		return g.object(b, s, depth)
	case s.Type == "array":
		b.WriteByte('[')
		if err := g.value(b, s.Items, name, depth+1); err != nil {
			return err
		}
		b.WriteByte(']')
	case s.Type == "integer":
		b.WriteString("1")
	case s.Type == "number":
		b.WriteString("1.5")
	case s.Type == "boolean":
		b.WriteString("true")
	case s.Type == "string":
		writeString(b, exampleString(s.Format, name))
	default:
		b.WriteString("null")
	}
	return nil
}

func (g *exampleGen) object(b *bytes.Buffer, s *schema, depth int) error {
	props, err := g.properties(s, depth)
	if err != nil {
		return err
	}
	b.WriteByte('{')
	for i, name := range sortedKeys(props) {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, name)
		b.WriteByte(':')
		if err := g.value(b, props[name], name, depth+1); err != nil {
			return err
		}
	}
	if len(props) == 0 && len(s.AdditionalProperties) > 0 && s.AdditionalProperties[0] == '{' {
		var extra schema
		if err := json.Unmarshal(s.AdditionalProperties, &extra); err != nil {
			return err
		}
		b.WriteString(`"key":`)
		if err := g.value(b, &extra, "key", depth+1); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// exampleString returns a plausible string for a field with the given
// format and name.
func exampleString(format, name string) string {
	lower := strings.ToLower(name)
	switch {
	case format == "uuid":
		return "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	case format == "date":
		return "2024-01-02"
	case format == "date-time", strings.HasPrefix(lower, "date"), strings.HasSuffix(lower, "date"),
		strings.HasSuffix(name, "At"), lower == "created", lower == "deleted", lower == "updated":
		return "2024-01-02T03:04:05Z"
	case lower == "id" || strings.HasSuffix(name, "Id"):
		return "example-id"
	case name == "" || name == "key":
		return "example"
	}
	return "example " + name
}

func writeString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

func sortedKeys(m map[string]*schema) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
