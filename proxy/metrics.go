package proxy

import (
	"errors"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
)

// Metrics are the gateway's Prometheus collectors. They also observe the
// token cache and store (auth.Observer, auth.EvictionObserver) and the
// token API's store writes (StoreWrite). A nil *Metrics records nothing.
type Metrics struct {
	requests      *prometheus.CounterVec
	refusals      map[auth.Code]prometheus.Counter
	upstreamFail  [3]prometheus.Counter // by upstreamFailure; [0] unused
	duration      *prometheus.HistogramVec
	durProxied    prometheus.Observer
	durRefused    prometheus.Observer
	gwProxied     prometheus.Observer
	gwRefused     prometheus.Observer
	upstream      [256]prometheus.Observer // by permission
	cache         [4]prometheus.Counter
	evictions     prometheus.Counter
	storeReads    *prometheus.CounterVec
	storeOK       prometheus.Counter
	storeNotFound prometheus.Counter
	storeError    prometheus.Counter
	storeLatency  prometheus.Histogram
	storeWrites   map[string]*[2]prometheus.Counter // by op: ok, error
	decisions     [numDecisions]prometheus.Counter
	budgetOK      prometheus.Counter
	budgetError   prometheus.Counter
	replicas      prometheus.GaugeFunc
	replicasFn    atomic.Pointer[func() int]
	invalidations map[auth.EventKind]prometheus.Counter
	lag           prometheus.Histogram
	reconnects    prometheus.Counter
	// down is set by EventDisconnected; the EventResync that clears it is
	// a resubscription.
	down   atomic.Bool
	tokens *prometheus.GaugeVec

	// projects and tokenSeries are the opt-in series, keyed by the ids of
	// the allow-lists; both maps are read-only after NewMetrics.
	projects    map[int64]*[numOutcomes]prometheus.Counter
	tokenSeries map[string]*tokenSeries
	tokenVec    *prometheus.CounterVec

	mu       sync.RWMutex
	children map[uint64]prometheus.Counter
}

// tokenSeries holds the tswgate_token_requests_total children of one
// allow-listed token, made on its first request (when its project is known).
type tokenSeries struct {
	mu sync.Mutex
	c  atomic.Pointer[[numOutcomes]prometheus.Counter]
}

// Outcomes of the opt-in per-project and per-token series.
const (
	outcomeAllowed = iota
	outcomeRefused
	outcomeRateLimited
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allowed", "refused", "rate_limited"}

// Rate-limit decisions.
const (
	decisionAllowed = iota
	decisionLimited
	decisionShadow
	decisionFallbackAllowed
	decisionFallbackLimited
	decisionUnavailable
	numDecisions
)

var decisionNames = [numDecisions]string{"allowed", "limited", "shadow", "fallback_allowed", "fallback_limited", "unavailable"}

// decision classifies a limiter's answer.
func decision(s *auth.LimitStatus) int {
	switch {
	case s.Unavailable:
		return decisionUnavailable
	case s.Shadow && s.Over:
		return decisionShadow
	case s.Fallback && s.Over:
		return decisionFallbackLimited
	case s.Fallback:
		return decisionFallbackAllowed
	case s.Over:
		return decisionLimited
	}
	return decisionAllowed
}

// upstreamFailure says how an upstream round trip failed.
type upstreamFailure uint8

const (
	upstreamOK upstreamFailure = iota
	upstreamErr
	upstreamTimeout
)

// Store write operations and results of tswgate_store_writes_total.
var storeWriteOps = []string{"create", "update", "revoke", "list"}

// methods are the method labels of tswgate_requests_total; others are OTHER.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"}

func methodIndex(m string) int {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return i
		}
	}
	return len(methods) - 1
}

// MetricsOptions configure the optional parts of Metrics.
type MetricsOptions struct {
	// Projects are the project ids that get tswgate_project_requests_total
	// series; Tokens the token ids that get tswgate_token_requests_total.
	// Only these ids get series, so the lists bound the cardinality.
	Projects []int64
	Tokens   []string
	// Version and Revision label tswgate_build_info; empty ones are read
	// from the binary's build information.
	Version, Revision string
}

