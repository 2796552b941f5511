package main

// End-to-end tests of the changes made to a token after its creation —
// deactivate/activate, rotation, the per-token rate limit — through the
// admin API and the CLI, on the embedded store and across two gateways
// sharing Redis.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

func ptr[T any](v T) *T { return &v }

// mustUpdate changes a token through g's admin API.
func (g *testGateway) mustUpdate(t testing.TB, id string, req tokenapi.UpdateRequest) tokenapi.Token {
	t.Helper()
	tok, err := g.Admin.Update(context.Background(), id, req)
	if err != nil {
		t.Fatalf("updating %s: %v", id, err)
	}
	return tok
}

// mustRotate rotates a token through g's admin API and remembers the new
// secret for the hygiene check.
func (g *testGateway) mustRotate(t testing.TB, id, grace string) tokenapi.RotateResponse {
	t.Helper()
	resp, err := g.Admin.Rotate(context.Background(), id, tokenapi.RotateRequest{Grace: grace})
	if err != nil {
		t.Fatalf("rotating %s: %v", id, err)
	}
	if !auth.ValidCredential(resp.Token.Token) || !strings.HasPrefix(resp.Token.Token, resp.Token.ID+":") {
		t.Fatalf("rotation gave %q (id %q), not a valid credential", resp.Token.Token, resp.Token.ID)
	}
	rememberSecret(resp.Token.Token)
	return resp
}

// mustBeLimitedProxied checks a success of a token limited to burst 1
// whose one request is spent.
func mustBeLimitedProxied(t testing.TB, r *response) {
	t.Helper()
	MustBeProxied(t, r)
	if r.Header.Get("RateLimit-Limit") != "1" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Limit/Remaining = %q/%q, want 1/0", r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"))
	}
}

// mustBeRateLimited checks a 429 with its RateLimit-* headers.
func mustBeRateLimited(t testing.TB, r *response) {
	t.Helper()
	MustBeRefused(t, r, auth.CodeRateLimited)
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "RateLimit"} {
		if r.Header.Get(h) == "" {
			t.Errorf("429 lacks %s", h)
		}
	}
	if r.Header.Get("RateLimit-Limit") != "1" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 RateLimit-Limit/Remaining = %q/%q, want 1/0", r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"))
	}
}

// mustBeUnlimited checks successes without any rate limit.
func mustBeUnlimited(t testing.TB, g *testGateway, cred string) {
	t.Helper()
	for range 3 {
		r := g.MustCall(t, "GET", "/v2/Instance", cred, nil)
		MustBeProxied(t, r)
		if v := r.Header.Get("RateLimit-Limit"); v != "" {
			t.Fatalf("an unlimited token got RateLimit-Limit %q", v)
		}
	}
}

