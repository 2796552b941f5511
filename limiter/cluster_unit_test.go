package limiter_test

// Rules of the Cluster limiter that need a Budget answering on cue: a
// scripted Budget (the consumer's interface; RedisBudget itself is tested
// against real Redis in cluster_test.go).

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tswgate/tswgate/limiter"
)

// scriptedBudget answers Take with answer (or blocks until the context
// ends, when block is set) and counts the calls.
type scriptedBudget struct {
	answer limiter.Lease
	block  bool
	calls  atomic.Int64
}

func (b *scriptedBudget) Take(ctx context.Context, _ string, _ limiter.Limit, want, _ int) (limiter.Lease, error) {
	b.calls.Add(1)
	if b.block {
		<-ctx.Done()
		return limiter.Lease{}, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return limiter.Lease{}, err
	}
	l := b.answer
	l.Granted = min(l.Granted, want)
	return l, nil
}

func TestClusterClientCancelIsNoOutage(t *testing.T) {
	b := &scriptedBudget{answer: limiter.Lease{Granted: 100, Held: 100}}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: b, Outage: limiter.OutageRefuse})
	tok := newToken("tsw_unit0000000000000001", 1000, 1000)
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the client went away
	if st := c.Allow(gone, tok, time.Now()); !st.Allowed || st.Unavailable || st.Fallback {
		t.Fatalf("request whose client left: %+v, want decided by the shared budget", st)
	}
	other := newToken("tsw_unit0000000000000002", 1000, 1000)
	if st := c.Allow(context.Background(), other, time.Now()); !st.Allowed || st.Unavailable {
		t.Fatalf("another token after a client left: %+v, want allowed (no outage)", st)
	}
}

func TestClusterQueuedRequestsDoNotEachWaitOutTheTimeout(t *testing.T) {
	b := &scriptedBudget{block: true}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: b, Timeout: 50 * time.Millisecond})
	tok := newToken("tsw_unit0000000000000003", 1000, 1000)
	var wg sync.WaitGroup
	var fallback atomic.Int64
	for range 20 {
		wg.Go(func() {
			if st := c.Allow(context.Background(), tok, time.Now()); st.Fallback {
				fallback.Add(1)
			}
		})
	}
	wg.Wait()
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d calls to a hung budget by 20 concurrent requests of one token, want 1 (the rest decide alone)", n)
	}
	if fallback.Load() != 20 {
		t.Fatalf("%d of 20 decided on the replica's share", fallback.Load())
	}
}

func TestClusterReservationRetryAfterAndSweep(t *testing.T) {
	// The bucket is 4 requests in debt: the one leased matures 5 s after
	// the grant (rate 1/s).
	b := &scriptedBudget{answer: limiter.Lease{Granted: 1, Held: -4, Left: -5}}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: b, Idle: time.Second})
	tok := newToken("tsw_unit0000000000000004", 1, 1)
	start := time.Now()
	st := c.Allow(context.Background(), tok, start)
	if st.Allowed || st.RetryAfter < 4*time.Second || st.RetryAfter > 5*time.Second+time.Second {
		t.Fatalf("reserved request: %+v, want refused with a Retry-After of about 5 s", st)
	}
	// A sweep while the client waits does not drop its reservation.
	if n := c.Sweep(start.Add(3 * time.Second)); n != 0 || c.Len() != 1 {
		t.Fatalf("Sweep during the wait dropped %d (Len %d): the reservation would be lost", n, c.Len())
	}
	if st := c.Allow(context.Background(), tok, start.Add(st.RetryAfter+time.Second)); !st.Allowed {
		t.Fatalf("after Retry-After: %+v, want the matured request", st)
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d Takes, want 1: the reservation served the client", n)
	}
}

func TestClusterZeroGrantRetryAfterCoversTheNextLease(t *testing.T) {
	// Nothing granted; the bucket is 5 in debt: a lease fits in 1 s, but
	// its first request only matures when the bucket is back to 1, 6 s.
	b := &scriptedBudget{answer: limiter.Lease{Granted: 0, Held: -5, Left: -5, Wait: time.Second}}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: b})
	tok := newToken("tsw_unit0000000000000005", 1, 1)
	st := c.Allow(context.Background(), tok, time.Now())
	if st.Allowed || st.RetryAfter < 5900*time.Millisecond {
		t.Fatalf("zero grant: %+v, want a Retry-After of about 6 s", st)
	}
}

func TestClusterShadowTokensSurviveRefusePolicy(t *testing.T) {
	b := &scriptedBudget{block: true}
	c := limiter.NewCluster(limiter.ClusterOptions{Budget: b, Outage: limiter.OutageRefuse, Timeout: time.Millisecond})
	tok := newToken("tsw_unit0000000000000006", 10, 10)
	tok.RateShadow = true
	if st := c.Allow(context.Background(), tok, time.Now()); !st.Allowed || st.Unavailable || !st.Shadow {
		t.Fatalf("shadow token while the budget fails, refuse policy: %+v, want allowed", st)
	}
}

func TestTinyRatesDoNotWrap(t *testing.T) {
	l := limiter.NewLocal(limiter.Options{})
	tok := newToken("tsw_unit0000000000000007", 1e-10, 1)
	now := time.Now()
	if st := l.Allow(context.Background(), tok, now); !st.Allowed {
		t.Fatalf("first request: %+v", st)
	}
	for range 5 {
		if st := l.Allow(context.Background(), tok, now); st.Allowed || st.RetryAfter < 24*time.Hour {
			t.Fatalf("over a limit of 1e-10/s: %+v, want refused with a very long Retry-After", st)
		}
	}
}
