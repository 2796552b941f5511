package metrics

import "github.com/prometheus/client_golang/prometheus"

// Connections is the public listener's client connections: those open
// (tswgate_connections_open) and how often the connection limit made new
// ones wait (tswgate_connection_limit_waits_total).
type Connections struct {
	open  prometheus.Gauge
	waits prometheus.Counter
}

// NewConnections registers the connection metrics with reg.
func NewConnections(reg prometheus.Registerer) (*Connections, error) {
	c := &Connections{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tswgate_connections_open",
			Help: "Client connections open on the public listener.",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tswgate_connection_limit_waits_total",
			Help: "Times the public listener stopped accepting because TSWGATE_MAX_CONNECTIONS connections were open.",
		}),
	}
	if err := register(reg, c.open, c.waits); err != nil {
		return nil, err
	}
	return c, nil
}

// Opened counts a connection accepted.
func (c *Connections) Opened() {
	if c != nil {
		c.open.Inc()
	}
}

// Closed counts a connection closed.
func (c *Connections) Closed() {
	if c != nil {
		c.open.Dec()
	}
}

// AtLimit counts a wait at the connection limit.
func (c *Connections) AtLimit() {
	if c != nil {
		c.waits.Inc()
	}
}