// TestE2EUpdateEmbedded changes tokens through the admin API of a gateway
// on the embedded store: each change applies on the next request, as the
// API drops the gateway's cached copy before answering.
func TestE2EUpdateEmbedded(t *testing.T) {
	up := MustStartUpstream(t, nil)
	// No TSWGATE_RATE_*: both roles are unlimited.
	g := MustStartGateway(t, up.URL)
	if g.Config().RateOwner != 0 || g.Config().RateAccounting != 0 {
		t.Fatalf("role rate limits %v/%v, want none", g.Config().RateOwner, g.Config().RateAccounting)
	}
	call := func(cred string) *response { return g.MustCall(t, "GET", "/v2/Instance", cred, nil) }

	t.Run("deactivate and activate", func(t *testing.T) {
		tok := g.MustCreateToken(t, testProject, "owner", "toggled")
		MustAwaitCached(t, g, tok.Token)
		if got := g.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("inactive")}); got.Status != "inactive" {
			t.Fatalf("deactivated token shows status %q", got.Status)
		}
		before := up.Hits()
		MustBeRefused(t, call(tok.Token), auth.CodeTokenInactive)
		if up.Hits() != before {
			t.Error("the upstream received a request of a deactivated token")
		}
		if got := g.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("active")}); got.Status != "active" {
			t.Fatalf("activated token shows status %q", got.Status)
		}
		MustBeProxied(t, call(tok.Token))
	})

	t.Run("rotate, no grace", func(t *testing.T) {
		old := g.MustCreateToken(t, testProject, "owner", "rotated")
		MustAwaitCached(t, g, old.Token)
		resp := g.mustRotate(t, old.ID, "0s")
		if resp.Previous.Status != "revoked" || resp.Token.Name != "rotated" || resp.Token.Role != "owner" {
			t.Fatalf("rotation: new %+v, previous %+v", resp.Token, resp.Previous)
		}
		MustBeRefused(t, call(old.Token), auth.CodeTokenRevoked)
		MustBeProxied(t, call(resp.Token.Token))
	})

	t.Run("rotate, grace 1s", func(t *testing.T) {
		old := g.MustCreateToken(t, testProject, "owner", "graceful")
		MustAwaitCached(t, g, old.Token)
		resp := g.mustRotate(t, old.ID, "1s")
		if resp.Previous.ExpiresAt == nil || resp.Previous.Status != "active" {
			t.Fatalf("previous after a 1s grace: %+v", resp.Previous)
		}
		until := *resp.Previous.ExpiresAt
		// Right after the rotation the old token still works. (The gateway
		// decides between sent and received: both before until means it
		// decided within the grace period.)
		sent := time.Now()
		r := call(old.Token)
		if received := time.Now(); received.Before(until) {
			MustBeProxied(t, r)
		} else {
			t.Logf("the call took from %v to %v, past the grace period ending %v: not checking it", sent, received, until)
		}
		MustBeProxied(t, call(resp.Token.Token))
		var last *response
		took := MustPoll(t, 5*time.Second, "the old token expiring after its grace period", func() (bool, string) {
			last = call(old.Token)
			return last.Status == http.StatusUnauthorized, last.String()
		})
		MustBeRefused(t, last, auth.CodeTokenExpired)
		if now := time.Now(); now.Before(until) {
			t.Errorf("the old token was refused at %v, before the end of its grace period %v", now, until)
		}
		t.Logf("the old token was refused %v after the rotation", took)
		MustBeProxied(t, call(resp.Token.Token))
	})

	t.Run("limit", func(t *testing.T) {
		tok := g.MustCreateToken(t, testProject, "owner", "limited")
		mustBeUnlimited(t, g, tok.Token)
		got := g.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{RateLimit: ptr(1.0), Burst: ptr(1)})
		if got.RateLimit != 1 || got.Burst != 1 {
			t.Fatalf("limited token shows rate %v burst %d", got.RateLimit, got.Burst)
		}
		mustBeLimitedProxied(t, call(tok.Token))
		before := up.Hits()
		mustBeRateLimited(t, call(tok.Token))
		if up.Hits() != before {
			t.Error("the upstream received a rate-limited request")
		}
		// Another token of the same role stays unlimited.
		other := g.MustCreateToken(t, testProject, "owner", "unlimited")
		mustBeUnlimited(t, g, other.Token)

		if got := g.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{RateLimit: ptr(0.0)}); got.RateLimit != 0 || got.Burst != 0 {
			t.Fatalf("cleared token shows rate %v burst %d", got.RateLimit, got.Burst)
		}
		mustBeUnlimited(t, g, tok.Token)
	})
}

// MustAwaitCachedAs calls the gateway with cred until a call is answered
// from its token cache with a response accept takes.
func MustAwaitCachedAs(t testing.TB, g *testGateway, cred, what string, accept func(*response) bool) {
	t.Helper()
	const hits = `tswgate_cache_lookups_total{result="hit"}`
	MustPoll(t, 5*time.Second, what+" from the cache", func() (bool, string) {
		before := counterValue(string(g.MustGet(t, g.MetricsURL+"/metrics").Body), hits)
		r := g.MustCall(t, "GET", "/v2/Instance", cred, nil)
		if !accept(r) {
			return false, r.String()
		}
		after := counterValue(string(g.MustGet(t, g.MetricsURL+"/metrics").Body), hits)
		return after > before, fmt.Sprintf("cache hits %v -> %v", before, after)
	})
}

