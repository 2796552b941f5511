package main

// End-to-end tests of the rule that no token widens itself, through the
// public listener's self-service API (/tswgate/v1/…) of real gateways: the
// cases seen on main (a rotated token extending its own life and minting
// a never-expiring sibling; a 0.001/s token minting an unlimited one),
// lifetimes, inherited limits, what the audit trail holds.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
)

// selfCall sends method /tswgate<path> to g's public listener with cred.
func (g *testGateway) selfCall(t testing.TB, method, path, cred, body string) *response {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return g.MustCall(t, method, "/tswgate"+path, cred, b)
}

// mustSelfRefused checks a refusal of the token API: status, code in the
// envelope and in X-Tsw-Error-Code, a message; it returns the message.
func mustSelfRefused(t testing.TB, r *response, status int, code string) string {
	t.Helper()
	var e tokenapi.ErrorResponse
	if err := json.Unmarshal(r.Body, &e); err != nil || r.Status != status || e.Code != code || e.Success {
		t.Fatalf("want HTTP %d %s, got %s", status, code, r)
	}
	if r.Header.Get("X-Tsw-Error-Code") != code || strings.TrimSpace(e.Message) == "" {
		t.Errorf("refusal %s: header %q, message %q", code, r.Header.Get("X-Tsw-Error-Code"), e.Message)
	}
	return e.Message
}

// mustSelfCreate creates a token through the public listener as cred.
func (g *testGateway) mustSelfCreate(t testing.TB, cred string, req tokenapi.CreateRequest) tokenapi.Token {
	t.Helper()
	tok, err := g.selfService(cred).Create(context.Background(), req)
	if err != nil {
		t.Fatalf("self-service create %+v: %v", req, err)
	}
	rememberSecret(tok.Token)
	return tok
}

// mustMint creates a token through g's admin API.
func (g *testGateway) mustMint(t testing.TB, req tokenapi.CreateRequest) tokenapi.Token {
	t.Helper()
	if req.ProjectID == 0 {
		req.ProjectID = testProject
	}
	if req.Name == "" {
		req.Name = "lifecycle"
	}
	tok, err := g.Admin.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("creating %+v: %v", req, err)
	}
	rememberSecret(tok.Token)
	return tok
}

