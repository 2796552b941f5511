package main

// No token widens itself, tried through the public listener of the built
// binary (the self-service token API under /tswgate/v1/) with the cases
// seen in the wild: a rotated token that lengthened its own life and
// minted an unlimited sibling, a slow token that made a fast one.

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// selfService returns a client of the public listener's token API that
// acts as cred.
func (b *binGateway) selfService(cred string) *tokenapi.Client {
	return &tokenapi.Client{BaseURL: "http://" + b.Public + "/tswgate", AdminKey: cred, HTTP: b.http}
}

// wantRefused fails unless err is the API's refusal with code.
func wantRefused(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae *tokenapi.APIError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func TestSecurityRotatedTokenCannotWiden(t *testing.T) {
	b := startBinGateway(t)
	ctx := context.Background()
	old := b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "ci", ExpiresIn: "720h"})
	rot, err := b.admin.Rotate(ctx, old.ID, tokenapi.RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(rot.Token.Token)
	if rot.Previous.RotatedTo != rot.Token.ID {
		t.Errorf("the old token's rotated_to = %q, want %s", rot.Previous.RotatedTo, rot.Token.ID)
	}
	self := b.selfService(old.Token)
	tenYears := "87600h"
	_, err = self.Update(ctx, old.ID, tokenapi.UpdateRequest{ExpiresIn: &tenYears})
	wantRefused(t, "the rotated token extends its own life", err, "token_rotated")
	_, err = self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "forever"})
	wantRefused(t, "the rotated token mints a token", err, "token_rotated")
	_, err = self.Rotate(ctx, old.ID, tokenapi.RotateRequest{})
	wantRefused(t, "the rotated token rotates itself", err, "token_rotated")
	if _, err := self.Get(ctx, old.ID); err != nil {
		t.Errorf("the rotated token reads itself: %v", err)
	}
	// Its successor expires, so it can neither lengthen its life nor make
	// a token that outlives it.
	next := b.selfService(rot.Token.Token)
	_, err = next.Update(ctx, rot.Token.ID, tokenapi.UpdateRequest{ExpiresIn: &tenYears})
	wantRefused(t, "the successor extends its own life", err, "lifetime_forbidden")
	_, err = next.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "forever"})
	wantRefused(t, "the successor mints a token without expiry", err, "lifetime_forbidden")
	short, err := next.Create(ctx, tokenapi.CreateRequest{Role: "accounting", Name: "short", ExpiresIn: "24h"})
	if err != nil {
		t.Fatalf("the successor mints a shorter-lived token: %v", err)
	}
	rememberSecret(short.Token)
	// And every token the project holds expires no later than the
	// successor.
	toks, err := b.admin.List(ctx, testProject)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Name != "owner" && tk.Name != "acct" && (tk.ExpiresAt == nil || tk.ExpiresAt.After(*rot.Token.ExpiresAt)) {
			t.Errorf("token %s (%s) expires %v, after the successor's %v", tk.ID, tk.Name, tk.ExpiresAt, rot.Token.ExpiresAt)
		}
	}
}

func TestSecuritySlowTokenMakesNoFastOne(t *testing.T) {
	b := startBinGateway(t)
	ctx := context.Background()
	rate, burst := 0.001, 1
	slow := b.mustCreate(t, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "slow", RateLimit: rate, Burst: burst})
	self := b.selfService(slow.Token)
	child, err := self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "fast"})
	if err != nil {
		t.Fatalf("the slow token's first self-service call: %v", err)
	}
	rememberSecret(child.Token)
	if child.RateLimit != rate || child.Burst != burst {
		t.Errorf("the child's limit is %g/s burst %d, want its maker's %g/s burst %d", child.RateLimit, child.Burst, rate, burst)
	}
	// The maker spent its burst on that call: the next is refused.
	_, err = self.Create(ctx, tokenapi.CreateRequest{Role: "owner", Name: "another"})
	wantRefused(t, "the slow token's second self-service call", err, "rate_limited")
	// The child shares its maker's bucket (its lineage), which the
	// create spent: it is refused from its first API call.
	for i, want := range []int{http.StatusTooManyRequests, http.StatusTooManyRequests} {
		if s, code := b.raw(t, rawRequest("GET", "/v2/Invoice", child.Token, nil, nil)); s != want {
			t.Errorf("the child's call %d: %d %s, want %d", i+1, s, code, want)
		}
	}
	// Setting a limit stays the operator's.
	zero := 0.0
	_, err = b.selfService(b.owner.Token).Update(ctx, child.ID, tokenapi.UpdateRequest{RateLimit: &zero})
	wantRefused(t, "an Owner token lifts a limit", err, "limit_forbidden")
}
