package main

// End-to-end: token management is the tokens.read and tokens.write
// permissions on every endpoint of the token, audit, policy and webhook
// APIs, on both listeners, over Redis.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

func TestE2EManagementScopesEveryEndpoint(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv)...)
	ctx := context.Background()

	victim := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "victim"})
	narrow := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "narrow", Scopes: []string{"compute.read"}})
	reader := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "reader", Scopes: []string{"tokens.read"}})
	var ep struct {
		Endpoint struct {
			ID string `json:"id"`
		} `json:"endpoint"`
	}
	if err := g.Admin.Do(ctx, "POST", "/v1/projects/42/webhooks", map[string]any{"url": "https://93.184.216.34/hook"}, &ep); err != nil {
		t.Fatalf("creating a webhook endpoint: %v", err)
	}
	var dl struct {
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	if err := g.Admin.Do(ctx, "POST", "/v1/projects/42/webhooks/"+ep.Endpoint.ID+"/test", nil, &json.RawMessage{}); err != nil {
		t.Fatalf("testing the endpoint: %v", err)
	}
	if err := g.Admin.Do(ctx, "GET", "/v1/projects/42/webhooks/"+ep.Endpoint.ID+"/deliveries", nil, &dl); err != nil || len(dl.Deliveries) == 0 {
		t.Fatalf("deliveries: %+v, %v", dl, err)
	}
	hook, dlv := ep.Endpoint.ID, dl.Deliveries[0].ID

	type call struct{ method, path, body, perm string }
	calls := func(tokens, hooks string) []call {
		return []call{
			{"GET", tokens + "/v1/tokens", "", "tokens.read"},
			{"GET", tokens + "/v1/tokens/" + victim.ID, "", "tokens.read"},
			{"GET", tokens + "/v1/audit", "", "tokens.read"},
			{"GET", tokens + "/v1/policy", "", "tokens.read"},
			{"POST", tokens + "/v1/tokens", `{"role":"owner","name":"x"}`, "tokens.write"},
			{"PATCH", tokens + "/v1/tokens/" + victim.ID, `{"status":"inactive"}`, "tokens.write"},
			{"PATCH", tokens + "/v1/tokens/" + victim.ID, `{}`, "tokens.write"},
			{"PATCH", tokens + "/v1/tokens/" + narrow.ID, `{"scopes":[]}`, "tokens.write"},
			{"POST", tokens + "/v1/tokens/" + victim.ID + "/rotate", "", "tokens.write"},
			{"POST", tokens + "/v1/tokens/" + narrow.ID + "/rotate", `{"grace":"1h"}`, "tokens.write"},
			{"DELETE", tokens + "/v1/tokens/" + victim.ID, "", "tokens.write"},
			{"GET", hooks, "", "tokens.read"},
			{"GET", hooks + "/" + hook, "", "tokens.read"},
			{"GET", hooks + "/" + hook + "/deliveries", "", "tokens.read"},
			{"GET", hooks + "/" + hook + "/deliveries/" + dlv, "", "tokens.read"},
			{"POST", hooks, `{"url":"https://93.184.216.35/x"}`, "tokens.write"},
			{"PATCH", hooks + "/" + hook, `{"enabled":false}`, "tokens.write"},
			{"POST", hooks + "/" + hook + "/rotate-secret", "", "tokens.write"},
			{"POST", hooks + "/" + hook + "/test", "", "tokens.write"},
			{"POST", hooks + "/" + hook + "/deliveries/" + dlv + "/replay", "", "tokens.write"},
			{"DELETE", hooks + "/" + hook, "", "tokens.write"},
		}
	}
	listeners := []struct {
		name string
		base string
		cs   []call
	}{
		{"self-service", g.URL, calls("/tswgate", "/tswgate/v1/webhooks")},
		{"admin", g.AdminURL, calls("", "/v1/projects/42/webhooks")},
	}
	for _, l := range listeners {
		for _, c := range l.cs {
			for _, who := range []struct {
				name, cred string
				denied     bool
			}{
				{"compute.read", narrow.Token, true},
				{"tokens.read", reader.Token, c.perm == "tokens.write"},
			} {
				if !who.denied {
					continue // reads by a reader are checked below, once
				}
				var body []byte
				if c.body != "" {
					body = []byte(c.body)
				}
				r := MustDo(t, g.HTTP, MustNewRequest(t, c.method, l.base+c.path, who.cred, body))
				if r.Status != http.StatusForbidden || !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="`+c.perm+`"`) {
					t.Errorf("%s: %s %s by a %s token: %s, want 403 permission_denied for %s", l.name, c.method, c.path, who.name, r, c.perm)
				}
			}
		}
	}
	for _, l := range listeners {
		for _, c := range l.cs {
			if c.perm != "tokens.read" {
				continue
			}
			r := MustDo(t, g.HTTP, MustNewRequest(t, c.method, l.base+c.path, reader.Token, nil))
			if r.Status != http.StatusOK {
				t.Errorf("%s: %s %s by a tokens.read token: %s, want 200", l.name, c.method, c.path, r)
			}
		}
	}
	// Nothing changed.
	got, err := g.Admin.Get(ctx, victim.ID)
	if err != nil || got.Status != "active" || got.RotatedTo != "" {
		t.Errorf("victim after the refusals: %+v, %v", got, err)
	}
	if got, err := g.Admin.Get(ctx, narrow.ID); err != nil || got.Status != "active" || len(got.Scopes) != 1 {
		t.Errorf("narrow after the refusals: %+v, %v", got, err)
	}
	var shown json.RawMessage
	if err := g.Admin.Do(ctx, "GET", "/v1/projects/42/webhooks/"+hook, nil, &shown); err != nil || !strings.Contains(string(shown), `"enabled": true`) {
		t.Errorf("endpoint after the refusals: %s, %v", shown, err)
	}
}

// The project token limit holds across two replicas sharing Redis, for
// every create path (admin, self-service, rotation with a grace period),
// refused with 409 project_token_limit; a rotation without grace is not
// a create and passes.
func TestE2ERedisTokenLimitEveryCreatePath(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	env := redisEnv(srv, "TSWGATE_MAX_TOKENS_PER_PROJECT=6")
	a := MustStartGateway(t, up.URL, env...)
	b := MustStartGateway(t, up.URL, env...)
	ctx := context.Background()
	owner := a.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "owner"})

	// Ten concurrent creates over both replicas and both listeners: five
	// fit.
	errs := make(chan error, 10)
	for i := range 10 {
		c := []*tokenapi.Client{a.Admin, b.Admin, a.selfService(owner.Token), b.selfService(owner.Token)}[i%4]
		go func() {
			tok, err := c.Create(ctx, tokenapi.CreateRequest{ProjectID: 42, Role: "owner", Name: "n"})
			if err == nil {
				rememberSecret(tok.Token)
			}
			errs <- err
		}()
	}
	made := 0
	for range 10 {
		err := <-errs
		if err == nil {
			made++
			continue
		}
		mustAPIError(t, err, http.StatusConflict, "project_token_limit", "a create over the limit")
	}
	if made != 5 {
		t.Fatalf("%d creates passed, want 5", made)
	}
	list, err := a.Admin.List(ctx, 42)
	if err != nil || len(list) != 6 {
		t.Fatalf("%d live tokens (%v), want 6", len(list), err)
	}

	_, err = b.selfService(owner.Token).Rotate(ctx, list[1].ID, tokenapi.RotateRequest{Grace: "1h"})
	mustAPIError(t, err, http.StatusConflict, "project_token_limit", "a rotation with grace at the limit")
	_, err = a.Admin.Rotate(ctx, list[1].ID, tokenapi.RotateRequest{Grace: "1h"})
	mustAPIError(t, err, http.StatusConflict, "project_token_limit", "an admin rotation with grace at the limit")
	rot, err := b.Admin.Rotate(ctx, list[1].ID, tokenapi.RotateRequest{})
	if err != nil {
		t.Fatalf("a rotation without grace at the limit: %v", err)
	}
	rememberSecret(rot.Token.Token)
	if list, err := a.Admin.List(ctx, 42); err != nil || len(list) != 6 {
		t.Fatalf("after the rotation: %d live tokens (%v), want 6", len(list), err)
	}
}
