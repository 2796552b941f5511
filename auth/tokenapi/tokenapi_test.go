package tokenapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/filestore"
	"github.com/tswgate/tswgate/auth/storetest"
)

const testAdminKey = "tokenapi-test-admin-key-0123456789abcdef"

// fixture is the API over a fresh embedded store, with its audit log and
// the ids it invalidated.
type fixture struct {
	store  auth.ActivityStore
	srv    *httptest.Server
	client *Client
	log    *bytes.Buffer

	mu          sync.Mutex
	invalidated []string
}

func newFixture(t *testing.T, wrap func(auth.ActivityStore) auth.ActivityStore) *fixture {
	t.Helper()
	fs, err := filestore.Open(filestore.Options{Path: filepath.Join(t.TempDir(), "tokens.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return newFixtureOn(t, fs, wrap)
}

// newFixtureOn is newFixture over st, a fresh store.
func newFixtureOn(t *testing.T, st auth.ActivityStore, wrap func(auth.ActivityStore) auth.ActivityStore) *fixture {
	t.Helper()
	f := &fixture{store: st, log: new(bytes.Buffer)}
	if wrap != nil {
		f.store = wrap(st)
	}
	h, err := New(Options{
		Store:     f.store,
		Hasher:    storetest.NewHasher(t),
		AdminKeys: []string{testAdminKey},
		Invalidate: func(id string) {
			f.mu.Lock()
			f.invalidated = append(f.invalidated, id)
			f.mu.Unlock()
		},
		Logger: slog.New(slog.NewJSONHandler(f.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.client = &Client{BaseURL: f.srv.URL, AdminKey: testAdminKey, HTTP: f.srv.Client()}
	return f
}

func (f *fixture) create(t *testing.T, req CreateRequest) Token {
	t.Helper()
	if req.ProjectID == 0 {
		req.ProjectID = 42
	}
	if req.Role == "" {
		req.Role = "owner"
	}
	if req.Name == "" {
		req.Name = "ci-deploy"
	}
	tok, err := f.client.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return tok
}

// takeInvalidated returns the ids invalidated since the last call.
func (f *fixture) takeInvalidated() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.invalidated
	f.invalidated = nil
	return ids
}

// raw sends body (a string, or nil) and decodes the answer.
func (f *fixture) raw(t *testing.T, method, path string, body any) (int, ErrorResponse, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e ErrorResponse
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e, data
}

func apiError(t *testing.T, err error, status int, code string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
		t.Fatalf("error %v, want HTTP %d %s", err, status, code)
	}
	return ae
}

func ptr[T any](v T) *T { return &v }

func TestUpdate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	tok := f.create(t, CreateRequest{})
	f.takeInvalidated()

	got, err := f.client.Update(ctx, tok.ID, UpdateRequest{Status: ptr("inactive")})
	if err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if got.Status != "inactive" || got.ID != tok.ID || got.Token != "" {
		t.Errorf("deactivated token = %+v", got)
	}
	if ids := f.takeInvalidated(); !slices.Equal(ids, []string{tok.ID}) {
		t.Errorf("invalidated %v, want [%s]", ids, tok.ID)
	}
	if !strings.Contains(f.log.String(), `"msg":"token.update"`) || !strings.Contains(f.log.String(), `"status":"inactive"`) {
		t.Errorf("no token.update audit line:\n%s", f.log)
	}
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{Status: ptr("Active")}); err != nil || got.Status != "active" {
		t.Fatalf("activate: %+v, %v", got, err)
	}

	// The rate-limit override: set, change the burst alone, clear.
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{RateLimit: ptr(5.0), Burst: ptr(10)}); err != nil ||
		got.RateLimit != 5 || got.Burst != 10 {
		t.Fatalf("set the rate limit: %+v, %v", got, err)
	}
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{Burst: ptr(3)}); err != nil || got.RateLimit != 5 || got.Burst != 3 {
		t.Fatalf("set the burst: %+v, %v", got, err)
	}
	_, _, body := f.raw(t, "GET", "/v1/tokens/"+tok.ID, nil)
	if !strings.Contains(string(body), `"rate_limit": 5`) || !strings.Contains(string(body), `"burst": 3`) {
		t.Errorf("show of a limited token:\n%s", body)
	}
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{RateLimit: ptr(0.0)}); err != nil || got.RateLimit != 0 || got.Burst != 0 {
		t.Fatalf("clear the rate limit: %+v, %v", got, err)
	}
	_, _, body = f.raw(t, "GET", "/v1/tokens/"+tok.ID, nil)
	if strings.Contains(string(body), "rate_limit") || strings.Contains(string(body), "burst") {
		t.Errorf("show of a token without a limit of its own:\n%s", body)
	}
	// A burst needs a rate limit, given or already set.
	_, err = f.client.Update(ctx, tok.ID, UpdateRequest{Burst: ptr(3)})
	if ae := apiError(t, err, 400, "invalid_request"); len(ae.Errors) != 1 || !strings.Contains(ae.Errors[0], "burst") {
		t.Errorf("burst without a rate limit: %v", ae)
	}

	// Expiry.
	before := time.Now()
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{ExpiresIn: ptr("1h")}); err != nil || got.ExpiresAt == nil ||
		got.ExpiresAt.Before(before.Add(time.Hour-time.Second)) || got.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("expires_in 1h: %+v, %v", got, err)
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	if got, err = f.client.Update(ctx, tok.ID, UpdateRequest{ExpiresAt: &at}); err != nil || got.ExpiresAt == nil || !got.ExpiresAt.Equal(at) {
		t.Fatalf("expires_at: %+v, %v", got, err)
	}
}

