package tokenapi

// Strict input on every endpoint, on both mounts: a query parameter the
// endpoint does not read, or given empty, and every problem of a body,
// are refused 400 invalid_request and listed in errors; nothing is done.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// rawCall sends method base+path with cred and body and returns the
// answer.
func rawCall(t *testing.T, c *http.Client, base, method, path, cred, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(data)}
	_ = json.Unmarshal(data, &a.err)
	return a
}

// mustList checks that a is 400 invalid_request listing a problem that
// holds want in errors.
func mustList(t *testing.T, what string, a answer, want string) {
	t.Helper()
	if a.status != http.StatusBadRequest || a.err.Code != "invalid_request" || !listed(a.err.Errors, want) || a.err.Message == "" {
		t.Errorf("%s: HTTP %d %s, want 400 invalid_request listing %q in errors\n%s", what, a.status, a.err.Code, want, a.body)
	}
}

func TestUnknownQueryParameterRefused(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{Name: "caller"})
	victim := f.mint(t, CreateRequest{Name: "victim"})
	const listReads = "this endpoint reads project_id, status, role, limit, cursor"
	const none = "unknown parameter: this endpoint reads no query parameters"
	type call struct{ method, path, body, want string }
	calls := []call{
		{"GET", "/v1/tokens?project_id=42&stauts=active", "", "stauts: unknown parameter; " + listReads},
		{"GET", "/v1/tokens?project_id=42&Status=active", "", "Status: unknown parameter: parameter names are lower case, such as status"},
		{"GET", "/v1/tokens?project_id=42&status=", "", "status: empty; give a value, or leave the parameter out"},
		{"GET", "/v1/tokens?project_id=42&role", "", "role: empty"},
		{"GET", "/v1/tokens?project_id=42&cursor=", "", "cursor: empty"},
		{"GET", "/v1/tokens?project_id=42&page=2", "", "page: unknown parameter"},
		{"GET", "/v1/tokens/" + victim.ID + "?limit=5", "", "limit: " + none},
		{"DELETE", "/v1/tokens/" + victim.ID + "?grace=1h", "", "grace: " + none},
		{"PATCH", "/v1/tokens/" + victim.ID + "?status=inactive", `{"expires_in":"1h"}`, "status: " + none},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate?grace=1h", "", "grace: " + none},
		{"POST", "/v1/tokens?project_id=42", `{"project_id":42,"role":"owner","name":"x"}`, "project_id: " + none},
		{"GET", "/v1/audit?project_id=42&lmit=5", "", "lmit: unknown parameter; this endpoint reads project_id, limit, cursor"},
		{"GET", "/v1/audit?project_id=42&status=active", "", "status: unknown parameter"},
		{"GET", "/v1/policy?project_id=42&project=42", "", "project: unknown parameter; this endpoint reads project_id"},
		{"GET", "/v1/projects/42/policy?project_id=42", "", "project_id: " + none},
		{"PUT", "/v1/projects/42/policy?dry_run=1", `{"require_expiry":true}`, "dry_run: " + none},
		{"DELETE", "/v1/projects/42/policy?x=1", "", "x: " + none},
		{"GET", "/v1/projects/42/policy/violations?x=1", "", "x: " + none},
		// A long or odd name is quoted and shortened.
		{"GET", "/v1/tokens/" + victim.ID + "?" + strings.Repeat("a", 100) + "=1", "", `"` + strings.Repeat("a", 64) + `…": unknown parameter`},
	}
	for _, c := range calls {
		a := rawCall(t, f.public.Client(), f.admin.BaseURL, c.method, c.path, testAdminKey, c.body)
		mustList(t, "admin key: "+c.method+" "+c.path, a, c.want)
	}
	for _, c := range calls {
		if strings.Contains(c.path, "/projects/") {
			continue // admin keys only: the refusal comes first
		}
		path := strings.ReplaceAll(c.path, "project_id=42&", "")
		a := f.call(t, c.method, path, caller.Token, c.body)
		want := c.want
		if strings.HasPrefix(want, "project_id: ") && !strings.Contains(path, "project_id") {
			continue
		}
		mustList(t, "token: "+c.method+" "+path, a, want)
	}
	// Nothing was done.
	if got := f.stored(t, victim.ID); got.Revoked() || got.Rotated() || !got.ExpiresAt.IsZero() {
		t.Errorf("a refused request changed the victim: %+v", got)
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 2 {
		t.Errorf("%d live tokens, want 2: a refused create made one", len(l))
	}
	if pol, _ := f.store.ProjectPolicy(context.Background(), 42); !pol.IsZero() {
		t.Errorf("a refused PUT set the policy: %+v", pol)
	}
	// The parameters the endpoints read are taken.
	for _, path := range []string{
		"/v1/tokens?project_id=42&status=active&role=owner&limit=5",
		"/v1/audit?project_id=42&limit=5",
		"/v1/policy?project_id=42",
	} {
		if a := rawCall(t, f.public.Client(), f.admin.BaseURL, "GET", path, testAdminKey, ""); a.status != http.StatusOK {
			t.Errorf("GET %s: HTTP %d\n%s", path, a.status, a.body)
		}
		if a := f.call(t, "GET", path, caller.Token, ""); a.status != http.StatusOK {
			t.Errorf("token: GET %s: HTTP %d\n%s", path, a.status, a.body)
		}
	}
	// Off the API's endpoints, a query does not hide the 404.
	mustRefuse(t, f.call(t, "GET", "/v1/nothing?x=1", caller.Token, ""), http.StatusNotFound, "not_found")
}

