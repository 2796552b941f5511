package main

// End-to-end tests of project policies: the lifetime policy through the
// admin and self-service APIs and the CLI, the violations report, and the
// project-wide rate limit shared by a project's tokens, on both stores and
// across a restart.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

func TestE2EProjectPolicy(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			env := []string{"TSWGATE_DATA_DIR=" + t.TempDir()}
			if store == "redis" {
				env = redisEnv(redistest.Start(t))
			}
			testProjectPolicy(t, env)
		})
	}
}

func testProjectPolicy(t *testing.T, env []string) {
	ctx := context.Background()
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, env...)
	forever := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "forever"})
	a := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "a", ExpiresIn: "720h"})
	b := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "b", ExpiresIn: "720h"})
	if _, err := g.Admin.SetPolicy(ctx, testProject, tokenapi.PolicyRequest{MaxLifetime: "90d", RequireExpiry: true}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}

	// Lifetime refusals, through the admin key and self-service.
	_, err := g.Admin.Create(ctx, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "long", ExpiresIn: "2400h"})
	mustAPIError(t, err, http.StatusUnprocessableEntity, "lifetime_policy", "an admin creating a token beyond the maximum lifetime")
	if !strings.Contains(err.Error(), "90d") {
		t.Errorf("the refusal does not name the limit: %v", err)
	}
	self := g.selfService(a.Token)
	_, err = self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "child"})
	mustAPIError(t, err, http.StatusUnprocessableEntity, "lifetime_policy", "a token creating a token without expiry")
	_, err = g.Admin.Rotate(ctx, forever.ID, tokenapi.RotateRequest{})
	mustAPIError(t, err, http.StatusUnprocessableEntity, "lifetime_policy", "rotating into a token without expiry")
	if pol, err := self.Policy(ctx, 0); err != nil || pol.MaxLifetime != "90d" || !pol.RequireExpiry {
		t.Fatalf("self-service GET /tswgate/v1/policy = %+v, %v", pol, err)
	}
	_, err = self.SetPolicy(ctx, testProject, tokenapi.PolicyRequest{})
	mustAPIError(t, err, http.StatusForbidden, "admin_only", "a token setting its project's policy")

	// Tokens older than the policy are reported, and keep working.
	v, err := g.Admin.Violations(ctx, testProject)
	if err != nil || len(v.Violations) != 1 || v.Violations[0].Token.ID != forever.ID {
		t.Fatalf("violations = %+v, %v; want the token without expiry", v, err)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", forever.Token, nil))
	cliEnv := []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=" + g.AdminKey()}
	if res := MustRun(t, cliEnv, "policy", "violations", "--project", "42"); res.code != 0 || !strings.Contains(res.stdout, forever.ID) {
		t.Fatalf("tswgate policy violations: %v", res)
	}

	// The project limit, shared by a and b, set through the CLI.
	if res := MustRun(t, cliEnv, "policy", "set", "--project", "42", "--max-lifetime", "90d", "--require-expiry",
		"--rate", "0.001", "--burst", "4"); res.code != 0 || !strings.Contains(res.stdout, "0.001/s (burst 4)") {
		t.Fatalf("tswgate policy set: %v", res)
	}
	admitted := 0
	var refused *response
	for i := range 6 {
		r := g.MustCall(t, "GET", "/v2/Instance", []string{a.Token, b.Token}[i%2], nil)
		if r.Status == http.StatusOK {
			admitted++
			if p := r.Header.Get("RateLimit-Policy"); !strings.Contains(p, `"project";q=4`) {
				t.Errorf("RateLimit-Policy %q does not list the project limit", p)
			}
		} else {
			refused = r
		}
	}
	if admitted != 4 || refused == nil {
		t.Fatalf("two tokens sharing a project burst of 4 got %d of 6 requests through, want 4", admitted)
	}
	MustBeRefused(t, refused, auth.CodeProjectRateLimited)

	// Both survive a restart.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.ShutdownOnce(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	g2 := MustStartGateway(t, up.URL, env...)
	if pol, err := g2.Admin.Policy(ctx, testProject); err != nil || pol.MaxLifetime != "90d" || pol.RateLimit != 0.001 || pol.Burst != 4 {
		t.Fatalf("after a restart, the policy is %+v, %v", pol, err)
	}
	_, err = g2.Admin.Create(ctx, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "none"})
	mustAPIError(t, err, http.StatusUnprocessableEntity, "lifetime_policy", "after a restart, a token without expiry")
	limited := false
	for range 5 {
		if r := g2.MustCall(t, "GET", "/v2/Instance", a.Token, nil); r.Status == http.StatusTooManyRequests {
			MustBeRefused(t, r, auth.CodeProjectRateLimited)
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("after a restart, 5 requests passed a project limit with a burst of 4")
	}
}

