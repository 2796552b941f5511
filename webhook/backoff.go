package webhook

import (
	"math/rand/v2"
	"time"
)

// Backoff says how long to wait before the next attempt of a delivery
// whose attempt number attempt (1 for the first) failed.
type Backoff interface {
	Delay(attempt int) time.Duration
}

// ExponentialBackoff doubles the delay after each failed attempt, from
// Initial up to Max, with "equal jitter": the delay is drawn uniformly
// from its upper half, so that deliveries that failed together (a
// receiver that went down) do not all come back at once.
type ExponentialBackoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff retries after about 5 s, 10 s, 20 s … up to an hour
// (each delay drawn from the upper half of its step): with
// DefaultMaxAttempts, a delivery is tried for 2¾ to 5½ hours, and a
// receiver down for a minute gets its messages at the next retry, about
// 80 s after it went down.
var DefaultBackoff = ExponentialBackoff{Initial: 5 * time.Second, Max: time.Hour}

// Delay returns a jittered delay in [d/2, d], d = min(Max, Initial×2^(attempt-1)).
func (b ExponentialBackoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
