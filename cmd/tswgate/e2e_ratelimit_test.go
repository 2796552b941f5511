package main

// Issue 4's rules end to end: a token's limit held across replicas sharing
// a real Redis, the IETF draft headers, shadow mode, the share each replica
// holds a token to while Redis is down, and the per-address limit on
// failed authentications.

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

// tinyRate refills one request in about 17 minutes: no refill while a test
// counts admissions.
const tinyRate = 0.001

// mustLimit sets a token's own limit through g's admin API.
func mustLimit(t testing.TB, g *testGateway, id string, rate float64, burst int, shadow *bool) tokenapi.Token {
	t.Helper()
	tok, err := g.Admin.Update(context.Background(), id, tokenapi.UpdateRequest{RateLimit: &rate, Burst: &burst, RateShadow: shadow})
	if err != nil {
		t.Fatalf("setting the limit of %s: %v", id, err)
	}
	return tok
}

func TestE2ERateLimitClusterWide(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	gws := []*testGateway{
		MustStartGateway(t, up.URL, redisEnv(srv)...),
		MustStartGateway(t, up.URL, redisEnv(srv)...),
		MustStartGateway(t, up.URL, redisEnv(srv)...),
	}
	tok := gws[0].MustCreateToken(t, testProject, "owner", "shared-limit")
	mustLimit(t, gws[0], tok.ID, tinyRate, 6, nil)

	// 30 requests, round robin over the replicas: the token's burst of 6
	// holds for the cluster, not per replica (which would admit 18).
	admitted := 0
	var ok, refused *response
	for i := range 30 {
		r := gws[i%3].MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		switch r.Status {
		case http.StatusOK:
			admitted++
			ok = r
		case http.StatusTooManyRequests:
			refused = r
			MustBeRefused(t, r, auth.CodeRateLimited)
		default:
			t.Fatalf("request %d: %s", i, r)
		}
	}
	if admitted != 6 {
		t.Fatalf("3 replicas admitted %d of 30 requests of a token with burst 6, want exactly 6", admitted)
	}
	// The headers of both draft generations; the policy is the burst per
	// the time the bucket takes to refill (6 / 0.001 = 6000 s).
	if got := ok.Header.Get("RateLimit-Policy"); got != `"token";q=6;w=6000` {
		t.Errorf("RateLimit-Policy = %q", got)
	}
	if got := ok.Header.Get("RateLimit-Limit"); got != "6" {
		t.Errorf("RateLimit-Limit = %q, want 6", got)
	}
	if got := refused.Header.Get("RateLimit"); !strings.HasPrefix(got, `"token";r=0;t=`) {
		t.Errorf("429 RateLimit = %q, want r=0", got)
	}
	if n, err := parseSeconds(refused.Header.Get("Retry-After")); err != nil || n < 900 {
		t.Errorf("429 Retry-After = %q, want the time until the next request fits (about 1000 s at 0.001/s)", refused.Header.Get("Retry-After"))
	}
	// Redis operations: one lease per admission (leases of 1 at this rate)
	// and at most one empty answer per replica; refusals cost none after.
	var calls, allowed float64
	for _, g := range gws {
		s := mustScrape(t, g)
		c, _ := s.sum("tswgate_ratelimit_budget_calls_total", map[string]string{"result": "ok"})
		a, _ := s.sum("tswgate_ratelimit_decisions_total", map[string]string{"decision": "allowed"})
		calls += c
		allowed += a
	}
	if allowed != 6 || calls > 9 {
		t.Errorf("metrics: %v allowed decisions (want 6), %v budget calls (want at most 9) for 30 requests", allowed, calls)
	}
}

func TestE2ERateLimitShadowMode(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL)
	tok := g.MustCreateToken(t, testProject, "owner", "shadowed")
	on, off := true, false
	if v := mustLimit(t, g, tok.ID, tinyRate, 1, &on); !v.RateShadow {
		t.Fatalf("update answered %+v, want rate_shadow", v)
	}
	for i := range 5 {
		r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		MustBeProxied(t, r)
		if h := r.Header.Get("RateLimit-Limit"); h != "" {
			t.Fatalf("request %d in shadow mode got RateLimit-Limit %q: a limit that is not enforced is not advertised", i, h)
		}
	}
	if n, _ := mustScrape(t, g).sum("tswgate_ratelimit_decisions_total", map[string]string{"decision": "shadow"}); n != 4 {
		t.Errorf("%v shadow decisions, want 4 (5 requests, burst 1)", n)
	}
	MustPoll(t, 5*time.Second, "the access log naming the shadow decision", func() (bool, string) {
		return strings.Contains(g.Logs.String(), `"ratelimit":"shadow"`), ""
	})
	// Enforced again: refused.
	mustLimit(t, g, tok.ID, tinyRate, 1, &off)
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil), auth.CodeRateLimited)
}

