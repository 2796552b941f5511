package tokenapi

// A token never widens its own life, limits or rights, nor another
// token's beyond its own, whatever the spelling of the request: the
// review's probes, each refused with its code.

import (
	"context"
	"slices"
	"testing"
)

func TestNoTokenWidensItself(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	caller := f.mint(t, CreateRequest{Name: "caller", ExpiresIn: "1h",
		Scopes: []string{"tokens.read", "tokens.write", "compute.read"}, AllowedIPs: []string{"127.0.0.0/8"}})
	sibling := f.mint(t, CreateRequest{Name: "sibling"})
	books := f.mint(t, CreateRequest{Name: "books", Role: "accounting"})
	const child = `{"role":"owner","name":"child","expires_in":"30m",`
	for _, c := range []struct {
		name, method, path, cred, body string
		status                         int
		code                           string
	}{
		{"a later expiry, in another zone", "PATCH", "/v1/tokens/" + sibling.ID, caller.Token,
			`{"expires_at":"2099-01-01T00:00:00+14:00"}`, 403, codeLifetime},
		{"its own expiry later", "PATCH", "/v1/tokens/" + caller.ID, caller.Token, `{"expires_in":"2h"}`, 403, codeLifetime},
		{"the longest duration", "POST", "/v1/tokens", caller.Token,
			`{"role":"owner","name":"x","expires_in":"2562047h47m16.854775807s"}`, 403, codeLifetime},
		{"past the longest duration", "POST", "/v1/tokens", caller.Token,
			`{"role":"owner","name":"x","expires_in":"2562048h"}`, 400, "invalid_request"},
		{"a child without expiry", "POST", "/v1/tokens", caller.Token, `{"role":"owner","name":"x"}`, 403, codeLifetime},
		{"its own scopes removed", "PATCH", "/v1/tokens/" + caller.ID, caller.Token, `{"scopes":[]}`, 403, codeScope},
		{"its own ranges removed", "PATCH", "/v1/tokens/" + caller.ID, caller.Token, `{"allowed_ips":[]}`, 403, codeRanges},
		{"a permission in capitals", "POST", "/v1/tokens", caller.Token, child + `"scopes":["COMPUTE.WRITE"]}`, 403, codeScope},
		{"a permission in look-alike letters", "POST", "/v1/tokens", caller.Token, child + `"scopes":["ᴄompute.read"]}`, 400, "invalid_request"},
		{"a key folding to scopes", "POST", "/v1/tokens", caller.Token, child + `"ſcopes":["compute.write"]}`, 400, "invalid_request"},
		{"scopes given twice", "POST", "/v1/tokens", caller.Token, child + `"scopes":["compute.read"],"Scopes":[]}`, 400, "invalid_request"},
		{"every IPv4 address, IPv6-mapped", "POST", "/v1/tokens", caller.Token, child + `"allowed_ips":["::ffff:0.0.0.0/96"]}`, 403, codeRanges},
		{"a rate limit", "POST", "/v1/tokens", caller.Token, child + `"rate_limit":1000}`, 403, codeLimit},
		{"its own shadow mode", "PATCH", "/v1/tokens/" + caller.ID, caller.Token, `{"rate_shadow":true}`, 403, codeLimit},
		{"another project, spelt -0", "POST", "/v1/tokens", caller.Token, child + `"project_id":-0}`, 400, "invalid_request"},
		{"another project", "POST", "/v1/tokens", caller.Token, child + `"project_id":43}`, 403, "project_forbidden"},
		{"accounting updating itself", "PATCH", "/v1/tokens/" + books.ID, books.Token, `{"expires_in":"1h"}`, 403, "role_forbidden"},
		{"accounting rotating itself", "POST", "/v1/tokens/" + books.ID + "/rotate", books.Token, ``, 403, "role_forbidden"},
		{"accounting creating", "POST", "/v1/tokens", books.Token, `{"role":"owner","name":"x"}`, 403, "role_forbidden"},
		{"a sibling's rotation outliving it", "POST", "/v1/tokens/" + sibling.ID + "/rotate", caller.Token, `{"expires_in":"2h"}`, 403, codeLifetime},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.nextMinute()
			mustRefuse(t, f.call(t, c.method, c.path, c.cred, c.body), c.status, c.code)
		})
	}
	got := View(f.stored(t, caller.ID))
	if !got.ExpiresAt.Equal(*caller.ExpiresAt) || !slices.Equal(got.Scopes, caller.Scopes) ||
		!slices.Equal(got.AllowedIPs, caller.AllowedIPs) || got.RateShadow || got.RateLimit != 0 {
		t.Errorf("the caller changed: %+v, was %+v", got, caller)
	}
	if l, err := f.store.List(context.Background(), 42); err != nil || len(l) != 3 {
		t.Errorf("%d live tokens (%v), want the 3 minted: a refused call made one", len(l), err)
	}
}
