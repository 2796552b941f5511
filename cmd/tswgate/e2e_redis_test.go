package main

// End-to-end tests of gateways sharing a real Redis token store
// (internal/redistest: a throwaway redis-server per test).

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/proxy"
)

// redisEnv is the environment of a gateway on srv, with the shared
// secrets and per-test extras.
// (Load keeps the first of duplicate names, so extras win.) The store
// timeout is raised from its 100ms default so that a loaded machine running
// -race does not time out calls to a healthy Redis.
func redisEnv(srv *redistest.Server, extra ...string) []string {
	return append(append([]string(nil), extra...),
		"TSWGATE_REDIS_URL="+srv.URL(),
		"TSWGATE_ADMIN_KEY="+testAdminKey,
		"TSWGATE_PEPPER="+testPepper,
		"TSWGATE_STORE_TIMEOUT=1s",
	)
}

// TestE2ERedisRevocationAcrossReplicas checks that a revocation made
// through one gateway reaches another that has the token cached.
func TestE2ERedisRevocationAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, redisEnv(srv)...)
	b := MustStartGateway(t, up.URL, redisEnv(srv)...)
	if a.Config().DataDir == b.Config().DataDir {
		t.Fatal("the gateways share a data dir")
	}

	tok := a.MustCreateToken(t, testProject, "owner", "replicated")
	MustAwaitInvalidations(t, b, 1) // B heard of the creation: what B caches now stays
	// B knows a token it never saw created.
	MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance?ProjectId=42", tok.Token, nil))
	MustAwaitCached(t, b, tok.Token) // B's cache is warm
	// B's admin API sees it too.
	if got, err := b.Admin.Get(context.Background(), tok.ID); err != nil || got.Name != "replicated" {
		t.Fatalf("B's admin API: %+v, %v", got, err)
	}

	revokedAt := time.Now()
	if _, err := a.Admin.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	// A refuses at once: its cache was dropped before the revoke returned.
	MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", tok.Token, nil), auth.CodeTokenRevoked)
	// B hears of it through Redis; poll for the outcome. The bound (5s) is
	// below B's cache TTL (10s), so success means the announcement worked,
	// not the entry's expiry.
	if b.Config().CacheTTL <= 5*time.Second {
		t.Fatalf("cache TTL %v: the test needs it above the poll bound", b.Config().CacheTTL)
	}
	var last *response
	took := MustPoll(t, 5*time.Second, "B refusing the token revoked through A", func() (bool, string) {
		last = b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		return last.Status == http.StatusUnauthorized, last.String()
	})
	MustBeRefused(t, last, auth.CodeTokenRevoked)
	t.Logf("B refused the revoked token %v after the revoke was sent (poll took %v)", time.Since(revokedAt), took)
}