func TestE2ERateLimitRedisDownSharesTheLimit(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, redisEnv(srv)...)
	b := MustStartGateway(t, up.URL, redisEnv(srv)...)
	tok := a.MustCreateToken(t, testProject, "owner", "outage")
	mustLimit(t, a, tok.ID, tinyRate, 8, nil)
	// Both replicas have the token cached (to serve it while Redis is
	// down) and count each other.
	for _, g := range []*testGateway{a, b} {
		MustAwaitCached(t, g, tok.Token)
		MustPoll(t, 10*time.Second, "both replicas counted live", func() (bool, string) {
			n, _ := mustScrape(t, g).sum("tswgate_ratelimit_replicas", nil)
			return n == 2, ""
		})
	}
	srv.Stop()
	// A holds the token to its share: ceil(8 / 2) = 4, from a fresh
	// bucket of its own.
	admitted := 0
	for range 8 {
		r := a.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		switch r.Status {
		case http.StatusOK:
			admitted++
			if got := r.Header.Get("RateLimit-Limit"); got != "4" {
				t.Errorf("RateLimit-Limit = %q during the outage, want the share, 4", got)
			}
		case http.StatusTooManyRequests:
			MustBeRefused(t, r, auth.CodeRateLimited)
		default:
			t.Fatalf("during the outage: %s", r)
		}
	}
	if admitted != 4 {
		t.Fatalf("during the outage A admitted %d of 8, want its share of the burst, 4", admitted)
	}
	s := mustScrape(t, a)
	fa, _ := s.sum("tswgate_ratelimit_decisions_total", map[string]string{"decision": "fallback_allowed"})
	fl, _ := s.sum("tswgate_ratelimit_decisions_total", map[string]string{"decision": "fallback_limited"})
	if fa != 4 || fl != 4 {
		t.Errorf("fallback decisions allowed/limited = %v/%v, want 4/4", fa, fl)
	}
}

func TestE2ERateLimitRedisDownRefusePolicy(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv, "TSWGATE_RATELIMIT_ON_OUTAGE=refuse")...)
	limited := g.MustCreateToken(t, testProject, "owner", "limited")
	free := g.MustCreateToken(t, testProject, "owner", "free")
	mustLimit(t, g, limited.ID, tinyRate, 100, nil) // leases of 1: every request asks Redis
	MustAwaitCached(t, g, limited.Token)
	MustAwaitCached(t, g, free.Token)
	srv.Stop()
	// A limited token is refused as store_unavailable (never rate_limited,
	// never a bad token); a token without a limit is unaffected.
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", limited.Token, nil), auth.CodeStoreUnavailable)
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", free.Token, nil))
	if n, _ := mustScrape(t, g).sum("tswgate_ratelimit_decisions_total", map[string]string{"decision": "unavailable"}); n != 1 {
		t.Errorf("%v unavailable decisions, want 1", n)
	}
}

func TestE2EAuthFailuresLimitedPerAddress(t *testing.T) {
	up := MustStartUpstream(t, nil)
	limits := []string{"TSWGATE_AUTH_FAILURE_RATE=0.01", "TSWGATE_AUTH_FAILURE_BURST=3"}

	t.Run("peer address", func(t *testing.T) {
		g := MustStartGateway(t, up.URL, limits...)
		good := g.MustCreateToken(t, testProject, "owner", "good")
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", good.Token, nil))
		for range 3 {
			MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, "tsw_"+MustRandomBase62(t, 20)), nil), auth.CodeInvalidToken)
		}
		reads := func() float64 { n, _ := mustScrape(t, g).sum("tswgate_store_reads_total", nil); return n }
		before := reads()
		// The address is spent: a guess costs no store read, and so does
		// a token the gateway neither minted nor has seen (one made before
		// ids were tagged): nothing tells it from a guess without one...
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, "tsw_"+MustRandomBase62(t, 20)), nil), auth.CodeAuthRateLimited)
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, good.ID), nil), auth.CodeAuthRateLimited)
		_, legacy := g.MustCreateRecord(t, func(*auth.Token) {})
		MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", legacy, nil), auth.CodeAuthRateLimited)
		if after := reads(); after != before {
			t.Errorf("store reads %v -> %v while the address was refused", before, after)
		}
		// ...but the token in use goes on, and so does a new one the
		// gateway minted: a guesser does not lock out the clients that
		// share its address.
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", good.Token, nil))
		fresh := g.MustCreateToken(t, testProject, "owner", "fresh")
		MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", fresh.Token, nil))
		// X-Forwarded-For from an untrusted peer is ignored.
		req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", legacy, nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.9")
		MustBeRefused(t, MustDo(t, g.HTTP, req), auth.CodeAuthRateLimited)
	})

	t.Run("behind trusted proxies", func(t *testing.T) {
		g := MustStartGateway(t, up.URL, append(limits, "TSWGATE_TRUSTED_PROXIES=127.0.0.0/8")...)
		good := g.MustCreateToken(t, testProject, "owner", "good")
		call := func(xff, cred string) *response {
			req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", cred, nil)
			req.Header.Set("X-Forwarded-For", xff)
			return MustDo(t, g.HTTP, req)
		}
		bad := MustChangeSecretChar(t, good.Token) // malformed: its checksum fails
		for range 3 {
			MustBeRefused(t, call("203.0.113.7", bad), auth.CodeMalformedToken)
		}
		_, legacy := g.MustCreateRecord(t, func(*auth.Token) {}) // neither minted nor seen
		MustBeRefused(t, call("203.0.113.7", legacy), auth.CodeAuthRateLimited)
		// A left-most entry is the client's own say: the right-most
		// untrusted address is still 203.0.113.7.
		MustBeRefused(t, call("192.0.2.1, 203.0.113.7", legacy), auth.CodeAuthRateLimited)
		// Another client behind the same proxy is not affected.
		MustBeProxied(t, call("203.0.113.8", legacy))
		MustPoll(t, 5*time.Second, "the access log naming the client address", func() (bool, string) {
			return strings.Contains(g.Logs.String(), `"client":"203.0.113.7"`), ""
		})
	})
}

