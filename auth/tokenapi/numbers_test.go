package tokenapi

// Numbers and durations have one spelling: what another parser could read
// as another value, or that some parsers refuse and others take, is
// refused 400 invalid_request naming the field or parameter; nothing is
// done.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestQueryNumbersCanonical(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	owner := f.mint(t, CreateRequest{Name: "owner"})
	admin := func(path string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, "GET", path, testAdminKey, "")
	}
	for _, c := range []struct{ path, want string }{
		{"/v1/tokens?project_id=42&limit=+5", "limit: "}, // + is a space in a query
		{"/v1/tokens?project_id=42&limit=%2B5", "limit: "},
		{"/v1/tokens?project_id=42&limit=05", "limit: "},
		{"/v1/tokens?project_id=42&limit=-0", "limit: "},
		{"/v1/tokens?project_id=42&limit=5.0", "limit: "},
		{"/v1/tokens?project_id=%2B42", "project_id: "},
		{"/v1/tokens?project_id=042", "project_id: "},
		{"/v1/tokens?project_id=42%20", "project_id: "},
		{"/v1/audit?project_id=42&limit=+5", "limit: "},
		{"/v1/audit?project_id=00", "project_id: "},
		{"/v1/audit?project_id=-0", "project_id: "},
		{"/v1/policy?project_id=0042", "project_id: "},
		{"/v1/projects/+42/policy", "project: "},
		{"/v1/projects/042/policy", "project: "},
		{"/v1/projects/42/policy/violations?", ""}, // control: fine
	} {
		a := admin(c.path)
		if c.want == "" {
			if a.status != http.StatusOK {
				t.Errorf("%s: HTTP %d, want 200\n%s", c.path, a.status, a.body)
			}
			continue
		}
		mustList(t, c.path, a, c.want)
	}
	// A token's own project, spelt otherwise, is refused too (not taken
	// for its own, nor for another).
	a := f.call(t, "GET", "/v1/tokens?project_id=042", owner.Token, "")
	mustList(t, "token: project_id=042", a, "project_id: ")
	for _, ok := range []string{"/v1/tokens?project_id=42&limit=5", "/v1/audit?project_id=0&limit=1000", "/v1/policy?project_id=42"} {
		if a := admin(ok); a.status != http.StatusOK {
			t.Errorf("%s: HTTP %d, want 200\n%s", ok, a.status, a.body)
		}
	}
}

func TestBodyNumbersCanonical(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	victim := f.mint(t, CreateRequest{Name: "victim"})
	owner := f.mint(t, CreateRequest{Name: "owner"})
	admin := func(method, path, body string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, method, path, testAdminKey, body)
	}
	const create = `{"role":"owner","name":"x",`
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/tokens", create + `"project_id":-0}`, "project_id: "},
		{"POST", "/v1/tokens", create + `"project_id":42.0}`, "project_id: "},
		{"POST", "/v1/tokens", create + `"project_id":4.2e1}`, "project_id: "},
		{"POST", "/v1/tokens", create + `"project_id":42e0}`, "project_id: "},
		// Past 2^53 a parser reading numbers as doubles (JavaScript's)
		// reads another project: 9007199254740993 is ...992 there.
		{"POST", "/v1/tokens", create + `"project_id":9007199254740993}`, "project_id: "},
		{"POST", "/v1/tokens", create + `"project_id":42,"rate_limit":5,"burst":-0}`, "burst: "},
		{"POST", "/v1/tokens", create + `"project_id":42,"rate_limit":-0}`, "rate_limit: "},
		{"POST", "/v1/tokens", create + `"project_id":42,"rate_limit":-0.0e3}`, "rate_limit: "},
		// More digits than a float64 holds: another parser (a decimal
		// one) reads another rate.
		{"POST", "/v1/tokens", create + `"project_id":42,"rate_limit":10.000000000000000001}`, "rate_limit: "},
		{"POST", "/v1/tokens", create + `"project_id":42,"rate_limit":1e-400}`, "rate_limit: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"rate_limit":-0}`, "rate_limit: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"rate_limit":5,"burst":-0}`, "burst: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"rate_limit":5,"burst":1e1}`, "burst: "},
		{"PUT", "/v1/projects/42/policy", `{"rate_limit":5,"burst":-0}`, "burst: "},
		{"PUT", "/v1/projects/42/policy", `{"rate_limit":0.30000000000000000001}`, "rate_limit: "},
	} {
		mustList(t, c.method+" "+c.path+" "+c.body, admin(c.method, c.path, c.body), c.want)
	}
	// A token naming its project -0 is not taken for "no project" (its
	// own).
	mustList(t, "token: project_id -0", f.call(t, "POST", "/v1/tokens", owner.Token, `{"project_id":-0,"role":"owner","name":"x"}`), "project_id: ")
	if got := f.stored(t, victim.ID); got.RateLimit != 0 || got.RateBurst != 0 {
		t.Errorf("a refused request changed the victim: %+v", got)
	}
	if l, _ := f.store.List(context.Background(), 42); len(l) != 2 {
		t.Errorf("%d live tokens, want 2: a refused create made one", len(l))
	}
	// What every parser reads alike is taken.
	for _, body := range []string{
		create + `"project_id":42,"rate_limit":0.5,"burst":3}`,
		create + `"project_id":42,"rate_limit":5.0}`,
		create + `"project_id":42,"rate_limit":1e-6}`,
		create + `"project_id":42,"rate_limit":2.5E2}`,
		create + `"project_id":42,"rate_limit":0.1}`,
	} {
		if a := admin("POST", "/v1/tokens", body); a.status != http.StatusCreated {
			t.Errorf("%s: HTTP %d, want 201\n%s", body, a.status, a.body)
		}
	}
}