// The case seen on main: after a rotation with a grace period, the old
// token set its own expiry to 2036 and minted a never-expiring Owner
// token. In its grace period it may only read and revoke — on every
// replica, at once.
func TestE2ERotatedTokenCannotWiden(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		ctx := context.Background()
		old := a.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "ci-deploy"})
		sibling := a.mustMint(t, tokenapi.CreateRequest{Role: "accounting", Name: "books"})
		resp, err := a.selfService(old.Token).Rotate(ctx, old.ID, tokenapi.RotateRequest{Grace: "1h"})
		if err != nil {
			t.Fatalf("self-rotation with grace: %v", err)
		}
		rememberSecret(resp.Token.Token)
		next := resp.Token
		if resp.Previous.RotatedTo != next.ID {
			t.Fatalf("previous = %+v, want rotated_to %s", resp.Previous, next.ID)
		}
		before, err := a.Admin.Get(ctx, old.ID)
		if err != nil || before.RotatedTo != next.ID || before.ExpiresAt == nil {
			t.Fatalf("show of the old token: %+v, %v", before, err)
		}
		for _, g := range []*testGateway{a, b} {
			for _, tc := range []struct{ method, path, body string }{
				{"PATCH", "/v1/tokens/" + old.ID, `{"expires_in":"87600h"}`},
				{"PATCH", "/v1/tokens/" + old.ID, `{"expires_at":"2036-01-01T00:00:00Z"}`},
				{"POST", "/v1/tokens", `{"role":"owner","name":"forever"}`},
				{"POST", "/v1/tokens/" + sibling.ID + "/rotate", ``},
				{"POST", "/v1/tokens/" + old.ID + "/rotate", `{"grace":"24h"}`},
				{"PATCH", "/v1/tokens/" + sibling.ID, `{"status":"inactive"}`},
			} {
				msg := mustSelfRefused(t, g.selfCall(t, tc.method, tc.path, old.Token, tc.body), http.StatusForbidden, "token_rotated")
				if !strings.Contains(msg, next.ID) || !strings.Contains(msg, "works until") {
					t.Errorf("%s %s: message %q names neither the successor nor until when it works", tc.method, tc.path, msg)
				}
			}
			// Reading works, and so does the API during the grace period.
			if r := g.selfCall(t, "GET", "/v1/tokens/"+old.ID, old.Token, ""); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"rotated_to": "`+next.ID+`"`) {
				t.Errorf("show by the rotated token: %s", r)
			}
			if r := g.selfCall(t, "GET", "/v1/audit", old.Token, ""); r.Status != http.StatusOK {
				t.Errorf("audit read by the rotated token: %s", r)
			}
			MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance?ProjectId=42", old.Token, nil))
		}
		after, err := a.Admin.Get(ctx, old.ID)
		if err != nil || !after.ExpiresAt.Equal(*before.ExpiresAt) {
			t.Errorf("the old token's expiry moved: %v -> %v (%v)", before.ExpiresAt, after.ExpiresAt, err)
		}
		if toks, err := a.Admin.List(ctx, testProject); err != nil || len(toks) != 3 {
			t.Errorf("project %d has %d live tokens (%v), want 3: the rotated token made some", testProject, len(toks), err)
		}
		mustFindEvent(t, a.mustAudit(t, testProject), auth.AuditEvent{Action: "token.update", ActorKind: auth.ActorToken,
			Actor: old.ID, TokenID: old.ID, Outcome: auth.OutcomeRefused, Reason: "token_rotated"})
		mustFindEvent(t, a.mustAudit(t, testProject), auth.AuditEvent{Action: "token.create", ActorKind: auth.ActorToken,
			Actor: old.ID, Outcome: auth.OutcomeRefused, Reason: "token_rotated"})
		// Revoking is still allowed; the successor is not bound.
		if r := b.selfCall(t, "DELETE", "/v1/tokens/"+sibling.ID, old.Token, ""); r.Status != http.StatusOK {
			t.Errorf("revoke by the rotated token: %s", r)
		}
		b.mustSelfCreate(t, next.Token, tokenapi.CreateRequest{Role: "accounting", Name: "by the successor"})
	})
}

// A token with an expiry cannot create a longer-lived or never-expiring
// token, lengthen its own or another's life, or rotate into a successor
// that outlives it.
func TestE2ELifetimeNeverOutlivesCaller(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	ctx := context.Background()
	caller := g.mustMint(t, tokenapi.CreateRequest{Role: "owner", ExpiresIn: "1h"})
	end := *caller.ExpiresAt
	latest := end.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	for _, body := range []string{
		`{"role":"owner","name":"forever"}`,
		`{"role":"owner","name":"ten years","expires_in":"87600h"}`,
		`{"role":"accounting","name":"later","expires_at":"2036-01-01T00:00:00Z"}`,
	} {
		msg := mustSelfRefused(t, g.selfCall(t, "POST", "/v1/tokens", caller.Token, body), http.StatusForbidden, "lifetime_forbidden")
		if !strings.Contains(msg, latest) {
			t.Errorf("message %q does not name the latest allowed time %s", msg, latest)
		}
	}
	short := g.mustSelfCreate(t, caller.Token, tokenapi.CreateRequest{Role: "owner", Name: "short", ExpiresIn: "30m"})
	same := g.mustSelfCreate(t, caller.Token, tokenapi.CreateRequest{Role: "owner", Name: "same", ExpiresAt: &end})
	if !same.ExpiresAt.Equal(end) {
		t.Errorf("a token created to end with its creator ends at %v, want %v", same.ExpiresAt, end)
	}
	// Updates bring expiries forward only.
	for _, tc := range []struct{ id, body string }{
		{caller.ID, `{"expires_in":"87600h"}`},
		{short.ID, `{"expires_in":"45m"}`},
	} {
		mustSelfRefused(t, g.selfCall(t, "PATCH", "/v1/tokens/"+tc.id, caller.Token, tc.body), http.StatusForbidden, "lifetime_forbidden")
	}
	if r := g.selfCall(t, "PATCH", "/v1/tokens/"+short.ID, caller.Token, `{"expires_in":"10m"}`); r.Status != http.StatusOK {
		t.Errorf("bringing an expiry forward: %s", r)
	}
	// Activating a token that would outlive the caller is refused.
	forever := g.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "forever"})
	g.mustUpdate(t, forever.ID, tokenapi.UpdateRequest{Status: ptr("inactive")})
	mustSelfRefused(t, g.selfCall(t, "PATCH", "/v1/tokens/"+forever.ID, caller.Token, `{"status":"active"}`), http.StatusForbidden, "lifetime_forbidden")
	// A rotation's successor ends at the latest with the token asking.
	long := g.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "long", ExpiresIn: "720h"})
	resp, err := g.selfService(caller.Token).Rotate(ctx, long.ID, tokenapi.RotateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(resp.Token.Token)
	if e := resp.Token.ExpiresAt; e == nil || !e.Equal(end) {
		t.Errorf("successor of a 720h token rotated by a token ending at %v expires at %v", end, e)
	}
	resp, err = g.selfService(caller.Token).Rotate(ctx, caller.ID, tokenapi.RotateRequest{Grace: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(resp.Token.Token)
	if e := resp.Token.ExpiresAt; e == nil || e.After(end) {
		t.Errorf("self-rotation gave a successor expiring at %v, after %v", e, end)
	}
	if e := resp.Previous.ExpiresAt; e == nil || !e.Equal(end) {
		t.Errorf("self-rotation with 24h grace moved the old token's expiry to %v", e)
	}
	mustFindEvent(t, g.mustAudit(t, testProject), auth.AuditEvent{Action: "token.create", Actor: caller.ID,
		Outcome: auth.OutcomeRefused, Reason: "lifetime_forbidden"})
}

// A token limited by the operator to 0.001/s cannot create an unlimited
// sibling: the child inherits the limit and shares its maker's bucket, and
// the self-service calls count against it (the second gets 429), on every
// replica.
func TestE2EInheritedLimitAndSelfServiceRateLimit(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		slow := a.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "slow", RateLimit: 0.001})
		child := a.mustSelfCreate(t, slow.Token, tokenapi.CreateRequest{Role: "owner", Name: "child"})
		if child.RateLimit != 0.001 || child.Burst != 1 {
			t.Fatalf("the child of a 0.001/s token: rate_limit %g, burst %d", child.RateLimit, child.Burst)
		}
		r := b.selfCall(t, "POST", "/v1/tokens", slow.Token, `{"role":"owner","name":"second"}`)
		mustSelfRefused(t, r, http.StatusTooManyRequests, "rate_limited")
		if n, err := parseSeconds(r.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
		}
		// The proxy shares the budget.
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance?ProjectId=42", slow.Token, nil), auth.CodeRateLimited)
		// The child shares its maker's bucket (its lineage), which the
		// create spent: 429 at once — self-service or API.
		msg := mustSelfRefused(t, b.selfCall(t, "GET", "/v1/tokens/"+child.ID, child.Token, ""), http.StatusTooManyRequests, "rate_limited")
		if !strings.Contains(msg, "lineage") {
			t.Errorf("the child's refusal does not name its lineage: %q", msg)
		}
		mustSelfRefused(t, a.selfCall(t, "GET", "/v1/tokens", child.Token, ""), http.StatusTooManyRequests, "rate_limited")
		MustBeRefused(t, b.MustCall(t, "GET", "/v2/Instance?ProjectId=42", child.Token, nil), auth.CodeRateLimited)
		// Limits stay the operator's.
		mustSelfRefused(t, a.selfCall(t, "PATCH", "/v1/tokens/"+child.ID, child.Token, `{"rate_limit":0}`), http.StatusTooManyRequests, "rate_limited")
		mustFindEvent(t, a.mustAudit(t, testProject), auth.AuditEvent{Action: "token.create", Actor: slow.ID,
			Outcome: auth.OutcomeRefused, Reason: "rate_limited"})
	})
}

// A credential pasted where the id goes never reaches the audit trail,
// the log or an answer.
func TestE2EAuditNeverHoldsCredential(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	books := g.mustMint(t, tokenapi.CreateRequest{Role: "accounting", Name: "books"})
	owner := g.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "owner"})
	mustSelfRefused(t, g.selfCall(t, "GET", "/v1/tokens/"+books.Token, books.Token, ""), http.StatusForbidden, "role_forbidden")
	mustSelfRefused(t, g.selfCall(t, "DELETE", "/v1/tokens/"+owner.Token, books.Token, ""), http.StatusForbidden, "role_forbidden")
	mustSelfRefused(t, g.selfCall(t, "GET", "/v1/tokens/"+owner.Token, owner.Token, ""), http.StatusBadRequest, "invalid_request")
	mustSelfRefused(t, g.selfCall(t, "PATCH", "/v1/tokens/"+owner.Token, owner.Token, `{"status":"inactive"}`), http.StatusBadRequest, "invalid_request")
	mustSelfRefused(t, g.selfCall(t, "GET", "/v1/tokens/"+owner.Token, MustForgeCredential(t, owner.ID), ""), http.StatusUnauthorized, "invalid_token")
	events := g.mustAudit(t, testProject)
	mustFindEvent(t, events, auth.AuditEvent{Action: "token.show", Actor: books.ID, Outcome: auth.OutcomeRefused, Reason: "role_forbidden"})
	data, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	for _, cred := range []string{books.Token, owner.Token} {
		for _, where := range []string{string(data), g.Logs.String()} {
			if strings.Contains(where, secretOf(cred)) {
				t.Fatalf("a secret reached the trail or the log:\n%s", where)
			}
		}
	}
	for _, ev := range events {
		if ev.TokenID != "" && !auth.ValidID(ev.TokenID) {
			t.Errorf("event recorded with token_id %q", ev.TokenID)
		}
	}
}

// An Owner token asking for another project's token id and for an unknown
// one gets the same answer and leaves the same trail in its own project;
// the attempt on the existing one is in the other project's trail.
func TestE2EUnknownAndForeignTrailsIdentical(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		o1 := a.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "one"})
		o2 := a.mustMint(t, tokenapi.CreateRequest{Role: "owner", Name: "two"})
		foreign := a.mustMint(t, tokenapi.CreateRequest{ProjectID: 43, Role: "owner", Name: "elsewhere"})
		unknown := "tsw_" + MustRandomBase62(t, 20)
		rf := a.selfCall(t, "GET", "/v1/tokens/"+foreign.ID, o1.Token, "")
		ru := b.selfCall(t, "GET", "/v1/tokens/"+unknown, o2.Token, "")
		mustSelfRefused(t, rf, http.StatusNotFound, "token_not_found")
		if rf.Status != ru.Status || string(rf.Body) != string(ru.Body) {
			t.Errorf("answers differ:\nforeign %s\nunknown %s", rf, ru)
		}
		// Each once more, swapped, within the minute: sampled alike.
		a.selfCall(t, "GET", "/v1/tokens/"+unknown, o1.Token, "")
		b.selfCall(t, "GET", "/v1/tokens/"+foreign.ID, o2.Token, "")
		events := a.mustAudit(t, testProject)
		ef := mustFindEvent(t, events, auth.AuditEvent{Action: "token.show", Actor: o1.ID, Outcome: auth.OutcomeRefused})
		eu := mustFindEvent(t, events, auth.AuditEvent{Action: "token.show", Actor: o2.ID, Outcome: auth.OutcomeRefused})
		if ef.TokenID != foreign.ID || eu.TokenID != unknown {
			t.Fatalf("recorded %s and %s, want the first id each token asked for", ef.TokenID, eu.TokenID)
		}
		shape := func(ev auth.AuditEvent) auth.AuditEvent {
			ev.ID, ev.Time, ev.Actor, ev.TokenID, ev.Source = "", time.Time{}, "", "", ""
			return ev
		}
		if shape(ef) != shape(eu) || ef.Reason != "token_not_found" {
			t.Errorf("the caller's trail tells them apart:\nforeign %+v\nunknown %+v", ef, eu)
		}
		n := 0
		for _, ev := range events {
			if ev.Action == "token.show" && (ev.Actor == o1.ID || ev.Actor == o2.ID) {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d token.show events, want 2 (one per token and minute, whichever id)", n)
		}
		// The other project's trail has the attempt, for its owner.
		MustPoll(t, 5*time.Second, "project 43's trail recording the attempt", func() (bool, string) {
			_, ok := findEvent(a.mustAudit(t, 43), auth.AuditEvent{Action: "token.show", Actor: o1.ID,
				TokenID: foreign.ID, Outcome: auth.OutcomeRefused, Reason: "project_forbidden"})
			return ok, "not yet"
		})
		if _, ok := findEvent(a.mustAudit(t, 43), auth.AuditEvent{Actor: o2.ID, TokenID: unknown}); ok {
			t.Error("the unknown id is in project 43's trail")
		}
	})
}