// TestE2ERateLimitOnRedisCluster: two gateways on a Redis Cluster of three
// masters hold tokens whose buckets lie on different nodes to one limit.
func TestE2ERateLimitOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, topologyEnv(rc.URL())...)
	b := MustStartGateway(t, up.URL, topologyEnv(rc.URL())...)
	for i := range 4 {
		tok := a.MustCreateToken(t, testProject, "owner", "cluster-limited")
		mustLimit(t, a, tok.ID, tinyRate, 3, nil)
		admitted := 0
		for j := range 10 {
			g := []*testGateway{a, b}[j%2]
			switch r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil); r.Status {
			case http.StatusOK:
				admitted++
			case http.StatusTooManyRequests:
			default:
				t.Fatalf("token %d: %s", i, r)
			}
		}
		if admitted != 3 {
			t.Fatalf("token %d: two gateways on a Redis Cluster admitted %d of 10, want its burst, 3", i, admitted)
		}
	}
}

// TestE2EAuthFailuresLimitedOnSelfService: the self-service API on the
// public listener has the same per-address limit as the proxy, so it is no
// side door for guessing secrets.
func TestE2EAuthFailuresLimitedOnSelfService(t *testing.T) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_AUTH_FAILURE_RATE=0.01", "TSWGATE_AUTH_FAILURE_BURST=2")
	owner := g.MustCreateToken(t, testProject, "owner", "self-service")
	list := func(cred string) *response { return g.MustCall(t, "GET", "/tswgate/v1/tokens", cred, nil) }
	if r := list(owner.Token); r.Status != http.StatusOK {
		t.Fatalf("self-service list with a valid Owner token: %s", r)
	}
	for range 2 {
		if r := list(MustForgeCredential(t, owner.ID)); r.Status != http.StatusUnauthorized {
			t.Fatalf("self-service list with a wrong secret: %s", r)
		}
	}
	r := list(MustForgeCredential(t, owner.ID))
	if _, code := MustEnvelope(t, r); r.Status != http.StatusTooManyRequests || code != auth.CodeAuthRateLimited.String() || r.Header.Get("Retry-After") == "" {
		t.Fatalf("self-service list from an address past its failures: %s, want 429 auth_rate_limited with Retry-After", r)
	}
	// The token in use goes on, and so does a new one; a token the
	// gateway neither minted nor has seen waits.
	if r := list(owner.Token); r.Status != http.StatusOK {
		t.Fatalf("self-service list with the valid Owner token in use: %s", r)
	}
	fresh := g.MustCreateToken(t, testProject, "owner", "fresh")
	if r := list(fresh.Token); r.Status != http.StatusOK {
		t.Fatalf("self-service list with a new, minted token from a blocked address: %s", r)
	}
	_, legacy := g.MustCreateRecord(t, func(*auth.Token) {}) // neither minted nor seen
	if r := list(legacy); r.Status != http.StatusTooManyRequests {
		t.Fatalf("self-service list with an unminted, unseen token from a blocked address: %s", r)
	}
	// The proxy shares the address's budget.
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, owner.ID), nil), auth.CodeAuthRateLimited)
}
