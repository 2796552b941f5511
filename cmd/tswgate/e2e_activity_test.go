package main

// End-to-end tests of token activity — Owner-token self-service on the
// public listener, usage and last use, the audit trail, list filters and
// paging — each on the embedded store and on two gateways sharing Redis.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

// onBothStores runs body on one gateway with the embedded store (a and b
// are the same) and on two gateways sharing a throwaway Redis.
func onBothStores(t *testing.T, env []string, body func(t *testing.T, a, b *testGateway)) {
	t.Run("embedded", func(t *testing.T) {
		up := MustStartUpstream(t, nil)
		g := MustStartGateway(t, up.URL, env...)
		body(t, g, g)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		up := MustStartUpstream(t, nil)
		a := MustStartGateway(t, up.URL, redisEnv(srv, env...)...)
		b := MustStartGateway(t, up.URL, redisEnv(srv, env...)...)
		body(t, a, b)
	})
}

// selfService is a token API client on g's public listener with cred.
func (g *testGateway) selfService(cred string) *tokenapi.Client {
	return &tokenapi.Client{BaseURL: g.URL + "/tswgate", AdminKey: cred, HTTP: g.HTTP}
}

// mustAPIError checks that err is the API's refusal with status and code.
func mustAPIError(t testing.TB, err error, status int, code, what string) {
	t.Helper()
	ae, ok := err.(*tokenapi.APIError)
	if !ok || ae.Status != status || ae.Code != code {
		t.Fatalf("%s: err = %v, want HTTP %d %s", what, err, status, code)
	}
	if strings.TrimSpace(ae.Message) == "" {
		t.Errorf("%s: refusal without a message", what)
	}
}

// mustAudit reads every audit event of project through g's admin API,
// newest first.
func (g *testGateway) mustAudit(t testing.TB, project int64) []auth.AuditEvent {
	t.Helper()
	var all []auth.AuditEvent
	o := tokenapi.AuditOptions{ProjectID: project, Limit: 3}
	for range 100 {
		page, err := g.Admin.Audit(context.Background(), o)
		if err != nil {
			t.Fatalf("reading the audit trail of project %d: %v", project, err)
		}
		all = append(all, page.Events...)
		if page.NextCursor == "" {
			return all
		}
		o.Cursor = page.NextCursor
	}
	t.Fatal("the audit trail did not end in 100 pages")
	return nil
}

// findEvent returns the first event (newest first) matching all of want's
// set fields.
func findEvent(events []auth.AuditEvent, want auth.AuditEvent) (auth.AuditEvent, bool) {
	for _, ev := range events {
		if (want.Action == "" || ev.Action == want.Action) &&
			(want.ActorKind == "" || ev.ActorKind == want.ActorKind) &&
			(want.Actor == "" || ev.Actor == want.Actor) &&
			(want.TokenID == "" || ev.TokenID == want.TokenID) &&
			(want.Outcome == "" || ev.Outcome == want.Outcome) &&
			(want.Reason == "" || ev.Reason == want.Reason) {
			return ev, true
		}
	}
	return auth.AuditEvent{}, false
}

func mustFindEvent(t testing.TB, events []auth.AuditEvent, want auth.AuditEvent) auth.AuditEvent {
	t.Helper()
	ev, ok := findEvent(events, want)
	if !ok {
		var b strings.Builder
		for _, e := range events {
			fmt.Fprintf(&b, "  %+v\n", e)
		}
		t.Fatalf("no audit event like %+v in:\n%s", want, b.String())
	}
	if ev.Time.IsZero() || ev.ID == "" || ev.ProjectID == 0 && want.ProjectID != 0 {
		t.Errorf("audit event lacks its time, id or project: %+v", ev)
	}
	return ev
}

