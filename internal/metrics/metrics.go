// Package metrics holds the gateway's Prometheus metrics outside the
// request path, one type per area, each registering what it observes: the
// token cache, store reads and change announcements (Cache), the token
// API's store calls (StoreWrites), the shared rate-limit budget (Budget),
// the live token counts (Tokens) and the build (RegisterBuild). The
// requests themselves are counted by the proxy (proxy.Metrics).
//
// The metric names and labels are a contract: dashboards and alert rules
// (deploy/) depend on them. A nil value of each type records nothing.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// register registers every collector with reg.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}