// GET /v1/policy reads project_id as list and audit do: a token naming
// another project is refused, an admin key must name a valid one.
func TestOwnPolicyProjectParameter(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{Name: "caller"})
	mustRefuse(t, f.call(t, "GET", "/v1/policy?project_id=43", caller.Token, ""), http.StatusForbidden, "project_forbidden")
	if a := f.call(t, "GET", "/v1/policy?project_id=42", caller.Token, ""); a.status != http.StatusOK {
		t.Errorf("own project named: HTTP %d\n%s", a.status, a.body)
	}
	admin := func(path string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, "GET", path, testAdminKey, "")
	}
	mustList(t, "no project", admin("/v1/policy"), "project_id: required with an admin key")
	mustList(t, "project abc", admin("/v1/policy?project_id=abc"), `project_id: "abc" is not a positive integer`)
	mustList(t, "project -1", admin("/v1/policy?project_id=-1"), `project_id: "-1" is not a positive integer`)
	mustList(t, "project 0", admin("/v1/policy?project_id=0"), `project_id: "0" is not a positive integer`)
}

func TestBodyProblemsListed(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	victim := f.mint(t, CreateRequest{Name: "victim"})
	admin := func(method, path, body string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, method, path, testAdminKey, body)
	}
	// Every problem of a body is listed, each naming its field.
	a := admin("POST", "/v1/tokens", `{"project_id":"42","role":"owner","name":"x","nmae":"y","Scopes":[],"role":"owner"}`)
	for _, want := range []string{
		"project_id: a whole number is expected, not a string",
		"nmae: unknown field; the fields are allowed_ips, burst, expires_at, expires_in, name, project_id, rate_limit, role, scopes",
		`Scopes: unknown field: field names are lower case, such as "scopes"`,
		"role: given twice in one object; give each field once",
	} {
		mustList(t, "POST with four problems", a, want)
	}
	if len(a.err.Errors) != 4 {
		t.Errorf("errors %q, want the four problems", a.err.Errors)
	}
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/tokens", ``, "body: empty; send a JSON object"},
		{"POST", "/v1/tokens", `[]`, "body: a JSON object is expected, not an array"},
		{"POST", "/v1/tokens", `"x"`, "body: a JSON object is expected, not a string"},
		{"POST", "/v1/tokens", `{"name":`, "body: not JSON: it ends before its value does"},
		{"POST", "/v1/tokens", `{"name" "x"}`, "body: not JSON: invalid character"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","expires_at":"tomorrow"}`, `expires_at: "tomorrow" is not an RFC 3339 time`},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","expires_at":null}`, "expires_at: null is not a value"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x"` + strings.Repeat(" ", maxRequestBody) + `}`, "body: larger than 64 KiB"},
		// null is no value: {"scopes":null} would leave the scopes
		// as they are, not remove them ([] does).
		{"PATCH", "/v1/tokens/" + victim.ID, `{"status":"inactive","scopes":null}`, "scopes: null is not a value"},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"status":null}`, "status: null is not a value"},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"status":"inactive","rate_limit":"5"}`, "rate_limit: a number is expected, not a string"},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate", `{"grace":null}`, "grace: null is not a value"},
		// No field takes a control character: a name holding an escape
		// sequence would act on the terminal of whoever lists the
		// project's tokens with the CLI.
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x\u001b[2J\u001b]0;pwned\u0007"}`, "name: holds the control character U+001B; give printable text"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"two\nlines"}`, "name: holds the control character U+000A"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"csi\u009b2J"}`, "name: holds the control character U+009B"},
		// A bidirectional override makes "ci-\u202egnp.yolped" display
		// as "ci-deploy.png".
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"ci-\u202egnp.yolped"}`, "name: holds the control character U+202E"},
		{"POST", "/v1/tokens", "{\"project_id\":42,\"role\":\"owner\",\"name\":\"x\u2067y\"}", "name: holds the control character U+2067"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"tab\there"}`, "name: holds the control character U+0009"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","scopes":["compute.read\u0000"]}`, "scopes: holds the control character U+0000"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","na\u001bme":"x"}`, `"na\x1bme": a key holds the control character U+001B`},
		// Half a surrogate pair would be replaced silently too.
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"a\ud800"}`, "body: a \\u escape at byte 41 is half of a UTF-16 surrogate pair"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"\ude00\ud83d"}`, "half of a UTF-16 surrogate pair"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"\ud83d\u0041"}`, "half of a UTF-16 surrogate pair"},
		// Bytes that are not UTF-8 would be replaced silently.
		{"POST", "/v1/tokens", "{\"project_id\":42,\"role\":\"owner\",\"name\":\"\xff\"}", "body: not UTF-8 text (at byte 40)"},
		// An empty string where leaving the field out means none (an
		// unset variable, most likely) is no value either: no expiry,
		// no grace period (revoked at once), no lifetime bound.
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","expires_in":""}`, "expires_in: empty; give a value, or leave the field out"},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate", `{"grace":""}`, "grace: empty"},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate", `{"grace":"1h","expires_in":""}`, "expires_in: empty"},
		{"PUT", "/v1/projects/42/policy", `{"max_lifetime":""}`, "max_lifetime: empty"},
		{"POST", "/v1/tokens/" + victim.ID + "/rotate", `{"grace":1}`, "grace: a string is expected, not a number"},
		{"PUT", "/v1/projects/42/policy", `{"require_expiry":"yes"}`, "require_expiry: true or false is expected, not a string"},
		{"GET", "/v1/tokens/" + victim.ID, `{"project_id":42}`, "project_id: unknown field: this endpoint takes no body (send none, or {})"},
		{"GET", "/v1/tokens/" + victim.ID, `[]`, "body: a JSON object is expected, not an array"},
		{"DELETE", "/v1/tokens/" + victim.ID, `{}x`, "body: data after the JSON object"},
		{"GET", "/v1/tokens/nope", "", "id: not a token id"},
		{"GET", "/v1/projects/x/policy", "", "project: the path's project is not a positive integer"},
	} {
		mustList(t, c.method+" "+c.path+" "+c.body[:min(len(c.body), 80)], admin(c.method, c.path, c.body), c.want)
	}
	if got := f.stored(t, victim.ID); got.Status.String() != "active" || got.Revoked() || got.Rotated() || got.RateLimit != 0 {
		t.Errorf("a refused request changed the victim: %+v", got)
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 1 {
		t.Errorf("%d live tokens, want 1: a refused create made one", len(l))
	}
	// Whole characters, escaped or not, and escaped backslashes are fine.
	for _, name := range []string{`\ud83d\ude00 deploy`, `😀 deploy`, `back\\ud800slash`, `quote\" \\`, `פריסה`, `نشر`, `👨‍👩‍👧 family`} {
		if a := admin("POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"`+name+`"}`); a.status != http.StatusCreated {
			t.Errorf("name %s: HTTP %d\n%s", name, a.status, a.body)
		}
	}
}

