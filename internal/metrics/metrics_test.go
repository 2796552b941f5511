package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tswgate/tswgate/auth"
)

// TestReconnects: a resubscription is counted once per break, not at the
// first subscription.
func TestReconnects(t *testing.T) {
	c, err := NewCache(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []auth.EventKind{auth.EventResync, auth.EventResync, auth.EventDisconnected, auth.EventDisconnected,
		auth.EventResync, auth.EventChanged, auth.EventResync} {
		c.Invalidated(k, 0)
	}
	if n := testutil.ToFloat64(c.reconnects); n != 1 {
		t.Errorf("reconnects = %v, want 1 (one resubscription after a break)", n)
	}
	if n := testutil.ToFloat64(c.invalidations[auth.EventResync]); n != 4 {
		t.Errorf("resync invalidations = %v, want 4", n)
	}
}

func TestStoreWrites(t *testing.T) {
	w, err := NewStoreWrites(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w.StoreWrite("create", false)
	w.StoreWrite("revoke", true)
	w.StoreWrite("nonsense", true)
	if testutil.ToFloat64(w.byOp["create"][0]) != 1 || testutil.ToFloat64(w.byOp["revoke"][1]) != 1 {
		t.Error("store writes not counted")
	}
}

func TestTokens(t *testing.T) {
	tok, err := NewTokens(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tok.Set(map[auth.Role]map[auth.Status]int{auth.RoleOwner: {auth.StatusActive: 3}})
	if testutil.ToFloat64(tok.gauge.WithLabelValues("owner", "active")) != 3 ||
		testutil.ToFloat64(tok.gauge.WithLabelValues("accounting", "inactive")) != 0 {
		t.Error("tokens gauge not set")
	}
}

func TestBudget(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := NewBudget(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "tswgate_ratelimit_replicas"); got != 1 {
		t.Errorf("replicas before SetReplicas = %v, want 1", got)
	}
	b.SetReplicas(func() int { return 3 })
	b.ObserveBudget(nil)
	if got := gauge(t, reg, "tswgate_ratelimit_replicas"); got != 3 {
		t.Errorf("replicas = %v, want 3", got)
	}
	if testutil.ToFloat64(b.ok) != 1 || testutil.ToFloat64(b.failed) != 0 {
		t.Error("budget calls not counted")
	}
}

func TestRegisterBuild(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterBuild(reg, "v9", "abc"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "tswgate_build_info"); n != 1 {
		t.Errorf("%d build_info series", n)
	}
	if err := RegisterBuild(reg, "v9", "abc"); err == nil {
		t.Error("registering twice: no error")
	}
}

// gauge returns the value of a single-series gauge registered with reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
