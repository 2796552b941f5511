package auth

import (
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.method, tc.path)
	}
	for _, r := range specRoutes {
		f.Add(r.Method, strings.ReplaceAll(strings.ReplaceAll(r.Pattern, "{", ""), "}", ""))
		f.Add(r.Method, strings.NewReplacer("{", "", "}", "", "i", "%C4%B1", "s", "%c5%bf").Replace(r.Pattern))
	}
	table := DefaultRoutes()
	routes := table.Routes()
	f.Fuzz(func(t *testing.T, method, path string) {
		perm, pattern, takesBody, code := table.Match(method, path)
		perm2, pattern2, takesBody2, code2 := table.Match(method, path)
		if perm != perm2 || pattern != pattern2 || takesBody != takesBody2 || code != code2 {
			t.Fatalf("Match(%q, %q) is not stable", method, path)
		}
		switch code {
		case OK:
		case CodeInvalidPath, CodeUnknownRoute:
			if perm != PermNone || pattern != "" || takesBody {
				t.Fatalf("Match(%q, %q) = %v, %q with code %v", method, path, perm, pattern, code)
			}
			return
		default:
			t.Fatalf("Match(%q, %q): unexpected code %v", method, path, code)
		}
		if bad := invalidPathForm(path); bad != "" {
			t.Fatalf("Match(%q, %q) = ok, but the path %s", method, path, bad)
		}
		// The pattern is a route of the table for this method, it
		// matches the path segment by segment, and the permission fits.
		found := false
		for _, r := range routes {
			if r.Pattern == pattern && (r.Method == method || method == "HEAD" && r.Method == "GET") {
				found = true
				if takesBody != (r.TakesBody && r.Method == method) {
					t.Fatalf("Match(%q, %q): takesBody %v, the route's %v", method, path, takesBody, r.TakesBody)
				}
			}
		}
		if !found {
			t.Fatalf("Match(%q, %q) = %q, which is no route for that method", method, path, pattern)
		}
		segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
		want := strings.Split(pattern, "/")
		if len(segs) != len(want) || !strings.EqualFold(segs[1], "v1") && !strings.EqualFold(segs[1], "v2") {
			t.Fatalf("Match(%q, %q) = %q: segments differ", method, path, pattern)
		}
		for i := 2; i < len(segs); i++ {
			if !strings.HasPrefix(want[i], "{") && !refSegEqualFold(segs[i], want[i]) {
				t.Fatalf("Match(%q, %q) = %q: segment %d differs", method, path, pattern, i)
			}
		}
		access := ".write"
		if method == "GET" || method == "HEAD" {
			access = ".read"
		}
		if perm.String() != testGroups[strings.ToLower(want[2])]+access {
			t.Fatalf("Match(%q, %q) = %v for %q", method, path, perm, pattern)
		}
	})
}

// refSegEqualFold is the reference reading of a literal segment match: the
// raw segment decoded, its "ı" and "ſ" read as "i" and "s" (as .NET's
// OrdinalIgnoreCase upper-cases them), then equal to the ASCII literal in
// any ASCII letter case.
func refSegEqualFold(seg, lit string) bool {
	dec, err := url.PathUnescape(seg)
	if err != nil {
		return false
	}
	dec = strings.NewReplacer("ı", "i", "ſ", "s").Replace(dec)
	return len(dec) == len(lit) && strings.EqualFold(dec, lit)
}

// invalidPathForm returns why path is not canonical, or "" if it is,
// checked independently of checkPath.
func invalidPathForm(path string) string {
	if !strings.HasPrefix(path, "/") {
		return "does not start with /"
	}
	p := strings.TrimSuffix(path, "/")
	for _, seg := range strings.Split(p, "/")[1:] {
		if seg == "" || seg == "." || seg == ".." {
			return "has an empty or dot segment"
		}
	}
	lower := strings.ToLower(path)
	for _, esc := range []string{"%2f", "%5c", "%2e", "%25", "%00"} {
		if strings.Contains(lower, esc) {
			return "escapes " + esc
		}
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c < 0x21 || c >= 0x7f || c == '\\' || c == '?' || c == '#' {
			return "has a forbidden byte"
		}
	}
	dec, err := url.PathUnescape(path)
	if err != nil {
		return "has a malformed escape"
	}
	if strings.Count(dec, "/") != strings.Count(path, "/") || strings.Contains(dec, "\\") {
		return "decodes to more slashes or a backslash"
	}
	for _, seg := range strings.Split(dec, "/")[1:] {
		if seg == "." || seg == ".." {
			return "decodes to a dot segment"
		}
	}
	return ""
}

