package main

// End-to-end tests of gateways beyond one Redis: two gateways on a Redis
// Cluster of three masters, and two on a Sentinel setup that fails over
// while they serve (internal/redistest starts both topologies).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/redistest"
)

// topologyEnv is the environment of a gateway on the Redis at url (a
// Cluster or Sentinel URL), with the shared secrets; extras go first, so
// they win. The store timeout is raised as in redisEnv.
func topologyEnv(url string, extra ...string) []string {
	return append(append([]string(nil), extra...),
		"TSWGATE_REDIS_URL="+url,
		"TSWGATE_ADMIN_KEY="+testAdminKey,
		"TSWGATE_PEPPER="+testPepper,
		"TSWGATE_STORE_TIMEOUT=1s",
	)
}

// TestE2EClusterReplicas: two gateways on a Redis Cluster. A token created
// through A works on B, B's admin API lists tokens whose records lie on
// different nodes, and a token revoked through A is refused by B well
// within its cache TTL (the announcement crossed the cluster).
func TestE2EClusterReplicas(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	up := MustStartUpstream(t, nil)
	a := MustStartGateway(t, up.URL, topologyEnv(rc.URL())...)
	b := MustStartGateway(t, up.URL, topologyEnv(rc.URL())...)
	ctx := context.Background()

	tok := a.MustCreateToken(t, testProject, "owner", "on-the-cluster")
	MustAwaitInvalidations(t, b, 1) // B heard of the creation: what B caches now stays
	MustBeProxied(t, b.MustCall(t, "GET", "/v2/Instance?ProjectId=42", tok.Token, nil))
	MustAwaitCached(t, b, tok.Token)
	if got, err := b.Admin.Get(ctx, tok.ID); err != nil || got.Name != "on-the-cluster" {
		t.Fatalf("B's admin API: %+v, %v", got, err)
	}

	// One project's records hash to slots all over the cluster; its index
	// is one key. B lists them all.
	const project, n = 4242, 30
	created := map[string]bool{}
	for i := range n {
		created[a.MustCreateToken(t, project, "accounting", fmt.Sprintf("spread-%d", i)).ID] = true
	}
	l, err := b.Admin.List(ctx, project)
	if err != nil {
		t.Fatalf("listing project %d through B: %v", project, err)
	}
	if len(l) != n {
		t.Fatalf("B lists %d tokens of project %d, want %d", len(l), project, n)
	}
	for _, tk := range l {
		if !created[tk.ID] {
			t.Errorf("B lists %s, which was not created", tk.ID)
		}
	}

	if b.Config().CacheTTL <= 5*time.Second {
		t.Fatalf("cache TTL %v: the test needs it above the poll bound", b.Config().CacheTTL)
	}
	revokedAt := time.Now()
	if _, err := a.Admin.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", tok.Token, nil), auth.CodeTokenRevoked)
	var last *response
	took := MustPoll(t, 5*time.Second, "B refusing the token revoked through A", func() (bool, string) {
		last = b.MustCall(t, "GET", "/v2/Instance", tok.Token, nil)
		return last.Status == http.StatusUnauthorized, last.String()
	})
	MustBeRefused(t, last, auth.CodeTokenRevoked)
	t.Logf("B refused the revoked token %v after the revoke was sent (poll took %v)", time.Since(revokedAt), took)
}