// TestE2ERedisUpdateAcrossReplicas makes every kind of change through
// gateway A and checks that gateway B, which has the token cached, applies
// it within 5 s — half its cache TTL, so it is the announcement on Redis
// that makes B drop its copy, not the entry's expiry.
func TestE2ERedisUpdateAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, redisEnv(srv)...)
	b := MustStartGateway(t, up.URL, redisEnv(srv)...)
	const bound = 5 * time.Second
	if b.Config().CacheTTL <= bound {
		t.Fatalf("cache TTL %v: the test needs it above the poll bound %v", b.Config().CacheTTL, bound)
	}
	callA := func(cred string) *response { return a.MustCall(t, "GET", "/v2/Instance", cred, nil) }
	callB := func(cred string) *response { return b.MustCall(t, "GET", "/v2/Instance", cred, nil) }
	status := func(code int) func(*response) bool { return func(r *response) bool { return r.Status == code } }

	tok := a.MustCreateToken(t, testProject, "owner", "replicated")
	announced := 1.0 // changes B must have heard of: the creation

	// step warms B's cache with what B answers now (after every earlier
	// announcement, so that no late one drops the entry), makes a change
	// through A, and waits (bounded) until B answers as done says.
	step := func(name string, warm func(*response) bool, change func() float64, done func(*response) bool, cred string) *response {
		t.Helper()
		MustAwaitInvalidations(t, b, announced)
		MustAwaitCachedAs(t, b, cred, "B answering "+name+"'s starting point", warm)
		announced += change()
		var last *response
		took := MustPoll(t, bound, "B applying "+name+" made through A", func() (bool, string) {
			last = callB(cred)
			return done(last), last.String()
		})
		MustAwaitInvalidations(t, b, announced) // B heard it on Redis
		t.Logf("%s: B applied it %v after A answered", name, took)
		return last
	}

	last := step("deactivate", status(http.StatusOK), func() float64 {
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("inactive")})
		MustBeRefused(t, callA(tok.Token), auth.CodeTokenInactive) // A at once
		return 1
	}, status(http.StatusUnauthorized), tok.Token)
	MustBeRefused(t, last, auth.CodeTokenInactive)

	last = step("activate", status(http.StatusUnauthorized), func() float64 {
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{Status: ptr("active")})
		MustBeProxied(t, callA(tok.Token))
		return 1
	}, status(http.StatusOK), tok.Token)
	MustBeProxied(t, last)

	last = step("limit", status(http.StatusOK), func() float64 {
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{RateLimit: ptr(1.0), Burst: ptr(1)})
		mustBeLimitedProxied(t, callA(tok.Token))
		mustBeRateLimited(t, callA(tok.Token))
		return 1
	}, status(http.StatusTooManyRequests), tok.Token)
	mustBeRateLimited(t, last)

	limitedOrNot := func(r *response) bool { return r.Status == http.StatusOK || r.Status == http.StatusTooManyRequests }
	last = step("clearing the limit", limitedOrNot, func() float64 {
		a.mustUpdate(t, tok.ID, tokenapi.UpdateRequest{RateLimit: ptr(0.0)})
		mustBeUnlimited(t, a, tok.Token)
		return 1
	}, func(r *response) bool { return r.Status == http.StatusOK && r.Header.Get("RateLimit-Limit") == "" }, tok.Token)
	MustBeProxied(t, last)
	mustBeUnlimited(t, b, tok.Token)

	var next tokenapi.Token
	last = step("rotate with no grace", status(http.StatusOK), func() float64 {
		resp := a.mustRotate(t, tok.ID, "0s")
		next = resp.Token
		MustBeRefused(t, callA(tok.Token), auth.CodeTokenRevoked)
		MustBeProxied(t, callA(next.Token))
		return 2 // the new token's creation, the old one's revocation
	}, status(http.StatusUnauthorized), tok.Token)
	MustBeRefused(t, last, auth.CodeTokenRevoked)
	MustBeProxied(t, callB(next.Token))
}