var _ auth.Observer = (*Metrics)(nil)
var _ auth.EvictionObserver = (*Metrics)(nil)

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer, opts MetricsOptions) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_requests_total",
			Help: "Requests answered, by token role, route permission, HTTP method and HTTP status.",
		}, []string{"role", "permission", "method", "status"}),
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
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_cache_evictions_total",
			Help: "Records the token cache dropped on its own: to make room, or past their TTL.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_pubsub_reconnects_total",
			Help: "Resubscriptions to token change announcements after the first subscription.",
		}),
		tokens: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tswgate_tokens",
			Help: "Live tokens in the store, by role and status, counted periodically.",
		}, []string{"role", "status"}),
		tokenVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_token_requests_total",
			Help: "Requests of the tokens in TSWGATE_METRICS_TOKENS, by token, project and outcome (allowed, refused, rate_limited).",
		}, []string{"token_id", "project_id", "outcome"}),
		refusals:      make(map[auth.Code]prometheus.Counter),
		invalidations: make(map[auth.EventKind]prometheus.Counter),
		storeWrites:   make(map[string]*[2]prometheus.Counter),
		projects:      make(map[int64]*[numOutcomes]prometheus.Counter, len(opts.Projects)),
		tokenSeries:   make(map[string]*tokenSeries, len(opts.Tokens)),
		children:      make(map[uint64]prometheus.Counter),
	}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_refusals_total",
		Help: "Requests refused by the gateway (by reason: the refusal code), or failed upstream (upstream_error, upstream_timeout).",
	}, []string{"reason"})
	for _, c := range auth.Codes() {
		m.refusals[c] = refusals.WithLabelValues(c.String())
	}
	m.upstreamFail[upstreamErr] = refusals.WithLabelValues(codeUpstreamError)
	m.upstreamFail[upstreamTimeout] = refusals.WithLabelValues(codeUpstreamTimeout)

	gateway := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tswgate_gateway_duration_seconds",
		Help:    "The gateway's own time per request (the whole request minus the upstream round trip), by outcome.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"outcome"})
	m.gwProxied = gateway.WithLabelValues("proxied")
	m.gwRefused = gateway.WithLabelValues("refused")
	upstream := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tswgate_upstream_duration_seconds",
		Help:    "Upstream round trip (request sent to response headers) of proxied requests, by route permission.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"permission"})
	for _, p := range append(auth.Permissions(), auth.PermNone) {
		m.upstream[p] = upstream.WithLabelValues(p.String())
	}

	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_cache_lookups_total",
		Help: "Token cache lookups, by result (hit, negative_hit, miss, stale).",
	}, []string{"result"})
	for r := auth.CacheHit; r <= auth.CacheStale; r++ {
		m.cache[r] = cache.WithLabelValues(r.String())
	}
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_store_writes_total",
		Help: "Token store calls of the token API, by operation (create, update, revoke, list) and result (ok, error: the store failed).",
	}, []string{"op", "result"})
	for _, op := range storeWriteOps {
		m.storeWrites[op] = &[2]prometheus.Counter{writes.WithLabelValues(op, "ok"), writes.WithLabelValues(op, "error")}
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_ratelimit_decisions_total",
		Help: "Rate-limit decisions on limited tokens, by decision: allowed, limited, shadow (over the limit, admitted in shadow mode), " +
			"fallback_allowed and fallback_limited (decided on this replica's share while the shared budget was unreachable), " +
			"unavailable (refused with store_unavailable: the shared budget was unreachable and TSWGATE_RATELIMIT_ON_OUTAGE=refuse).",
	}, []string{"decision"})
	for i, d := range decisionNames {
		m.decisions[i] = decisions.WithLabelValues(d)
	}
	budget := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_ratelimit_budget_calls_total",
		Help: "Leases taken from the rate-limit budget shared through Redis (cluster scope), by result (ok, error).",
	}, []string{"result"})
	m.budgetOK, m.budgetError = budget.WithLabelValues("ok"), budget.WithLabelValues("error")
	m.replicas = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tswgate_ratelimit_replicas",
		Help: "Live replicas sharing the rate-limit budget, as this replica last counted them (1 with replica scope).",
	}, func() float64 {
		if f := m.replicasFn.Load(); f != nil {
			return float64((*f)())
		}
		return 1
	})
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
	m.SetTokens(nil)

	projects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_project_requests_total",
		Help: "Requests of the projects in TSWGATE_METRICS_PROJECTS, by project and outcome (allowed, refused, rate_limited).",
	}, []string{"project_id", "outcome"})
	for _, p := range opts.Projects {
		var cs [numOutcomes]prometheus.Counter
		for o, name := range outcomeNames {
			cs[o] = projects.WithLabelValues(strconv.FormatInt(p, 10), name)
		}
		m.projects[p] = &cs
	}
	for _, id := range opts.Tokens {
		m.tokenSeries[id] = new(tokenSeries)
	}

	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tswgate_build_info",
		Help: "Always 1; labels name the running build.",
	}, []string{"version", "revision", "goversion"})
	version, revision := buildInfo()
	if opts.Version != "" {
		version = opts.Version
	}
	if opts.Revision != "" {
		revision = opts.Revision
	}
	build.WithLabelValues(version, revision, runtime.Version()).Set(1)

	for _, c := range []prometheus.Collector{m.requests, refusals, m.duration, gateway, upstream, cache, m.evictions,
		m.storeReads, m.storeLatency, writes, decisions, budget, m.replicas, inval, m.lag, m.reconnects, m.tokens, build,
		projects, m.tokenVec} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveBudget counts one call to the shared rate-limit budget.
