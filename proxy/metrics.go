package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
)

// Metrics are the proxy's Prometheus collectors: the requests it answers,
// by role, permission, method and status; its refusals; its own and the
// upstream's time; the rate limiter's decisions; and the opt-in series of
// allow-listed projects and tokens. The gateway's other metrics (cache,
// store, budget, token counts) are in package internal/metrics. A nil
// *Metrics records nothing.
type Metrics struct {
	requests     *prometheus.CounterVec
	refusals     map[auth.Code]prometheus.Counter
	upstreamFail [3]prometheus.Counter // by upstreamFailure; [0] unused
	duration     *prometheus.HistogramVec
	durProxied   prometheus.Observer
	durRefused   prometheus.Observer
	gwProxied    prometheus.Observer
	gwRefused    prometheus.Observer
	upstream     [256]prometheus.Observer // by permission
	decisions    [numDecisions]prometheus.Counter

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
	case s.ShadowOver():
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
}

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
		refusals: make(map[auth.Code]prometheus.Counter),
		children: make(map[uint64]prometheus.Counter),
	}
	m.durProxied = m.duration.WithLabelValues("proxied")
	m.durRefused = m.duration.WithLabelValues("refused")
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
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_ratelimit_decisions_total",
		Help: "Rate-limit decisions on limited tokens, by decision: allowed, limited, shadow (over the limit, admitted in shadow mode), " +
			"fallback_allowed and fallback_limited (decided on this replica's share while the shared budget was unreachable), " +
			"unavailable (refused with store_unavailable: the shared budget was unreachable and TSWGATE_RATELIMIT_ON_OUTAGE=refuse).",
	}, []string{"decision"})
	for i, d := range decisionNames {
		m.decisions[i] = decisions.WithLabelValues(d)
	}
	projects := m.optInSeries(opts)
	for _, c := range []prometheus.Collector{m.requests, refusals, m.duration, gateway, upstream, decisions, projects, m.tokenVec} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// optInSeries makes the opt-in series of opts's allow-listed projects (at
// once) and tokens (on a token's first request, when its project is
// known), and returns the projects' collector.
func (m *Metrics) optInSeries(opts MetricsOptions) *prometheus.CounterVec {
	projects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_project_requests_total",
		Help: "Requests of the projects in TSWGATE_METRICS_PROJECTS, by project and outcome (allowed, refused, rate_limited).",
	}, []string{"project_id", "outcome"})
	m.projects = make(map[int64]*[numOutcomes]prometheus.Counter, len(opts.Projects))
	for _, p := range opts.Projects {
		var cs [numOutcomes]prometheus.Counter
		for o, name := range outcomeNames {
			cs[o] = projects.WithLabelValues(strconv.FormatInt(p, 10), name)
		}
		m.projects[p] = &cs
	}
	m.tokenVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_token_requests_total",
		Help: "Requests of the tokens in TSWGATE_METRICS_TOKENS, by token, project and outcome (allowed, refused, rate_limited).",
	}, []string{"token_id", "project_id", "outcome"})
	m.tokenSeries = make(map[string]*tokenSeries, len(opts.Tokens))
	for _, id := range opts.Tokens {
		m.tokenSeries[id] = new(tokenSeries)
	}
	return projects
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
	case auth.CodeRateLimited, auth.CodeProjectRateLimited:
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