func TestUpdateInvalid(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{})
	path := "/v1/tokens/" + tok.ID

	// Every problem is listed at once.
	status, e, body := f.raw(t, "PATCH", path, `{"status":"paused","rate_limit":-1,"burst":-2,"expires_in":"soon"}`)
	if status != 400 || e.Code != "invalid_request" || len(e.Errors) != 4 {
		t.Fatalf("invalid update: HTTP %d\n%s", status, body)
	}
	for i, field := range []string{"status", "rate_limit", "burst", "expires_in"} {
		if !strings.HasPrefix(e.Errors[i], field+":") {
			t.Errorf("problem %d = %q, want one about %s", i, e.Errors[i], field)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{`{}`, "nothing to change"},
		{``, "not a valid request"},
		{`{"name":"x"}`, "unknown field"},
		{`{"status":"active"} {}`, "after the JSON object"},
		{`{"rate_limit":0,"burst":5}`, "burst: needs a rate_limit"},
		{`{"expires_at":"2001-01-01T00:00:00Z"}`, "must be in the future"},
		{`{"expires_at":"2101-01-01T00:00:00Z","expires_in":"1h"}`, "give one, not both"},
	} {
		status, e, body := f.raw(t, "PATCH", path, tc.body)
		if status != 400 || e.Code != "invalid_request" || !strings.Contains(string(body), tc.want) {
			t.Errorf("PATCH %s: HTTP %d, want 400 saying %q\n%s", tc.body, status, tc.want, body)
		}
	}
	stored, err := f.store.Get(context.Background(), tok.ID)
	if err != nil || stored.Status != auth.StatusActive || stored.RateLimit != 0 || !stored.ExpiresAt.IsZero() {
		t.Errorf("the refused updates changed the token: %+v, %v", stored, err)
	}

	if status, e, _ := f.raw(t, "PATCH", "/v1/tokens/tsw_"+strings.Repeat("A", 20), `{"status":"inactive"}`); status != 404 || e.Code != "token_not_found" {
		t.Errorf("PATCH of an unknown token: HTTP %d %s", status, e.Code)
	}
	if status, e, _ := f.raw(t, "PATCH", "/v1/tokens/nonsense", `{"status":"inactive"}`); status != 400 || e.Code != "invalid_request" {
		t.Errorf("PATCH of a malformed id: HTTP %d %s", status, e.Code)
	}
	if _, err := f.client.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Update(context.Background(), tok.ID, UpdateRequest{Status: ptr("active")})
	apiError(t, err, 409, "token_revoked")
}

