package metrics

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
)

// Cache observes the token cache, the store reads behind it and the
// change announcements that empty it, for auth.Validator.
type Cache struct {
	lookups       [4]prometheus.Counter // by auth.CacheResult
	evictions     prometheus.Counter
	storeOK       prometheus.Counter
	storeNotFound prometheus.Counter
	storeError    prometheus.Counter
	storeLatency  prometheus.Histogram
	invalidations map[auth.EventKind]prometheus.Counter
	lag           prometheus.Histogram
	reconnects    prometheus.Counter
	// down is set by EventDisconnected; the EventResync that clears it is
	// a resubscription.
	down atomic.Bool
}

var (
	_ auth.Observer         = (*Cache)(nil)
	_ auth.EvictionObserver = (*Cache)(nil)
)

// NewCache registers the cache's metrics with reg.
func NewCache(reg prometheus.Registerer) (*Cache, error) {
	c := &Cache{
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_cache_evictions_total",
			Help: "Records the token cache dropped on its own: to make room, or past their TTL.",
		}),
		storeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tswgate_store_read_duration_seconds",
			Help:    "Latency of token store reads.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tswgate_invalidation_lag_seconds",
			Help:    "Time from a token change being published to this replica dropping its cached copy.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_pubsub_reconnects_total",
			Help: "Resubscriptions to token change announcements after the first subscription.",
		}),
		invalidations: make(map[auth.EventKind]prometheus.Counter),
	}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_cache_lookups_total",
		Help: "Token cache lookups, by result (hit, negative_hit, miss, stale).",
	}, []string{"result"})
	for r := auth.CacheHit; r <= auth.CacheStale; r++ {
		c.lookups[r] = lookups.WithLabelValues(r.String())
	}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_store_reads_total",
		Help: "Token store reads on cache misses, by result (ok, not_found, error).",
	}, []string{"result"})
	c.storeOK = reads.WithLabelValues("ok")
	c.storeNotFound = reads.WithLabelValues("not_found")
	c.storeError = reads.WithLabelValues("error")
	inval := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_invalidations_total",
		Help: "Token change announcements applied, by kind (changed, resync, disconnected).",
	}, []string{"kind"})
	c.invalidations[auth.EventChanged] = inval.WithLabelValues("changed")
	c.invalidations[auth.EventResync] = inval.WithLabelValues("resync")
	c.invalidations[auth.EventDisconnected] = inval.WithLabelValues("disconnected")
	if err := register(reg, lookups, c.evictions, reads, c.storeLatency, inval, c.lag, c.reconnects); err != nil {
		return nil, err
	}
	return c, nil
}

// CacheResult implements auth.Observer.
func (c *Cache) CacheResult(r auth.CacheResult) {
	if c != nil && int(r) < len(c.lookups) {
		c.lookups[r].Inc()
	}
}

// CacheEvicted implements auth.EvictionObserver.
func (c *Cache) CacheEvicted() {
	if c != nil {
		c.evictions.Inc()
	}
}

// StoreRead implements auth.Observer.
func (c *Cache) StoreRead(d time.Duration, err error) {
	if c == nil {
		return
	}
	c.storeLatency.Observe(d.Seconds())
	switch {
	case err == nil:
		c.storeOK.Inc()
	case errors.Is(err, auth.ErrNotFound):
		c.storeNotFound.Inc()
	default:
		c.storeError.Inc()
	}
}

// Invalidated implements auth.Observer.
func (c *Cache) Invalidated(kind auth.EventKind, lag time.Duration) {
	if c == nil {
		return
	}
	if n, ok := c.invalidations[kind]; ok {
		n.Inc()
	}
	switch kind {
	case auth.EventChanged:
		if lag > 0 {
			c.lag.Observe(lag.Seconds())
		}
	case auth.EventDisconnected:
		c.down.Store(true)
	case auth.EventResync:
		if c.down.Swap(false) {
			c.reconnects.Inc()
		}
	}
}
