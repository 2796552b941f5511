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
// schema's other fields filled with example values in the forms the real
// API sends (RFC 3339 dates, IP addresses, numbers, enum members; see
// exampleGen), so that typed clients such as TeraSwitch's Go SDK decode
// them. Paths match case-
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
	gen := newExampleGen(doc.Components.Schemas)
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