// TestCLITokenUpdateCommands runs deactivate, activate, limit and rotate
// through the command line against a running gateway.
func TestCLITokenUpdateCommands(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	env := []string{"TSWGATE_ADMIN_URL=" + g.AdminURL, "TSWGATE_ADMIN_KEY=" + g.AdminKey()}
	tok := g.MustCreateToken(t, testProject, "owner", "cli-changed")
	call := func(cred string) *response { return g.MustCall(t, "GET", "/v2/Instance", cred, nil) }
	mustRun := func(args ...string) cliResult {
		t.Helper()
		res := MustRun(t, env, args...)
		if res.code != 0 {
			t.Fatalf("tswgate %s: %v", strings.Join(args, " "), res)
		}
		return res
	}
	mustJSON := func(res cliResult, v any) { // v must be zero: absent fields are left alone
		t.Helper()
		if err := json.Unmarshal([]byte(res.stdout), v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, res.stdout)
		}
	}
	// deactivate / activate
	var view tokenapi.Token
	mustJSON(mustRun("token", "deactivate", tok.ID, "-o", "json"), &view)
	if view.ID != tok.ID || view.Status != "inactive" {
		t.Errorf("token deactivate -o json = %+v", view)
	}
	MustBeRefused(t, call(tok.Token), auth.CodeTokenInactive)
	if res := mustRun("token", "deactivate", tok.ID); !strings.Contains(res.stdout, "Deactivated token "+tok.ID) {
		t.Errorf("token deactivate: %v", res)
	}
	if res := mustRun("token", "activate", tok.ID); !strings.Contains(res.stdout, "Activated token "+tok.ID) {
		t.Errorf("token activate: %v", res)
	}
	MustBeProxied(t, call(tok.Token))
	view = tokenapi.Token{}
	mustJSON(mustRun("token", "activate", tok.ID, "-o", "json"), &view)
	if view.Status != "active" {
		t.Errorf("token activate -o json = %+v", view)
	}

	// limit
	view = tokenapi.Token{}
	mustJSON(mustRun("token", "limit", tok.ID, "--rate", "1", "--burst", "1", "-o", "json"), &view)
	if view.RateLimit != 1 || view.Burst != 1 {
		t.Errorf("token limit -o json = %+v", view)
	}
	mustBeLimitedProxied(t, call(tok.Token))
	mustBeRateLimited(t, call(tok.Token))
	if res := mustRun("token", "show", tok.ID); !strings.Contains(res.stdout, "1 requests per second, bursts of 1") {
		t.Errorf("token show of a limited token: %v", res)
	}
	if res := mustRun("token", "limit", tok.ID, "--rate", "0.5"); !strings.Contains(res.stdout, "0.5 requests per second, bursts of 1 (the default") {
		t.Errorf("token limit --rate 0.5: %v", res)
	}
	res := mustRun("token", "limit", tok.ID, "--rate", "0")
	if !strings.Contains(res.stdout, "no rate limit of its own") {
		t.Errorf("token limit --rate 0: %v", res)
	}
	mustBeUnlimited(t, g, tok.Token)
	if res := mustRun("token", "show", tok.ID, "-o", "json"); strings.Contains(res.stdout, "rate_limit") || strings.Contains(res.stdout, "burst") {
		t.Errorf("token show -o json after clearing the limit:\n%s", res.stdout)
	}
	res = MustRun(t, env, "token", "limit", tok.ID, "--rate", "0", "--burst", "5")
	if res.code != 1 || !strings.Contains(res.stderr, "burst") {
		t.Errorf("token limit --rate 0 --burst 5: %v, want exit 1 about the burst", res)
	}

	// rotate with a grace period, as a CI job would:
	//   NEW=$(tswgate token rotate "$OLD_ID" --grace 1h -o json | jq -r .token)
	before := time.Now()
	res = mustRun("token", "rotate", tok.ID, "--grace", "1h", "-o", "json")
	var rotated struct {
		tokenapi.Token
		Previous tokenapi.Token `json:"previous"`
	}
	mustJSON(res, &rotated)
	var jq struct {
		Token string `json:"token"`
	}
	mustJSON(res, &jq)
	rememberSecret(jq.Token)
	if !auth.ValidCredential(jq.Token) || jq.Token != rotated.Token.Token || rotated.ID == tok.ID ||
		rotated.Name != "cli-changed" || rotated.Role != "owner" {
		t.Fatalf("token rotate -o json:\n%s", res.stdout)
	}
	if p := rotated.Previous; p.ID != tok.ID || p.Status != "active" || p.ExpiresAt == nil ||
		p.ExpiresAt.Before(before.Add(time.Hour-time.Second)) || p.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("token rotate -o json: previous = %+v, want %s expiring in 1h", p, tok.ID)
	}
	MustBeProxied(t, call(jq.Token))
	MustBeProxied(t, call(tok.Token)) // within its grace period

	// rotate the new one with no grace, table output
	res = mustRun("token", "rotate", rotated.ID)
	cred := regexp.MustCompile(auth.CredentialPattern).FindString(res.stdout)
	rememberSecret(cred)
	if cred == "" || strings.HasPrefix(cred, rotated.ID) || !strings.Contains(res.stdout, "The old token "+rotated.ID+" is revoked") {
		t.Fatalf("token rotate (table): %v", res)
	}
	MustBeRefused(t, call(jq.Token), auth.CodeTokenRevoked)
	MustBeProxied(t, call(cred))
	// The first token, still in its grace period: the table says until when.
	res = mustRun("token", "rotate", tok.ID, "--grace", "30m")
	if m := regexp.MustCompile(`The old token ` + tok.ID + ` keeps working until (\S+) \(in (\S+)\)`).FindStringSubmatch(res.stdout); m == nil {
		t.Errorf("token rotate --grace 30m (table) does not say until when the old token works: %v", res)
	} else if until, err := time.Parse(time.RFC3339, m[1]); err != nil || time.Until(until) > 30*time.Minute || time.Until(until) < 29*time.Minute {
		t.Errorf("token rotate --grace 30m: old token until %q (%v)", m[1], err)
	}
	rememberSecret(regexp.MustCompile(auth.CredentialPattern).FindString(res.stdout))

	// refusals
	res = MustRun(t, env, "token", "rotate", rotated.ID)
	if res.code != 1 || !strings.Contains(res.stderr, "token_revoked") {
		t.Errorf("token rotate of a revoked token: %v, want exit 1 naming token_revoked", res)
	}
	res = MustRun(t, env, "token", "activate", "tsw_"+MustRandomBase62(t, 20))
	if res.code != 1 || !strings.Contains(res.stderr, "token_not_found") {
		t.Errorf("token activate of an unknown id: %v", res)
	}

	// A rotation never activates: a deactivated token's successor is
	// inactive too, and the table says so.
	off := g.mustCreate(t, tokenapi.CreateRequest{Role: "owner", Name: "off"})
	mustRun("token", "deactivate", off.ID)
	res = mustRun("token", "rotate", off.ID)
	succ := regexp.MustCompile(auth.CredentialPattern).FindString(res.stdout)
	rememberSecret(succ)
	if succ == "" || !strings.Contains(res.stdout, "is inactive, like the old one") {
		t.Errorf("token rotate of an inactive token: %v, want it to say the new token is inactive", res)
	}
	MustBeRefused(t, call(succ), auth.CodeTokenInactive)
}
