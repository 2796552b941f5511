package tokenapi

// A rotation never revives a token, through the admin API and
// self-service alike.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
)

func TestRotateKeepsInactive(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	owner := f.mint(t, CreateRequest{Name: "owner"})
	for _, c := range []struct {
		name   string
		client *Client
		grace  string
	}{
		{"admin", f.admin, ""},
		{"admin with grace", f.admin, "1h"},
		{"self-service", f.self(owner.Token), ""},
		{"self-service with grace", f.self(owner.Token), "1h"},
	} {
		tok := f.mint(t, CreateRequest{Name: "off", ExpiresIn: "720h"})
		if _, err := f.admin.Update(ctx, tok.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
			t.Fatal(err)
		}
		rot, err := c.client.Rotate(ctx, tok.ID, RotateRequest{Grace: c.grace})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rot.Token.Status != "inactive" || f.stored(t, rot.Token.ID).Status != auth.StatusInactive {
			t.Errorf("%s: successor %s, want inactive like the old token", c.name, rot.Token.Status)
		}
		if !strings.Contains(rot.Message, "inactive") {
			t.Errorf("%s: message %q does not say the new token is inactive", c.name, rot.Message)
		}
		// Its secret is refused until it is activated.
		mustRefuse(t, f.call(t, "GET", "/v1/tokens", rot.Token.Token, ""), http.StatusUnauthorized, "token_inactive")
	}
}

func TestRotateRefusesExpired(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	owner := f.mint(t, CreateRequest{Name: "owner"})
	dead := f.mint(t, CreateRequest{Name: "dead", ExpiresIn: "1h"})
	f.mu.Lock()
	f.skew += 2 * time.Hour
	f.mu.Unlock()
	for _, c := range []struct {
		name   string
		client *Client
		grace  string
	}{
		{"admin", f.admin, ""},
		{"admin with grace", f.admin, "1h"},
		{"self-service", f.self(owner.Token), ""},
		{"self-service with grace", f.self(owner.Token), "1h"},
	} {
		_, err := c.client.Rotate(ctx, dead.ID, RotateRequest{Grace: c.grace, ExpiresIn: "720h"})
		if e := apiError(t, err, http.StatusConflict, "token_expired"); !strings.Contains(e.Message, "create a new token") {
			t.Errorf("%s: message %q does not say to create a new token", c.name, e.Message)
		}
		f.nextMinute()
	}
	if l, err := f.store.List(ctx, 42); err != nil || len(l) != 2 {
		t.Errorf("%d live tokens (%v) after refused rotations, want the 2 minted", len(l), err)
	}
	if got := f.stored(t, dead.ID); got.Revoked() || got.Rotated() {
		t.Errorf("a refused rotation changed the expired token: %+v", got)
	}
	if n := f.refusals(t, 42)["token.rotate token_expired"]; n == 0 {
		t.Error("no token.rotate token_expired refusal in the audit trail")
	}
}

// The way on that the refusals advise: a token that may not activate a
// less limited token rotates it, then activates the successor, which has
// the caller's limit.
func TestRotateThenActivate(t *testing.T) {
	f := newLifeFixture(t, lifeOptions{})
	ctx := context.Background()
	slow := f.mint(t, CreateRequest{Name: "slow", RateLimit: 1, Burst: 2})
	off := f.mint(t, CreateRequest{Name: "unlimited"})
	if _, err := f.admin.Update(ctx, off.ID, UpdateRequest{Status: ptr("inactive")}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.call(t, "PATCH", "/v1/tokens/"+off.ID, slow.Token, `{"status":"active"}`), http.StatusForbidden, "limit_forbidden")
	rot, err := f.self(slow.Token).Rotate(ctx, off.ID, RotateRequest{})
	if err != nil || rot.Token.Status != "inactive" || rot.Token.RateLimit != 1 {
		t.Fatalf("rotation: %+v, %v; want an inactive successor limited like the caller", rot.Token, err)
	}
	if got, err := f.self(slow.Token).Update(ctx, rot.Token.ID, UpdateRequest{Status: ptr("active")}); err != nil || got.Status != "active" {
		t.Fatalf("activating the successor: %+v, %v", got, err)
	}
}
