package codecheck

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tswgate/tswgate/internal/metrics"
	"github.com/tswgate/tswgate/proxy"
	"github.com/tswgate/tswgate/secretscan"
	"github.com/tswgate/tswgate/webhook"
)

// recordingRegisterer registers collectors on a real registry (so that a
// duplicate or inconsistent family fails as it would in the gateway) and
// records the name of every family they describe, also of vectors that
// have no series yet and so would not show on /metrics.
type recordingRegisterer struct {
	reg   *prometheus.Registry
	names []string
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Register describes c, records its families' names and registers it.
func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			return fmt.Errorf("no name in %s", d)
		}
		r.names = append(r.names, m[1])
	}
	return r.reg.Register(c)
}

// MustRegister registers cs, panicking on an error as the registry does.
func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister unregisters c from the registry.
func (r *recordingRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// registeredFamilies registers every area's metrics as the gateway does
// (the opt-in series switched on) and returns the families' names.
func registeredFamilies(t *testing.T) []string {
	t.Helper()
	r := &recordingRegisterer{reg: prometheus.NewRegistry()}
	areas := map[string]func() error{
		"proxy": func() error {
			_, err := proxy.NewMetrics(r, proxy.MetricsOptions{Projects: []int64{42}, Tokens: []string{"tsw_x"}})
			return err
		},
		"cache":       func() error { _, err := metrics.NewCache(r); return err },
		"store":       func() error { _, err := metrics.NewStoreWrites(r); return err },
		"budget":      func() error { _, err := metrics.NewBudget(r); return err },
		"tokens":      func() error { _, err := metrics.NewTokens(r); return err },
		"connections": func() error { _, err := metrics.NewConnections(r); return err },
		"build":       func() error { return metrics.RegisterBuild(r, "", "") },
		"webhook":     func() error { _, err := webhook.NewMetrics(r); return err },
		"secretscan":  func() error { _, err := secretscan.NewMetrics(r); return err },
	}
	for area, register := range areas {
		if err := register(); err != nil {
			t.Fatalf("registering the %s metrics: %v", area, err)
		}
	}
	var out []string
	for _, n := range r.names {
		if strings.HasPrefix(n, "tswgate_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestRegisteredMetricsDocumented: every family the gateway's metric
// areas register — requests, cache, store, rate-limit budget, tokens,
// connections, build, webhooks and secret scanning — is in the metrics
// table of docs/observability.md, and the table names no other. The
// families come from the registered collectors themselves, and the
// source's metric names must all be among them, so that an area added
// to the gateway but not here fails too.
func TestRegisteredMetricsDocumented(t *testing.T) {
	registered := registeredFamilies(t)
	for _, prefix := range []string{"tswgate_webhook_", "tswgate_secret_scanning_", "tswgate_requests_", "tswgate_cache_"} {
		if !slices.ContainsFunc(registered, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("no registered family starts with %s: is an area's registration missing?", prefix)
		}
	}
	doc := tableNames(prose(readDoc(t, "docs/observability.md")), documentedName)
	sameSets(t, "docs/observability.md's metrics table (against the registered families)", registered, doc)
	source := allMatches(sourceFiles(t, "."), metricName)
	for _, n := range source {
		if !slices.Contains(registered, n) {
			t.Errorf("%s is named in the source but not registered by registeredFamilies: add its area there", n)
		}
	}
}