// TestE2ESelfService checks Owner-token self-service on the public
// listener: list, create and revoke in its own project (effective on every
// replica at once), refused for another project and for an Accounting
// token, and every refusal audited.
func TestE2ESelfService(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		ctx := context.Background()
		owner := a.MustCreateToken(t, testProject, "owner", "owner")
		acct := a.MustCreateToken(t, testProject, "accounting", "books")
		foreign := a.MustCreateToken(t, 43, "owner", "elsewhere")
		self := a.selfService(owner.Token)

		// List: the project defaults to the token's own.
		toks, err := self.ListAll(ctx, tokenapi.ListOptions{})
		if err != nil {
			t.Fatalf("self-service list: %v", err)
		}
		if got := idsOf(toks); !slices.Equal(got, []string{owner.ID, acct.ID}) {
			t.Fatalf("self-service list = %v, want [%s %s]", got, owner.ID, acct.ID)
		}

		// Create (project omitted: the token's), usable on every replica.
		created, err := self.Create(ctx, tokenapi.CreateRequest{Role: "accounting", Name: "self-made"})
		if err != nil {
			t.Fatalf("self-service create: %v", err)
		}
		rememberSecret(created.Token)
		if created.ProjectID != testProject || !auth.ValidCredential(created.Token) {
			t.Fatalf("self-service create gave %+v", created)
		}
		MustBeProxied(t, b.MustCall(t, "GET", "/v2/Invoice", created.Token, nil))

		// Revoke: refused at once on every replica.
		if _, err := self.Revoke(ctx, created.ID); err != nil {
			t.Fatalf("self-service revoke: %v", err)
		}
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Invoice", created.Token, nil), auth.CodeTokenRevoked)
		MustPoll(t, 5*time.Second, "the other replica refusing the revoked token", func() (bool, string) {
			r := b.MustCall(t, "GET", "/v2/Invoice", created.Token, nil)
			return r.Status == http.StatusUnauthorized, r.String()
		})
		MustBeRefused(t, b.MustCall(t, "GET", "/v2/Invoice", created.Token, nil), auth.CodeTokenRevoked)

		// Another project: refused, whatever the endpoint.
		_, err = self.ListPage(ctx, tokenapi.ListOptions{ProjectID: 43})
		mustAPIError(t, err, http.StatusForbidden, "project_forbidden", "listing another project")
		// A token of another project is answered as a missing id (no
		// existence oracle), and recorded in the caller's trail as one
		// (token_not_found); project 43's trail has the attempt
		// (e2e_lifecycle_test.go).
		_, err = self.Revoke(ctx, foreign.ID)
		mustAPIError(t, err, http.StatusNotFound, "token_not_found", "revoking another project's token")
		_, err = self.Create(ctx, tokenapi.CreateRequest{ProjectID: 43, Role: "owner", Name: "intruder"})
		mustAPIError(t, err, http.StatusForbidden, "project_forbidden", "creating in another project")
		_, err = self.Audit(ctx, tokenapi.AuditOptions{ProjectID: 43})
		mustAPIError(t, err, http.StatusForbidden, "project_forbidden", "reading another project's audit trail")
		MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance?ProjectId=43", foreign.Token, nil)) // untouched

		// An Accounting token manages nothing.
		_, err = a.selfService(acct.Token).ListPage(ctx, tokenapi.ListOptions{})
		mustAPIError(t, err, http.StatusForbidden, "role_forbidden", "an Accounting token listing")
		_, err = a.selfService(acct.Token).Revoke(ctx, owner.ID)
		mustAPIError(t, err, http.StatusForbidden, "role_forbidden", "an Accounting token revoking")

		// No admin key, no bad token on the public listener.
		_, err = a.selfService(a.AdminKey()).ListPage(ctx, tokenapi.ListOptions{ProjectID: testProject})
		mustAPIError(t, err, http.StatusUnauthorized, "malformed_token", "an admin key on the public listener")
		_, err = a.selfService(MustForgeCredential(t, owner.ID)).ListPage(ctx, tokenapi.ListOptions{})
		mustAPIError(t, err, http.StatusUnauthorized, "invalid_token", "a wrong secret")

		// The proxy is unchanged beside the self-service API.
		MustBeProxied(t, a.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil))
		MustBeRefused(t, a.MustCall(t, "GET", "/tswgatex/v1/tokens", owner.Token, nil), auth.CodeUnknownRoute)

		// The admin listener takes the Owner token too, scoped alike.
		adminAsOwner := &tokenapi.Client{BaseURL: b.AdminURL, AdminKey: owner.Token, HTTP: b.HTTP}
		if _, err := adminAsOwner.ListPage(ctx, tokenapi.ListOptions{ProjectID: testProject}); err != nil {
			t.Errorf("an Owner token on the admin listener: %v", err)
		}
		_, err = adminAsOwner.ListPage(ctx, tokenapi.ListOptions{ProjectID: 43})
		mustAPIError(t, err, http.StatusForbidden, "project_forbidden", "an Owner token on the admin listener, another project")

		// Everything is in project 42's trail, read by an admin key on
		// either replica and by the Owner token itself.
		events := b.mustAudit(t, testProject)
		byOwner := auth.AuditEvent{ActorKind: auth.ActorToken, Actor: owner.ID}
		for _, want := range []auth.AuditEvent{
			{Action: "token.create", TokenID: created.ID, Outcome: auth.OutcomeOK},
			{Action: "token.revoke", TokenID: created.ID, Outcome: auth.OutcomeOK},
			{Action: "token.list", Outcome: auth.OutcomeRefused, Reason: "project_forbidden"},
			{Action: "token.revoke", TokenID: foreign.ID, Outcome: auth.OutcomeRefused, Reason: "token_not_found"},
			{Action: "token.create", Outcome: auth.OutcomeRefused, Reason: "project_forbidden"},
			{Action: "audit.read", Outcome: auth.OutcomeRefused, Reason: "project_forbidden"},
			{Action: "token.list", Outcome: auth.OutcomeRefused, Reason: "invalid_token"},
		} {
			want.ActorKind, want.Actor = byOwner.ActorKind, byOwner.Actor
			ev := mustFindEvent(t, events, want)
			if ev.Source == "" || ev.ProjectID != testProject {
				t.Errorf("event %+v lacks its source or is not in project %d", ev, testProject)
			}
		}
		mustFindEvent(t, events, auth.AuditEvent{Action: "token.list", ActorKind: auth.ActorToken, Actor: acct.ID,
			Outcome: auth.OutcomeRefused, Reason: "role_forbidden"})
		mustFindEvent(t, events, auth.AuditEvent{Action: "token.revoke", ActorKind: auth.ActorToken, Actor: acct.ID,
			TokenID: owner.ID, Outcome: auth.OutcomeRefused, Reason: "role_forbidden"})
		if _, ok := findEvent(b.mustAudit(t, 43), auth.AuditEvent{Action: "token.create", Outcome: auth.OutcomeRefused}); ok {
			t.Error("a refused attempt on project 43 by project 42's token is in project 43's trail; it belongs to the token's own")
		}
		page, err := self.Audit(ctx, tokenapi.AuditOptions{})
		if err != nil || len(page.Events) == 0 || page.ProjectID != testProject {
			t.Errorf("the Owner token reading its own trail: %+v, %v", page, err)
		}
	})
}

