package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/auth"
)

// Tokens is tswgate_tokens: the live tokens in the store by role and
// status, as last counted.
type Tokens struct {
	gauge *prometheus.GaugeVec
}

// NewTokens registers tswgate_tokens with reg, every count 0.
func NewTokens(reg prometheus.Registerer) (*Tokens, error) {
	t := &Tokens{gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tswgate_tokens",
		Help: "Live tokens in the store, by role and status, counted periodically.",
	}, []string{"role", "status"})}
	t.Set(nil)
	if err := register(reg, t.gauge); err != nil {
		return nil, err
	}
	return t, nil
}

// Set sets the gauge from a count of live tokens by role and status; the
// combinations missing from counts are set to 0.
func (t *Tokens) Set(counts map[auth.Role]map[auth.Status]int) {
	if t == nil {
		return
	}
	for _, r := range []auth.Role{auth.RoleOwner, auth.RoleAccounting} {
		for _, s := range []auth.Status{auth.StatusActive, auth.StatusInactive} {
			t.gauge.WithLabelValues(r.String(), s.String()).Set(float64(counts[r][s]))
		}
	}
}