func TestRotate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	hasher := storetest.NewHasher(t)

	for _, tc := range []struct {
		name  string
		grace string
	}{{"grace 0s", "0s"}, {"grace absent", ""}, {"grace 1h", "1h"}} {
		t.Run(tc.name, func(t *testing.T) {
			old := f.create(t, CreateRequest{Role: "accounting", Name: "books", ExpiresIn: "720h"})
			if _, err := f.client.Update(ctx, old.ID, UpdateRequest{RateLimit: ptr(2.5), Burst: ptr(4)}); err != nil {
				t.Fatal(err)
			}
			f.takeInvalidated()
			f.log.Reset()
			start := time.Now()
			resp, err := f.client.Rotate(ctx, old.ID, RotateRequest{Grace: tc.grace})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			next, prev := resp.Token, resp.Previous
			if !resp.Success || next.ID == old.ID || !auth.ValidCredential(next.Token) || !strings.HasPrefix(next.Token, next.ID+":") {
				t.Fatalf("rotation response: %+v", resp)
			}
			if next.ProjectID != 42 || next.Role != "accounting" || next.Name != "books" || next.Status != "active" ||
				next.RateLimit != 2.5 || next.Burst != 4 {
				t.Errorf("new token = %+v, want the old one's project, role, name and rate limit", next)
			}
			// The same lifetime (720h), from now.
			if next.ExpiresAt == nil || next.ExpiresAt.Before(start.Add(720*time.Hour-time.Second)) || next.ExpiresAt.After(time.Now().Add(720*time.Hour)) {
				t.Errorf("new token expires at %v, want 720h from now", next.ExpiresAt)
			}
			stored, err := f.store.Get(ctx, next.ID)
			if err != nil || !hasher.Verify(next.Token, &stored.SecretHash, stored.PepperID) {
				t.Fatalf("the new credential does not verify against the stored record: %v", err)
			}
			if prev.ID != old.ID {
				t.Fatalf("previous = %+v, want %s", prev, old.ID)
			}
			if tc.grace == "1h" {
				if prev.Status != "active" || prev.ExpiresAt == nil ||
					prev.ExpiresAt.Before(start.Add(time.Hour-time.Second)) || prev.ExpiresAt.After(time.Now().Add(time.Hour)) {
					t.Errorf("previous after a 1h grace = %+v, want active, expiring in 1h", prev)
				}
				if !strings.Contains(resp.Message, "works until "+prev.ExpiresAt.Format(time.RFC3339)) {
					t.Errorf("message %q does not say until when the old token works", resp.Message)
				}
			} else if prev.Status != "revoked" || prev.RevokedAt == nil || !strings.Contains(resp.Message, "revoked") {
				t.Errorf("previous after no grace = %+v (%q), want revoked", prev, resp.Message)
			}
			if ids := f.takeInvalidated(); !slices.Contains(ids, old.ID) || !slices.Contains(ids, next.ID) {
				t.Errorf("invalidated %v, want both %s and %s", ids, old.ID, next.ID)
			}
			logs := f.log.String()
			if !strings.Contains(logs, `"msg":"token.rotate"`) || !strings.Contains(logs, `"new_token_id":"`+next.ID+`"`) {
				t.Errorf("no token.rotate audit line:\n%s", logs)
			}
			if strings.Contains(logs, next.Token[auth.IDLen+1:]) {
				t.Errorf("the audit log holds the new secret:\n%s", logs)
			}
		})
	}

	t.Run("grace never extends", func(t *testing.T) {
		old := f.create(t, CreateRequest{ExpiresIn: "10m"})
		resp, err := f.client.Rotate(ctx, old.ID, RotateRequest{Grace: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Previous.ExpiresAt == nil || !resp.Previous.ExpiresAt.Equal(*old.ExpiresAt) {
			t.Errorf("old token expiring in 10m rotated with 1h grace now expires at %v, want unchanged %v",
				resp.Previous.ExpiresAt, old.ExpiresAt)
		}
	})
	t.Run("never expiring", func(t *testing.T) {
		old := f.create(t, CreateRequest{})
		resp, err := f.client.Rotate(ctx, old.ID, RotateRequest{Grace: "1m"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Token.ExpiresAt != nil || resp.Previous.ExpiresAt == nil {
			t.Errorf("rotation of a never-expiring token: new expires %v, old expires %v", resp.Token.ExpiresAt, resp.Previous.ExpiresAt)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		old := f.create(t, CreateRequest{})
		for _, body := range []string{`{"grace":"-1s"}`, `{"grace":"soon"}`, `{"grace":60}`, `{"extra":1}`} {
			if status, e, data := f.raw(t, "POST", "/v1/tokens/"+old.ID+"/rotate", body); status != 400 || e.Code != "invalid_request" {
				t.Errorf("rotate with %s: HTTP %d\n%s", body, status, data)
			}
		}
		// An empty body is no grace.
		if status, _, data := f.raw(t, "POST", "/v1/tokens/"+old.ID+"/rotate", nil); status != 200 || !strings.Contains(string(data), `"revoked"`) {
			t.Errorf("rotate with no body: HTTP %d\n%s", status, data)
		}
		_, err := f.client.Rotate(ctx, old.ID, RotateRequest{})
		apiError(t, err, 409, "token_revoked")
		_, err = f.client.Rotate(ctx, "tsw_"+strings.Repeat("B", 20), RotateRequest{})
		apiError(t, err, 404, "token_not_found")
		if l, _ := f.client.List(ctx, 42); len(l) == 0 {
			t.Error("no tokens listed")
		}
	})
}

// failingUpdates makes Update and Revoke of one token fail with
// ErrUnavailable, before (written false) or after (written true: a lost
// announcement) the change is stored.
type failingUpdates struct {
	auth.ActivityStore
	written bool
	mu      sync.Mutex
	id      string // the token whose changes fail
}

func (s *failingUpdates) fails(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return id == s.id
}

func (s *failingUpdates) failFor(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
}

func (s *failingUpdates) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	if !s.fails(id) {
		return s.ActivityStore.Update(ctx, id, fn)
	}
	if s.written {
		if _, err := s.ActivityStore.Update(ctx, id, fn); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("test store: update %s: %w", id, auth.ErrUnavailable)
}

func (s *failingUpdates) Revoke(ctx context.Context, id string, at time.Time) (*auth.Token, error) {
	if !s.fails(id) {
		return s.ActivityStore.Revoke(ctx, id, at)
	}
	if s.written {
		if _, err := s.ActivityStore.Revoke(ctx, id, at); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("test store: revoke %s: %w", id, auth.ErrUnavailable)
}

// A rotation whose retirement of the old token fails is undone: the new
// token, never shown, is withdrawn; one whose change was stored but not
// announced stands, and says so.
func TestRotateStoreFailure(t *testing.T) {
	ctx := context.Background()
	for _, grace := range []string{"0s", "1h"} {
		t.Run("not stored, grace "+grace, func(t *testing.T) {
			var inner auth.ActivityStore
			failing := &failingUpdates{}
			f := newFixture(t, func(s auth.ActivityStore) auth.ActivityStore { inner, failing.ActivityStore = s, s; return failing })
			old := f.create(t, CreateRequest{})
			failing.failFor(old.ID)
			_, err := f.client.Rotate(ctx, old.ID, RotateRequest{Grace: grace})
			apiError(t, err, 503, "store_unavailable")
			l, err := inner.List(ctx, 42)
			if err != nil || len(l) != 1 || l[0].ID != old.ID || l[0].Revoked() || !l[0].ExpiresAt.IsZero() {
				t.Fatalf("after a failed rotation the project holds %d tokens (%v), want the old one unchanged", len(l), err)
			}
			if !strings.Contains(f.log.String(), "rotate token failed") {
				t.Errorf("the failure is not logged:\n%s", f.log)
			}
		})
		t.Run("stored, not announced, grace "+grace, func(t *testing.T) {
			failing := &failingUpdates{written: true}
			f := newFixture(t, func(s auth.ActivityStore) auth.ActivityStore { failing.ActivityStore = s; return failing })
			old := f.create(t, CreateRequest{})
			failing.failFor(old.ID)
			resp, err := f.client.Rotate(ctx, old.ID, RotateRequest{Grace: grace})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if !auth.ValidCredential(resp.Token.Token) || !strings.Contains(resp.Message, "TSWGATE_CACHE_TTL") {
				t.Errorf("rotation with a lost announcement: %+v", resp)
			}
			if grace == "0s" && resp.Previous.Status != "revoked" || grace == "1h" && resp.Previous.ExpiresAt == nil {
				t.Errorf("previous = %+v", resp.Previous)
			}
		})
	}
}

func TestCreateWithRateLimit(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{RateLimit: 2.5, Burst: 7})
	if tok.RateLimit != 2.5 || tok.Burst != 7 {
		t.Fatalf("created %+v, want rate_limit 2.5 and burst 7", tok)
	}
	got, err := f.client.Get(context.Background(), tok.ID)
	if err != nil || got.RateLimit != 2.5 || got.Burst != 7 {
		t.Fatalf("stored %+v (%v)", got, err)
	}
	for body, problem := range map[string]string{
		`{"project_id":42,"role":"owner","name":"x","rate_limit":-1}`: "rate_limit: requests per second",
		`{"project_id":42,"role":"owner","name":"x","burst":3}`:       "burst: needs a rate_limit above 0",
	} {
		status, e, _ := f.raw(t, "POST", "/v1/tokens", body)
		if status != 400 || e.Code != "invalid_request" || !strings.Contains(strings.Join(e.Errors, "; "), problem) {
			t.Errorf("POST %s: %d %+v, want 400 naming %q", body, status, e, problem)
		}
	}
}

func TestProjectTokenLimit(t *testing.T) {
	f := newFixture(t, nil)
	limited, err := New(Options{Store: f.store, Hasher: storetest.NewHasher(t), AdminKeys: []string{testAdminKey}, MaxTokensPerProject: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(limited)
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, AdminKey: testAdminKey, HTTP: srv.Client()}
	ctx := context.Background()
	var toks []Token
	for range 2 {
		tok, err := c.Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "quota"})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	_, err = c.Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "one too many"})
	apiError(t, err, http.StatusConflict, "project_token_limit")
	// Another project is not affected.
	if _, err := c.Create(ctx, CreateRequest{ProjectID: 78, Role: "owner", Name: "elsewhere"}); err != nil {
		t.Fatalf("another project: %v", err)
	}
	// A rotation that keeps the old token for a while is one more token;
	// one that revokes it at once replaces it.
	_, err = c.Rotate(ctx, toks[0].ID, RotateRequest{Grace: "1h"})
	apiError(t, err, http.StatusConflict, "project_token_limit")
	if _, err := c.Rotate(ctx, toks[0].ID, RotateRequest{}); err != nil {
		t.Fatalf("rotation without grace at the limit: %v", err)
	}
	// Revoking makes room.
	if _, err := c.Revoke(ctx, toks[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "after a revoke"}); err != nil {
		t.Fatalf("after a revoke: %v", err)
	}
}

// A create with a bad expires_in is refused naming expires_in alone, not
// an expires_at the request did not give.
func TestCreateInvalidExpiresIn(t *testing.T) {
	f := newFixture(t, nil)
	for _, in := range []string{"soon", "-1h", "0s"} {
		status, e, body := f.raw(t, "POST", "/v1/tokens", fmt.Sprintf(`{"project_id":42,"role":"owner","name":"x","expires_in":%q}`, in))
		if status != 400 || e.Code != "invalid_request" || len(e.Errors) != 1 || !strings.HasPrefix(e.Errors[0], "expires_in:") {
			t.Errorf("expires_in %q: HTTP %d, want 400 with one problem, about expires_in\n%s", in, status, body)
		}
	}
}

// A body whose value does not decode names its field, also for a time.
func TestBadValueNamesField(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{})
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","expires_at":"tomorrow"}`, `expires_at: "tomorrow" is not an RFC 3339 time`},
		{"PATCH", "/v1/tokens/" + tok.ID, `{"expires_at":"2026-13-01T00:00:00Z"}`, `expires_at: "2026-13-01T00:00:00Z" is not an RFC 3339 time`},
		{"POST", "/v1/tokens", `{"project_id":"42","role":"owner","name":"x"}`, "project_id"},
	} {
		status, e, body := f.raw(t, tc.method, tc.path, tc.body)
		if status != 400 || e.Code != "invalid_request" || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s %s: HTTP %d, want 400 saying %q\n%s", tc.method, tc.body, status, tc.want, body)
		}
	}
}

