package tokenapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

func TestPolicyEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	old := f.create(t, CreateRequest{Name: "forever"}) // made before the policy: no expiry

	res, err := f.client.SetPolicy(ctx, 42, PolicyRequest{MaxLifetime: "90d", RequireExpiry: true, RateLimit: 10})
	if err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	if res.Policy.MaxLifetime != "90d" || !res.Policy.RequireExpiry || res.Policy.RateLimit != 10 || res.Policy.UpdatedAt == nil {
		t.Fatalf("SetPolicy answered %+v", res.Policy)
	}
	if got, err := f.client.Policy(ctx, 42); err != nil || got.MaxLifetime != "90d" {
		t.Fatalf("Policy = %+v, %v", got, err)
	}

	// Creation beyond the policy is refused, naming the limit and the fix.
	_, err = f.client.Create(ctx, CreateRequest{ProjectID: 42, Role: "owner", Name: "long", ExpiresIn: "2400h"})
	ae := apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	if !strings.Contains(ae.Message, "maximum of 90d") || !strings.Contains(ae.Message, "expires_in of at most 90d") {
		t.Errorf("refusal message %q names neither the limit nor the fix", ae.Message)
	}
	_, err = f.client.Create(ctx, CreateRequest{ProjectID: 42, Role: "owner", Name: "none"})
	apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	ok := f.create(t, CreateRequest{Name: "ci", ExpiresIn: "2160h"})

	// An expiry edit beyond it is refused; within it, accepted.
	_, err = f.client.Update(ctx, ok.ID, UpdateRequest{ExpiresIn: ptr("3000h")})
	apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	if _, err := f.client.Update(ctx, ok.ID, UpdateRequest{ExpiresIn: ptr("24h")}); err != nil {
		t.Fatalf("Update within the policy: %v", err)
	}
	// Other edits of a token that breaks the policy still work.
	if _, err := f.client.Update(ctx, old.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
		t.Fatalf("deactivating a violating token: %v", err)
	}

	// Rotation: the successor inherits "no expiry", refused; with expires_in, fine.
	_, err = f.client.Rotate(ctx, old.ID, RotateRequest{})
	apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	v, err := f.client.Violations(ctx, 42)
	if err != nil || len(v.Violations) != 1 || v.Violations[0].Token.ID != old.ID ||
		!strings.Contains(v.Violations[0].Reason, "no expiry") {
		t.Fatalf("Violations = %+v, %v; want the token without expiry", v, err)
	}
	rot, err := f.client.Rotate(ctx, old.ID, RotateRequest{ExpiresIn: "720h"})
	if err != nil {
		t.Fatalf("Rotate with expires_in: %v", err)
	}
	if got := rot.Token.ExpiresAt.Sub(rot.Token.CreatedAt); got != 720*time.Hour {
		t.Errorf("rotated token's lifetime = %v; want 720h", got)
	}
	if v, _ := f.client.Violations(ctx, 42); len(v.Violations) != 0 {
		t.Errorf("after rotating, violations = %+v; want none", v.Violations)
	}

	// Audited, before → after.
	page, err := f.client.Audit(ctx, AuditOptions{ProjectID: 42})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range page.Events {
		if ev.Action == "project.policy.update" && strings.Contains(ev.Detail, "none → max_lifetime 90d") {
			found = true
		}
	}
	if !found {
		t.Errorf("no project.policy.update event with before → after detail in %+v", page.Events)
	}

	if _, err := f.client.ClearPolicy(ctx, 42); err != nil {
		t.Fatalf("ClearPolicy: %v", err)
	}
	f.create(t, CreateRequest{Name: "free again"})
}

func TestPolicyRequestInvalid(t *testing.T) {
	f := newFixture(t, nil)
	for _, body := range []string{`{"max_lifetime":"soon"}`, `{"max_lifetime":"10s"}`, `{"burst":3}`, `{"rate_limit":-1}`} {
		status, e, _ := f.raw(t, http.MethodPut, "/v1/projects/42/policy", body)
		if status != http.StatusBadRequest || len(e.Errors) == 0 {
			t.Errorf("PUT %s = %d %+v; want 400 with problems", body, status, e)
		}
	}
	status, _, _ := f.raw(t, http.MethodPut, "/v1/projects/x/policy", `{}`)
	if status != http.StatusBadRequest {
		t.Errorf("PUT on project x = %d; want 400", status)
	}
}

func TestPolicyStoreDown(t *testing.T) {
	f := newFixture(t, func(s auth.ActivityStore) auth.ActivityStore { return policyDownStore{s} })
	_, err := f.client.Create(context.Background(), CreateRequest{ProjectID: 42, Role: "owner", Name: "x"})
	apiError(t, err, http.StatusServiceUnavailable, "store_unavailable")
}

type policyDownStore struct{ auth.ActivityStore }

func (policyDownStore) ProjectPolicy(context.Context, int64) (auth.ProjectPolicy, error) {
	return auth.ProjectPolicy{}, auth.ErrUnavailable
}