func TestDurationsCanonical(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	victim := f.mint(t, CreateRequest{Name: "victim"})
	admin := func(method, path, body string) answer {
		return rawCall(t, f.public.Client(), f.admin.BaseURL, method, path, testAdminKey, body)
	}
	const create = `{"project_id":42,"role":"owner","name":"x","expires_in":`
	rotate := "/v1/tokens/" + victim.ID + "/rotate"
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/tokens", create + `"+720h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"0720h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"1.0h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `".5h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"1.h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"30m1h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"1h1h"}`, "expires_in: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"expires_in":"+1h"}`, "expires_in: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"expires_in":"01h"}`, "expires_in: "},
		{"POST", rotate, `{"grace":"+1h"}`, "grace: "},
		{"POST", rotate, `{"grace":"-0s"}`, "grace: "},
		{"POST", rotate, `{"grace":"00s"}`, "grace: "},
		{"POST", rotate, `{"expires_in":"0720h"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"030d"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"+30d"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"0d"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"1.5d"}`, "expires_in: "},
		{"POST", "/v1/tokens", create + `"30D"}`, "expires_in: "},
		{"PATCH", "/v1/tokens/" + victim.ID, `{"expires_in":"-1d"}`, "expires_in: "},
		{"POST", rotate, `{"expires_in":"07d"}`, "expires_in: "},
		{"PUT", "/v1/projects/42/policy", `{"max_lifetime":"+720h"}`, "max_lifetime: "},
		{"PUT", "/v1/projects/42/policy", `{"max_lifetime":"0720h"}`, "max_lifetime: "},
		{"PUT", "/v1/projects/42/policy", `{"max_lifetime":"+90d"}`, "max_lifetime: "},
	} {
		mustList(t, c.method+" "+c.path+" "+c.body, admin(c.method, c.path, c.body), c.want)
	}
	if got := f.stored(t, victim.ID); !got.ExpiresAt.IsZero() || got.Rotated() || got.Revoked() {
		t.Errorf("a refused request changed the victim: %+v", got)
	}
	for _, d := range []string{"720h", "1h30m", "1.5h", "90m", "2h45m30.5s", "1500ms", "0.25h", "720h0m0s", "30d", "1d"} {
		if a := admin("POST", "/v1/tokens", create+`"`+d+`"}`); a.status != http.StatusCreated {
			t.Errorf("expires_in %q: HTTP %d, want 201\n%s", d, a.status, a.body)
		}
	}
	// Days, as lifetime policies are written, for every expires_in.
	var made Token
	a := admin("POST", "/v1/tokens", create+`"30d"}`)
	if err := json.Unmarshal([]byte(a.body), &struct{ Token *Token }{&made}); err != nil || made.ExpiresAt == nil ||
		made.ExpiresAt.Sub(made.CreatedAt) != 30*24*time.Hour {
		t.Errorf("expires_in 30d: %+v, %v; want an expiry 720h after creation\n%s", made, err, a.body)
	}
	if a := admin("POST", "/v1/tokens/"+made.ID+"/rotate", `{"expires_in":"7d"}`); a.status != http.StatusOK {
		t.Errorf("rotate with expires_in 7d: HTTP %d, want 200\n%s", a.status, a.body)
	}
	for _, g := range []string{"0s", "0", "1h"} {
		tok := f.mint(t, CreateRequest{Name: "rot"})
		if a := admin("POST", "/v1/tokens/"+tok.ID+"/rotate", `{"grace":"`+g+`"}`); a.status != http.StatusOK {
			t.Errorf("grace %q: HTTP %d, want 200\n%s", g, a.status, a.body)
		}
	}
	for _, m := range []string{"90d", "720h", "36h30m"} {
		if a := admin("PUT", "/v1/projects/43/policy", `{"max_lifetime":"`+m+`"}`); a.status != http.StatusOK {
			t.Errorf("max_lifetime %q: HTTP %d, want 200\n%s", m, a.status, a.body)
		}
	}
}

func TestCanonicalDuration(t *testing.T) {
	for s, ok := range map[string]bool{
		"0": true, "0s": true, "1h": true, "1h30m": true, "1.5h": true, "0.5s": true, "2h45m30.5s": true,
		"1ms": true, "1h0m0s": true, "0h30m": true, "3us": true, "3µs": true, "4ns": true, "1h1ms": true,
		"": false, "+1h": false, "-1h": false, "01h": false, "00s": false, "1.0h": false, "1.50h": false,
		".5h": false, "1.h": false, "30m1h": false, "1h1h": false,
		"1": false, "1d": false, "1H": false, " 1h": false, "1h ": false, "1_000h": false,
	} {
		if got := canonicalDuration(s) == ""; got != ok {
			t.Errorf("canonicalDuration(%q) accepts: %v, want %v", s, got, ok)
		}
		if ok {
			if _, err := time.ParseDuration(s); err != nil {
				t.Errorf("canonical %q does not parse: %v", s, err)
			}
		}
	}
	if p := canonicalDuration("+1h"); !strings.Contains(p, "sign") {
		t.Errorf("canonicalDuration(+1h) = %q, want it to name the sign", p)
	}
}