// A rotation request lists every problem at once, before anything is
// read, and changes nothing.
func TestRotateInvalidListsEveryProblem(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{})
	status, e, body := f.raw(t, "POST", "/v1/tokens/"+tok.ID+"/rotate",
		`{"grace":"soon","scopes":["compute.admin"],"allowed_ips":["office"],"expires_in":"later"}`)
	if status != 400 || e.Code != "invalid_request" || len(e.Errors) != 4 {
		t.Fatalf("HTTP %d, want 400 listing 4 problems\n%s", status, body)
	}
	for i, field := range []string{"grace", "scopes", "allowed_ips", "expires_in"} {
		if !strings.HasPrefix(e.Errors[i], field+":") {
			t.Errorf("problem %d = %q, want one about %s", i, e.Errors[i], field)
		}
	}
	books := f.create(t, CreateRequest{Role: "accounting"})
	status, e, body = f.raw(t, "POST", "/v1/tokens/"+books.ID+"/rotate", `{"scopes":["compute.read"]}`)
	if status != 400 || len(e.Errors) != 1 || !strings.Contains(e.Errors[0], "the accounting role does not grant compute.read") {
		t.Errorf("rotation of an accounting token to compute.read: HTTP %d\n%s", status, body)
	}
	for _, id := range []string{tok.ID, books.ID} {
		if got, err := f.store.Get(context.Background(), id); err != nil || got.Revoked() || got.Rotated() {
			t.Errorf("a refused rotation changed %s: %+v, %v", id, got, err)
		}
	}
}