// TestE2ERedisProjectLimitAcrossReplicas sets a project limit through
// replica A: replica B applies it when it hears the store's announcement
// (its periodic reload is an hour away), and both draw on one budget in
// Redis; clearing it through A lifts it on B the same way.
func TestE2ERedisProjectLimitAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	opts := gatewayOptions{Upstream: up.URL, Env: redisEnv(srv), PolicyReloadEvery: time.Hour}
	a := MustStartGatewayOpts(t, opts)
	b := MustStartGatewayOpts(t, opts)
	tok := a.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "shared"})
	MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
	if _, err := a.Admin.SetPolicy(context.Background(), testProject, tokenapi.PolicyRequest{RateLimit: 0.001, Burst: 2}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	var last *response
	MustPoll(t, 15*time.Second, "B applying the project limit", func() (bool, string) {
		last = b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		return strings.Contains(last.Header.Get("RateLimit-Policy"), `"project";q=2`), last.String()
	})
	// The budget is one: whatever B admitted, A admits at most the rest.
	admitted := 1
	for range 3 {
		if r := a.MustCall(t, "GET", "/v2/Instance", tok.Token, nil); r.Status == http.StatusOK {
			admitted++
		} else {
			MustBeRefused(t, r, auth.CodeProjectRateLimited)
		}
	}
	if admitted > 2 {
		t.Fatalf("replicas A and B admitted %d requests under a shared project burst of 2", admitted)
	}

	if _, err := a.Admin.ClearPolicy(context.Background(), testProject); err != nil {
		t.Fatalf("ClearPolicy: %v", err)
	}
	MustPoll(t, 15*time.Second, "B lifting the project limit", func() (bool, string) {
		last = b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		return last.Status == http.StatusOK && !strings.Contains(last.Header.Get("RateLimit-Policy"), `"project"`), last.String()
	})
}

// TestE2EPolicyActivation activates tokens deactivated before the
// lifetime policy was set: the CLI's token activate is refused with the
// policy and its fix, self-service activation with an expiry within it
// is accepted, and the token works again.
func TestE2EPolicyActivation(t *testing.T) {
	ctx := context.Background()
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_DATA_DIR="+t.TempDir())
	owner := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "owner"}) // outlives any token it activates
	dormant := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "dormant"})
	if _, err := g.Admin.Update(ctx, dormant.ID, tokenapi.UpdateRequest{Status: ptr("inactive")}); err != nil {
		t.Fatalf("deactivating: %v", err)
	}
	if _, err := g.Admin.SetPolicy(ctx, testProject, tokenapi.PolicyRequest{MaxLifetime: "90d"}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}

	cliEnv := []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=" + g.AdminKey()}
	res := MustRun(t, cliEnv, "token", "activate", dormant.ID)
	if res.code == 0 || !strings.Contains(res.stderr, "lifetime_policy") || !strings.Contains(res.stderr, "maximum lifetime is 90d") {
		t.Fatalf("tswgate token activate of a token without expiry under a 90d policy: %v", res)
	}
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", dormant.Token, nil), auth.CodeTokenInactive)

	self := g.selfService(owner.Token)
	_, err := self.Update(ctx, dormant.ID, tokenapi.UpdateRequest{Status: ptr("active")})
	mustAPIError(t, err, http.StatusUnprocessableEntity, "lifetime_policy", "a token activating a token without expiry")
	tok, err := self.Update(ctx, dormant.ID, tokenapi.UpdateRequest{Status: ptr("active"), ExpiresIn: ptr("24h")})
	if err != nil || tok.Status != "active" {
		t.Fatalf("activating with expires_in 24h = %+v, %v", tok, err)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", dormant.Token, nil))
	if res := MustRun(t, cliEnv, "token", "deactivate", dormant.ID); res.code != 0 {
		t.Fatalf("tswgate token deactivate: %v", res)
	}
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", dormant.Token, nil), auth.CodeTokenInactive)
	if res := MustRun(t, cliEnv, "token", "activate", dormant.ID, "--expires-in", "48h"); res.code != 0 {
		t.Fatalf("tswgate token activate --expires-in 48h under a 90d policy: %v", res)
	}
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", dormant.Token, nil))
}
