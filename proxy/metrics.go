package proxy

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
)

// Metrics are the gateway's Prometheus collectors. They also observe the
// token cache and store (auth.Observer). A nil *Metrics records nothing.
type Metrics struct {
	requests      *prometheus.CounterVec
	refusals      map[auth.Code]prometheus.Counter
	duration      *prometheus.HistogramVec
	durProxied    prometheus.Observer
	durRefused    prometheus.Observer
	cache         [4]prometheus.Counter
	storeReads    *prometheus.CounterVec
	storeOK       prometheus.Counter
	storeNotFound prometheus.Counter
	storeError    prometheus.Counter
	storeLatency  prometheus.Histogram
	invalidations map[auth.EventKind]prometheus.Counter
	lag           prometheus.Histogram

	mu       sync.RWMutex
	children map[uint32]prometheus.Counter
}

var _ auth.Observer = (*Metrics)(nil)

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_requests_total",
			Help: "Requests answered, by token role, route permission and HTTP status.",
		}, []string{"role", "permission", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tswgate_request_duration_seconds",
			Help:    "Time from request to response, by outcome (proxied or refused).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		storeReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_store_reads_total",
			Help: "Token store reads on cache misses, by result (ok, not_found, error).",
		}, []string{"result"}),
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
		refusals:      make(map[auth.Code]prometheus.Counter),
		invalidations: make(map[auth.EventKind]prometheus.Counter),
		children:      make(map[uint32]prometheus.Counter),
	}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_refusals_total",
		Help: "Requests refused by the gateway, by reason.",
	}, []string{"reason"})
	for _, c := range auth.Codes() {
		m.refusals[c] = refusals.WithLabelValues(c.String())
	}
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_cache_lookups_total",
		Help: "Token cache lookups, by result (hit, negative_hit, miss, stale).",
	}, []string{"result"})
	for r := auth.CacheHit; r <= auth.CacheStale; r++ {
		m.cache[r] = cache.WithLabelValues(r.String())
	}
	inval := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_invalidations_total",
		Help: "Token change announcements applied, by kind (changed, resync, disconnected).",
	}, []string{"kind"})
	m.invalidations[auth.EventChanged] = inval.WithLabelValues("changed")
	m.invalidations[auth.EventResync] = inval.WithLabelValues("resync")
	m.invalidations[auth.EventDisconnected] = inval.WithLabelValues("disconnected")
	m.storeOK = m.storeReads.WithLabelValues("ok")
	m.storeNotFound = m.storeReads.WithLabelValues("not_found")
	m.storeError = m.storeReads.WithLabelValues("error")
	m.durProxied = m.duration.WithLabelValues("proxied")
	m.durRefused = m.duration.WithLabelValues("refused")

	for _, c := range []prometheus.Collector{m.requests, refusals, m.duration, cache,
		m.storeReads, m.storeLatency, inval, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one answered request.
func (m *Metrics) observe(v *auth.Verdict, status int, start, end time.Time) {
	if m == nil {
		return
	}
	role := auth.RoleInvalid
	if v.Token != nil {
		role = v.Token.Role
	}
	m.request(role, v.Permission, status).Inc()
	d := end.Sub(start).Seconds()
	if v.Code != auth.OK {
		m.refusals[v.Code].Inc()
		m.durRefused.Observe(d)
		return
	}
	m.durProxied.Observe(d)
}

// request returns the requests_total child of a label set, creating it once.
func (m *Metrics) request(role auth.Role, perm auth.Permission, status int) prometheus.Counter {
	key := uint32(role)<<24 | uint32(perm)<<16 | uint32(status&0xffff)
	m.mu.RLock()
	c, ok := m.children[key]
	m.mu.RUnlock()
	if ok {
		return c
	}
	roleLabel := "none"
	if role != auth.RoleInvalid {
		roleLabel = role.String()
	}
	c = m.requests.WithLabelValues(roleLabel, perm.String(), strconv.Itoa(status))
	m.mu.Lock()
	m.children[key] = c
	m.mu.Unlock()
	return c
}

// CacheResult implements auth.Observer.
func (m *Metrics) CacheResult(r auth.CacheResult) {
	if m != nil && int(r) < len(m.cache) {
		m.cache[r].Inc()
	}
}

// StoreRead implements auth.Observer.
func (m *Metrics) StoreRead(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.storeLatency.Observe(d.Seconds())
	switch {
	case err == nil:
		m.storeOK.Inc()
	case errors.Is(err, auth.ErrNotFound):
		m.storeNotFound.Inc()
	default:
		m.storeError.Inc()
	}
}

// Invalidated implements auth.Observer.
func (m *Metrics) Invalidated(kind auth.EventKind, lag time.Duration) {
	if m == nil {
		return
	}
	if c, ok := m.invalidations[kind]; ok {
		c.Inc()
	}
	if kind == auth.EventChanged && lag > 0 {
		m.lag.Observe(lag.Seconds())
	}
}