// A method a path does not serve is answered 405 method_not_allowed
// naming the ones it does (Allow), not 404 as if the path did not exist;
// the caller is authenticated first, as for any path.
func TestMethodNotAllowed(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{Name: "caller"})
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/v1/tokens", "GET, HEAD, POST"},
		{"DELETE", "/v1/tokens", "GET, HEAD, POST"},
		{"POST", "/v1/tokens/" + caller.ID, "GET, HEAD, PATCH, DELETE"},
		{"PUT", "/v1/tokens/" + caller.ID, "GET, HEAD, PATCH, DELETE"},
		{"GET", "/v1/tokens/" + caller.ID + "/rotate", "POST"},
		{"POST", "/v1/audit", "GET, HEAD"},
		{"DELETE", "/v1/policy", "GET, HEAD"},
		{"POST", "/v1/projects/42/policy", "GET, HEAD, PUT, DELETE"},
		{"DELETE", "/v1/projects/42/policy/violations", "GET, HEAD"},
	} {
		a := rawCall(t, f.public.Client(), f.admin.BaseURL, c.method, c.path, testAdminKey, "")
		if a.status != http.StatusMethodNotAllowed || a.err.Code != "method_not_allowed" || a.header.Get("Allow") != c.allow ||
			!strings.Contains(a.err.Message, c.allow) {
			t.Errorf("%s %s: HTTP %d %s Allow %q, want 405 method_not_allowed with Allow %q\n%s", c.method, c.path, a.status, a.err.Code, a.header.Get("Allow"), c.allow, a.body)
		}
		if a := f.call(t, c.method, c.path, caller.Token, ""); a.status != http.StatusMethodNotAllowed {
			t.Errorf("token: %s %s: HTTP %d, want 405", c.method, c.path, a.status)
		}
		if a := f.call(t, c.method, c.path, "tsw_nope", ""); a.status != http.StatusUnauthorized {
			t.Errorf("no valid credential: %s %s: HTTP %d, want 401", c.method, c.path, a.status)
		}
	}
	if got := f.stored(t, caller.ID); got.Revoked() {
		t.Error("revoked")
	}
}

// TestBidiMarksAllowed: the bidirectional marks, which only give a
// neutral character a direction and come with Hebrew or Arabic text
// pasted from elsewhere, are allowed in a name, where the embeddings,
// overrides and isolates that reorder text are not.
func TestBidiMarksAllowed(t *testing.T) {
	f := newFixture(t, nil)
	for _, name := range []string{"שרת\u200f 1", "srv\u200e-2", "خادم\u061c 3"} {
		if tok := f.create(t, CreateRequest{ProjectID: 42, Role: "owner", Name: name}); tok.Name != name {
			t.Errorf("created %q, want %q", tok.Name, name)
		}
	}
}
