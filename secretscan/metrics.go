package secretscan

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer is told what the handlers do, for metrics; Metrics is one.
type Observer interface {
	// Refused: a report or a revoke request was refused with code.
	Refused(code string)
	// Checked: a reported credential was decided. via is the actor kind
	// (ActorSecretScanning, ActorPublicRevoke).
	Checked(via string, label Label)
	// Answered: a report of size matches was answered after d.
	Answered(size int, d time.Duration)
	// Dropped: a credential sent for revocation could not be checked
	// after every retry (the store was down): it was not revoked.
	Dropped()
}

type noObserver struct{}

func (noObserver) Refused(string)              {}
func (noObserver) Checked(string, Label)       {}
func (noObserver) Answered(int, time.Duration) {}
func (noObserver) Dropped()                    {}

// Metrics exports the handlers' counts to Prometheus. Its labels are
// codes, actor kinds and labels only: never a token or a hash.
type Metrics struct {
	refused  *prometheus.CounterVec
	checked  *prometheus.CounterVec
	answered prometheus.Histogram
	dropped  prometheus.Counter
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_secret_scanning_refused_total",
			Help: "Secret scanning reports and revoke-by-value requests refused, by code (signature_missing, signature_invalid, rate_limited, …).",
		}, []string{"code"}),
		checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tswgate_secret_scanning_credentials_total",
			Help: "Reported credentials decided, by how they came (secret_scanning, public_revoke) and label (true_positive: a live or revoked token).",
		}, []string{"via", "label"}),
		answered: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tswgate_secret_scanning_report_seconds",
			Help:    "Time to answer a secret scanning report (GitHub's timeout is about 10 s).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_secret_scanning_dropped_total",
			Help: "Credentials sent for revocation by value that were given up unchecked after every retry (the store was down): not revoked.",
		}),
	}
	for _, c := range []prometheus.Collector{m.refused, m.checked, m.answered, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("secretscan: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Refused counts a refusal.
func (m *Metrics) Refused(code string) { m.refused.WithLabelValues(code).Inc() }

// Checked counts a decided credential.
func (m *Metrics) Checked(via string, label Label) {
	m.checked.WithLabelValues(via, string(label)).Inc()
}

// Answered observes a report's answer time.
func (m *Metrics) Answered(_ int, d time.Duration) { m.answered.Observe(d.Seconds()) }

// Dropped counts a credential given up.
func (m *Metrics) Dropped() { m.dropped.Inc() }
