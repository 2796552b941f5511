package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Budget observes the rate-limit budget shared through Redis (cluster
// scope): the leases taken from it and the replicas sharing it.
type Budget struct {
	ok, failed prometheus.Counter
	replicas   atomic.Pointer[func() int]
}

// NewBudget registers the budget's metrics with reg. Until SetReplicas,
// tswgate_ratelimit_replicas is 1 (replica scope).
func NewBudget(reg prometheus.Registerer) (*Budget, error) {
	b := &Budget{}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tswgate_ratelimit_budget_calls_total",
		Help: "Leases taken from the rate-limit budget shared through Redis (cluster scope), by result (ok, error).",
	}, []string{"result"})
	b.ok, b.failed = calls.WithLabelValues("ok"), calls.WithLabelValues("error")
	replicas := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tswgate_ratelimit_replicas",
		Help: "Live replicas sharing the rate-limit budget, as this replica last counted them (1 with replica scope).",
	}, func() float64 {
		if f := b.replicas.Load(); f != nil {
			return float64((*f)())
		}
		return 1
	})
	if err := register(reg, calls, replicas); err != nil {
		return nil, err
	}
	return b, nil
}

// ObserveBudget counts one call to the shared budget (limiter's
// ClusterOptions.ObserveTake).
func (b *Budget) ObserveBudget(err error) {
	if b == nil {
		return
	}
	if err != nil {
		b.failed.Inc()
	} else {
		b.ok.Inc()
	}
}

// SetReplicas sets the function tswgate_ratelimit_replicas reports.
func (b *Budget) SetReplicas(f func() int) {
	if b != nil {
		b.replicas.Store(&f)
	}
}