// TestE2ERedisStoreUnavailable checks the answer to an unknown token while
// Redis is down, and recovery without a restart.
func TestE2ERedisStoreUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	// Each lookup the store cannot answer takes TSWGATE_STORE_TIMEOUT, even
	// with Redis refusing connections (go-redis keeps redialling).
	g := MustStartGateway(t, up.URL, redisEnv(srv, "TSWGATE_STALE_IF_ERROR=0s", "TSWGATE_STORE_TIMEOUT=300ms")...)
	tok := g.MustCreateToken(t, testProject, "owner", "before")
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)) // cached

	srv.Stop()
	for i := range 2 {
		// A fresh, never seen id: nothing cached, so the store must be
		// asked, and it cannot answer.
		_, cred, err := auth.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		before := up.Hits()
		start := time.Now()
		r := g.MustCall(t, "GET", "/v2/Instance", cred, nil)
		t.Logf("attempt %d: answered in %v", i, time.Since(start))
		if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
			t.Fatalf("attempt %d: an unknown token was judged while the store is down: %s", i, r)
		}
		MustBeRefused(t, r, auth.CodeStoreUnavailable)
		if up.Hits() != before {
			t.Errorf("attempt %d: the upstream received a request refused with store_unavailable", i)
		}
		// Also for a known id with another (well-formed) secret.
		r = g.MustCall(t, "GET", "/v2/Instance", MustForgeCredential(t, "tsw_"+MustRandomBase62(t, 20)), nil)
		MustBeRefused(t, r, auth.CodeStoreUnavailable)
	}
	// The admin API says so too.
	_, err := g.Admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "down"})
	if ae, ok := err.(*tokenapi.APIError); !ok || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("creating a token while the store is down: %v, want 503", err)
	}
	// Still live and ready: a store outage degrades, it does not unready.
	rr := g.MustGet(t, g.MetricsURL+"/readyz")
	if rr.Status != http.StatusOK {
		t.Errorf("/readyz during a store outage: %s", rr)
	}
	t.Logf("/readyz during the outage: %s", rr.Body)

	srv.Restart() // same port, empty data set
	var tok2 tokenapi.Token
	MustPoll(t, 10*time.Second, "creating a token after Redis restarted", func() (bool, string) {
		var err error
		tok2, err = g.Admin.Create(context.Background(), tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "after"})
		return err == nil, fmt.Sprint(err)
	})
	MustPoll(t, 10*time.Second, "a token created after the restart working", func() (bool, string) {
		r := g.MustCall(t, "GET", "/v2/Instance", tok2.Token, nil)
		return r.Status == http.StatusOK, r.String()
	})
	// The restarted Redis has lost the first token. The gateway cached it
	// (TTL 10s) but drops its whole cache when its subscription is
	// re-established, since announcements were lost meanwhile: the token
	// is refused well within the TTL.
	var last *response
	took := MustPoll(t, 5*time.Second, "the token lost with Redis's data being refused", func() (bool, string) {
		last = g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		return last.Status == http.StatusUnauthorized, last.String()
	})
	MustBeRefused(t, last, auth.CodeInvalidToken)
	t.Logf("the lost token was refused %v after the new token worked", took)
	// An unknown token is judged again.
	_, cred, _ := auth.NewCredential()
	MustBeRefused(t, g.MustCall(t, "GET", "/v2/Instance", cred, nil), auth.CodeInvalidToken)
	r := g.MustGet(t, g.MetricsURL+"/metrics")
	if n := counterValue(string(r.Body), `tswgate_refusals_total{reason="store_unavailable"}`); n < 4 {
		t.Errorf("/metrics counts %v store_unavailable refusals, want at least 4:\n%s", n, grepLines(string(r.Body), "store_unavailable"))
	}
}

// counterValue returns the value of a metrics sample line "name value".
func counterValue(metrics, name string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestE2ERedisHealth checks the metrics listener of a gateway on Redis.
func TestE2ERedisHealth(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv)...)
	MustBeHealthy(t, g)
	r := g.MustGet(t, g.MetricsURL+"/readyz")
	if want := `"store":{"ok":true}`; !strings.Contains(string(r.Body), want) {
		t.Errorf("/readyz lacks %s: %s", want, r.Body)
	}
	if r.Header.Get(proxy.HeaderErrorCode) != "" {
		t.Errorf("/readyz carries %s", proxy.HeaderErrorCode)
	}
}

// TestE2ERedisHung checks that a hung Redis (SIGSTOP) costs a request at
// most about TSWGATE_STORE_TIMEOUT, that a cached token keeps working, and
// that the gateway recovers when Redis does.
func TestE2ERedisHung(t *testing.T) {
	srv := redistest.Start(t)
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, redisEnv(srv, "TSWGATE_STORE_TIMEOUT=250ms")...)
	tok := g.MustCreateToken(t, testProject, "owner", "cached")
	MustAwaitInvalidations(t, g, 1) // the creation's announcement (see TestE2ERedisStaleIfError)
	MustAwaitCached(t, g, tok.Token)

	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume() // let the gateway's shutdown talk to it
		}
	}()
	// Cached within TSWGATE_CACHE_TTL: no store call needed.
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
	for i := range 3 {
		_, cred, _ := auth.NewCredential()
		start := time.Now()
		r := g.MustCall(t, "GET", "/v2/Instance", cred, nil)
		took := time.Since(start)
		MustBeRefused(t, r, auth.CodeStoreUnavailable)
		t.Logf("attempt %d: store_unavailable after %v", i, took)
		if took < 250*time.Millisecond || took > 2*time.Second {
			t.Errorf("attempt %d: a hung store held the request %v; TSWGATE_STORE_TIMEOUT is 250ms", i, took)
		}
	}
	srv.Resume()
	resumed = true
	_, cred, _ := auth.NewCredential()
	MustPoll(t, 10*time.Second, "unknown tokens judged again after Redis resumed", func() (bool, string) {
		r := g.MustCall(t, "GET", "/v2/Instance", cred, nil)
		return r.Status == http.StatusUnauthorized, r.String()
	})
	MustBeProxied(t, g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil))
}

