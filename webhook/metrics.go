package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is an Observer that exports Prometheus metrics. Labels are
// event types and outcomes only: no endpoint, project or token.
type Metrics struct {
	published *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	duration  prometheus.Histogram
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the webhook metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_webhook_deliveries_queued_total",
			Help: "Webhook deliveries queued, by event type (one per event and endpoint).",
		}, []string{"type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_webhook_attempts_total",
			Help: "Webhook delivery attempts, by the delivery's state after them (delivered, retrying, dead, canceled).",
		}, []string{"state"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_webhook_deliveries_dropped_total",
			Help: "Webhook deliveries not queued, by reason (queue_full: the endpoint had the most undelivered deliveries allowed; " +
				"project_queue_full: the event's project had its share of an endpoint that receives several projects' events).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tswgate_webhook_attempt_seconds",
			Help:    "Time from sending a webhook to its endpoint's answer.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
	}
	for _, c := range []prometheus.Collector{m.published, m.attempts, m.dropped, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook: registering metrics: %w", err)
		}
	}
	m.dropped.WithLabelValues(DropQueueFull) // exported at 0 before any drop
	m.dropped.WithLabelValues(DropProjectQueueFull)
	return m, nil
}

// Published counts queued deliveries.
func (m *Metrics) Published(typ string, deliveries int) {
	m.published.WithLabelValues(typ).Add(float64(deliveries))
}

// Attempted counts an attempt and its duration.
func (m *Metrics) Attempted(d *Delivery, a Attempt) {
	m.attempts.WithLabelValues(string(d.State)).Inc()
	if a.Duration > 0 {
		m.duration.Observe(a.Duration.Seconds())
	}
}

// Dropped counts deliveries dropped for reason.
func (m *Metrics) Dropped(reason string, deliveries int) {
	m.dropped.WithLabelValues(reason).Add(float64(deliveries))
}
