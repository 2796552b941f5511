package tokenapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/redisstore"
	"github.com/tswgate/tswgate/internal/redistest"
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

// Activating a token grants it afresh: the lifetime policy holds, on both
// stores, while deactivating is never refused.
func TestPolicyActivation(t *testing.T) {
	t.Run("filestore", func(t *testing.T) {
		testPolicyActivation(t, func(wrap func(auth.ActivityStore) auth.ActivityStore) *fixture {
			return newFixture(t, wrap)
		})
	})
	t.Run("redisstore", func(t *testing.T) {
		c := redistest.Start(t).Client(t)
		n := 0
		testPolicyActivation(t, func(wrap func(auth.ActivityStore) auth.ActivityStore) *fixture {
			n++
			s, err := redisstore.New(redisstore.Options{Client: c, Prefix: fmt.Sprintf("activationtest%d:", n), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return newFixtureOn(t, s, wrap)
		})
	})
}

func testPolicyActivation(t *testing.T, open func(wrap func(auth.ActivityStore) auth.ActivityStore) *fixture) {
	ctx := context.Background()
	race := &racingStore{}
	f := open(func(s auth.ActivityStore) auth.ActivityStore { race.ActivityStore = s; return race })
	// Made before the policy, then deactivated.
	forever := f.create(t, CreateRequest{Name: "forever"})
	long := f.create(t, CreateRequest{Name: "long", ExpiresIn: "2400h"})
	for _, id := range []string{forever.ID, long.ID} {
		if _, err := f.client.Update(ctx, id, UpdateRequest{Status: ptr("inactive")}); err != nil {
			t.Fatalf("deactivating %s: %v", id, err)
		}
	}
	live := f.create(t, CreateRequest{Name: "live"}) // active, no expiry
	if _, err := f.client.SetPolicy(ctx, 42, PolicyRequest{MaxLifetime: "90d", RequireExpiry: true}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}

	// Refused, naming the policy and the fix, and left inactive.
	_, err := f.client.Update(ctx, forever.ID, UpdateRequest{Status: ptr("active")})
	ae := apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	for _, want := range []string{"refuses activating", "no expiry", "expires_at by", `"status":"active"`, "rotate"} {
		if !strings.Contains(ae.Message, want) {
			t.Errorf("refusal message %q does not say %q", ae.Message, want)
		}
	}
	_, err = f.client.Update(ctx, long.ID, UpdateRequest{Status: ptr("active")})
	ae = apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	if !strings.Contains(ae.Message, "exceeds the project's maximum of 90d") {
		t.Errorf("refusal message %q does not name the maximum", ae.Message)
	}
	for _, id := range []string{forever.ID, long.ID} {
		if got, err := f.store.Get(ctx, id); err != nil || got.Status != auth.StatusInactive {
			t.Fatalf("after a refused activation, %s is %+v, %v; want inactive", id, got, err)
		}
	}

	// With an expiry within the policy in the same request, accepted.
	if got, err := f.client.Update(ctx, forever.ID, UpdateRequest{Status: ptr("active"), ExpiresIn: ptr("720h")}); err != nil || got.Status != "active" {
		t.Fatalf("activating with expires_in 720h = %+v, %v", got, err)
	}
	if _, err := f.client.Update(ctx, long.ID, UpdateRequest{Status: ptr("active"), ExpiresIn: ptr("24h")}); err != nil {
		t.Fatalf("activating with expires_in 24h: %v", err)
	}
	_, err = f.client.Update(ctx, long.ID, UpdateRequest{Status: ptr("active"), ExpiresIn: ptr("2400h")})
	apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)

	// An active token that breaks the policy is not granted anything by
	// "status active"; deactivating it is allowed.
	if _, err := f.client.Update(ctx, live.ID, UpdateRequest{Status: ptr("active")}); err != nil {
		t.Fatalf("status active on an active token: %v", err)
	}
	// A concurrent deactivation between the request and its store update
	// makes the request an activation: refused on the current record.
	race.next(func() {
		if _, err := race.ActivityStore.Update(ctx, live.ID, func(tok *auth.Token) error {
			tok.Status = auth.StatusInactive
			return nil
		}); err != nil {
			t.Errorf("concurrent deactivation: %v", err)
		}
	})
	_, err = f.client.Update(ctx, live.ID, UpdateRequest{Status: ptr("active")})
	apiError(t, err, http.StatusUnprocessableEntity, codeLifetimePolicy)
	if got, err := f.store.Get(ctx, live.ID); err != nil || got.Status != auth.StatusInactive {
		t.Fatalf("after a refused activation, %+v, %v; want inactive", got, err)
	}
	if _, err := f.client.Update(ctx, live.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
		t.Fatalf("deactivating a token that breaks the policy: %v", err)
	}
	refused := 0
	page, err := f.client.Audit(ctx, AuditOptions{ProjectID: 42})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		if ev.Action == "token.activate" && ev.Reason == codeLifetimePolicy {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("%d token.activate events refused with %s in the trail, want 3", refused, codeLifetimePolicy)
	}
}

// racingStore runs a change queued by next just before the next Update,
// as another request would.
type racingStore struct {
	auth.ActivityStore
	mu     sync.Mutex
	before func()
}

func (s *racingStore) next(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = fn
}

func (s *racingStore) Update(ctx context.Context, id string, fn func(*auth.Token) error) (*auth.Token, error) {
	s.mu.Lock()
	before := s.before
	s.before = nil
	s.mu.Unlock()
	if before != nil {
		before()
	}
	return s.ActivityStore.Update(ctx, id, fn)
}

// A token created longer than the maximum lifetime ago can meet the
// policy no more: the refusal says so and points to rotation.
func TestActivationRefusalTooOld(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	pol := auth.ProjectPolicy{MaxLifetime: 90 * 24 * time.Hour}
	tok := &auth.Token{ProjectID: 42, Status: auth.StatusActive, CreatedAt: now.Add(-100 * 24 * time.Hour)}
	ref := activationRefusal(pol, tok, now)
	if ref == nil || ref.code != codeLifetimePolicy || ref.status != http.StatusUnprocessableEntity {
		t.Fatalf("activationRefusal = %+v; want a lifetime_policy refusal", ref)
	}
	for _, want := range []string{"no expiry brings it within the policy", "rotate it with an expires_in of at most 90d", "create a new token"} {
		if !strings.Contains(ref.message, want) {
			t.Errorf("message %q does not say %q", ref.message, want)
		}
	}
	tok.ExpiresAt = now.Add(24 * time.Hour)
	tok.CreatedAt = now.Add(-24 * time.Hour)
	if ref := activationRefusal(pol, tok, now); ref != nil {
		t.Errorf("activationRefusal of a token within the policy = %+v; want nil", ref)
	}
}