// Concurrent creates and grace rotations cannot pass the project's token
// limit together: each is counted with the tokens the others made.
func TestProjectTokenLimitConcurrent(t *testing.T) {
	f := newFixture(t, nil)
	limited, err := New(Options{Store: f.store, Hasher: storetest.NewHasher(t), AdminKeys: []string{testAdminKey}, MaxTokensPerProject: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(limited)
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, AdminKey: testAdminKey, HTTP: srv.Client()}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := []Token{}
	for range 20 {
		wg.Go(func() {
			tok, err := c.Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "race"})
			if err != nil {
				mustLimit(t, err)
				return
			}
			mu.Lock()
			made = append(made, tok)
			mu.Unlock()
		})
	}
	wg.Wait()
	if n, err := f.store.CountProject(ctx, 77); err != nil || n != 3 || len(made) != 3 {
		t.Fatalf("%d live tokens (%d creates answered 201), %v; want 3", n, len(made), err)
	}
	if _, err := c.Revoke(ctx, made[0].ID); err != nil {
		t.Fatal(err)
	}
	// One place left: of two rotations with grace, one gets it.
	ok := 0
	for _, tok := range made[1:] {
		wg.Go(func() {
			if _, err := c.Rotate(ctx, tok.ID, RotateRequest{Grace: "1h"}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else {
				mustLimit(t, err)
			}
		})
	}
	wg.Wait()
	if n, _ := f.store.CountProject(ctx, 77); n != 3 || ok != 1 {
		t.Errorf("%d live tokens after %d grace rotations succeeded, want 3 after 1", n, ok)
	}
}

// mustLimit checks, from any goroutine, that err is 409 project_token_limit.
func mustLimit(t *testing.T, err error) {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "project_token_limit" {
		t.Errorf("error %v, want HTTP 409 project_token_limit", err)
	}
}

// TestAnswersAreJSONOnly: every answer of the API, a success or a
// refusal, is JSON that a browser must not sniff as anything else and
// must not cache.
func TestAnswersAreJSONOnly(t *testing.T) {
	f := newFixture(t, nil)
	f.create(t, CreateRequest{ProjectID: 42, Role: "owner", Name: "<script>alert(1)</script>"})
	for _, path := range []string{"/v1/tokens?project_id=42", "/v1/tokens/tsw_nosuchtoken000000000", "/v1/nowhere"} {
		req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" ||
			!strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: %d with %v, want JSON, nosniff, no-store", path, resp.StatusCode, h)
		}
	}
}
