package webhookapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/webhook"
)

// The webhook API reads requests as strictly as the token API: a query
// parameter given twice, or that its endpoint does not read, or a body
// that is not exactly one JSON value (trailing data, a key given twice, a
// null), is refused 400 invalid_request naming it, in the message and in
// errors.
func TestStrictRequests(t *testing.T) {
	b := backends(t)[0]
	f := newFixture(t, b, local)
	rcv := newReceiver(t)
	ep, err := client(f.admin, adminKey, 42).Create(context.Background(),
		CreateRequest{URL: rcv.srv.URL + "/hook", Types: []string{webhook.TypeTokenRevoked}})
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1/projects/42/webhooks"
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", base + "/" + ep.ID + "/deliveries?limit=1&limit=2", "", "limit: given 2 times"},
		{"GET", base + "?x=1&x=2", "", "x: unknown parameter"},
		{"GET", base + "/" + ep.ID + "/deliveries?lmit=1", "", "lmit: unknown parameter; this endpoint reads limit"},
		{"GET", base + "/" + ep.ID + "/deliveries?limit=x", "", `limit: "x" is not a whole number`},
		{"GET", base + "/" + ep.ID + "/deliveries?limit=%2B5", "", `limit: "+5" is not a whole number`},
		{"GET", base + "/" + ep.ID + "/deliveries?limit=05", "", `limit: "05" is not a whole number`},
		{"GET", base + "/" + ep.ID + "?limit=1", "", "limit: unknown parameter: this endpoint reads no query parameters"},
		{"PATCH", base + "/" + ep.ID, `{}`, "body: nothing to change"},
		{"PATCH", base + "/" + ep.ID, `{"description":null}`, "description: null is not a value"},
		{"POST", base + "/" + ep.ID + "/rotate-secret", `{"grace":"forever"}`, `grace: "forever" is not a duration`},
		{"POST", base + "/" + ep.ID + "/rotate-secret", `{"grace":""}`, "grace: empty"},
		{"POST", base, `{"url":"` + rcv.srv.URL + `/b","types":["token.revoked"]}}`, "body: data after the JSON object"},
		{"POST", base, `{"url":"` + rcv.srv.URL + `/b","url":"` + rcv.srv.URL + `/c"}`, "url: given twice"},
		{"PATCH", base + "/" + ep.ID, `{"enabled":false}}`, "body: data after the JSON object"},
		// Endpoints that take no body refuse one that holds anything.
		{"DELETE", base + "/" + ep.ID, `{"grace":"1h"}`, "grace: unknown field: this endpoint takes no body"},
		{"POST", base + "/" + ep.ID + "/test", `{"type":"token.revoked"}`, "type: unknown field: this endpoint takes no body"},
		{"POST", base + "/" + ep.ID + "/deliveries/msg_x/replay", `{"force":true}`, "force: unknown field: this endpoint takes no body"},
		{"GET", base + "/" + ep.ID, `{}{}`, "body: data after the JSON object"},
	} {
		req, _ := http.NewRequest(tc.method, f.admin.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := f.admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e tokenapi.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Code != "invalid_request" ||
			!strings.Contains(e.Message, tc.want) || !strings.Contains(strings.Join(e.Errors, "\n"), tc.want) {
			t.Errorf("%s %s %s: HTTP %d %+v, want 400 invalid_request saying %q", tc.method, tc.path, tc.body, resp.StatusCode, e, tc.want)
		}
	}
	got, err := client(f.admin, adminKey, 42).Get(context.Background(), ep.ID)
	if err != nil || !got.Enabled {
		t.Errorf("a refused update changed the endpoint: %+v, %v", got, err)
	}
	// A method a path does not serve is 405, naming those it does.
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", base, "GET, HEAD, POST"},
		{"POST", base + "/" + ep.ID, "GET, HEAD, PATCH, DELETE"},
		{"GET", base + "/" + ep.ID + "/rotate-secret", "POST"},
		{"DELETE", base + "/" + ep.ID + "/deliveries", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, f.admin.URL+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := f.admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e tokenapi.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || e.Code != "method_not_allowed" || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: HTTP %d %+v Allow %q, want 405 with Allow %q", c.method, c.path, resp.StatusCode, e, resp.Header.Get("Allow"), c.allow)
		}
	}
	for _, body := range []string{"", "{}"} {
		req, _ := http.NewRequest("POST", f.admin.URL+base+"/"+ep.ID+"/test", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := f.admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("POST test with body %q: HTTP %d", body, resp.StatusCode)
		}
	}
}