// TestE2ERedisStaleIfError checks TSWGATE_STALE_IF_ERROR: past the cache
// TTL, a verified token keeps working while the store is down only within
// the stale window.
func TestE2ERedisStaleIfError(t *testing.T) {
	for _, tc := range []struct {
		stale    string
		wantCode auth.Code // once the cache TTL has passed
	}{
		{"30s", auth.OK},
		{"0s", auth.CodeStoreUnavailable},
	} {
		t.Run("stale="+tc.stale, func(t *testing.T) {
			srv := redistest.Start(t)
			up := MustStartUpstream(t, nil)
			g := MustStartGateway(t, up.URL, redisEnv(srv,
				"TSWGATE_STALE_IF_ERROR="+tc.stale, "TSWGATE_CACHE_TTL=1s", "TSWGATE_NEGATIVE_CACHE_TTL=50ms",
				"TSWGATE_STORE_TIMEOUT=300ms")...)
			tok := g.MustCreateToken(t, testProject, "owner", "stale")
			// The creation is announced through Redis, and the gateway
			// drops its cached copy of the id when it hears it: await
			// that before caching the token, or the late announcement
			// evicts the entry the stale window would serve from.
			MustAwaitInvalidations(t, g, 1)
			MustAwaitCached(t, g, tok.Token)
			srv.Stop()
			// Poll until the cache entry has aged past its TTL: the
			// metrics say whether the answer came from a fresh entry.
			MustPoll(t, 5*time.Second, "the cached entry aging past TSWGATE_CACHE_TTL", func() (bool, string) {
				r := g.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
				if tc.wantCode == auth.OK {
					if r.Status != http.StatusOK {
						return false, "refused within the stale window: " + r.String()
					}
					m := g.MustGet(t, g.MetricsURL+"/metrics")
					n := counterValue(string(m.Body), `tswgate_cache_lookups_total{result="stale"}`)
					return n >= 1, fmt.Sprintf("stale lookups %v", n)
				}
				if r.Status == http.StatusOK {
					return false, "still served from the fresh cache"
				}
				MustBeRefused(t, r, tc.wantCode)
				return true, ""
			})
		})
	}
}

// MustAwaitInvalidations polls the gateway's metrics until it has applied
// at least n change announcements.
func MustAwaitInvalidations(t testing.TB, g *testGateway, n float64) {
	t.Helper()
	MustPoll(t, 5*time.Second, "the gateway hearing its change announcements", func() (bool, string) {
		m := g.MustGet(t, g.MetricsURL+"/metrics")
		got := counterValue(string(m.Body), `tswgate_invalidations_total{kind="changed"}`)
		return got >= n, fmt.Sprintf("%v applied", got)
	})
}

// TestE2ERedisStartWhileDown starts a gateway while Redis is down: Start
// waits for the change subscription, and returns soon after Redis comes
// up, ready and working.
func TestE2ERedisStartWhileDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	up := MustStartUpstream(t, nil)
	var restarted time.Time
	logs := newSyncBuffer()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g := MustStartGatewayOpts(t, gatewayOptions{Upstream: up.URL, Env: redisEnv(srv), Logger: logger, WhileStarting: func() {
		// Restart Redis only once the gateway has found it down.
		timeout := time.After(10 * time.Second)
		for !strings.Contains(logs.String(), "change announcements are down") {
			select {
			case <-logs.Changed():
			case <-timeout:
				t.Errorf("the gateway did not report Redis down while starting; log:\n%s", logs)
				srv.Restart()
				return
			}
		}
		srv.Restart()
		restarted = time.Now()
	}})
	if t.Failed() {
		return
	}
	t.Logf("Start took %v, returned %v after Redis came back", g.StartTook, time.Since(restarted))
	// Start gives up waiting after 10s; returning well before shows it
	// waited for the subscription, not for its timeout.
	if g.StartTook >= 9*time.Second {
		t.Errorf("Start took %v: it did not notice Redis coming back", g.StartTook)
	}
	MustBeHealthy(t, g)
}

// MustAwaitCached calls the gateway with cred until a call is answered from
// its token cache (the cache applies writes asynchronously, so the call
// after the first may still miss).
func MustAwaitCached(t testing.TB, g *testGateway, cred string) {
	t.Helper()
	const hits = `tswgate_cache_lookups_total{result="hit"}`
	MustPoll(t, 5*time.Second, "the token being served from the cache", func() (bool, string) {
		before := counterValue(string(g.MustGet(t, g.MetricsURL+"/metrics").Body), hits)
		if r := g.MustCall(t, "GET", "/v2/Instance", cred, nil); r.Status != http.StatusOK {
			return false, r.String()
		}
		after := counterValue(string(g.MustGet(t, g.MetricsURL+"/metrics").Body), hits)
		return after > before, fmt.Sprintf("cache hits %v -> %v", before, after)
	})
}
