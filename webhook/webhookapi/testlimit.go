package webhookapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bounds of the test messages an endpoint may be sent, on each replica:
// a burst of testBurst, then one per testEvery. Each test is a delivery
// stored until it ends and kept for the queue's retention, so without a
// bound one token could fill the queue, and make the gateway post to any
// public address as fast as it asks.
const (
	testBurst = 5
	testEvery = 6 * time.Second
	// maxTestLimiters bounds the endpoints tracked; past it the map is
	// dropped (a bound on memory, not a policy).
	maxTestLimiters = 10000
)

// testLimiter limits test messages per endpoint. Safe for concurrent use.
type testLimiter struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// allow reports whether endpoint id may be sent a test at now, and if not,
// how long until it may.
func (l *testLimiter) allow(id string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxTestLimiters {
		l.m = map[string]*rate.Limiter{}
	}
	lim := l.m[id]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(testEvery), testBurst)
		l.m[id] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}
