package teraswitch

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestOperations(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) < 40 {
		t.Fatalf("got %d operations, want the spec's 47 or so", len(ops))
	}
	if !slices.IsSortedFunc(ops, func(a, b Operation) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	}) {
		t.Error("operations are not sorted by path, then method")
	}
	again, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(ops, again, func(a, b Operation) bool {
		return a.Method == b.Method && a.Path == b.Path && a.HasBody == b.HasBody && slices.Equal(a.Query, b.Query)
	}) {
		t.Error("Operations is not deterministic")
	}
	find := func(method, path string) Operation {
		t.Helper()
		for _, op := range ops {
			if op.Method == method && op.Path == path {
				return op
			}
		}
		t.Fatalf("no operation %s %s", method, path)
		return Operation{}
	}
	if op := find("GET", "/v2/Instance"); !slices.Contains(op.Query, "ProjectId") || op.HasBody {
		t.Errorf("GET /v2/Instance = %+v, want query ProjectId and no body", op)
	}
	if op := find("POST", "/v2/Instance"); !op.HasBody {
		t.Errorf("POST /v2/Instance = %+v, want a body", op)
	}
	if op := find("DELETE", "/v2/Volume"); !op.HasBody || !slices.Contains(op.Query, "projectId") {
		t.Errorf("DELETE /v2/Volume = %+v, want a body and query projectId", op)
	}
	for _, op := range ops {
		if op.Method != strings.ToUpper(op.Method) || !strings.HasPrefix(op.Path, "/v2/") {
			t.Errorf("odd operation %+v", op)
		}
	}
}

// concrete replaces each {param} of a spec path with a value.
func concrete(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "123"
		}
	}
	return strings.Join(segs, "/")
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

func TestStandinAnswersEveryOperation(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	h := NewStandin()
	for _, op := range ops {
		path := concrete(op.Path)
		for _, target := range []string{
			path,
			"/v1" + strings.TrimPrefix(path, "/v2"),
			strings.ToLower(path),
			path + "/",
			path + "?ProjectId=42",
		} {
			w := serve(h, op.Method, target)
			if w.Code != http.StatusOK {
				t.Errorf("%s %s: status %d", op.Method, target, w.Code)
				continue
			}
			if got, want := w.Header().Get(RouteHeader), op.Method+" "+op.Path; got != want {
				t.Errorf("%s %s: %s = %q, want %q", op.Method, target, RouteHeader, got, want)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s %s: Content-Type %q", op.Method, target, ct)
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Errorf("%s %s: body is not a JSON object: %v", op.Method, target, err)
				continue
			}
			if body["success"] != true || body["message"] != "" {
				t.Errorf("%s %s: envelope = success %v, message %v", op.Method, target, body["success"], body["message"])
			}
		}
	}
}

func TestStandinBodiesFollowSchema(t *testing.T) {
	h := NewStandin()
	var list struct {
		Metadata struct{ TotalCount int }
		Result   []struct {
			ID        int64
			ProjectID int64
			Key       string
		}
	}
	w := serve(h, "GET", "/v2/SshKey")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Result) != 1 || list.Result[0].ProjectID == 0 || list.Result[0].Key == "" || list.Metadata.TotalCount == 0 {
		t.Errorf("GET /v2/SshKey body %s", w.Body)
	}
	var one struct {
		Result struct {
			ID      int64
			Account struct{ AccountName string }
			Tags    []string
		}
	}
	w = serve(h, "GET", "/v2/Instance/7")
	if err := json.Unmarshal(w.Body.Bytes(), &one); err != nil {
		t.Fatal(err)
	}
	if one.Result.ID == 0 || one.Result.Account.AccountName == "" || len(one.Result.Tags) != 1 {
		t.Errorf("GET /v2/Instance/7 body %s", w.Body)
	}
}

func TestStandinRouting(t *testing.T) {
	h := NewStandin()
	for _, tc := range []struct {
		method, target string
		status         int
		route          string
	}{
		{"GET", "/v2/Metal/templates", 200, "GET /v2/Metal/templates"},
		{"GET", "/v2/METAL/TEMPLATES", 200, "GET /v2/Metal/templates"},
		{"GET", "/v2/Metal/42", 200, "GET /v2/Metal/{id}"},
		{"GET", "/v2/Metal/availability", 200, "GET /v2/Metal/Availability"},
		{"DELETE", "/v2/Instance/tiers", 200, "DELETE /v2/Instance/{id}"},
		{"HEAD", "/v2/Region", 200, "GET /v2/Region"},
		{"GET", "/V1/region", 200, "GET /v2/Region"},
		{"PATCH", "/v2/Region", 404, ""},
		{"GET", "/v3/Region", 404, ""},
		{"GET", "/Region", 404, ""},
		{"GET", "/v2/Nope", 404, ""},
		{"GET", "/v2/Metal/1/Logs/extra", 404, ""},
		{"GET", "/v2//Region", 404, ""},
		{"GET", "/", 404, ""},
	} {
		w := serve(h, tc.method, tc.target)
		if w.Code != tc.status || w.Header().Get(RouteHeader) != tc.route {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.target, w.Code, w.Header().Get(RouteHeader), tc.status, tc.route)
		}
		if tc.status == 404 && w.Body.String() != `{"success":false,"message":"not found"}` {
			t.Errorf("%s %s: 404 body %s", tc.method, tc.target, w.Body)
		}
	}
}

// discardWriter is a ResponseWriter that keeps nothing, reusing one header
// map, so that the stand-in's own allocations can be counted.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func TestStandinServesWithoutAllocating(t *testing.T) {
	h := NewStandin()
	w := &discardWriter{h: http.Header{}}
	r := httptest.NewRequest("GET", "/v2/Instance/123?ProjectId=42", nil)
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("ServeHTTP allocates %v times per request, want 0", n)
	}
}

func BenchmarkStandin(b *testing.B) {
	h := NewStandin()
	w := &discardWriter{h: http.Header{}}
	r := httptest.NewRequest("GET", "/v2/Instance/123?ProjectId=42", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
