package auth

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.method, tc.path)
	}
	for _, r := range specRoutes {
		f.Add(r.Method, strings.ReplaceAll(strings.ReplaceAll(r.Pattern, "{", ""), "}", ""))
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
			if !strings.HasPrefix(want[i], "{") && !strings.EqualFold(segs[i], want[i]) {
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

func FuzzCheckQueryProject(f *testing.F) {
	for _, tc := range queryCases {
		f.Add(tc.query)
	}
	f.Fuzz(func(t *testing.T, query string) {
		code := CheckQueryProject(query, 42)
		if code != CheckQueryProject(query, 42) {
			t.Fatalf("CheckQueryProject(%q) is not stable", query)
		}
		if code != OK && code != CodeProjectMismatch {
			t.Fatalf("CheckQueryProject(%q) = %v", query, code)
		}
		// A form body is checked like a query, unless it looks like JSON.
		if trimmed := strings.TrimLeft(query, " \t\r\n"); !strings.HasPrefix(trimmed, "{") && !strings.HasPrefix(query, "\xef\xbb\xbf") {
			if got := CheckBodyProject("application/x-www-form-urlencoded", []byte(query), true, 42); got != code {
				t.Fatalf("form body %q: %v, query: %v", query, got, code)
			}
		}
		if code != OK {
			return
		}
		values, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for key, vs := range values {
			if !keyPartIsProjectID(key) {
				continue
			}
			for _, v := range vs {
				if v != "42" {
					t.Fatalf("CheckQueryProject(%q) = ok, but %q = %q", query, key, v)
				}
			}
		}
	})
}

// keyPartIsProjectID reports whether key, or a part of it between ".", "["
// and "]" and trimmed of ASCII white space, is "projectid" by
// strings.EqualFold.
func keyPartIsProjectID(key string) bool {
	if strings.EqualFold(key, "projectid") {
		return true
	}
	for _, part := range strings.FieldsFunc(key, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		if strings.EqualFold(strings.Trim(part, " \t\n\r\v\f"), "projectid") {
			return true
		}
	}
	return false
}

func FuzzCheckBodyProject(f *testing.F) {
	for _, tc := range bodyCases {
		if len(tc.body) < 1000 {
			f.Add(tc.contentType, []byte(tc.body), tc.complete)
		}
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, complete bool) {
		code := CheckBodyProject(contentType, body, complete, 42)
		if code != CheckBodyProject(contentType, body, complete, 42) {
			t.Fatalf("CheckBodyProject(%q, %q, %v) is not stable", contentType, body, complete)
		}
		mt := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
		if strings.HasPrefix(mt, "multipart/") {
			if code != CodeInvalidBody {
				t.Fatalf("multipart body: %v", code)
			}
			return
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		jsonType := mt == "application/json" || mt == "text/json" || len(mt) > 5 && strings.HasSuffix(mt, "+json")
		scanned := jsonType || bytes.HasPrefix(trimmed, []byte("{"))
		if !complete {
			if code == OK && scanned && len(trimmed) > 0 {
				t.Fatalf("cut JSON body %q passed", body)
			}
			return
		}
		// JSON validity agrees with encoding/json, which does not take a
		// byte order mark and allows deeper nesting.
		shallow := bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) <= maxJSONDepth
		if jsonType && shallow && len(trimmed) > 0 && !bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
			valid := json.Valid(body)
			if valid && code == CodeInvalidBody || !valid && code == OK {
				t.Fatalf("CheckBodyProject(%q, %q) = %v, but json.Valid = %v", contentType, body, code, valid)
			}
		}
		if code != OK {
			return
		}
		// Whatever passes names only the token's project.
		var fields map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&fields); err == nil {
			for k, v := range fields {
				if strings.EqualFold(k, "projectid") && v != json.Number("42") && v != "42" {
					t.Fatalf("CheckBodyProject(%q, %q) = ok, but %q = %#v", contentType, body, k, v)
				}
			}
		}
		// A valid body cut anywhere does not pass.
		if scanned && len(body) > 1 {
			cut := body[:len(body)/2]
			if got := CheckBodyProject(contentType, cut, false, 42); got == OK {
				t.Fatalf("prefix %q of passing body %q passed", cut, body)
			}
		}
	})
}