func (m *Metrics) ObserveBudget(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.budgetError.Inc()
	} else {
		m.budgetOK.Inc()
	}
}

// SetReplicas sets the function tswgate_ratelimit_replicas reports.
func (m *Metrics) SetReplicas(f func() int) {
	if m != nil {
		m.replicasFn.Store(&f)
	}
}

// buildInfo returns the module version and VCS revision of the binary, or
// "unknown".
func buildInfo() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}

// sample is what ServeHTTP measured of one request.
type sample struct {
	method string
	status int
	// total is the whole request; upstream the round trip, when one was
	// made (called).
	total, upstream time.Duration
	called          bool
	failure         upstreamFailure
}

// observe records one answered request.
func (m *Metrics) observe(v *auth.Verdict, s *sample) {
	if m == nil {
		return
	}
	role := auth.RoleInvalid
	if v.Token != nil {
		role = v.Token.Role
	}
	m.request(role, v.Permission, methodIndex(s.method), s.status).Inc()
	if v.Limit.Enabled {
		m.decisions[decision(&v.Limit)].Inc()
	}
	if v.Token != nil && (len(m.projects) > 0 || len(m.tokenSeries) > 0) {
		m.optIn(v)
	}
	total := s.total.Seconds()
	if v.Code != auth.OK {
		m.refusals[v.Code].Inc()
		m.durRefused.Observe(total)
		m.gwRefused.Observe(total)
		return
	}
	m.durProxied.Observe(total)
	if s.called {
		if o := m.upstream[v.Permission]; o != nil {
			o.Observe(s.upstream.Seconds())
		}
		m.gwProxied.Observe(max(s.total-s.upstream, 0).Seconds())
	} else {
		m.gwProxied.Observe(total)
	}
	if s.failure != upstreamOK {
		m.upstreamFail[s.failure].Inc()
	}
}

// optIn records the per-project and per-token series of allow-listed ids.
func (m *Metrics) optIn(v *auth.Verdict) {
	o := outcomeAllowed
	switch v.Code {
	case auth.OK:
	case auth.CodeRateLimited:
		o = outcomeRateLimited
	default:
		o = outcomeRefused
	}
	if cs := m.projects[v.Token.ProjectID]; cs != nil {
		cs[o].Inc()
	}
	ts := m.tokenSeries[v.Token.ID]
	if ts == nil {
		return
	}
	cs := ts.c.Load()
	if cs == nil {
		ts.mu.Lock()
		if cs = ts.c.Load(); cs == nil {
			cs = new([numOutcomes]prometheus.Counter)
			project := strconv.FormatInt(v.Token.ProjectID, 10)
			for i, name := range outcomeNames {
				cs[i] = m.tokenVec.WithLabelValues(v.Token.ID, project, name)
			}
			ts.c.Store(cs)
		}
		ts.mu.Unlock()
	}
	cs[o].Inc()
}

// request returns the requests_total child of a label set, creating it once.
func (m *Metrics) request(role auth.Role, perm auth.Permission, method, status int) prometheus.Counter {
	key := uint64(role)<<40 | uint64(perm)<<32 | uint64(method)<<24 | uint64(status&0xffff)
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
	c = m.requests.WithLabelValues(roleLabel, perm.String(), methods[method], strconv.Itoa(status))
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

// CacheEvicted implements auth.EvictionObserver.
func (m *Metrics) CacheEvicted() {
	if m != nil {
		m.evictions.Inc()
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

// StoreWrite records a token API store call: op is create, update, revoke
// or list; failed says whether the store failed (an answer such as "not
// found" or "exists" is a store that worked).
func (m *Metrics) StoreWrite(op string, failed bool) {
	if m == nil {
		return
	}
	if cs := m.storeWrites[op]; cs != nil {
		if failed {
			cs[1].Inc()
		} else {
			cs[0].Inc()
		}
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
	switch kind {
	case auth.EventChanged:
		if lag > 0 {
			m.lag.Observe(lag.Seconds())
		}
	case auth.EventDisconnected:
		m.down.Store(true)
	case auth.EventResync:
		if m.down.Swap(false) {
			m.reconnects.Inc()
		}
	}
}

// SetTokens sets tswgate_tokens from a count of live tokens by role and
// status; the combinations missing from counts are set to 0.
func (m *Metrics) SetTokens(counts map[auth.Role]map[auth.Status]int) {
	if m == nil {
		return
	}
	for _, r := range []auth.Role{auth.RoleOwner, auth.RoleAccounting} {
		for _, s := range []auth.Status{auth.StatusActive, auth.StatusInactive} {
			m.tokens.WithLabelValues(r.String(), s.String()).Set(float64(counts[r][s]))
		}
	}
}
