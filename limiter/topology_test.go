package limiter_test

// The cluster limiter beyond one Redis: a Redis Cluster of three masters
// (each token's bucket is one key, so every script call touches one slot)
// and Redis Sentinel with a failover while replicas decide.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/internal/redistest"
	"github.com/tswgate/tswgate/limiter"
)

func TestClusterOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	prefix := newPrefix()
	// Three replicas, each on its own cluster client, as three processes.
	var replicas []*limiter.Cluster
	var budgets []*countingBudget
	for range 3 {
		b := newBudget(t, rc.Client(t), prefix)
		budgets = append(budgets, b)
		replicas = append(replicas, limiter.NewCluster(limiter.ClusterOptions{Budget: b, Timeout: takeTimeout}))
	}
	// Enough tokens that their keys land on every master.
	for i := range 12 {
		tok := newToken(fmt.Sprintf("tsw_topocluster%09d", i), tinyRate, 4)
		if got := hammer(replicas, tok, 3, 10); got != 4 {
			t.Fatalf("token %d: 3 replicas on a Redis Cluster admitted %d of 30, want its burst, 4", i, got)
		}
	}
	// The live-replica set is one key too.
	for i, b := range budgets {
		rb := b.Budget.(*limiter.RedisBudget)
		if _, err := rb.Heartbeat(context.Background(), time.Minute); err != nil {
			t.Fatalf("replica %d heartbeat on the cluster: %v", i, err)
		}
	}
	if n, err := budgets[0].Budget.(*limiter.RedisBudget).Heartbeat(context.Background(), time.Minute); err != nil || n != 3 {
		t.Fatalf("replica 1 counts %d live replicas on the cluster (err %v), want 3", n, err)
	}
}

func TestClusterOnSentinelFailover(t *testing.T) {
	rs := redistest.StartSentinel(t)
	prefix := newPrefix()
	var replicas []*limiter.Cluster
	var budgets []*countingBudget
	for range 2 {
		b := newBudget(t, rs.Client(t), prefix)
		budgets = append(budgets, b)
		replicas = append(replicas, limiter.NewCluster(limiter.ClusterOptions{
			Budget: b, Timeout: takeTimeout, Retry: 100 * time.Millisecond,
		}))
	}
	before := newToken("tsw_toposentinel00000001", tinyRate, 5)
	if got := hammer(replicas, before, 2, 10); got != 5 {
		t.Fatalf("before the failover: admitted %d, want the burst, 5", got)
	}
	rs.WaitReplicated(t) // the spent bucket is on the replica that will be promoted
	// From here Takes fail while the master changes; the decisions after
	// it check Fallback themselves.
	for _, b := range budgets {
		b.expectOutage()
	}

	// Traffic on other tokens during the failover: every decision comes
	// back (bounded by the timeout), shared or on the replica's share.
	stop := make(chan struct{})
	var decided, degraded atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			// Leases of 1 (5/s × 100ms): a script call per decision.
			tok := newToken(fmt.Sprintf("tsw_toposentinel1000000%d", g), 5, 1e9)
			for {
				select {
				case <-stop:
					return
				default:
				}
				st := replicas[g].Allow(context.Background(), tok, time.Now())
				decided.Add(1)
				if st.Fallback {
					degraded.Add(1)
				}
			}
		})
	}
	rs.Failover(t)
	close(stop)
	wg.Wait()
	t.Logf("%d decisions during the failover, %d of them on the replica's share", decided.Load(), degraded.Load())
	if decided.Load() == 0 {
		t.Fatal("no decision during the failover")
	}

	// After it: the promoted master has the spent bucket, and new buckets
	// work. Decide after the retry pause so that no replica is still in
	// its fallback window.
	later := time.Now().Add(time.Second)
	for i, c := range replicas {
		if st := c.Allow(context.Background(), before, later); st.Allowed || st.Fallback {
			t.Fatalf("replica %d after the failover, spent token: %+v, want refused by the shared bucket", i, st)
		}
	}
	after := newToken("tsw_toposentinel00000002", tinyRate, 5)
	admitted := 0
	for i := range 10 {
		st := replicas[i%2].Allow(context.Background(), after, later)
		if st.Fallback {
			t.Fatalf("after the failover: a fallback decision %+v", st)
		}
		if st.Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("after the failover: admitted %d, want the burst, 5", admitted)
	}
}