func idsOf(toks []tokenapi.Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.ID
	}
	return out
}

// flushUsage writes every gateway's usage counts to the store.
func flushUsage(t testing.TB, gs ...*testGateway) {
	t.Helper()
	for _, g := range gs {
		if err := g.FlushUsage(context.Background()); err != nil {
			t.Fatalf("flushing usage: %v", err)
		}
	}
}

// TestE2EUsage checks last_used and usage_24h: requests answered by either
// replica are counted by outcome once flushed, including a wrong secret for
// a known id; malformed credentials and unknown ids are not counted.
func TestE2EUsage(t *testing.T) {
	// No periodic flush during the test: the test flushes.
	onBothStores(t, []string{"TSWGATE_USAGE_FLUSH_INTERVAL=5m"}, func(t *testing.T, a, b *testGateway) {
		ctx := context.Background()
		owner := a.MustCreateToken(t, testProject, "owner", "busy")
		acct := a.MustCreateToken(t, testProject, "accounting", "idle")
		limited := a.MustCreateToken(t, testProject, "owner", "limited")
		a.mustUpdate(t, limited.ID, tokenapi.UpdateRequest{RateLimit: ptr(0.001), Burst: ptr(1)})

		before := time.Now().UTC().Add(-time.Second)
		MustBeProxied(t, a.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil))
		MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance?ProjectId=42", owner.Token, nil))
		MustBeProxied(t, a.MustCall(t, "GET", "/v2/Instance", owner.Token, nil))
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance?ProjectId=43", owner.Token, nil), auth.CodeProjectMismatch)
		MustBeRefused(t, b.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, owner.ID), nil), auth.CodeInvalidToken)
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", MustChangeSecretChar(t, owner.Token), nil), auth.CodeMalformedToken)
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, "tsw_"+MustRandomBase62(t, 20)), nil), auth.CodeInvalidToken)
		MustBeProxied(t, a.MustCall(t, "GET", "/v2/Instance", limited.Token, nil))
		MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", limited.Token, nil), auth.CodeRateLimited)
		after := time.Now().UTC().Add(time.Second)

		// Nothing is written per request: before a flush, nothing shows.
		if got, err := a.Admin.Get(ctx, owner.ID); err != nil || got.LastUsed != nil || got.Usage24h != nil {
			t.Errorf("usage before any flush: %+v, %v; want none", got, err)
		}
		flushUsage(t, a, b)

		// The JSON contract, exactly.
		r := MustDo(t, a.HTTP, MustNewRequest(t, "GET", a.AdminURL+"/v1/tokens?project_id=42", a.AdminKey(), nil))
		var list struct {
			Tokens []map[string]json.RawMessage `json:"tokens"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &list) != nil {
			t.Fatalf("list: %s", r)
		}
		byID := map[string]map[string]json.RawMessage{}
		for _, tok := range list.Tokens {
			var id string
			_ = json.Unmarshal(tok["id"], &id)
			byID[id] = tok
		}
		var last string
		if err := json.Unmarshal(byID[owner.ID]["last_used"], &last); err != nil {
			t.Fatalf("last_used of a used token: %s (%v)", byID[owner.ID]["last_used"], err)
		}
		lastT, err := time.Parse(time.RFC3339, last)
		if err != nil || !strings.HasSuffix(last, "Z") || lastT.Before(before) || lastT.After(after) {
			t.Errorf("last_used %q is not an RFC 3339 UTC time between %v and %v", last, before, after)
		}
		var usage struct {
			Allowed     *int64           `json:"allowed"`
			RateLimited *int64           `json:"rate_limited"`
			Refused     map[string]int64 `json:"refused"`
		}
		dec := json.NewDecoder(bytes.NewReader(byID[owner.ID]["usage_24h"]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&usage); err != nil || usage.Allowed == nil || usage.RateLimited == nil {
			t.Fatalf("usage_24h = %s (%v)", byID[owner.ID]["usage_24h"], err)
		}
		wantRefused := map[string]int64{"project_mismatch": 1, "invalid_token": 1}
		if *usage.Allowed != 3 || *usage.RateLimited != 0 || fmt.Sprint(usage.Refused) != fmt.Sprint(wantRefused) {
			t.Errorf("usage_24h of the busy token = %s, want 3 allowed, 0 rate limited, refused %v", byID[owner.ID]["usage_24h"], wantRefused)
		}
		if _, ok := byID[acct.ID]["last_used"]; ok {
			t.Errorf("a token never used has last_used: %s", byID[acct.ID]["last_used"])
		}
		if _, ok := byID[acct.ID]["usage_24h"]; ok {
			t.Errorf("a token never used has usage_24h: %s", byID[acct.ID]["usage_24h"])
		}
		got, err := b.Admin.Get(ctx, limited.ID)
		if err != nil || got.Usage24h == nil || got.Usage24h.Allowed != 1 || got.Usage24h.RateLimited != 1 || got.LastUsed == nil {
			t.Errorf("show of the limited token on the other replica = %+v, %v; want 1 allowed, 1 rate limited", got, err)
		}

		// The CLI shows the same.
		env := []string{"TSWGATE_ADMIN_URL=" + b.AdminURL, "TSWGATE_ADMIN_KEY=" + b.AdminKey()}
		res := MustRun(t, env, "token", "list", "--project", "42")
		if res.code != 0 || !strings.Contains(res.stdout, "LAST USED") || !strings.Contains(res.stdout, "3 ok, 2 refused, 0 limited") {
			t.Errorf("token list:\n%v", res)
		}
		res = MustRun(t, env, "token", "show", owner.ID)
		if res.code != 0 || !strings.Contains(res.stdout, "Last used:") || !strings.Contains(res.stdout, "refused project_mismatch:") {
			t.Errorf("token show:\n%v", res)
		}
	})
}

// TestE2EAuditLifecycle checks the trail of every kind of change made
// through the admin API and the CLI, the admin key's fingerprint as the
// actor, refused admin keys, and token.expire recorded once cluster-wide —
// for an expiry and for the end of a rotation's grace period.
func TestE2EAuditLifecycle(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		ctx := context.Background()
		tok := a.MustCreateToken(t, testProject, "owner", "lifecycle")
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("inactive")})
		b.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("active")})
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{RateLimit: ptr(5.0), Burst: ptr(10)})
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{ExpiresIn: ptr("720h")})
		rot := b.mustRotate(t, tok.ID, "0s")
		if _, err := a.Admin.Revoke(ctx, rot.Token.ID); err != nil {
			t.Fatal(err)
		}
		// A wrong admin key naming project 42 is filed there; one naming
		// no project, under project 0.
		wrong := &tokenapi.Client{BaseURL: a.AdminURL, AdminKey: "wrong-key-0123456789abcdefghijklmnop", HTTP: a.HTTP}
		_, err := wrong.ListPage(ctx, tokenapi.ListOptions{ProjectID: testProject})
		mustAPIError(t, err, http.StatusUnauthorized, "invalid_admin_key", "a wrong admin key")
		_, err = wrong.Get(ctx, tok.ID)
		mustAPIError(t, err, http.StatusUnauthorized, "invalid_admin_key", "a wrong admin key")

		fp := fingerprintOf(a.AdminKey())
		events := b.mustAudit(t, testProject)
		for _, want := range []auth.AuditEvent{
			{Action: "token.create", TokenID: tok.ID},
			{Action: "token.deactivate", TokenID: tok.ID},
			{Action: "token.activate", TokenID: tok.ID},
			{Action: "token.update", TokenID: tok.ID},
			{Action: "token.rotate", TokenID: tok.ID},
			{Action: "token.revoke", TokenID: rot.Token.ID},
		} {
			want.ActorKind, want.Actor, want.Outcome = auth.ActorAdminKey, fp, auth.OutcomeOK
			mustFindEvent(t, events, want)
		}
		if ev := mustFindEvent(t, events, auth.AuditEvent{Action: "token.rotate"}); !strings.Contains(ev.Detail, rot.Token.ID) {
			t.Errorf("the rotation event does not name the new token: %+v", ev)
		}
		if ev := mustFindEvent(t, events, auth.AuditEvent{Action: "token.update"}); !strings.Contains(ev.Detail, "rate_limit") && !strings.Contains(ev.Detail, "expiry") {
			t.Errorf("the update event does not say what changed: %+v", ev)
		}
		for i := 1; i < len(events); i++ {
			if events[i].Time.After(events[i-1].Time) {
				t.Errorf("the trail is not newest first at %d: %v then %v", i, events[i-1].Time, events[i].Time)
			}
		}
		mustFindEvent(t, events, auth.AuditEvent{Action: "token.list", ActorKind: auth.ActorAdminKey, Outcome: auth.OutcomeRefused, Reason: "invalid_admin_key"})
		mustFindEvent(t, b.mustAudit(t, 0), auth.AuditEvent{Action: "token.show", TokenID: tok.ID, Outcome: auth.OutcomeRefused, Reason: "invalid_admin_key"})
		for _, ev := range events {
			if strings.Contains(fmt.Sprint(ev), a.AdminKey()) {
				t.Fatalf("an audit event holds the admin key: %+v", ev)
			}
		}

		// Expiry: a token past its expiry, and the old token of a rotation
		// with a grace period, each get one token.expire, whichever
		// replicas sweep how often.
		expired, _ := a.MustCreateRecord(t, func(t *auth.Token) { t.ExpiresAt = time.Now().Add(-time.Minute) })
		graced := a.MustCreateToken(t, testProject, "owner", "graced")
		rot2 := a.mustRotate(t, graced.ID, "50ms")
		MustPoll(t, 10*time.Second, "the grace period ending and being swept", func() (bool, string) {
			for _, g := range []*testGateway{a, b} {
				if err := g.RecordExpiries(ctx); err != nil {
					t.Fatalf("RecordExpiries: %v", err)
				}
			}
			_, ok := findEvent(a.mustAudit(t, testProject), auth.AuditEvent{Action: "token.expire", TokenID: graced.ID})
			return ok, "no token.expire event for the rotated token yet"
		})
		for _, g := range []*testGateway{b, a, b} {
			if err := g.RecordExpiries(ctx); err != nil {
				t.Fatal(err)
			}
		}
		events = a.mustAudit(t, testProject)
		for _, id := range []string{expired, graced.ID} {
			n := 0
			for _, ev := range events {
				if ev.Action == "token.expire" && ev.TokenID == id {
					n++
					if ev.ActorKind != auth.ActorSystem || ev.Outcome != auth.OutcomeOK {
						t.Errorf("expiry event %+v", ev)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s has %d token.expire events, want exactly 1", id, n)
			}
		}
		if _, ok := findEvent(events, auth.AuditEvent{Action: "token.expire", TokenID: rot2.Token.ID}); ok {
			t.Error("the new token of the rotation got a token.expire event")
		}

		// The CLI reads the same trail.
		env := []string{"TSWGATE_ADMIN_URL=" + b.AdminURL, "TSWGATE_ADMIN_KEY=" + b.AdminKey()}
		res := MustRun(t, env, "audit", "--project", "42", "--limit", "100")
		if res.code != 0 || !strings.Contains(res.stdout, "token.expire") || !strings.Contains(res.stdout, "token.deactivate") ||
			!strings.Contains(res.stdout, "refused (invalid_admin_key)") || !strings.Contains(res.stdout, fp) {
			t.Errorf("tswgate audit:\n%v", res)
		}
		res = MustRun(t, env, "audit", "--project", "42", "--limit", "2", "-o", "json")
		var page struct {
			Events     []auth.AuditEvent `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &page) != nil || len(page.Events) != 2 || page.NextCursor == "" {
			t.Fatalf("tswgate audit -o json:\n%v", res)
		}
		res = MustRun(t, env, "audit", "--project", "42", "--limit", "2", "--cursor", page.NextCursor, "-o", "json")
		var next struct {
			Events []auth.AuditEvent `json:"events"`
		}
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &next) != nil || len(next.Events) != 2 || next.Events[0].ID == page.Events[1].ID {
			t.Errorf("tswgate audit --cursor:\n%v", res)
		}
		if res := MustRun(t, env, "audit"); res.code != 2 || !strings.Contains(res.stderr, "--project is required") {
			t.Errorf("tswgate audit without --project: %v", res)
		}
	})
}

