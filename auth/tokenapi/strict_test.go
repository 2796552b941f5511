package tokenapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/auth/storetest"
	"github.com/tswgate/tswgate/internal/redistest"
)

// Every JSON body is exactly one JSON value, white space after it
// allowed: trailing data, duplicate keys, unknown fields and values of
// the wrong type are refused 400 invalid_request naming the problem, and
// nothing is changed.
func TestBodyIsOneJSONValue(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{ProjectID: 43})
	ctx := context.Background()
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x"}}`, "body: data after the JSON object"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x"}]`, "body: data after the JSON object"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x"} {}`, "body: data after the JSON object"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x"}x`, "body: data after the JSON object"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"a","name":"b"}`, "name: given twice"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"a","scopes":["compute.read"],"scopes":[]}`, "scopes: given twice"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","nmae":"y"}`, "nmae: unknown field; the fields are"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","Name":"x"}`, `Name: unknown field: field names are lower case, such as "name"`},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"a","NAME":"b"}`, "NAME: given twice"},
		// encoding/json folds names as Unicode does: the long s
		// matches "s". The message names the field.
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","ſcopes":["compute.read"]}`, `"ſcopes": unknown field: field names are lower case, such as "scopes"`},
		{"PATCH", "/v1/tokens/" + tok.ID, `{"ſtatus":"inactive"}`, `"ſtatus": unknown field: field names are lower case, such as "status"`},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":7}`, "name: a string is expected, not a number"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","scopes":"compute.read"}`, "scopes: an array is expected, not a string"},
		{"POST", "/v1/tokens", `{"project_id":42,"role":"owner","name":"x","scopes":[1]}`, "scopes: a string is expected, not a number"},
		{"PATCH", "/v1/tokens/" + tok.ID, `{"status":"inactive"}}`, "body: data after the JSON object"},
		{"PATCH", "/v1/tokens/" + tok.ID, `{"status":"active","status":"inactive"}`, "status: given twice"},
		{"PATCH", "/v1/tokens/" + tok.ID, `{"rate_limit":"10"}`, "rate_limit: a number is expected, not a string"},
		{"POST", "/v1/tokens/" + tok.ID + "/rotate", `{}}`, "body: data after the JSON object"},
		{"POST", "/v1/tokens/" + tok.ID + "/rotate", `{"grace":"1h","grace":"0s"}`, "grace: given twice"},
		{"PUT", "/v1/projects/43/policy", `{"require_expiry":true}}`, "body: data after the JSON object"},
		{"PUT", "/v1/projects/43/policy", `{"rate_limit":5,"rate_limit":6}`, "rate_limit: given twice"},
	} {
		status, e, body := f.raw(t, tc.method, tc.path, tc.body)
		if status != http.StatusBadRequest || e.Code != "invalid_request" || !strings.Contains(e.Message, tc.want) || !listed(e.Errors, tc.want) {
			t.Errorf("%s %s %s: HTTP %d, want 400 invalid_request saying %q, in message and errors\n%s", tc.method, tc.path, tc.body, status, tc.want, body)
		}
		if strings.Contains(e.Message, "Request") || strings.Contains(e.Message, "Go ") {
			t.Errorf("%s %s: the message names Go types: %q", tc.method, tc.body, e.Message)
		}
	}
	if n, err := f.store.CountProject(ctx, 42); err != nil || n != 0 {
		t.Errorf("project 42 has %d tokens (%v) after refused creates", n, err)
	}
	if got := f.get(t, tok.ID); got.Status.String() != "active" || got.Rotated() || got.Revoked() || got.RateLimit != 0 {
		t.Errorf("refused changes changed the token: %+v", got)
	}
	// White space after the value is fine.
	if status, _, body := f.raw(t, "POST", "/v1/tokens", "{\"project_id\":42,\"role\":\"owner\",\"name\":\"x\"} \r\n\t"); status != http.StatusCreated {
		t.Errorf("a body with white space after it: HTTP %d\n%s", status, body)
	}
}

// A query parameter given more than once is refused 400 invalid_request
// naming it, on every endpoint, before anything is read or changed.
func TestQueryParameterGivenTwice(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{ProjectID: 43})
	for _, tc := range []struct{ method, path, param string }{
		{"GET", "/v1/tokens?project_id=43&project_id=44", "project_id"},
		{"GET", "/v1/tokens?project_id=43&status=active&status=inactive", "status"},
		{"GET", "/v1/tokens?project_id=43&limit=1&limit=2", "limit"},
		{"GET", "/v1/tokens?project_id=43&cursor=&cursor=x", "cursor"},
		{"GET", "/v1/tokens?project_id=43&role=owner&role=owner", "role"},
		{"GET", "/v1/audit?project_id=43&project_id=44", "project_id"},
		{"GET", "/v1/policy?project_id=43&project_id=44", "project_id"},
		{"GET", "/v1/tokens/" + tok.ID + "?x=1&x=2", "x"},
		{"DELETE", "/v1/tokens/" + tok.ID + "?project_id=43&project_id=43", "project_id"},
		{"GET", "/v1/projects/43/policy?a=1&a=1", "a"},
		{"GET", "/v1/tokens?project_id=43;project_id=44", "query"},
		{"GET", "/v1/tokens?project_id=%zz", "query"},
	} {
		status, e, body := f.raw(t, tc.method, tc.path, nil)
		if status != http.StatusBadRequest || e.Code != "invalid_request" || !strings.Contains(strings.Join(append(e.Errors, e.Message), " "), tc.param) {
			t.Errorf("%s %s: HTTP %d, want 400 invalid_request naming %q\n%s", tc.method, tc.path, status, tc.param, body)
		}
	}
	if got := f.get(t, tok.ID); got.Revoked() {
		t.Error("a refused revoke revoked the token")
	}
}

// get reads id's record from the store.
func (f *fixture) get(t *testing.T, id string) *auth.Token {
	t.Helper()
	got, err := f.store.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return got
}

// Two replicas sharing one Redis cannot pass the project's token limit
// together: creates and grace rotations race on both, and the project
// ends with at most the limit.
func TestProjectTokenLimitAcrossReplicas(t *testing.T) {
	c := redistest.Start(t).Client(t)
	const limit = 4
	var clients []*Client
	var st auth.ActivityStore
	for range 2 {
		s, err := redisstore.New(redisstore.Options{Client: c, Prefix: "limitreplicas:", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		st = s
		h, err := New(Options{Store: s, Hasher: storetest.NewHasher(t), AdminKeys: []string{testAdminKey}, MaxTokensPerProject: limit})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		clients = append(clients, &Client{BaseURL: srv.URL, AdminKey: testAdminKey, HTTP: srv.Client()})
	}
	ctx := context.Background()
	first, err := clients[0].Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 16 {
		c := clients[i%2]
		wg.Go(func() {
			<-start
			var err error
			if i%4 < 2 {
				_, err = c.Create(ctx, CreateRequest{ProjectID: 77, Role: "owner", Name: "race"})
			} else {
				_, err = c.Rotate(ctx, first.ID, RotateRequest{Grace: "1h"})
			}
			if err != nil {
				var ae *APIError
				if errors.As(err, &ae) && (ae.Code == "token_rotated" || ae.Code == codeChanged) {
					// first was rotated by another request: before this
					// one read it, or between its read and its retirement.
					return
				}
				mustLimit(t, err)
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	// A rotation refused token_changed withdraws the successor that held
	// a place meanwhile, so the project may end below its limit; never
	// above it, and with one live token per success (grace rotations
	// keep first alive).
	if n, err := st.CountProject(ctx, 77); err != nil || n > limit || n != ok+1 || ok == 0 {
		t.Errorf("%d live tokens after %d requests succeeded (%v); want at most %d, one per success and first", n, ok, err, limit)
	}
}

// An endpoint that takes no body (GET, DELETE) refuses one that holds
// anything but an empty object, naming what it holds, before acting: a
// DELETE sent with {"grace":"1h"} is not a revocation after a grace
// period, and revoking at once would not be what its caller meant.
func TestBodilessEndpointsRefuseABody(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.create(t, CreateRequest{ProjectID: 43})
	for _, tc := range []struct{ method, path, body, want string }{
		{"DELETE", "/v1/tokens/" + tok.ID, `{"grace":"1h"}`, "grace: unknown field: this endpoint takes no body"},
		{"DELETE", "/v1/tokens/" + tok.ID, `{}{}`, "body: data after the JSON object"},
		{"GET", "/v1/tokens?project_id=43", `{"status":"inactive"}`, "status: unknown field: this endpoint takes no body"},
		{"GET", "/v1/audit?project_id=43", `x`, "body: not JSON: invalid character"},
		{"DELETE", "/v1/projects/43/policy", `{"max_lifetime":"90d"}`, "max_lifetime: unknown field: this endpoint takes no body"},
	} {
		status, e, body := f.raw(t, tc.method, tc.path, tc.body)
		if status != http.StatusBadRequest || e.Code != "invalid_request" || !strings.Contains(e.Message, tc.want) || !listed(e.Errors, tc.want) {
			t.Errorf("%s %s %s: HTTP %d, want 400 invalid_request saying %q, in message and errors\n%s", tc.method, tc.path, tc.body, status, tc.want, body)
		}
	}
	if got := f.get(t, tok.ID); got.Revoked() {
		t.Fatal("a DELETE with a body it does not take revoked the token")
	}
	// No body, white space or an empty object are no body.
	for _, body := range []string{"", " \r\n", "{}"} {
		if status, _, b := f.raw(t, "GET", "/v1/tokens/"+tok.ID, body); status != http.StatusOK {
			t.Errorf("GET with body %q: HTTP %d\n%s", body, status, b)
		}
	}
	if status, _, b := f.raw(t, "DELETE", "/v1/tokens/"+tok.ID, "{}"); status != http.StatusOK {
		t.Errorf("DELETE with {}: HTTP %d\n%s", status, b)
	}
}

// listed reports whether one of problems starts with want's field and
// holds want.
func listed(problems []string, want string) bool {
	for _, p := range problems {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}