// TestE2ESentinelFailover: two gateways on Sentinel. A token created
// through A works on B; then the master fails over (SENTINEL FAILOVER)
// while both serve a cached token, and every one of those requests is
// answered 200; a token revoked through A after the failover is refused by
// B well within its cache TTL (30s here): B's change subscription has
// moved to the new master (or B resynced), it did not stay on the old one.
func TestE2ESentinelFailover(t *testing.T) {
	rs := redistest.StartSentinel(t)
	up := MustStartUpstream(t, nil)
	env := topologyEnv(rs.URL(), "TSWGATE_CACHE_TTL=30s")
	a := MustStartGateway(t, up.URL, env...)
	b := MustStartGateway(t, up.URL, env...)
	ctx := context.Background()

	kept := a.MustCreateToken(t, testProject, "owner", "kept-across-the-failover")
	doomed := a.MustCreateToken(t, testProject, "owner", "revoked-after-the-failover")
	MustAwaitInvalidations(t, b, 2)
	for _, g := range []*testGateway{a, b} {
		MustAwaitCached(t, g, kept.Token)
		MustAwaitCached(t, g, doomed.Token)
	}
	rs.WaitReplicated(t) // the tokens survive the failover
	oldMaster := rs.MasterAddr(t)

	// Traffic with the cached token on both gateways, through the failover
	// and the revocation after it.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		requests atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	for _, g := range []*testGateway{a, b} {
		wg.Go(func() {
			for !stop.Load() {
				// Not MustCall: this is not the test's goroutine.
				req := MustNewRequest(t, "GET", g.URL+"/v2/Instance", kept.Token, nil)
				var outcome string
				if resp, err := g.HTTP.Do(req); err != nil {
					outcome = err.Error()
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						outcome = fmt.Sprintf("HTTP %d %s", resp.StatusCode, body)
					}
				}
				requests.Add(1)
				if outcome != "" {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s at %s: %s", g.URL, time.Now().Format("15:04:05.000"), outcome))
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond) // a steady, modest load
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	time.Sleep(200 * time.Millisecond)

	failStart := time.Now()
	rs.Failover(t)
	newMaster := rs.MasterAddr(t)
	t.Logf("failover from %s to %s took %v", oldMaster, newMaster, time.Since(failStart))

	// Until A's client has switched to the new master, A may still write
	// to the old one, whose writes the failover discards (replication is
	// asynchronous). Wait for a token created through A to be on the new
	// master.
	direct := redis.NewClient(&redis.Options{Addr: newMaster, ContextTimeoutEnabled: true})
	defer direct.Close()
	MustPoll(t, 10*time.Second, "a token created through A landing on the new master", func() (bool, string) {
		probe, err := a.Admin.Create(ctx, tokenapi.CreateRequest{ProjectID: testProject, Role: "owner", Name: "probe"})
		if err != nil {
			return false, err.Error()
		}
		n, err := direct.Exists(ctx, a.Config().RedisPrefix+"tok:"+probe.ID).Result()
		return err == nil && n == 1, fmt.Sprintf("EXISTS on the new master: %d, %v", n, err)
	})

	revokedAt := time.Now()
	if _, err := a.Admin.Revoke(ctx, doomed.ID); err != nil {
		t.Fatalf("revoking through A after the failover: %v", err)
	}
	MustBeRefused(t, a.MustCall(t, "GET", "/v2/Instance", doomed.Token, nil), auth.CodeTokenRevoked)
	var last *response
	took := MustPoll(t, 5*time.Second, "B refusing the token revoked through A after the failover", func() (bool, string) {
		last = b.MustCall(t, "GET", "/v2/Instance", doomed.Token, nil)
		return last.Status == http.StatusUnauthorized, last.String()
	})
	MustBeRefused(t, last, auth.CodeTokenRevoked)
	t.Logf("B refused the token revoked after the failover %v after the revoke was sent (poll took %v)",
		time.Since(revokedAt), took)

	// A token created after the failover works on B too.
	fresh := a.MustCreateToken(t, testProject, "owner", "after-the-failover")
	MustPoll(t, 5*time.Second, "B accepting a token created through A after the failover", func() (bool, string) {
		r := b.MustCall(t, "GET", "/v2/Instance", fresh.Token, nil)
		return r.Status == http.StatusOK, r.String()
	})

	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests with the cached token across the failover, %d not answered 200", requests.Load(), len(failures))
	for _, f := range failures {
		t.Errorf("a request with a token cached before the failover failed: %s", f)
	}
	for _, g := range []*testGateway{a, b} {
		m := string(g.MustGet(t, g.MetricsURL+"/metrics").Body)
		t.Logf("%s: resyncs %v, disconnects %v", g.URL,
			counterValue(m, `tswgate_invalidations_total{kind="resync"}`),
			counterValue(m, `tswgate_invalidations_total{kind="disconnected"}`))
	}
}