// fingerprintOf is an admin key's audit actor, computed here from the
// documented rule: the first 8 hex digits of its SHA-256.
func fingerprintOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// TestE2EListFilters checks the list's filters and stable cursor paging
// through the API and the CLI.
func TestE2EListFilters(t *testing.T) {
	onBothStores(t, nil, func(t *testing.T, a, b *testGateway) {
		ctx := context.Background()
		var made []tokenapi.Token
		for i, role := range []string{"owner", "accounting", "owner", "owner", "accounting"} {
			made = append(made, a.MustCreateToken(t, testProject, role, fmt.Sprintf("t%d", i)))
		}
		a.mustUpdate(t, made[2].ID, tokenapi.UpdateRequest{Status: ptr("inactive")})

		first, err := b.Admin.ListPage(ctx, tokenapi.ListOptions{ProjectID: testProject, Limit: 2})
		if err != nil || len(first.Tokens) != 2 || first.NextCursor == "" {
			t.Fatalf("first page: %+v, %v", first, err)
		}
		// Between pages: revoke a listed token and an unlisted one, add one.
		for _, id := range []string{made[0].ID, made[3].ID} {
			if _, err := a.Admin.Revoke(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		added := a.MustCreateToken(t, testProject, "owner", "added")
		rest, err := b.Admin.ListAll(ctx, tokenapi.ListOptions{ProjectID: testProject, Limit: 2, Cursor: first.NextCursor})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := idsOf(rest), []string{made[2].ID, made[4].ID, added.ID}; !slices.Equal(got, want) {
			t.Errorf("the pages after the first = %v, want %v (none skipped or repeated)", got, want)
		}

		for _, tc := range []struct {
			o    tokenapi.ListOptions
			want []string
		}{
			{tokenapi.ListOptions{Status: "inactive"}, []string{made[2].ID}},
			{tokenapi.ListOptions{Role: "accounting"}, []string{made[1].ID, made[4].ID}},
			{tokenapi.ListOptions{Status: "active", Role: "owner", Limit: 1}, []string{added.ID}},
		} {
			tc.o.ProjectID = testProject
			got, err := a.Admin.ListAll(ctx, tc.o)
			if err != nil || !slices.Equal(idsOf(got), tc.want) {
				t.Errorf("list %+v = %v, %v; want %v", tc.o, idsOf(got), err, tc.want)
			}
		}
		for _, q := range []string{"status=revoked", "role=admin", "limit=0", "limit=1001", "cursor=nonsense"} {
			r := MustDo(t, a.HTTP, MustNewRequest(t, "GET", a.AdminURL+"/v1/tokens?project_id=42&"+q, a.AdminKey(), nil))
			if r.Status != http.StatusBadRequest || r.Header.Get("X-Tsw-Error-Code") != "invalid_request" {
				t.Errorf("?%s: want 400 invalid_request, got %s", q, r)
			}
		}

		env := []string{"TSWGATE_ADMIN_URL=" + b.AdminURL, "TSWGATE_ADMIN_KEY=" + b.AdminKey()}
		res := MustRun(t, env, "token", "list", "--project", "42", "--role", "accounting", "-o", "json")
		var listed []tokenapi.Token
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &listed) != nil || !slices.Equal(idsOf(listed), []string{made[1].ID, made[4].ID}) {
			t.Errorf("token list --role accounting:\n%v", res)
		}
		res = MustRun(t, env, "token", "list", "--project", "42", "--status", "active", "--limit", "1")
		if res.code != 0 || !strings.Contains(res.stdout, "(more: add --cursor ") || strings.Count(res.stdout, "tsw_") != 1 {
			t.Errorf("token list --limit 1:\n%v", res)
		}
		res = MustRun(t, env, "token", "list", "--project", "42", "--status", "inactive")
		if res.code != 0 || !strings.Contains(res.stdout, auth.DisplayID(made[2].ID)) || strings.Count(res.stdout, "tsw_") != 1 {
			t.Errorf("token list --status inactive:\n%v", res)
		}
	})
}

// TestE2ESelfServiceStoreOutage checks that with Redis down a token the
// gateway cannot verify is told store_unavailable (503), never that it is
// bad; that lists and audit reads fail the same way; and that usage counted
// during the outage is written once Redis is back.
func TestE2ESelfServiceStoreOutage(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv, "TSWGATE_USAGE_FLUSH_INTERVAL=5m", "TSWGATE_STALE_IF_ERROR=0s")...)
	ctx := context.Background()
	owner := g.MustCreateToken(t, testProject, "owner", "outage")
	cached := g.MustCreateToken(t, testProject, "owner", "cached")
	MustAwaitCached(t, g, cached.Token)

	srv.Pause() // a hung server: every call times out
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	for _, c := range []*tokenapi.Client{g.selfService(owner.Token), g.Admin} {
		_, err := c.ListPage(ctx, tokenapi.ListOptions{ProjectID: testProject})
		mustAPIError(t, err, http.StatusServiceUnavailable, "store_unavailable", "listing with Redis down")
		_, err = c.Audit(ctx, tokenapi.AuditOptions{ProjectID: testProject})
		mustAPIError(t, err, http.StatusServiceUnavailable, "store_unavailable", "reading the audit trail with Redis down")
	}
	// Requests served from the cache meanwhile are counted...
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", cached.Token, nil))
	if err := g.FlushUsage(ctx); err == nil {
		t.Fatal("a usage flush with Redis down succeeded")
	}
	// ...and written once Redis is back.
	srv.Resume()
	resumed = true
	MustPoll(t, 10*time.Second, "a usage flush after Redis is back", func() (bool, string) {
		err := g.FlushUsage(ctx)
		return err == nil, fmt.Sprint(err)
	})
	got, err := g.Admin.Get(ctx, cached.ID)
	if err != nil || got.Usage24h == nil || got.Usage24h.Allowed < 2 {
		t.Errorf("usage after the outage = %+v, %v; want the requests made before and during it", got.Usage24h, err)
	}
}

// TestE2ESelfServiceOff checks TSWGATE_SELF_SERVICE=false: /tswgate/ is
// then an unknown route of the proxy, and the admin listener still takes
// the Owner token.
func TestE2ESelfServiceOff(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_SELF_SERVICE=false")
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	MustBeRefused(t, g.MustCall(t, "GET", "/tswgate/v1/tokens", owner.Token, nil), auth.CodeUnknownRoute)
	adminAsOwner := &tokenapi.Client{BaseURL: g.AdminURL, AdminKey: owner.Token, HTTP: g.HTTP}
	if _, err := adminAsOwner.ListPage(context.Background(), tokenapi.ListOptions{}); err != nil {
		t.Errorf("an Owner token on the admin listener: %v", err)
	}
	if up.Hits() != 0 {
		t.Errorf("the upstream received %d requests", up.Hits())
	}
}