// testGroups maps the resource segment to its group, for tests.
var testGroups = map[string]string{
	"invoice": "billing", "usage": "billing",
	"instance": "compute", "metal": "compute", "image": "compute",
	"network": "network", "volume": "storage", "sshkey": "ssh_keys",
	"region": "catalog", "price": "catalog", "tags": "tags", "search": "search",
}

// seenOnMain are requests that passed the checks of main though the API
// would read them naming another project (or not as the gateway did).
var seenOnMain = struct {
	contentTypes []string
	bodies       []string
	queries      []string
}{
	contentTypes: []string{
		"application /x-www-form-urlencoded",
		"application /x-www-form-urlencoded; charset=utf-16",
		"multipart /form-data; boundary=x",
		"application/json, text/plain",
	},
	bodies: []string{
		`/**/{"projectId":43}`,
		`{"projectId":42,"service":{"projectId":43}}`,
		`[{"op":"replace","path":"/projectId","value":43}]`,
	},
	queries: []string{"Tag=a;b&ProjectId=42", "Tag=a;ProjectId=43", "Project%u0049d=43"},
}

func FuzzCheckQueryProject(f *testing.F) {
	for _, tc := range queryCases {
		f.Add(tc.query)
	}
	for _, q := range seenOnMain.queries {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		code := CheckQueryProject(query, 42)
		if code != CheckQueryProject(query, 42) {
			t.Fatalf("CheckQueryProject(%q) is not stable", query)
		}
		if want := refQueryCheck(query, "42"); code != want {
			t.Fatalf("CheckQueryProject(%q) = %v, the reference reading %v", query, code, want)
		}
		if code == OK {
			// And by net/url, which also splits at "&" only (and skips,
			// with an error, pairs that hold a ";").
			values, err := url.ParseQuery(query)
			if err != nil && !strings.Contains(query, ";") {
				t.Fatalf("CheckQueryProject(%q) = ok, but url.ParseQuery: %v", query, err)
			}
			for key, vs := range values {
				for _, v := range vs {
					if refKeyNamesProject(key) && v != "42" {
						t.Fatalf("CheckQueryProject(%q) = ok, but %q = %q", query, key, v)
					}
				}
			}
		}
	})
}

// FuzzQueryDifferential generates queries (keys naming the project in
// many spellings, escapes, "+", ";", bad escapes, control bytes) and
// compares CheckQueryProject with the reference reading.
func FuzzQueryDifferential(f *testing.F) {
	for i := range 64 {
		f.Add([]byte{byte(i), byte(i * 7), byte(i * 13), 3, 1, 4, 1, 5, 9, 2, 6})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkQueryDifferential(t, genQuery(&choices{data: data}))
	})
}

// TestQueryDifferential is FuzzQueryDifferential on random choices, for
// every go test run.
func TestQueryDifferential(t *testing.T) {
	// In parallel, which runs it after the package's other tests: its
	// garbage collections would disturb those that time goroutines.
	t.Parallel()
	c := &choices{rng: rand.New(rand.NewPCG(1, 2))}
	seen := map[Code]int{}
	for range 30000 {
		seen[checkQueryDifferential(t, genQuery(c))]++
	}
	for _, code := range []Code{OK, CodeProjectMismatch, CodeInvalidQuery} {
		if seen[code] < 100 {
			t.Errorf("only %d generated queries were %v: %v", seen[code], code, seen)
		}
	}
}

func checkQueryDifferential(t *testing.T, q string) Code {
	t.Helper()
	got, want := CheckQueryProject(q, 42), refQueryCheck(q, "42")
	if got != want {
		t.Fatalf("CheckQueryProject(%q) = %v, the reference reading %v", q, got, want)
	}
	return got
}

func FuzzCheckMediaType(f *testing.F) {
	for _, tc := range mediaTypeCases {
		f.Add(tc.contentType)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got := CheckMediaType(ct)
		if got != OK && got != CodeUnsupportedMediaType {
			t.Fatalf("CheckMediaType(%q) = %v", ct, got)
		}
		if want := refMediaTypeOK(ct); (got == OK) != want {
			t.Fatalf("CheckMediaType(%q) = %v, the reference accepts: %v", ct, got, want)
		}
	})
}

