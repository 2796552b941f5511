package tokenapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
)

// fakeTokens authenticates "Bearer <name>" as the record stored under
// name, with the code stored with it.
type fakeTokens map[string]struct {
	rec  *auth.Token
	code auth.Code
}

func (f fakeTokens) Authenticate(_ context.Context, header string, _ time.Time) (*auth.Token, auth.Code, error) {
	e, ok := f[strings.TrimPrefix(header, "Bearer ")]
	if !ok {
		return nil, auth.CodeMalformedToken, nil
	}
	if e.code == auth.CodeStoreUnavailable {
		return nil, e.code, errors.New("store down")
	}
	return e.rec, e.code, nil
}

// scopeFixture is an API over a fresh embedded store that admits the
// admin key (unless public) and the tokens of toks.
func scopeFixture(t *testing.T, public bool) (*filestore.Store, *httptest.Server, fakeTokens) {
	t.Helper()
	st, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	toks := fakeTokens{}
	for name, role := range map[string]auth.Role{"tsw_owner": auth.RoleOwner, "tsw_books": auth.RoleAccounting} {
		rec, _ := storetest.NewToken(t, 42, role)
		if err := st.Create(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		toks[name] = struct {
			rec  *auth.Token
			code auth.Code
		}{rec, auth.OK}
	}
	toks["tsw_wrong"] = struct {
		rec  *auth.Token
		code auth.Code
	}{toks["tsw_owner"].rec, auth.CodeInvalidToken}
	toks["tsw_down"] = struct {
		rec  *auth.Token
		code auth.Code
	}{nil, auth.CodeStoreUnavailable}
	opts := Options{Store: st, Hasher: storetest.NewHasher(t), Tokens: toks}
	if public {
		opts.Prefix = "/tswgate"
	} else {
		opts.AdminKeys = []string{testAdminKey}
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return st, srv, toks
}

func call(t *testing.T, srv *httptest.Server, method, path, cred, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Tsw-Error-Code")
}

func TestTokenScope(t *testing.T) {
	for _, public := range []bool{false, true} {
		t.Run(fmt.Sprintf("public=%v", public), func(t *testing.T) {
			st, srv, toks := scopeFixture(t, public)
			prefix := ""
			if public {
				prefix = "/tswgate"
			}
			owner := toks["tsw_owner"].rec
			for _, tc := range []struct {
				method, path, cred, body string
				status                   int
				code                     string
			}{
				{"GET", "/v1/tokens", "tsw_owner", "", 200, ""},
				{"GET", "/v1/tokens?project_id=42&status=inactive", "tsw_owner", "", 200, ""},
				{"GET", "/v1/tokens?project_id=43", "tsw_owner", "", 403, "project_forbidden"},
				{"GET", "/v1/audit", "tsw_owner", "", 200, ""},
				{"GET", "/v1/audit?project_id=43", "tsw_owner", "", 403, "project_forbidden"},
				{"GET", "/v1/audit?project_id=0", "tsw_owner", "", 400, "invalid_request"},
				{"POST", "/v1/tokens", "tsw_owner", `{"role":"owner","name":"x","project_id":7}`, 403, "project_forbidden"},
				{"POST", "/v1/tokens", "tsw_owner", `{"role":"owner","name":"mine"}`, 201, ""},
				// Limits are the operator's: an Owner token may not raise them.
				{"POST", "/v1/tokens", "tsw_owner", `{"role":"owner","name":"fast","rate_limit":1000}`, 403, "limit_forbidden"},
				{"PATCH", "/v1/tokens/" + owner.ID, "tsw_owner", `{"rate_limit":1000}`, 403, "limit_forbidden"},
				{"PATCH", "/v1/tokens/" + owner.ID, "tsw_owner", `{"rate_shadow":true}`, 403, "limit_forbidden"},
				{"GET", "/v1/tokens/" + owner.ID, "tsw_books", "", 403, "role_forbidden"},
				{"GET", "/v1/tokens", "tsw_wrong", "", 401, "invalid_token"},
				{"GET", "/v1/tokens", "tsw_wrong", "", 401, "invalid_token"},
				{"GET", "/v1/tokens", "tsw_down", "", 503, "store_unavailable"},
			} {
				status, code := call(t, srv, tc.method, prefix+tc.path, tc.cred, tc.body)
				if status != tc.status || code != tc.code {
					t.Errorf("%s %s as %s: HTTP %d %q, want %d %q", tc.method, tc.path, tc.cred, status, code, tc.status, tc.code)
				}
			}
			status, code := call(t, srv, "GET", prefix+"/v1/tokens?project_id=42", testAdminKey, "")
			if public && (status != 401 || code != "malformed_token") || !public && status != 200 {
				t.Errorf("admin key (public %v): HTTP %d %q", public, status, code)
			}
			page, err := st.ReadAudit(context.Background(), auth.AuditQuery{ProjectID: 42, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			reasons := map[string]int{}
			for _, ev := range page.Events {
				reasons[ev.Action+" "+ev.Outcome+" "+ev.Reason]++
			}
			for want, n := range map[string]int{
				"token.list refused project_forbidden":   1,
				"audit.read refused project_forbidden":   1,
				"token.create refused project_forbidden": 1,
				"token.create ok ":                       1,
				"token.create refused limit_forbidden":   1,
				"token.update refused limit_forbidden":   1, // sampled: twice refused within the minute, once recorded
				"token.show refused role_forbidden":      1,
				"token.list refused invalid_token":       1, // sampled: twice refused, once recorded
			} {
				if reasons[want] != n {
					t.Errorf("%d audit events %q, want %d (all: %v)", reasons[want], want, n, reasons)
				}
			}
		})
	}
}