// FuzzCheckBody checks raw bodies under any Content-Type: the media type
// decides as the reference reading does, and a JSON body passes only if
// encoding/json finds no other project in it.
func FuzzCheckBody(f *testing.F) {
	for _, tc := range bodyCases {
		if len(tc.body) < 1000 {
			f.Add(ctJSON, []byte(tc.body), tc.complete)
		}
	}
	for _, ct := range seenOnMain.contentTypes {
		f.Add(ct, []byte("projectId=43"), true)
	}
	for _, b := range seenOnMain.bodies {
		f.Add("application/json", []byte(b), true)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, complete bool) {
		code := CheckBody(true, contentType, "", body, complete, 42)
		if code != CheckBody(true, contentType, "", body, complete, 42) {
			t.Fatalf("CheckBody(%q, %q, %v) is not stable", contentType, body, complete)
		}
		if len(body) == 0 && complete {
			if code != OK {
				t.Fatalf("empty body: %v", code)
			}
			return
		}
		if code == OK && !complete {
			t.Fatalf("CheckBody(%q, %q) passed a cut body", contentType, body)
		}
		if !refMediaTypeOK(contentType) {
			if code != CodeUnsupportedMediaType {
				t.Fatalf("CheckBody(%q, %q) = %v, but the reference refuses the media type", contentType, body, code)
			}
			return
		}
		if want := CheckJSONProject(body, complete, 42); code != want {
			t.Fatalf("CheckBody(%q, %q) = %v, CheckJSONProject %v", contentType, body, code, want)
		}
		if complete {
			checkJSONAgainstReference(t, body, code, false)
		}
	})
}

// FuzzJSONDifferential generates JSON bodies (nesting, duplicate keys,
// \u escapes and Turkish i in keys, mixed case, numbers and numeric
// strings, JSON Patch pointers, byte order marks, white space, comments,
// trailing data) and compares CheckJSONProject with the reference reading
// of encoding/json.
func FuzzJSONDifferential(f *testing.F) {
	for i := range 64 {
		f.Add([]byte{byte(i), byte(i * 7), byte(i * 13), 0, 1, byte(i), 2, 3, 5, 8, 13, 21})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body := genJSONBody(&choices{data: data})
		checkJSONAgainstReference(t, body, CheckJSONProject(body, true, 42), true)
	})
}

// TestJSONDifferential is FuzzJSONDifferential on random choices, for
// every go test run.
func TestJSONDifferential(t *testing.T) {
	// In parallel, which runs it after the package's other tests: its
	// garbage collections would disturb those that time goroutines.
	t.Parallel()
	c := &choices{rng: rand.New(rand.NewPCG(3, 4))}
	seen := map[Code]int{}
	for range 20000 {
		body := genJSONBody(c)
		code := CheckJSONProject(body, true, 42)
		checkJSONAgainstReference(t, body, code, true)
		seen[code]++
	}
	for _, code := range []Code{OK, CodeProjectMismatch, CodeInvalidBody} {
		if seen[code] < 100 {
			t.Errorf("only %d generated bodies were %v: %v", seen[code], code, seen)
		}
	}
}

// loneSurrogate finds an escaped surrogate, which encoding/json takes (as
// U+FFFD) and the gateway refuses unless it is part of a pair.
var loneSurrogate = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// checkJSONAgainstReference checks the outcome code of a complete body:
// whenever it is OK, encoding/json reads the body and finds no other
// project in it, member by member or decoded (the last duplicate winning).
// If exact, the body comes from the generator, and code must be the
// reference outcome, except that malformed bodies may be refused as naming
// another project when that comes first.
func checkJSONAgainstReference(t *testing.T, body []byte, code Code, exact bool) {
	t.Helper()
	ref := refJSONCheck(body, "42")
	if code == OK {
		if ref != OK {
			t.Fatalf("CheckJSONProject(%q) = ok, but the reference reading is %v (%s)", body, ref, refJSONMismatch(body, "42"))
		}
		// A passing body cut anywhere does not pass.
		if len(body) > 1 {
			if cut := body[:len(body)/2]; CheckJSONProject(cut, false, 42) == OK {
				t.Fatalf("prefix %q of passing body %q passed", cut, body)
			}
		}
		return
	}
	if !exact {
		return
	}
	switch {
	case code == ref:
	case ref == CodeInvalidBody && code == CodeProjectMismatch:
	case code == CodeInvalidBody && loneSurrogate.Match(body):
	default:
		t.Fatalf("CheckJSONProject(%q) = %v, the reference reading %v (%s)", body, code, ref, refJSONMismatch(body, "42"))
	}
}
